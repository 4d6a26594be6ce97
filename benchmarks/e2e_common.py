"""Pieces shared by the end-to-end runners (``e2e_overhead``, ``jsonschemabench``): the validity
check of an output, a greedy KV-cached loop without constraints, and the peers' logits processors
(llguidance, XGrammar) for ``model.generate``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np


def check(text: str, schema: Any, formats: bool = False) -> bool:
    """True iff ``text`` parses as JSON and ``jsonschema`` validates it (with ``formats``, also
    the ``format`` keyword, as far as jsonschema's format checker knows the format)."""
    import jsonschema

    try:
        value = json.loads(text)
        cls = jsonschema.validators.validator_for(schema)
        checker = cls.FORMAT_CHECKER if formats else None
        cls(schema, format_checker=checker).validate(value)
    except Exception:  # noqa: BLE001 - any parse or validation failure is "not valid"
        return False
    return True


def greedy_loop(
    model: Any,
    ids: list[int],
    eos: list[int],
    max_new: int,
    on_token: Callable[[], None] | None = None,
) -> list[int]:
    """Unconstrained greedy decoding in a minimal KV-cached loop (the shape of
    ``structgen.generate``); ``on_token`` is called after each chosen token (EOS included)."""
    from structgen.integrations.lm import CausalLM

    lm = CausalLM(model)
    cache = lm.new_cache()
    out_ids: list[int] = []
    pending = ids
    while len(out_ids) < max_new:
        t = int(lm.forward([pending], cache, last_only=True).logits[0, -1].argmax())
        if on_token is not None:
            on_token()
        if t in eos:
            break
        out_ids.append(t)
        pending = [t]
    return out_ids


class MaskProcessor:
    """A minimal logits processor over a matcher with ``fill(mask)`` and ``commit(token)``."""

    def __init__(self, fill: Any, commit: Any, vocab_size: int) -> None:
        self.fill, self.commit, self.vocab_size = fill, commit, vocab_size
        self.mask = np.zeros((1, (vocab_size + 31) // 32), dtype=np.int32)
        self.prompt_len: int | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.prompt_len is None:
            self.prompt_len = int(input_ids.shape[1])
        elif not self.commit(int(input_ids[0, -1])):
            raise RuntimeError("the matcher rejected a token its own mask allowed")
        self.fill(self.mask)
        bits = np.unpackbits(self.mask.view(np.uint8), bitorder="little")[: scores.shape[-1]]
        allowed = torch.from_numpy(bits.astype(bool))
        return scores.masked_fill(~allowed, float("-inf"))


def make_processor(mode: str, schema: Any, vocab: Any, peers: dict[str, Any]) -> Any:
    """The logits processor of ``structgen-processor``, ``llguidance-processor`` or
    ``xgrammar-processor`` for ``schema`` (building it compiles the schema)."""
    import structgen as sg

    if mode == "structgen-processor":
        return sg.StructgenLogitsProcessor(sg.compile(sg.Grammar.from_json_schema(schema), vocab))
    if mode == "llguidance-processor":
        llg = peers["llguidance"]
        grammar = llg.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        m = llg.LLMatcher(peers["llg_tok"], grammar, log_level=0)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return MaskProcessor(
            lambda mask: m.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes),
            m.consume_token,
            vocab.vocab_size,
        )
    if mode == "xgrammar-processor":
        xgr = peers["xgrammar"]
        return xgr.contrib.hf.LogitsProcessor(
            peers["xgr_compiler"].compile_json_schema(json.dumps(schema))
        )
    raise ValueError(mode)


def load_peers(tok: Any, vocab: Any, modes: list[str]) -> dict[str, Any]:
    """The imported peer libraries and their tokenizer objects for the ``*-processor`` modes."""
    peers: dict[str, Any] = {}
    eos = sorted(vocab.eos_token_ids)
    if "llguidance-processor" in modes:
        import llguidance
        import llguidance.hf

        peers["llguidance"] = llguidance
        peers["llg_tok"] = llguidance.hf.from_tokenizer(
            tok, n_vocab=vocab.vocab_size, eos_token=eos
        )
    if "xgrammar-processor" in modes:
        import xgrammar
        import xgrammar.contrib.hf

        info = xgrammar.TokenizerInfo.from_huggingface(
            tok, vocab_size=vocab.vocab_size, stop_token_ids=eos
        )
        peers["xgrammar"] = xgrammar
        peers["xgr_compiler"] = xgrammar.GrammarCompiler(info, max_threads=1)
    return peers
