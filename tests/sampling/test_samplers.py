"""AWRS and Masked sample the exact locally-masked distribution; AWRS weights are unbiased.

The small world: a vocabulary of 10 tokens with fixed logits and a grammar allowing a known
subset A after a known prefix. The masked distribution p(x)·1[x∈A]/Z is computed exactly; samples
are compared with a chi-square test (p-value floor 1e-4 with fixed seeds, so the test is
deterministic and fails only on a real discrepancy).
"""

from __future__ import annotations

import math

import pytest
import torch

import structgen as sg
from structgen.sampling.warp import NoAllowedToken, SamplingParams, warp_logits

TOKENS = [b"a", b"b", b"c", b"ab", b"ba", b"cc", b"x", b"y", b"z", b""]
VOCAB = sg.Vocabulary.from_token_bytes(TOKENS, eos_token_ids=[9])
COMPILED = sg.compile(sg.Grammar.from_regex("(a|b|ab|ba)+"), VOCAB)
LOGITS = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, 2.5, 1.5, -0.5, 0.2, 0.7])


def chi2_pvalue(counts: list[int], probs: list[float]) -> float:
    n = sum(counts)
    stat = sum((c - n * p) ** 2 / (n * p) for c, p in zip(counts, probs, strict=True) if p > 0)
    dof = sum(1 for p in probs if p > 0) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2), torch.tensor(stat / 2)))


def exact_masked(matcher: sg.Matcher, params: SamplingParams) -> tuple[list[float], float]:
    logp = warp_logits(LOGITS, params)
    allowed = matcher.next_token_mask()
    p = torch.where(allowed, logp.exp(), torch.zeros_like(logp))
    z = float(p.sum())
    return (p / z).tolist(), z


@pytest.mark.parametrize("prefix", [[], [3], [3, 0]])  # "", "ab" (EOS allowed), "aba"
@pytest.mark.parametrize("sampler_cls", [sg.AWRS, sg.Masked])
@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(),
        SamplingParams(temperature=0.7),
        SamplingParams(top_k=7),
        SamplingParams(top_p=0.9),
    ],
)
def test_samples_follow_the_masked_distribution(prefix, sampler_cls, params) -> None:
    matcher = COMPILED.matcher()
    assert matcher.consume_tokens(prefix) == len(prefix)
    probs, z = exact_masked(matcher, params)
    sampler = sampler_cls(params)
    gen = torch.Generator().manual_seed(1234)
    counts = [0] * len(TOKENS)
    weights = []
    n = 3000
    for _ in range(n):
        tok, log_w = sampler.sample(LOGITS, matcher, gen)
        counts[tok] += 1
        weights.append(math.exp(log_w))
    assert all(c == 0 for c, p in zip(counts, probs, strict=True) if p == 0)
    assert chi2_pvalue(counts, probs) > 1e-4, (counts, [round(p * n) for p in probs])
    mean_w = sum(weights) / n
    se = (sum((w - mean_w) ** 2 for w in weights) / (n - 1) / n) ** 0.5
    assert abs(mean_w - z) <= 4 * se + 1e-6 * z, (mean_w, z, se)
    assert matcher.num_rollback_tokens == len(prefix)  # the sampler never commits


def test_awrs_weight_is_unbiased_conditionally_on_the_token() -> None:
    # properly weighted: E[w | x] = Z for every x (docs/algorithms.md §1.4)
    matcher = COMPILED.matcher()
    _, z = exact_masked(matcher, SamplingParams())
    sampler = sg.AWRS(max_rejections=None)
    gen = torch.Generator().manual_seed(7)
    per_token: dict[int, list[float]] = {}
    for _ in range(6000):
        tok, log_w = sampler.sample(LOGITS, matcher, gen)
        per_token.setdefault(tok, []).append(math.exp(log_w))
    for tok, ws in per_token.items():
        if len(ws) < 300:
            continue
        mean = sum(ws) / len(ws)
        se = (sum((w - mean) ** 2 for w in ws) / (len(ws) - 1) / len(ws)) ** 0.5
        assert abs(mean - z) <= 4 * se + 1e-6 * z, (tok, mean, z)


def test_awrs_fallback_keeps_the_distribution() -> None:
    matcher = COMPILED.matcher()
    probs, _ = exact_masked(matcher, SamplingParams())
    sampler = sg.AWRS(max_rejections=1)  # force the full-mask fallback often
    gen = torch.Generator().manual_seed(99)
    counts = [0] * len(TOKENS)
    for _ in range(3000):
        counts[sampler.sample(LOGITS, matcher, gen)[0]] += 1
    assert sampler.stats.full_masks > 0
    assert chi2_pvalue(counts, probs) > 1e-4


@pytest.mark.parametrize("prefix", [[], [3], [3, 0]])
def test_greedy_is_the_masked_argmax(prefix) -> None:
    matcher = COMPILED.matcher()
    matcher.consume_tokens(prefix)
    allowed = matcher.next_token_mask()
    expected = int(torch.argmax(LOGITS.masked_fill(~allowed, float("-inf"))))
    greedy = SamplingParams(temperature=0)
    assert sg.AWRS(greedy).sample(LOGITS, matcher)[0] == expected
    assert sg.Masked(greedy).sample(LOGITS, matcher)[0] == expected


def test_awrs_checks_few_tokens_when_the_model_agrees() -> None:
    logits = torch.full((10,), -10.0)
    logits[0] = 10.0  # the model wants "a", which is allowed
    sampler = sg.AWRS()
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        assert sampler.sample(logits, COMPILED.matcher(), gen)[0] == 0
    assert sampler.stats.checks <= 3 * 50 and sampler.stats.full_masks == 0


def test_dead_end_from_warps_is_reported() -> None:
    logits = torch.full((10,), -10.0)
    logits[6] = 10.0  # "x" is not allowed, and top_k=1 keeps only it
    params = SamplingParams(top_k=1)
    for sampler in (sg.AWRS(params), sg.Masked(params)):
        with pytest.raises(NoAllowedToken, match="top_k"):
            sampler.sample(logits, COMPILED.matcher(), torch.Generator().manual_seed(0))


def test_invalid_params() -> None:
    with pytest.raises(sg.ConfigurationError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(sg.ConfigurationError, match="top_p"):
        SamplingParams(top_p=0)


@pytest.mark.parametrize("temperature", [0.7])
def test_awrs_matches_exact_masked_distribution_on_smollm2(smollm2_tokenizer, temperature) -> None:
    """Fixed random logits over the real 49,152-token vocabulary, a JSON-ish grammar state where
    a few hundred tokens are allowed: AWRS frequencies against the exact masked distribution."""
    vocab = sg.Vocabulary.from_tokenizer(smollm2_tokenizer)
    compiled = sg.compile(sg.Grammar.from_regex(r'\{"[a-z]{1,6}": [0-9]{1,3}\}'), vocab)
    matcher = compiled.matcher()
    matcher.consume_tokens(smollm2_tokenizer('{"ab', add_special_tokens=False)["input_ids"])
    gen = torch.Generator().manual_seed(11)
    allowed = matcher.next_token_mask()
    # random logits, with the allowed tokens raised so that roughly half the mass is allowed
    logits = torch.randn(vocab.vocab_size, generator=gen) * 2 + allowed.float() * 6
    params = SamplingParams(temperature=temperature)
    logp = warp_logits(logits, params)
    p = torch.where(allowed, logp.exp(), torch.zeros_like(logp))
    z = float(p.sum())
    probs = (p / z).tolist()
    sampler = sg.AWRS(params)
    counts = [0] * vocab.vocab_size
    weights = []
    for _ in range(2000):
        tok, log_w = sampler.sample(logits, matcher, gen)
        counts[tok] += 1
        weights.append(math.exp(log_w))
    assert all(c == 0 for c, q in zip(counts, probs, strict=True) if q == 0)
    # pool the rare tokens so every chi-square cell expects at least 5 draws
    big = [i for i, q in enumerate(probs) if q * 2000 >= 5]
    small = [i for i, q in enumerate(probs) if 0 < q * 2000 < 5]
    pooled_counts = [counts[i] for i in big] + [sum(counts[i] for i in small)]
    pooled_probs = [probs[i] for i in big] + [sum(probs[i] for i in small)]
    assert chi2_pvalue(pooled_counts, pooled_probs) > 1e-4
    mean_w = sum(weights) / len(weights)
    se = (sum((w - mean_w) ** 2 for w in weights) / (len(weights) - 1) / len(weights)) ** 0.5
    assert abs(mean_w - z) <= 4 * se + 1e-6 * z
    assert sampler.stats.checks < 2000 * 20  # a few checks per draw, not 49,152
