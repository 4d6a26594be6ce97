"""The speculative loop on an enumerable world: greedy output equals non-speculative decoding
token for token, and sampled output has exactly the law of non-speculative masked sampling
(chi-square against the enumerated distribution, for both verification rules, deterministic and
sampling drafters, fast-forward on and off). A deliberately wrong acceptance rule fails the same
test, so it has the power to catch one."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from spec_toy import (
    EOS,
    ToyLM,
    chi_square_pvalue,
    exact_distribution,
    plain_decode,
    toy_grammar,
)

import structgen as sg
from structgen.sampling.warp import SamplingParams
from structgen.speculative import (
    Drafter,
    DraftRequest,
    FixedDraftLength,
    ModelDrafter,
    Proposal,
    decode_speculative,
    default_drafter,
    verify,
)

PROMPTS = [[0, 1, 4, 2, 2, 5], [1, 3, 4], [2, 0, 6, 2, 3]]  # "abcababbc", "bbac", ...
SAMPLE = SamplingParams(temperature=1.0)
GREEDY = SamplingParams(temperature=0.0)


class Scripted(Drafter):
    """Proposes a fixed token list at every call (grammar-invalid tokens included)."""

    name = "scripted"

    def __init__(self, tokens: list[int]) -> None:
        self.tokens = tokens

    def propose(self, request: DraftRequest) -> Proposal:
        return Proposal(list(self.tokens[: request.max_tokens]), source=self.name)


def _drafters() -> dict[str, Drafter]:
    return {
        "auto": default_drafter(),
        "other-model": ModelDrafter(ToyLM(salt=3)),
        "same-model": ModelDrafter(ToyLM()),
        "scripted": Scripted([0, 1, 4, 2, EOS, 0]),
    }


@pytest.mark.parametrize("fast_forward", [True, False])
@pytest.mark.parametrize("name", ["auto", "other-model", "same-model", "scripted"])
def test_greedy_equals_plain_decoding(name: str, fast_forward: bool) -> None:
    compiled = toy_grammar()
    lm = ToyLM()
    for prompt in PROMPTS:
        for budget in (3, 32):
            want = plain_decode(
                lm,
                compiled,
                prompt,
                params=GREEDY,
                fast_forward=fast_forward,
                max_new_tokens=budget,
            )
            got = decode_speculative(
                lm,
                compiled,
                prompt,
                drafter=_drafters()[name],
                params=GREEDY,
                max_new_tokens=budget,
                fast_forward=fast_forward,
            )
            assert (got.tokens, got.reason) == want, (prompt, budget)
            m = compiled.matcher()
            assert m.consume_tokens(got.tokens) == len(got.tokens)
            if name == "same-model":  # the target drafting for itself: every draft stands
                assert got.stats.accepted == got.stats.proposed


def test_draft_past_the_end_of_the_grammar_stops_there() -> None:
    compiled = sg.compile(sg.Grammar.from_regex("ab"), toy_grammar().vocab)
    lm = ToyLM()
    out = decode_speculative(
        lm,
        compiled,
        [0],
        drafter=Scripted([0, 1, EOS, 0, 1]),
        params=GREEDY,
        max_new_tokens=10,
        fast_forward=False,
    )
    assert out.tokens == [0, 1] or out.tokens == [2]
    assert out.reason == "grammar_complete"
    assert out.matcher.is_accepting()
    assert out.stats.trimmed >= 1  # the tokens after the end never reach the model


def _sample_counts(
    verification: str, drafter: Drafter, fast_forward: bool, n: int, seed: int
) -> Counter[tuple[int, ...]]:
    compiled = toy_grammar()
    lm = ToyLM()
    gen = torch.Generator().manual_seed(seed)
    counts: Counter[tuple[int, ...]] = Counter()
    for _ in range(n):
        out = decode_speculative(
            lm,
            compiled,
            PROMPTS[0],
            drafter=drafter,
            params=SAMPLE,
            max_new_tokens=32,
            fast_forward=fast_forward,
            verification=verification,  # type: ignore[arg-type]
            generator=gen,
            draft_length=FixedDraftLength(3),
        )
        counts[tuple(out.tokens)] += 1
    return counts


N = 1000


@pytest.mark.parametrize(
    ("verification", "name", "fast_forward"),
    [
        ("coupled", "auto", True),
        ("coupled", "other-model", False),
        ("mask", "other-model", True),
        ("mask", "scripted", False),
    ],
)
def test_sampled_output_has_the_masked_sampling_law(
    verification: str, name: str, fast_forward: bool
) -> None:
    drafter = _drafters()[name]
    counts = _sample_counts(verification, drafter, fast_forward, N, seed=11)
    exact = exact_distribution(
        ToyLM(), toy_grammar(), PROMPTS[0], params=SAMPLE, fast_forward=fast_forward
    )
    p = chi_square_pvalue(counts, exact)
    assert p > 1e-3, f"chi-square p-value {p:.2e}"


def test_a_wrong_residual_fails_the_same_test(monkeypatch: pytest.MonkeyPatch) -> None:
    # the classic bug: after a rejection, draw from p~ itself instead of norm(max(0, p~ - q))
    monkeypatch.setattr(verify, "residual", lambda p, q: p)
    counts = _sample_counts("mask", ModelDrafter(ToyLM(salt=3)), True, 500, seed=11)
    exact = exact_distribution(ToyLM(), toy_grammar(), PROMPTS[0], params=SAMPLE, fast_forward=True)
    assert chi_square_pvalue(counts, exact) < 1e-3
