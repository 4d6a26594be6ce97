"""Independent Metropolis-Hastings with locally masked proposals.

Proposal: a whole sequence y' from locally masked decoding, q(y') = p(y')/Π_t Z_t(y'), drawn in
batches (the proposals do not depend on the chain's state). Target pi_T(y) ∝ p(y), so the
importance weight is w(y) = p(y)/q(y) = Π_t Z_t(y), the product of the allowed masses along y,
which masked decoding computes anyway (exact with ``weights="exact"``; AWRS's unbiased estimate
with ``weights="awrs"``, a pseudo-marginal chain with the same stationary law). The move is
accepted with probability min(1, w(y')/w(y)).

The chain's stationary distribution is pi_T, and it is uniformly ergodic: with
M = max_y pi_T(y)/q(y) = max_y w(y)/Phi(L_T), the law of the state after k steps is within
(1 − 1/M)^k of pi_T in total variation (Mengersen & Tweedie, 1996). Consecutive states are
correlated (a rejected move repeats the state), so use ``burn_in`` and ``thin`` when
independent-looking samples matter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal

import torch

from structgen.aligned.base import AlignedStats, Draw, LanguageModel, check_params, uniform
from structgen.aligned.smc import AdaptiveAWRS, MaskedRows, TokenSampler, run_particles
from structgen.compiler import CompiledGrammar
from structgen.errors import ConfigurationError
from structgen.sampling.warp import SamplingParams

__all__ = ["WeightMode", "imh", "iter_imh"]

WeightMode = Literal["exact", "awrs"]


def _proposal(weights: WeightMode) -> TokenSampler:
    if weights == "exact":
        return MaskedRows()
    if weights == "awrs":
        return AdaptiveAWRS()
    raise ConfigurationError(f"Invalid weights: expected 'exact' or 'awrs', got {weights!r}")


def imh(
    lm: LanguageModel,
    compiled: CompiledGrammar,
    prompt: Sequence[int],
    n: int,
    *,
    params: SamplingParams,
    max_tokens: int,
    generator: torch.Generator | None = None,
    burn_in: int = 0,
    thin: int = 1,
    batch_size: int = 32,
    weights: WeightMode = "exact",
    stats: AlignedStats | None = None,
) -> list[Draw]:
    """``n`` states of the chain, taken every ``thin`` steps after ``burn_in`` steps.

    Returns:
        Draws with ``log_weight`` 0.0 (the chain's states are unweighted).

    Raises:
        ConfigurationError: bad ``n``, ``burn_in``, ``thin`` or ``batch_size``.
    """
    if n < 1:
        raise ConfigurationError(f"Invalid n: expected >= 1, got {n}")
    chain = iter_imh(
        lm,
        compiled,
        prompt,
        params=params,
        max_tokens=max_tokens,
        generator=generator,
        burn_in=burn_in,
        thin=thin,
        batch_size=min(batch_size, burn_in + n * thin),
        weights=weights,
        stats=stats,
    )
    return [next(chain) for _ in range(n)]


def iter_imh(
    lm: LanguageModel,
    compiled: CompiledGrammar,
    prompt: Sequence[int],
    *,
    params: SamplingParams,
    max_tokens: int,
    generator: torch.Generator | None = None,
    burn_in: int = 0,
    thin: int = 1,
    batch_size: int = 32,
    weights: WeightMode = "exact",
    stats: AlignedStats | None = None,
) -> Iterator[Draw]:
    """The chain's states, every ``thin`` steps after ``burn_in`` steps, without end.

    Proposals are drawn ``batch_size`` at a time, so ``stats`` advances a batch at a time.

    Raises:
        ConfigurationError: bad ``burn_in``, ``thin`` or ``batch_size`` (on the first ``next``).
    """
    check_params(params, max_tokens)
    for name, value, low in (("burn_in", burn_in, 0), ("thin", thin, 1)):
        if value < low:
            raise ConfigurationError(f"Invalid {name}: expected >= {low}, got {value}")
    if batch_size < 1:
        raise ConfigurationError(f"Invalid batch_size: expected >= 1, got {batch_size}")
    stats = stats if stats is not None else AlignedStats()
    proposal = _proposal(weights)
    state: Draw | None = None
    steps = 0
    while True:
        run = run_particles(
            lm,
            compiled,
            prompt,
            batch_size,
            params=params,
            max_tokens=max_tokens,
            generator=generator,
            proposal=proposal,
            ess_threshold=0.0,
            stats=stats,
        )
        for draw in run.draws:
            log_w = draw.log_weight if draw.log_weight is not None else -math.inf
            if state is None:
                if log_w == -math.inf:
                    continue  # no state yet: wait for a proposal inside the target
                state = draw
                stats.accepted += 1
            else:
                assert state.log_weight is not None
                ratio = log_w - state.log_weight
                if log_w > -math.inf and (ratio >= 0 or uniform(generator) < math.exp(ratio)):
                    state = draw
                    stats.accepted += 1
            steps += 1
            if steps > burn_in and (steps - burn_in) % thin == 0:
                yield Draw(list(state.tokens), True, 0.0)
