"""Drafters that run a language model: a separate draft model, or the target's early layers.

``ModelDrafter``
    Any causal LM with the target's tokenizer (checked when a tokenizer is given). It keeps its
    own KV cache, re-synchronised with the sequence at every call (only the tokens it has not
    seen are fed), and drafts one token per forward pass, each chosen over the tokens the grammar
    allows at that point of the draft:

    - greedy: its best allowed token;
    - sampling, coupled verification: ``argmax(warped log q + g)`` over the allowed tokens with
      the position's shared Gumbel noise ``g`` (``DraftRequest.noise``);
    - sampling, mask verification: a draw from its masked distribution ``q~``, returned as
      ``Proposal.q`` for the ``min(1, p~/q~)`` rule.

    Its confidence in a token is the (unmasked) probability it gave it; before each token it
    asks the draft-length policy (``DraftRequest.admit``) and stops at the first refusal, so no
    forward pass is spent on a token that would not pay.

``LayerSkipDrafter``
    Self-speculation: the target's own first ``num_layers`` decoder layers, its final norm and LM
    head (``CausalLM.early_exit``), sharing every weight with the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from structgen.errors import ConfigurationError
from structgen.integrations.lm import CausalLM
from structgen.sampling.warp import warp_logits
from structgen.speculative.base import Drafter, DraftRequest, Proposal
from structgen.speculative.verify import coupled_choice, greedy_choice, masked_distribution
from structgen.tokens.vocabulary import Vocabulary

__all__ = ["LayerSkipDrafter", "ModelDrafter"]


def _adapter(model: Any) -> Any:
    """``model`` itself if it already speaks the adapter interface, else ``CausalLM(model)``."""
    if all(hasattr(model, n) for n in ("new_cache", "forward", "crop", "cache_len")):
        return model
    return CausalLM(model)


class ModelDrafter(Drafter):
    """Drafts with a causal LM that shares the target's tokenizer.

    Parameters
    ----------
    model : transformers model or CausalLM
        The draft model.
    tokenizer : tokenizer, optional
        The draft model's tokenizer; when given, ``reset`` checks that it has the target's
        vocabulary (same bytes for every id, same EOS ids) and raises ``ConfigurationError``
        otherwise.
    name : str
        Source name in statistics.
    """

    name = "model"
    expensive = True  # CombinedDrafter asks it only when the cheap drafters have little

    def __init__(self, model: Any, *, tokenizer: Any = None, name: str = "model") -> None:
        self.lm = _adapter(model)
        self.tokenizer = tokenizer
        self.name = name
        self._checked: Vocabulary | None = None
        self._cache: Any = None
        self._fed: list[int] = []
        self._next: torch.Tensor | None = None  # logits after ``_fed``

    @property
    def forward_passes(self) -> int:
        """Forward passes of the draft model so far."""
        return int(getattr(self.lm, "forward_passes", 0))

    def reset(self, prompt: Sequence[int], vocab: Vocabulary) -> None:
        if self.tokenizer is not None and self._checked is not vocab:
            mine = Vocabulary.from_tokenizer(self.tokenizer)
            size = min(mine.vocab_size, vocab.vocab_size)
            if (
                mine.token_bytes[:size] != vocab.token_bytes[:size]
                or mine.eos_token_ids != vocab.eos_token_ids
            ):
                raise ConfigurationError(
                    "Invalid draft model: its tokenizer differs from the target's",
                    hint="use a draft model trained with the same tokenizer",
                )
            self._checked = vocab
        self._cache = self.lm.new_cache()
        self._fed = []
        self._next = None

    def _logits_after(self, context: list[int]) -> torch.Tensor:
        """The draft model's logits for the position after ``context`` (cache re-used)."""
        if self._cache is None:
            self._cache = self.lm.new_cache()
        fed = self._fed
        common = 0
        limit = min(len(fed), len(context))
        while common < limit and fed[common] == context[common]:
            common += 1
        if common == len(context) == len(fed) and self._next is not None:
            return self._next
        keep = min(common, len(context) - 1)
        if keep < len(fed):
            self.lm.crop(self._cache, keep)
            del fed[keep:]
        new = context[keep:]
        logits = self.lm.forward([new], self._cache, last_only=True).logits[0, -1]
        fed += new
        self._next = logits
        return logits

    def _feed(self, token: int) -> torch.Tensor:
        logits = self.lm.forward([[token]], self._cache, last_only=True).logits[0, -1]
        self._fed.append(token)
        self._next = logits
        return logits

    def propose(self, request: DraftRequest) -> Proposal:
        matcher = request.matcher
        params = request.params
        width = request.matcher.compiled.vocab.vocab_size
        logits = self._logits_after(request.context)
        tokens: list[int] = []
        qs: list[torch.Tensor] = []
        confidence: list[float] = []
        eos = matcher.compiled.vocab.eos_token_ids
        position = len(request.context)
        consumed = 0
        try:
            for i in range(request.max_tokens):
                row = _fit(logits, width)
                if params.greedy:
                    token = greedy_choice(row, matcher, None).token
                    conf = float(torch.softmax(row, dim=-1)[token])
                elif request.want_q:
                    q = masked_distribution(row, matcher, params)
                    assert request.noise is not None
                    keys = torch.log(q) + request.noise(position)[: q.numel()]
                    token = int(torch.argmax(keys))
                    qs.append(q)
                    conf = float(q[token])
                else:
                    assert request.noise is not None
                    token = coupled_choice(row, matcher, params, request.noise(position)).token
                    conf = float(warp_logits(row, params).exp()[token])
                label = str(min(i, 3))
                if request.admit is not None and not request.admit(self.name, label, conf):
                    if request.want_q and not params.greedy:
                        qs.pop()
                    break
                tokens.append(token)
                confidence.append(conf)
                if token in eos or i == request.max_tokens - 1:
                    break
                matcher.consume_token(token)
                consumed += 1
                if matcher.is_accepting() and not matcher.can_continue():
                    break
                logits = self._feed(token)
                position += 1
        finally:
            matcher.rollback(consumed)
        q_out = qs if request.want_q and not params.greedy else None
        return Proposal(
            tokens,
            q=q_out,
            confidence=confidence,
            source=self.name,
            admitted=request.admit is not None,
        )


def _fit(logits: torch.Tensor, width: int) -> torch.Tensor:
    """``logits`` cut or padded (with -inf) to ``width`` entries."""
    logits = logits.to(torch.float32).reshape(-1)
    if logits.numel() >= width:
        return logits[:width]
    pad = torch.full((width - logits.numel(),), float("-inf"))
    return torch.cat([logits, pad])


class LayerSkipDrafter(ModelDrafter):
    """Self-speculation with the target's first ``num_layers`` layers (weights shared).

    Parameters
    ----------
    model : transformers model or CausalLM
        The target model.
    num_layers : int
        Decoder layers kept (the rest are skipped; final norm and LM head are kept).
    """

    def __init__(self, model: Any, num_layers: int) -> None:
        lm = model if isinstance(model, CausalLM) else CausalLM(model)
        super().__init__(lm.early_exit(num_layers), name=f"layerskip{num_layers}")
        self.num_layers = num_layers
