"""SMC with AWRS weights: the evidence estimate is unbiased, the weighted particles converge to
the target, ESS and resampling behave, and the weights do what the unweighted particles cannot.

World and exact distributions: toy_world.py and conftest.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from toy_world import GRAMMAR, MAX_TOKENS, PROMPT, text_of

from structgen.aligned import run_particles, sample_tokens
from structgen.aligned.metrics import empirical, kl_divergence, total_variation
from structgen.aligned.resampling import ess, resample
from structgen.errors import ConfigurationError
from structgen.sampling.warp import SamplingParams

PARAMS = SamplingParams()


def weighted(draws) -> dict[bytes, float]:  # type: ignore[no-untyped-def]
    return empirical([text_of(d.tokens) for d in draws], [d.log_weight for d in draws])


def test_log_ml_is_an_unbiased_estimate_of_the_target_mass(world) -> None:  # type: ignore[no-untyped-def]
    # E[Ẑ] = Phi(L) = Σ_y p(y): SMC's evidence estimate is unbiased (with AWRS's unbiased
    # per-step estimates and resampling that resets weights to their mean).
    lm, exact, _, _ = world
    gen = torch.Generator().manual_seed(0)
    estimates = []
    for _ in range(60):
        run = run_particles(lm, GRAMMAR, PROMPT, 10, params=PARAMS, max_tokens=MAX_TOKENS,
                            generator=gen, ess_threshold=0.5)  # fmt: skip
        estimates.append(math.exp(run.log_ml))
    z = math.exp(exact.log_z)
    mean = float(np.mean(estimates))
    se = float(np.std(estimates, ddof=1) / math.sqrt(len(estimates)))
    assert abs(mean - z) <= 4 * se, (mean, z, se)


def test_weighted_particles_converge_to_the_target(world) -> None:  # type: ignore[no-untyped-def]
    lm, _, target, lcd = world
    gen = torch.Generator().manual_seed(1)
    out = sample_tokens(lm, GRAMMAR, PROMPT, 1500, sampler="smc", particles=500,
                        max_new_tokens=MAX_TOKENS, generator=gen)  # fmt: skip
    assert out.stats.resamples > 0
    post = weighted(out.draws)
    assert total_variation(target, post) < 0.05
    assert kl_divergence(target, post, n=1500) < kl_divergence(target, lcd) / 10
    assert total_variation(target, lcd) > 0.5  # what the particles would give without weights


def test_more_particles_means_closer(world) -> None:  # type: ignore[no-untyped-def]
    lm, _, target, _ = world
    tv = []
    for n, seed in ((20, 4), (2000, 4)):
        gen = torch.Generator().manual_seed(seed)
        draws = sample_tokens(lm, GRAMMAR, PROMPT, n, sampler="smc", particles=min(n, 500),
                              max_new_tokens=MAX_TOKENS, generator=gen).draws  # fmt: skip
        tv.append(total_variation(target, weighted(draws)))
    assert tv[1] < tv[0] / 3, tv


def test_importance_weights_of_masked_proposals_are_exact(world) -> None:  # type: ignore[no-untyped-def]
    # ess_threshold=0: no resampling, the weight of each particle is Π_t Z_t = p(y)/q(y)
    lm, exact, _, _ = world
    index = {seq: i for i, seq in enumerate(exact.sequences)}
    gen = torch.Generator().manual_seed(2)
    out = sample_tokens(lm, GRAMMAR, PROMPT, 200, sampler="masked", max_new_tokens=MAX_TOKENS,
                        generator=gen)  # fmt: skip
    assert out.stats.resamples == 0
    for d in out.draws:
        i = index[tuple(d.tokens)]
        assert d.log_weight == pytest.approx(exact.log_p[i] - exact.log_q[i], abs=1e-5)


def test_ess_trace_and_resampling_are_sane(world) -> None:  # type: ignore[no-untyped-def]
    lm = world[0]
    gen = torch.Generator().manual_seed(3)
    never = run_particles(lm, GRAMMAR, PROMPT, 50, params=PARAMS, max_tokens=MAX_TOKENS,
                          generator=gen, ess_threshold=0.0)  # fmt: skip
    always = run_particles(lm, GRAMMAR, PROMPT, 50, params=PARAMS, max_tokens=MAX_TOKENS,
                           generator=gen, ess_threshold=1.0)  # fmt: skip
    for run in (never, always):
        assert all(0 <= e <= 50 + 1e-9 for e in run.ess_trace)
        assert all(d.complete == (d.log_weight > -math.inf) for d in run.draws)
    assert never.ess_trace[-1] < 50  # the weights degenerate without resampling...
    # ...resampling at every step keeps the weights equal between steps
    lw = np.array([d.log_weight for d in always.draws])
    assert np.isfinite(lw).all()


def test_resampling_schemes_follow_the_weights() -> None:
    gen = torch.Generator().manual_seed(0)
    log_w = np.array([math.log(0.1), -math.inf, math.log(0.6), math.log(0.3)])
    for scheme in ("systematic", "multinomial"):
        counts = np.bincount(
            np.concatenate([resample(log_w, scheme, gen) for _ in range(500)]), minlength=4
        )
        assert counts[1] == 0
        assert np.allclose(counts / counts.sum(), [0.1, 0.0, 0.6, 0.3], atol=0.02)
    assert ess(np.zeros(8)) == pytest.approx(8)
    assert ess(np.array([0.0, -np.inf])) == pytest.approx(1)


def test_bad_arguments_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    lm = world[0]
    with pytest.raises(ConfigurationError, match="ess_threshold"):
        run_particles(lm, GRAMMAR, PROMPT, 4, params=PARAMS, max_tokens=4, ess_threshold=2)
    with pytest.raises(ConfigurationError, match="Invalid n"):
        run_particles(lm, GRAMMAR, PROMPT, 0, params=PARAMS, max_tokens=4)
    with pytest.raises(ConfigurationError, match="temperature"):
        run_particles(lm, GRAMMAR, PROMPT, 4, params=SamplingParams(temperature=0), max_tokens=4)
    with pytest.raises(ConfigurationError, match="prompt"):
        run_particles(lm, GRAMMAR, [], 4, params=PARAMS, max_tokens=4)
    with pytest.raises(ConfigurationError, match="resampling"):
        resample(np.zeros(3), "stratified", None)  # type: ignore[arg-type]
