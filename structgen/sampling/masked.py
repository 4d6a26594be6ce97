"""Masked sampling: the baseline of locally constrained decoding.

Compute the full next-token mask, renormalise the warped distribution over it and draw (or take
the argmax). Samples exactly from q(x) = p(x) * allowed(x) / Z; the log-weight is log Z, exact.
"""

from __future__ import annotations

import torch

from structgen.runtime.matcher import Matcher
from structgen.sampling.base import SamplerStats, allowed_mask, sample_from_masked
from structgen.sampling.warp import SamplingParams, warp_logits


class Masked:
    """Full-mask sampler.

    Args:
        params: temperature / top-k / top-p (temperature 0: greedy).
    """

    def __init__(self, params: SamplingParams | None = None) -> None:
        self.params = params or SamplingParams()
        self.stats = SamplerStats()

    def sample(
        self,
        logits: torch.Tensor,
        matcher: Matcher,
        generator: torch.Generator | None = None,
    ) -> tuple[int, float]:
        """Return (token_id, log Z) for one step. Does not change ``matcher``.

        Raises:
            NoAllowedToken: the warps left no allowed token.
        """
        scores = warp_logits(logits, self.params)
        mask = allowed_mask(matcher, scores.numel())
        self.stats.calls += 1
        self.stats.full_masks += 1
        return sample_from_masked(scores, mask, self.params.greedy, generator)


__all__ = ["Masked"]
