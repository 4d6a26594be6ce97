"""The sampler contract and shared helpers.

``sample(logits, matcher, generator=None) -> (token_id, log_weight)`` returns a token the matcher
accepts and never changes the matcher (the caller commits the token). ``log_weight`` is the log of
an (estimate of the) allowed probability mass Z under the warped distribution: exact for
``Masked``, an unbiased estimate for ``AWRS``; 0.0 for greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from structgen.runtime.matcher import Matcher
from structgen.sampling.warp import NoAllowedToken


@dataclass
class SamplerStats:
    """Counters a sampler accumulates over its calls."""

    calls: int = 0
    checks: int = 0  # single-token constraint checks
    full_masks: int = 0  # full vocabulary masks computed

    def reset(self) -> None:
        """Zero the counters."""
        self.calls = self.checks = self.full_masks = 0


def allowed_mask(matcher: Matcher, width: int) -> torch.Tensor:
    """``bool[width]`` of allowed tokens; ids beyond the vocabulary are never allowed."""
    mask = matcher.next_token_mask()
    if mask.numel() < width:
        mask = torch.cat([mask, torch.zeros(width - mask.numel(), dtype=torch.bool)])
    return mask[:width]


def sample_from_masked(
    scores: torch.Tensor,
    mask: torch.Tensor,
    greedy: bool,
    generator: torch.Generator | None,
) -> tuple[int, float]:
    """Draw from ``softmax(scores)`` restricted to ``mask``; return (token, log Z)."""
    masked = scores.masked_fill(~mask, float("-inf"))
    if greedy:
        token = int(torch.argmax(masked))
        if masked[token] == float("-inf"):
            raise NoAllowedToken("no allowed token has a finite logit")
        return token, 0.0
    log_z = float(torch.logsumexp(masked, dim=-1))
    if log_z == float("-inf"):
        raise NoAllowedToken(
            "the warps (top_k / top_p) excluded every token the grammar allows",
            hint="raise top_k or top_p",
        )
    probs = torch.softmax(masked, dim=-1)
    token = int(torch.multinomial(probs, 1, generator=generator))
    return token, log_z


__all__ = ["SamplerStats", "allowed_mask", "sample_from_masked"]
