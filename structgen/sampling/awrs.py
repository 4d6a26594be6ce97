"""Adaptive weighted rejection sampling (AWRS; Lipkin et al., COLM 2025).

Draw from the unconstrained (warped) distribution, check only the drawn token against the matcher,
and on rejection remove it and draw again. Drawing is done once with Gumbel keys: sorting
``log p + Gumbel`` gives a sample order without replacement, so the first accepted token is an
exact draw from ``p * allowed / Z`` (docs/algorithms.md §1.3). A confident model is rarely
rejected, so a step costs one or two token checks instead of a full vocabulary mask.

Weight: the paper's two-round estimator (§1.4): after the first acceptance, a second round with
fresh keys over the same shrunken distribution counts further rejections; with ``psi0`` the mass
rejected in round one and ``n`` all rejections, ``Z_hat = (1 - psi0) / (n + 1)`` is an unbiased,
properly weighted estimate of Z.

Fallback: after ``max_rejections`` rejections in round one, the full mask is computed and the
token is drawn from the remaining distribution masked. The sample stays exact (given the rejected
set R, the masked remainder is again ``p * allowed / Z`` since allowed tokens are never in R), and
the weight becomes the exact log Z. The mixture of the two weight branches is not proven
unbiased, so pass ``max_rejections=None`` when the weights feed an SMC resampler.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from structgen.errors import ConfigurationError
from structgen.runtime.matcher import Matcher
from structgen.sampling.base import SamplerStats, allowed_mask, sample_from_masked
from structgen.sampling.warp import NoAllowedToken, SamplingParams, warp_logits

_CHUNKS = (8, 128, 2048)


def _descending(keys: torch.Tensor) -> Iterator[tuple[int, float]]:
    """Yield ``(index, key)`` in descending key order, pulling small ``topk`` chunks first."""
    n = keys.numel()
    start = 0
    for k in (*_CHUNKS, n):
        k = min(k, n)
        if k <= start:
            continue
        top = torch.topk(keys, k, sorted=True)
        values = top.values[start:k].tolist()
        indices = top.indices[start:k].tolist()
        yield from zip(indices, values, strict=True)
        start = k
        if k == n:
            return


def _gumbel(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, dtype=torch.float32)
    return -torch.log(-torch.log(u.clamp_min(1e-20)))


class AWRS:
    """Adaptive weighted rejection sampler; same output distribution as ``Masked``.

    Args:
        params: temperature / top-k / top-p (temperature 0: greedy, candidates in logit order).
        max_rejections: switch to a full mask after this many rejections (None: never).
        proper_weights: run the second round that makes the weight unbiased. Without it the
            log-weight returned is 0.0 and each step needs only its first round.
    """

    def __init__(
        self,
        params: SamplingParams | None = None,
        *,
        max_rejections: int | None = 64,
        proper_weights: bool = True,
    ) -> None:
        if max_rejections is not None and max_rejections < 0:
            raise ConfigurationError(
                f"Invalid max_rejections: expected None or >= 0, got {max_rejections}"
            )
        self.params = params or SamplingParams()
        self.max_rejections = max_rejections
        self.proper_weights = proper_weights
        self.stats = SamplerStats()

    def sample(
        self,
        logits: torch.Tensor,
        matcher: Matcher,
        generator: torch.Generator | None = None,
    ) -> tuple[int, float]:
        """Return (token_id, log-weight) for one step. Does not change ``matcher``.

        Raises:
            NoAllowedToken: the warps left no allowed token.
        """
        self.stats.calls += 1
        scores = warp_logits(logits, self.params)
        verdicts: dict[int, bool] = {}

        def allowed(token: int) -> bool:
            verdict = verdicts.get(token)
            if verdict is None:
                self.stats.checks += 1
                verdict = matcher.validate_tokens([token]) == 1
                verdicts[token] = verdict
            return verdict

        if self.params.greedy:
            return self._greedy(scores, matcher, allowed)
        keys = scores + _gumbel(scores.shape, generator)
        rejected: list[int] = []
        first: int | None = None
        for token, key in _descending(keys):
            if key == float("-inf"):
                break
            if allowed(token):
                first = token
                break
            rejected.append(token)
            if self.max_rejections is not None and len(rejected) >= self.max_rejections:
                return self._fallback(scores, matcher, rejected, generator)
        if first is None:
            raise NoAllowedToken(
                "the warps (top_k / top_p) excluded every token the grammar allows",
                hint="raise top_k or top_p",
            )
        if not self.proper_weights:
            return first, 0.0
        psi0 = float(scores[rejected].exp().sum()) if rejected else 0.0
        n = len(rejected) + self._second_round(scores, rejected, allowed, generator)
        log_weight = math.log(max(1.0 - psi0, 0.0) or 1e-300) - math.log(n + 1)
        return first, log_weight

    def _second_round(self, scores, rejected, allowed, generator) -> int:  # type: ignore[no-untyped-def]
        """Rejections before the first acceptance, with fresh keys and round-one rejects removed."""
        keys = scores + _gumbel(scores.shape, generator)
        if rejected:
            keys[rejected] = float("-inf")
        count = 0
        for token, key in _descending(keys):
            if key == float("-inf"):
                break
            if allowed(token):
                break
            count += 1
        return count

    def _greedy(self, scores, matcher, allowed) -> tuple[int, float]:  # type: ignore[no-untyped-def]
        rejections = 0
        for token, key in _descending(scores):
            if key == float("-inf"):
                break
            if allowed(token):
                return token, 0.0
            rejections += 1
            if self.max_rejections is not None and rejections >= self.max_rejections:
                self.stats.full_masks += 1
                return sample_from_masked(scores, allowed_mask(matcher, scores.numel()), True, None)
        raise NoAllowedToken("no allowed token has a finite logit")

    def _fallback(self, scores, matcher, rejected, generator) -> tuple[int, float]:  # type: ignore[no-untyped-def]
        self.stats.full_masks += 1
        mask = allowed_mask(matcher, scores.numel())
        return sample_from_masked(scores, mask, False, generator)


__all__ = ["AWRS"]
