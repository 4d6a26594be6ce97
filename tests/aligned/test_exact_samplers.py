"""CARS and IMH sample the grammar-conditioned distribution exactly; masked decoding does not.

The world (toy_world.py): GAD's skewed binary grammar ``00000|1[01]{4}`` over a vocabulary of
one- and two-character tokens, with a fixed-logit model. Its target pi(y) ∝ p(y)·1[y in L] and
the locally masked distribution q are enumerated exactly (conftest). Masking is badly distorted
there (total variation about 0.66), so the same chi-square test that CARS and IMH pass must fail
for masked decoding: that is the test's power. Seeds are fixed, so the tests are deterministic;
the p-value floor 1e-3 would be crossed by chance once in a thousand seeds for a correct sampler.
"""

from __future__ import annotations

import pytest
import torch
from toy_world import GRAMMAR, MAX_TOKENS, PROMPT, text_of

from structgen.aligned import PrefixTrie, sample_tokens
from structgen.aligned.metrics import chi_square_pvalue, total_variation

P_FLOOR = 1e-3


def counts_of(draws) -> dict[bytes, int]:  # type: ignore[no-untyped-def]
    counts: dict[bytes, int] = {}
    for d in draws:
        assert d.complete
        key = text_of(d.tokens)
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_the_world_is_badly_distorted_by_masking(world) -> None:  # type: ignore[no-untyped-def]
    _, exact, target, lcd = world
    assert len(target) == 17 and len(exact.sequences) > 17  # several tokenizations per string
    assert abs(sum(lcd.values()) - 1) < 1e-9
    assert total_variation(target, lcd) > 0.5


def test_masked_decoding_fails_the_exactness_test(world) -> None:  # type: ignore[no-untyped-def]
    lm, _, target, lcd = world
    gen = torch.Generator().manual_seed(11)
    out = sample_tokens(
        lm, GRAMMAR, PROMPT, 600, sampler="masked", max_new_tokens=MAX_TOKENS, generator=gen
    )
    counts = counts_of(out.draws)
    assert chi_square_pvalue(counts, target) < 1e-12  # the test has power...
    assert chi_square_pvalue(counts, lcd) > P_FLOOR  # ...and masked samples what it should


@pytest.mark.parametrize("check", ["mask", "awrs"])
def test_cars_samples_are_exact(world, check) -> None:  # type: ignore[no-untyped-def]
    lm, exact, target, _ = world
    trie = PrefixTrie(GRAMMAR.eos_token_ids)
    gen = torch.Generator().manual_seed(5)
    out = sample_tokens(
        lm,
        GRAMMAR,
        PROMPT,
        1500,
        sampler="cars",
        check=check,
        trie=trie,
        max_new_tokens=MAX_TOKENS,
        generator=gen,
    )
    assert chi_square_pvalue(counts_of(out.draws), target) > P_FLOOR
    assert all(d.log_weight == 0.0 for d in out.draws)
    # acceptance improves as refuted subtrees are pruned: Phi~(root) falls towards Phi(L)
    # (single checks learn unlikely dead tokens late, so the "awrs" bound stays looser)
    z = float(torch.tensor(exact.log_z).exp())
    assert z - 1e-9 <= trie.root.value <= (1.01 if check == "mask" else 1.1) * z
    assert out.stats.accepted == 1500 < out.stats.attempts


@pytest.mark.parametrize(("check", "late_rate"), [("mask", 0.95), ("awrs", 0.8)])
def test_cars_acceptance_rises(world, check, late_rate) -> None:  # type: ignore[no-untyped-def]
    lm = world[0]
    trie = PrefixTrie(GRAMMAR.eos_token_ids)
    gen = torch.Generator().manual_seed(2)
    rates = []
    for _ in range(4):
        out = sample_tokens(
            lm, GRAMMAR, PROMPT, 100, sampler="cars", check=check, trie=trie,
            max_new_tokens=MAX_TOKENS, generator=gen,
        )  # fmt: skip
        rates.append(out.stats.accepted / out.stats.attempts)
    assert rates[0] < rates[-1]
    assert rates[-1] > late_rate, rates


@pytest.mark.parametrize(("weights", "n"), [("exact", 500), ("awrs", 300)])
def test_imh_chain_is_exact(world, weights, n) -> None:  # type: ignore[no-untyped-def]
    # Thinning: the chain's states are correlated (it accepts about 28% of the moves here), so
    # keep every 10th; the residual correlation 0.72^10 ≈ 0.04 is too small to move the test.
    # weights="awrs": a pseudo-marginal chain (estimated weights), same stationary law.
    lm, _, target, _ = world
    gen = torch.Generator().manual_seed(3)
    out = sample_tokens(
        lm,
        GRAMMAR,
        PROMPT,
        n,
        sampler="imh",
        weights=weights,
        burn_in=20,
        thin=10,
        batch_size=64,
        max_new_tokens=MAX_TOKENS,
        generator=gen,
    )
    assert len(out.draws) == n
    assert chi_square_pvalue(counts_of(out.draws), target) > P_FLOOR
    assert 0 < out.stats.accepted < out.stats.attempts


def test_cars_reports_an_empty_target() -> None:
    from toy_world import toy_lm

    from structgen.errors import ConfigurationError

    # the shortest string needs 3 tokens ("00" "00" "0"); with 2 there is none
    with pytest.raises(ConfigurationError, match="no string of the grammar fits"):
        sample_tokens(toy_lm(), GRAMMAR, PROMPT, 1, sampler="cars", max_new_tokens=2,
                      trie=PrefixTrie(GRAMMAR.eos_token_ids))  # fmt: skip
