"""Shared pieces of the grammar-aligned samplers: the model interface they need, their counters,
one-row decoding that reuses the KV cache of a common prefix, length-capped masks and draws.

Notation (docs/sampling.md): p is the model's next-token distribution after the warps, L the
grammar's language, T = ``max_new_tokens``. Every sampler here targets (exactly, in the limit, or
through weights) pi_T(y) ∝ p(y·EOS)·1[y in L, |y| <= T]: at depth T only EOS is allowed, so a
string that cannot end within T tokens is outside the target, never silently truncated.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from structgen.errors import ConfigurationError
from structgen.runtime.matcher import Matcher
from structgen.sampling.base import allowed_mask
from structgen.sampling.warp import SamplingParams, warp_logits

__all__ = [
    "AlignedStats",
    "Draw",
    "LanguageModel",
    "PathDecoder",
    "allowed_at",
    "as_language_model",
    "check_params",
    "draw_index",
    "eos_mask",
    "grammar_forces",
    "is_allowed_at",
    "uniform",
]


@runtime_checkable
class LanguageModel(Protocol):
    """What the samplers need from a model: the methods of ``integrations.lm.CausalLM``.

    ``forward(ids, cache, last_only=...)`` appends ``ids`` (``[batch, positions]``) to ``cache``
    and returns an object whose ``logits`` is ``float[batch, positions, vocab_width]``.
    """

    forward_passes: int

    @property
    def vocab_width(self) -> int: ...  # noqa: D102

    def new_cache(self) -> Any: ...  # noqa: D102

    def forward(self, ids: Any, cache: Any, *, last_only: bool = False) -> Any: ...  # noqa: D102

    def crop(self, cache: Any, length: int) -> None: ...  # noqa: D102

    def reorder(self, cache: Any, rows: Sequence[int] | torch.Tensor) -> None: ...  # noqa: D102

    def cache_len(self, cache: Any) -> int: ...  # noqa: D102


def as_language_model(model: Any) -> LanguageModel:
    """``model`` itself if it already speaks the adapter interface, else ``CausalLM(model)``."""
    if isinstance(model, LanguageModel):
        return model
    from structgen.integrations.lm import CausalLM

    return CausalLM(model)


@dataclass
class AlignedStats:
    """Counters of one sampling call.

    Attributes:
        forward_passes: model calls (a batched call counts once).
        positions: token positions fed to the model, summed over rows (the prompt included).
        checks: single-token grammar checks.
        full_masks: full next-token masks computed.
        attempts: CARS attempts / IMH proposals / sequences decoded.
        accepted: CARS accepted samples / IMH accepted moves.
        resamples: SMC resampling steps.
        model_s: seconds inside the model.
        wall_s: seconds in total.
    """

    forward_passes: int = 0
    positions: int = 0
    checks: int = 0
    full_masks: int = 0
    attempts: int = 0
    accepted: int = 0
    resamples: int = 0
    model_s: float = 0.0
    wall_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def forward(self, lm: LanguageModel, ids: Any, cache: Any, last_only: bool) -> torch.Tensor:
        """``lm.forward`` counted; returns the logits."""
        t0 = time.perf_counter()
        step = lm.forward(ids, cache, last_only=last_only)
        self.model_s += time.perf_counter() - t0
        self.forward_passes += 1
        self.positions += sum(len(row) for row in ids)
        logits: torch.Tensor = step.logits
        return logits

    def add(self, other: AlignedStats) -> None:
        """Add ``other``'s counters to these."""
        for name in (
            "forward_passes",
            "positions",
            "checks",
            "full_masks",
            "attempts",
            "accepted",
            "resamples",
            "model_s",
            "wall_s",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, value in other.extra.items():
            self.extra[key] = self.extra.get(key, 0.0) + value


@dataclass
class Draw:
    """One sampled token sequence.

    Attributes:
        tokens: the token ids, EOS excluded.
        complete: whether the sequence ended with EOS inside the grammar (else it is a failure:
            a dead end at the length cap, or a particle killed by its weight).
        log_weight: log importance weight towards pi_T (properly weighted), 0.0 for exact
            samplers, None where the sampler gives none (ASAp).
    """

    tokens: list[int]
    complete: bool
    log_weight: float | None


def check_params(params: SamplingParams, max_new_tokens: int) -> None:
    """Reject settings the aligned samplers cannot honour.

    Raises:
        ConfigurationError: greedy decoding (temperature 0) or ``max_new_tokens < 1``.
    """
    if params.greedy:
        raise ConfigurationError(
            "Invalid temperature: the grammar-aligned samplers sample; expected > 0, got 0",
            hint="pass temperature=1.0 (the model's own distribution)",
        )
    if max_new_tokens < 1:
        raise ConfigurationError(f"Invalid max_new_tokens: expected >= 1, got {max_new_tokens}")


def eos_mask(matcher: Matcher, width: int) -> torch.Tensor:
    """``bool[width]``, True at the vocabulary's EOS ids."""
    mask = torch.zeros(width, dtype=torch.bool)
    mask[torch.from_numpy(matcher.compiled.eos_token_ids)] = True
    return mask


def allowed_at(matcher: Matcher, depth: int, max_tokens: int, width: int) -> torch.Tensor:
    """``bool[width]``: the grammar's next-token mask, capped to EOS at depth ``max_tokens``."""
    if depth >= max_tokens:
        if matcher.is_accepting() and not matcher.is_terminated():
            return eos_mask(matcher, width)
        return torch.zeros(width, dtype=torch.bool)
    return allowed_mask(matcher, width)


def is_allowed_at(matcher: Matcher, token: int, depth: int, max_tokens: int) -> bool:
    """Whether ``token`` may follow, with the same length cap as ``allowed_at``."""
    if depth >= max_tokens and token not in matcher.compiled.vocab.eos_token_ids:
        return False
    return matcher.validate_tokens([token]) == 1


def grammar_forces(matcher: Matcher) -> bool:
    """Whether the grammar leaves next to no choice here: it forces the next bytes, or only EOS
    is allowed. There the allowed mass can be tiny and AWRS would reject many tokens (its cost
    is about 1/Z), while a full mask is cheap and exact. The test reads only the grammar state,
    before any draw, so switching on it keeps each branch's guarantee (docs/algorithms.md §5.2).
    """
    if matcher.is_terminated():
        return False
    if matcher.forced_bytes():
        return True
    return matcher.is_accepting() and not matcher.can_continue()


def uniform(generator: torch.Generator | None) -> float:
    """One draw from U[0, 1)."""
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def draw_index(weights: np.ndarray, generator: torch.Generator | None) -> int:
    """An index drawn with probability proportional to the non-negative ``weights``.

    Raises:
        ValueError: the weights sum to zero (callers check for dead nodes first).
    """
    cum = np.cumsum(weights)
    total = float(cum[-1]) if cum.size else 0.0
    if not total > 0:
        raise ValueError("draw_index: weights sum to zero")
    # side="right": the first index whose cumulative weight exceeds u·total, never a zero weight
    index = int(np.searchsorted(cum, uniform(generator) * total, side="right"))
    return min(index, cum.size - 1)


class PathDecoder:
    """Next-token log-probabilities at any token path after a fixed prompt, one row at a time.

    The KV cache holds the prompt and the last path evaluated; a new path reuses the cache of the
    prefix it shares with that one (``crop``) and feeds only the rest in one forward pass. So a
    sampler that walks a prefix trie pays one pass per node where it needs the model, feeding
    every token it walked past without the model since.

    Args:
        lm: the model.
        prompt: prompt token ids (non-empty).
        params: the warps.
        stats: counters to update.
    """

    def __init__(
        self, lm: LanguageModel, prompt: Sequence[int], params: SamplingParams, stats: AlignedStats
    ) -> None:
        self.prompt = [int(t) for t in prompt]
        if not self.prompt:
            raise ConfigurationError(
                "Invalid prompt: expected at least one token (e.g. BOS)",
                hint="the model needs a context to predict the first token from",
            )
        self.lm = lm
        self.params = params
        self.stats = stats
        self.cache = lm.new_cache()
        logits = stats.forward(lm, [self.prompt], self.cache, last_only=True)
        self.root = warp_logits(logits[0, -1], params)
        self._fed: list[int] = []
        self._last = self.root

    @property
    def width(self) -> int:
        """Number of log-probabilities per position."""
        return int(self.root.numel())

    def logp(self, path: Sequence[int]) -> torch.Tensor:
        """Warped next-token log-probabilities (``float32[width]``) after ``prompt + path``."""
        path = list(path)
        if not path:
            return self.root
        if path == self._fed:
            return self._last
        common = 0
        for a, b in zip(self._fed, path, strict=False):
            if a != b:
                break
            common += 1
        keep = min(common, len(path) - 1)
        self.lm.crop(self.cache, len(self.prompt) + keep)
        logits = self.stats.forward(self.lm, [path[keep:]], self.cache, last_only=True)
        self._fed = path
        self._last = warp_logits(logits[0, -1], self.params)
        return self._last


def logsumexp(values: Sequence[float] | np.ndarray) -> float:
    """log Σ exp(values), -inf for an empty or all -inf input."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return -math.inf
    top = float(arr.max())
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.exp(arr - top).sum()))
