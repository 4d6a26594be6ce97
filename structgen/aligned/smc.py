"""Sequential Monte Carlo with AWRS weights (Loula et al., ICLR 2025; Lipkin et al., COLM 2025).

N particles decode in one batch: one forward pass per step for all live particles, one row of the
KV cache each. At each step a particle draws its next token from the locally masked distribution
with a token sampler (AWRS by default, with ``max_rejections=None`` so its estimate Ẑ_t of the
allowed mass is unbiased and properly weighted) and multiplies its weight by Ẑ_t. At depth T the
particle must end: its weight gains p(EOS) if its text is complete, else it dies (weight 0). So
each particle's weight is an unbiased estimate of p(y)/q(y) for its sequence y and the particle
population is properly weighted for pi_T (docs/algorithms.md §1.5).

When the effective sample size falls below ``ess_threshold``·N, particles are resampled
(systematic by default) in proportion to their weights, the cache rows are reordered to follow
their ancestors, and every weight is set to the log-mean weight, which keeps the estimate of the
normalising constant Phi(L_T) = Σ p(y) unbiased (``log_ml``). With ``ess_threshold=0`` this is
plain importance sampling with the locally masked proposal; with the ``Masked`` token sampler the
weights are the exact products Π_t Z_t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from structgen.aligned.base import (
    AlignedStats,
    Draw,
    LanguageModel,
    check_params,
    grammar_forces,
    logsumexp,
)
from structgen.aligned.resampling import ResamplingScheme, ess, log_mean_exp, resample
from structgen.compiler import CompiledGrammar
from structgen.errors import ConfigurationError
from structgen.runtime.matcher import Matcher
from structgen.sampling.awrs import AWRS
from structgen.sampling.base import SamplerStats
from structgen.sampling.masked import Masked
from structgen.sampling.warp import NoAllowedToken, SamplingParams, warp_logits

__all__ = [
    "AdaptiveAWRS",
    "MaskedRows",
    "ParticleRun",
    "TokenSampler",
    "default_proposal",
    "run_particles",
    "warp_rows",
]


class TokenSampler(Protocol):
    """A per-step sampler: ``sample(logits, matcher, generator) -> (token, log_weight)``."""

    stats: SamplerStats

    def sample(  # noqa: D102
        self, logits: torch.Tensor, matcher: Matcher, generator: torch.Generator | None
    ) -> tuple[int, float]: ...


class AdaptiveAWRS:
    """AWRS with unbiased weights (``max_rejections=None``), except where the grammar forces the
    text (``grammar_forces``): there an exact masked step. The choice is made from the grammar
    state before drawing, so the weights stay unbiased and properly weighted."""

    def __init__(self) -> None:
        self.awrs = AWRS(SamplingParams(), max_rejections=None)
        self.masked = Masked(SamplingParams())

    @property
    def stats(self) -> SamplerStats:
        """The two samplers' counters, summed (a snapshot)."""
        a, m = self.awrs.stats, self.masked.stats
        return SamplerStats(a.calls + m.calls, a.checks + m.checks, a.full_masks + m.full_masks)

    def sample(
        self, logits: torch.Tensor, matcher: Matcher, generator: torch.Generator | None
    ) -> tuple[int, float]:
        """(token, log-weight) for one step; does not change ``matcher``."""
        if grammar_forces(matcher):
            return self.masked.sample(logits, matcher, generator)
        return self.awrs.sample(logits, matcher, generator)


def default_proposal() -> TokenSampler:
    """``AdaptiveAWRS``: AWRS with unbiased weights, exact steps where the grammar forces."""
    return AdaptiveAWRS()


@dataclass
class _Particle:
    tokens: list[int]
    matcher: Matcher
    log_weight: float = 0.0
    done: bool = False
    complete: bool = False

    def copy(self, log_weight: float) -> _Particle:
        return _Particle(
            list(self.tokens), self.matcher.copy(), log_weight, self.done, self.complete
        )


@dataclass
class ParticleRun:
    """The particles of one run.

    Attributes:
        draws: one per particle, with its log-weight (-inf for a dead particle).
        log_ml: log of the estimate of Phi(L_T), the model's probability of the target.
        ess_trace: the effective sample size after each step (before any resampling).
    """

    draws: list[Draw]
    log_ml: float
    ess_trace: list[float] = field(default_factory=list)


def run_particles(
    lm: LanguageModel,
    compiled: CompiledGrammar,
    prompt: Sequence[int],
    n: int,
    *,
    params: SamplingParams,
    max_tokens: int,
    generator: torch.Generator | None = None,
    proposal: TokenSampler | None = None,
    ess_threshold: float = 0.5,
    resampling: ResamplingScheme = "systematic",
    stats: AlignedStats | None = None,
) -> ParticleRun:
    """Run ``n`` particles to the end (EOS, death or the length cap).

    Args:
        lm: the model (``CausalLM`` or anything with its interface).
        compiled: the grammar.
        prompt: prompt token ids (non-empty).
        n: number of particles (one batch).
        params: the warps (temperature > 0).
        max_tokens: the length cap T.
        generator: random source.
        proposal: the token sampler (default: AWRS, unbiased weights).
        ess_threshold: resample when ESS < ``ess_threshold``·n (0: never, importance sampling).
        resampling: ``"systematic"`` or ``"multinomial"``.
        stats: counters to update.

    Raises:
        ConfigurationError: bad ``n``, ``ess_threshold``, prompt or params.
    """
    check_params(params, max_tokens)
    if n < 1:
        raise ConfigurationError(f"Invalid n: expected >= 1 particles, got {n}")
    if not 0 <= ess_threshold <= 1:
        raise ConfigurationError(
            f"Invalid ess_threshold: expected 0 <= ess_threshold <= 1, got {ess_threshold}"
        )
    prompt = [int(t) for t in prompt]
    if not prompt:
        raise ConfigurationError("Invalid prompt: expected at least one token (e.g. BOS)")
    stats = stats if stats is not None else AlignedStats()
    proposal = proposal if proposal is not None else default_proposal()
    checks0, masks0 = proposal.stats.checks, proposal.stats.full_masks
    eos = torch.from_numpy(compiled.eos_token_ids)
    cache = lm.new_cache()
    step_logits = stats.forward(lm, [prompt], cache, last_only=True)[:, -1]
    particles = [_Particle([], compiled.matcher()) for _ in range(n)]
    row_of = dict.fromkeys(range(n), 0)
    rows_in_cache = 1
    trace: list[float] = []
    while True:
        live = [i for i, p in enumerate(particles) if not p.done]
        logps = warp_rows(step_logits[[row_of[i] for i in live]], params)
        _step([particles[i] for i in live], logps, proposal, eos, max_tokens, generator)
        log_w = np.array([p.log_weight for p in particles], dtype=np.float64)
        trace.append(ess(log_w))
        live = [i for i, p in enumerate(particles) if not p.done]
        if (
            live
            and ess_threshold > 0
            and np.isfinite(log_w).any()
            and trace[-1] < ess_threshold * n
        ):
            ancestors = resample(log_w, resampling, generator)
            mean = log_mean_exp(log_w)
            particles = [particles[a].copy(mean) for a in ancestors.tolist()]
            row_of = {j: row_of[a] for j, a in enumerate(ancestors.tolist()) if a in row_of}
            stats.resamples += 1
            live = [i for i, p in enumerate(particles) if not p.done]
        if not live:
            break
        sources = [row_of[i] for i in live]
        if sources != list(range(rows_in_cache)):
            lm.reorder(cache, sources)
        feed = [[particles[i].tokens[-1]] for i in live]
        step_logits = stats.forward(lm, feed, cache, last_only=True)[:, -1]
        row_of = {i: r for r, i in enumerate(live)}
        rows_in_cache = len(live)
    stats.attempts += n
    stats.checks += proposal.stats.checks - checks0
    stats.full_masks += proposal.stats.full_masks - masks0
    log_w = np.array([p.log_weight for p in particles], dtype=np.float64)
    draws = [Draw(p.tokens, p.complete, p.log_weight) for p in particles]
    return ParticleRun(draws, log_mean_exp(log_w), trace)


def warp_rows(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """``warp_logits`` of each row of ``logits`` (``float[B, V]``), batched when only the
    temperature applies."""
    if params.top_k == 0 and params.top_p >= 1.0:
        return torch.log_softmax(logits.float() / params.temperature, dim=-1)
    return torch.stack([warp_logits(row, params) for row in logits])


class MaskedRows:
    """Masked sampling (the law and exact weights of ``Masked``), all particles in one batch."""

    def __init__(self) -> None:
        self.stats = SamplerStats()
        self._single = Masked(SamplingParams())

    def sample(
        self, logits: torch.Tensor, matcher: Matcher, generator: torch.Generator | None
    ) -> tuple[int, float]:
        """One row (``Masked.sample``)."""
        self.stats.calls += 1
        self.stats.full_masks += 1
        return self._single.sample(logits, matcher, generator)

    def sample_rows(
        self, logps: torch.Tensor, matchers: list[Matcher], generator: torch.Generator | None
    ) -> list[tuple[int, float]]:
        """(token, log Z) per row; token -1 and log Z = -inf where nothing allowed remains."""
        self.stats.calls += len(matchers)
        self.stats.full_masks += len(matchers)
        width = logps.shape[-1]
        words = np.stack([m.next_token_bitmask_np() for m in matchers])
        bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")
        mask = np.zeros((len(matchers), width), dtype=bool)
        cols = min(width, matchers[0].compiled.vocab_size)
        mask[:, :cols] = bits[:, :cols]
        masked = logps.masked_fill(~torch.from_numpy(mask), float("-inf"))
        log_z = torch.logsumexp(masked, dim=-1)
        alive = torch.isfinite(log_z)
        tokens = torch.full((len(matchers),), -1, dtype=torch.long)
        if bool(alive.any()):
            probs = torch.softmax(masked[alive], dim=-1)
            tokens[alive] = torch.multinomial(probs, 1, generator=generator).flatten()
        return list(zip(tokens.tolist(), log_z.double().tolist(), strict=True))


def _step(
    parts: list[_Particle],
    logps: torch.Tensor,
    proposal: TokenSampler,
    eos: torch.Tensor,
    max_tokens: int,
    generator: torch.Generator | None,
) -> None:
    """One step of the live particles (rows of ``logps``): draw, weight, commit or end."""
    pending: list[int] = []
    for row, part in enumerate(parts):
        if len(part.tokens) >= max_tokens:  # the cap: end here, weighted by p(EOS)
            part.done = True
            if part.matcher.is_accepting():
                part.complete = True
                part.log_weight += logsumexp(logps[row][eos].double().numpy())
            else:
                part.log_weight = -math.inf
        else:
            pending.append(row)
    if not pending:
        return
    if isinstance(proposal, MaskedRows):
        drawn = proposal.sample_rows(logps[pending], [parts[r].matcher for r in pending], generator)
    else:
        drawn = []
        for row in pending:
            try:
                drawn.append(proposal.sample(logps[row], parts[row].matcher, generator))
            except NoAllowedToken:  # the warps removed every allowed token
                drawn.append((-1, -math.inf))
    for row, (token, log_z) in zip(pending, drawn, strict=True):
        part = parts[row]
        if token < 0:  # the particle dies
            part.done, part.log_weight = True, -math.inf
            continue
        part.log_weight += log_z
        part.matcher.consume_token(token)
        if part.matcher.is_terminated():
            part.done = part.complete = True
        else:
            part.tokens.append(token)
