"""The exact enumeration the other tests and the benchmark rely on, the one-row decoder's cache
reuse, the ``sample`` API and its errors; and one slow run on SmolLM2 against its enumeration."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
from toy_world import EOS, GRAMMAR, MAX_TOKENS, PROMPT, TOKENS, text_of, toy_lm

import structgen as sg
from structgen.aligned import (
    AlignedStats,
    PathDecoder,
    PrefixTrie,
    enumerate_language,
    sample_tokens,
)
from structgen.aligned.metrics import chi_square_pvalue, empirical, total_variation
from structgen.errors import ConfigurationError
from structgen.integrations.generate import vocabulary_for
from structgen.integrations.lm import CausalLM
from structgen.sampling.warp import SamplingParams


def log_p_direct(lm, seq: tuple[int, ...]) -> float:  # type: ignore[no-untyped-def]
    context = tuple(PROMPT)
    total = 0.0
    for tok in (*seq, EOS):
        total += float(torch.log_softmax(lm.next_logits(context), -1)[tok].double())
        context = (*context, tok)
    return total


def test_enumeration_matches_brute_force(world) -> None:  # type: ignore[no-untyped-def]
    lm, exact, _, _ = world
    pattern = re.compile(rb"00000|1[01]{4}")
    ids = [i for i, b in enumerate(TOKENS) if b and i not in PROMPT]
    brute = {
        seq
        for n in range(1, 6)
        for seq in itertools.product(ids, repeat=n)
        if pattern.fullmatch(text_of(seq))
    }
    assert set(exact.sequences) == brute
    for seq, lp in zip(exact.sequences, exact.log_p.tolist(), strict=True):
        assert lp == pytest.approx(log_p_direct(lm, seq), abs=1e-4)
    assert exact.lcd().sum() == pytest.approx(1.0)


def test_pruning_bounds_the_missing_mass(world) -> None:  # type: ignore[no-untyped-def]
    lm, exact, _, _ = world
    pruned = enumerate_language(lm, GRAMMAR, PROMPT, max_tokens=MAX_TOKENS, min_prefix_prob=1e-3)
    assert 0 < len(pruned.sequences) < len(exact.sequences)
    missing = math.exp(exact.log_z) - math.exp(pruned.log_z)
    assert 0 < missing <= pruned.pruned_mass
    with pytest.raises(sg.LimitExceeded):
        enumerate_language(lm, GRAMMAR, PROMPT, max_tokens=MAX_TOKENS, max_nodes=10)


def test_the_decoder_reuses_the_common_prefix() -> None:
    lm = toy_lm()
    stats = AlignedStats()
    decoder = PathDecoder(lm, PROMPT, SamplingParams(), stats)
    paths = [[0, 1, 2], [0, 1, 3], [0], [0, 1, 3], [], [4, 4, 4, 4]]
    for path in paths:
        expected = torch.log_softmax(lm.next_logits((*PROMPT, *path)), -1)
        torch.testing.assert_close(decoder.logp(path), expected)
    # the prompt (2), [0, 1, 2] (3), only the 3 of [0, 1, 3] (1), [0] re-fed after a crop (1),
    # then 1 and 3 again (2), the root from memory (0), [4, 4, 4, 4] (4)
    assert stats.positions == 2 + 3 + 1 + 1 + 2 + 0 + 4
    assert stats.forward_passes == 6


def test_sample_tokens_refuses_bad_arguments() -> None:
    lm = toy_lm()
    for kwargs, match in (
        ({"sampler": "beam"}, "sampler"),
        ({"n": 0}, "Invalid n"),
        ({"params": SamplingParams(temperature=0)}, "temperature"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"sampler": "imh", "thin": 0}, "thin"),
        ({"sampler": "imh", "weights": "none"}, "weights"),
        ({"sampler": "smc", "particles": 0}, "particles"),
        ({"batch_size": 0}, "batch_size"),
    ):
        with pytest.raises(ConfigurationError, match=match):
            sample_tokens(lm, GRAMMAR, PROMPT, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- SmolLM2


@pytest.mark.slow
def test_smollm2_samplers_against_its_enumeration(smollm2) -> None:  # type: ignore[no-untyped-def]
    # GAD's skewed grammar cut down to 5 strings: "000", or "1" and two bits. SmolLM2 tokenizes
    # digits one by one, so strings and token sequences coincide.
    model, tokenizer = smollm2
    regex = "000|1[01]{2}"
    prompt = "Random binary strings:\n10110\n01001\n"
    vocab = vocabulary_for(tokenizer, model)
    compiled = sg.compile(sg.Grammar.from_regex(regex), vocab)
    lm = CausalLM(model)
    ids = tokenizer(prompt)["input_ids"]
    exact = enumerate_language(lm, compiled, ids, max_tokens=4)
    assert len(exact.sequences) == 5
    target = exact.by_key(exact.target(), lambda s: vocab.decode(s).decode())
    lcd = exact.by_key(exact.lcd(), lambda s: vocab.decode(s).decode())
    gen = torch.Generator().manual_seed(0)
    cars = sample_tokens(lm, compiled, ids, 400, sampler="cars", max_new_tokens=4,
                         generator=gen, trie=PrefixTrie(compiled.eos_token_ids))  # fmt: skip
    counts: dict[str, int] = {}
    for d in cars.draws:
        key = vocab.decode(d.tokens).decode()
        counts[key] = counts.get(key, 0) + 1
    assert chi_square_pvalue(counts, target) > 1e-3
    assert cars.stats.forward_passes < 20  # the trie keeps the probabilities
    # the public API: weighted SMC particles and generate(sampler=...)
    out = sg.sample(model, tokenizer, prompt, n=200, sampler="smc", regex=regex,
                    max_new_tokens=4, seed=1)  # fmt: skip
    assert out.log_ml is not None and abs(out.log_ml - exact.log_z) < 0.3
    assert total_variation(target, out.posterior()) < 0.1
    assert total_variation(target, lcd) > 0.05  # masking is distorted here, if mildly
    result = sg.generate(model, tokenizer, prompt, regex=regex, sampler="cars",
                         temperature=1.0, max_new_tokens=4, seed=2)  # fmt: skip
    assert result.complete and result.text in target and result.log_weight == 0.0
    smc = sg.generate(model, tokenizer, prompt, regex=regex, sampler="smc", temperature=1.0,
                      max_new_tokens=4, seed=3, sampler_options={"particles": 4})  # fmt: skip
    assert smc.complete and smc.log_weight is not None
    with pytest.raises(ConfigurationError, match="temperature"):
        sg.generate(model, tokenizer, prompt, regex=regex, sampler="asap")
    weighted = empirical(
        [r.text for r in out.results], [r.log_weight for r in out.results]  # type: ignore[misc]
    )
    assert set(weighted) <= set(target)
