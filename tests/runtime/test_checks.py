"""Semantic checks (IR ``Check``): evaluated when the checked value completes, by the engine's
token steps and masks alike. Oracle: Python evaluating the same predicate on the full text."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest
from support import mask_bit, tokenize_random, walk

import structgen as sg
from structgen.grammar.ir import Check, Grammar, Ref, Regex, Repeat, alt, lit, opt, seq


@dataclass(frozen=True)
class UniqueDigits:
    def __call__(self, data: bytes) -> bool:
        items = json.loads(data)
        return len(set(items)) == len(items)

    def describe(self) -> str:
        return "uniqueItems"


@dataclass(frozen=True)
class EvenSum:
    def __call__(self, data: bytes) -> bool:
        return sum(int(c) for c in data.decode() if c.isdigit()) % 2 == 0

    def describe(self) -> str:
        return "even digit sum"


VOCAB = sg.Vocabulary.byte_level(
    [b"1,", b",2", b"1]", b",1]", b"[[", b"]]", b"],[", b"2,3", b"2]]", b",1,2]", b"3],", b"[1,1]"]
)
ARRAY = seq(lit("["), opt(seq(Regex("[0-9]"), Repeat(seq(lit(","), Regex("[0-9]"))))), lit("]"))
GRAMMARS = {
    "unique": (
        Grammar.from_rules({"start": Check(ARRAY, UniqueDigits())}),
        lambda t: _is_list(t) and UniqueDigits()(t.encode()),
    ),
    # a check inside recursion: every nested list must have an even digit sum
    "nested": (
        Grammar.from_rules(
            {
                "start": Ref("v"),
                "v": alt(
                    Regex("[0-9]"),
                    Check(
                        seq(
                            lit("["), opt(seq(Ref("v"), Repeat(seq(lit(","), Ref("v"))))), lit("]")
                        ),
                        EvenSum(),
                    ),
                ),
            }
        ),
        lambda t: _nested_ok(t),
    ),
}


def _is_list(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(value, list)
        and all(isinstance(x, int) and 0 <= x <= 9 for x in value)
        and text == json.dumps(value, separators=(",", ":"))
    )


def _nested_ok(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if text != json.dumps(value, separators=(",", ":")):
        return False

    def ok(v) -> bool:
        if isinstance(v, int):
            return 0 <= v <= 9
        if isinstance(v, list):
            return all(ok(x) for x in v) and EvenSum()(json.dumps(v).encode())
        return False

    return ok(value)


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_checks_agree_with_the_predicate(name: str) -> None:
    grammar, oracle = GRAMMARS[name]
    compiled = sg.compile(grammar, VOCAB)
    rng = random.Random(3)
    seen = {True: 0, False: 0}
    for _ in range(300):
        text = "".join(rng.choice("[],1234") for _ in range(rng.randint(1, 9)))
        expected = oracle(text)
        seen[expected] += 1
        assert walk(compiled, tokenize_random(text.encode(), VOCAB, rng)) == expected, text
    for text in ["[1,2,3]", "[]", "[2]", "[[1,1],2]", "[1,3]"]:
        assert walk(compiled, tokenize_random(text.encode(), VOCAB, rng)) == oracle(text), text
    assert seen[False] >= 3  # the fixed list above covers accepted texts


@pytest.mark.parametrize("name", sorted(GRAMMARS))
@pytest.mark.parametrize("prefix", ["[", "[1,2", "[[1,1],", "[1,2,3", "[[2", "[[1,[3", "[[[1,2]"])
def test_masks_with_checks_equal_brute_force(name: str, prefix: str) -> None:
    grammar, _ = GRAMMARS[name]
    m = sg.compile(grammar, VOCAB).matcher()
    if m.consume_tokens(list(prefix.encode())) != len(prefix):
        pytest.skip("prefix not in this grammar")
    words = m.next_token_bitmask_np()
    for cand in range(VOCAB.vocab_size):
        assert mask_bit(words, cand) == m.copy().consume_token(cand), (prefix, cand)
