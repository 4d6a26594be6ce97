"""Logit warps (temperature, top-k, top-p), applied before the constraint.

The constrained samplers draw from ``softmax(warp(logits))`` restricted to the tokens the grammar
allows. Warps act on the unconstrained distribution, so a small ``top_k`` or ``top_p`` can exclude
every allowed token; the samplers then report ``NoAllowedToken`` instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from structgen.errors import ConfigurationError, StructgenError


class NoAllowedToken(StructgenError):
    """After warping, no token with non-zero probability is allowed by the grammar."""


@dataclass(frozen=True)
class SamplingParams:
    """How to turn logits into a distribution.

    Args:
        temperature: 0 means greedy (argmax); otherwise logits are divided by it.
        top_k: keep only the ``top_k`` most likely tokens (0: off).
        top_p: keep the smallest set of most likely tokens with mass >= ``top_p`` (1.0: off).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ConfigurationError(f"Invalid temperature: expected >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigurationError(f"Invalid top_k: expected >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigurationError(f"Invalid top_p: expected 0 < top_p <= 1, got {self.top_p}")

    @property
    def greedy(self) -> bool:
        """Whether decoding takes the argmax."""
        return self.temperature == 0


def warp_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Log-probabilities (``float32[V]``, ``-inf`` for excluded tokens) after the warps.

    For greedy params the logits are returned as float32 unchanged (only their order matters).
    """
    scores = logits.detach().to(torch.float32).reshape(-1)
    if params.greedy:
        return scores
    scores = scores / params.temperature
    if params.top_k and params.top_k < scores.numel():
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    logp = torch.log_softmax(scores, dim=-1)
    if params.top_p < 1.0:
        sorted_logp, order = torch.sort(logp, descending=True)
        cum = torch.cumsum(sorted_logp.exp(), dim=-1)
        # drop a token when the mass before it already reaches top_p (the first is always kept)
        drop_sorted = (cum - sorted_logp.exp()) >= params.top_p
        drop = torch.zeros_like(drop_sorted)
        drop[order] = drop_sorted
        logp = torch.log_softmax(logp.masked_fill(drop, float("-inf")), dim=-1)
    return logp


__all__ = ["NoAllowedToken", "SamplingParams", "warp_logits"]
