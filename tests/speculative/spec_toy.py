"""An enumerable world for the speculative loop: a toy vocabulary, a real grammar over it, and a
deterministic fake causal LM with the ``CausalLM`` interface (the model test double).

``ToyLM``'s next-token logits are a fixed pseudo-random function of the whole context, so the
distribution of non-speculative masked decoding is exactly computable (``exact_distribution``);
the matcher, the drafters and the loop are the real ones.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import numpy as np
import torch

import structgen as sg
from structgen.integrations.lm import Step
from structgen.sampling.awrs import AWRS
from structgen.sampling.warp import SamplingParams, warp_logits

TOKENS = [b"a", b"b", b"ab", b"ba", b"c", b"bc", b"ca", b"", b""]  # 7: EOS, 8: unused special
EOS = 7
# a finite language with choices, a forced stretch ("abab" after "c": fast-forward commits the
# first "ab" and leaves the second to the model), and tokens that straddle it ("ca", "bc")
REGEX = r"(a|b){1,3}cabab(c|ba)?"


def _encode(vocab: sg.Vocabulary):  # type: ignore[no-untyped-def]
    """Greedy longest-match encoder over the toy vocabulary (the 'tokenizer')."""
    table = {b: i for i, b in enumerate(vocab.token_bytes) if b}

    def encode(data: bytes) -> list[int]:
        out, i = [], 0
        while i < len(data):
            for size in range(min(2, len(data) - i), 0, -1):
                tid = table.get(data[i : i + size])
                if tid is not None:
                    out.append(tid)
                    i += size
                    break
            else:
                raise ValueError(data)
        return out

    return encode


def toy_vocab() -> sg.Vocabulary:
    vocab = sg.Vocabulary.from_token_bytes(TOKENS, eos_token_ids=[EOS], special_token_ids=[8])
    return dataclasses.replace(vocab, encoder=_encode(vocab))


def toy_grammar(regex: str = REGEX) -> sg.CompiledGrammar:
    return sg.compile(sg.Grammar.from_regex(regex), toy_vocab())


class ToyLM:
    """Logits = ``scale`` * N(0, 1) seeded by a CRC of the context (and ``salt``).

    Implements the adapter interface the loop uses: ``new_cache`` (a token list), ``forward``,
    ``crop``, ``cache_len``, ``vocab_width``, ``forward_passes``.
    """

    def __init__(self, width: int = len(TOKENS), *, scale: float = 1.5, salt: int = 0) -> None:
        self.vocab_width = width
        self.scale = scale
        self.salt = salt
        self.forward_passes = 0
        self._memo: dict[tuple[int, ...], torch.Tensor] = {}

    def next_logits(self, context: tuple[int, ...]) -> torch.Tensor:
        found = self._memo.get(context)
        if found is None:
            seed = zlib.crc32(np.asarray(context, dtype=np.int64).tobytes()) ^ self.salt
            values = self.scale * np.random.default_rng(seed).standard_normal(self.vocab_width)
            found = torch.tensor(values, dtype=torch.float32)
            self._memo[context] = found
        return found

    def new_cache(self) -> list[int]:
        return []

    @staticmethod
    def cache_len(cache: list[int]) -> int:
        return len(cache)

    @staticmethod
    def crop(cache: list[int], length: int) -> None:
        del cache[length:]

    def forward(
        self, ids: Any, cache: list[int], *, last_only: bool = False, rows: Any = None
    ) -> Step:
        batch = [list(map(int, r)) for r in ids]
        assert len(batch) == 1 and batch[0], batch
        out = []
        for t in batch[0]:
            cache.append(t)
            out.append(self.next_logits(tuple(cache)))
        logits = torch.stack(out)[None]
        self.forward_passes += 1
        if rows is not None:
            return Step(logits=logits[:, list(rows)])
        return Step(logits=logits[:, -1:] if last_only else logits)


def plain_decode(
    lm: ToyLM,
    compiled: sg.CompiledGrammar,
    prompt: list[int],
    *,
    params: SamplingParams,
    fast_forward: bool,
    max_new_tokens: int = 32,
    generator: torch.Generator | None = None,
) -> tuple[list[int], str]:
    """Non-speculative decoding, step for step as ``generate`` does it (AWRS sampler)."""
    sampler = AWRS(params)
    m = compiled.matcher()
    tokens: list[int] = []

    def forced() -> None:
        if fast_forward:
            ff = m.compute_ff_tokens()[: max_new_tokens - len(tokens)]
            m.consume_tokens(ff)
            tokens.extend(ff)

    forced()
    while len(tokens) < max_new_tokens:
        logits = lm.next_logits(tuple(prompt + tokens))
        token, _ = sampler.sample(logits, m, generator)
        assert m.consume_token(token)
        if m.is_terminated():
            return tokens, "eos"
        tokens.append(token)
        forced()
        if m.is_accepting() and not m.can_continue():
            return tokens, "grammar_complete"
    return tokens, "max_new_tokens"


def exact_distribution(
    lm: ToyLM,
    compiled: sg.CompiledGrammar,
    prompt: list[int],
    *,
    params: SamplingParams,
    fast_forward: bool,
    max_new_tokens: int = 32,
) -> dict[tuple[int, ...], float]:
    """The law of ``plain_decode``'s output (masked sampling), by enumeration."""
    out: dict[tuple[int, ...], float] = {}

    def forced(m: sg.Matcher, tokens: list[int]) -> list[int]:
        if not fast_forward:
            return tokens
        ff = m.compute_ff_tokens()[: max_new_tokens - len(tokens)]
        assert m.consume_tokens(ff) == len(ff)
        return tokens + ff

    def walk(m: sg.Matcher, tokens: list[int], prob: float) -> None:
        if len(tokens) >= max_new_tokens:
            out[tuple(tokens)] = out.get(tuple(tokens), 0.0) + prob
            return
        scores = warp_logits(lm.next_logits(tuple(prompt + tokens)), params)
        allowed = torch.zeros(scores.numel(), dtype=torch.bool)
        allowed[: compiled.vocab.vocab_size] = m.next_token_mask()
        p = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        for t in torch.nonzero(p > 0).flatten().tolist():
            child = m.copy()
            assert child.consume_token(t)
            if child.is_terminated():
                out[tuple(tokens)] = out.get(tuple(tokens), 0.0) + prob * float(p[t])
                continue
            nxt = forced(child, tokens + [t])
            if child.is_accepting() and not child.can_continue():
                out[tuple(nxt)] = out.get(tuple(nxt), 0.0) + prob * float(p[t])
                continue
            walk(child, nxt, prob * float(p[t]))

    m = compiled.matcher()
    walk(m, forced(m, []), 1.0)
    return out


def chi_square_pvalue(counts: dict[Any, int], probs: dict[Any, float]) -> float:
    """Pearson's test of ``counts`` against ``probs``; cells expecting < 5 are pooled."""
    n = sum(counts.values())
    unknown = set(counts) - set(probs)
    assert not unknown, f"outcomes outside the support: {sorted(unknown)[:3]}"
    cells: list[tuple[float, int]] = []
    pooled_e, pooled_o = 0.0, 0
    for key, p in probs.items():
        e, o = n * p, counts.get(key, 0)
        if e < 5:
            pooled_e += e
            pooled_o += o
        else:
            cells.append((e, o))
    if pooled_e > 0:
        cells.append((pooled_e, pooled_o))
    stat = sum((o - e) ** 2 / e for e, o in cells)
    df = len(cells) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2.0), torch.tensor(stat / 2.0)))
