"""Large alternations of sequences are built as a trie of their items plus a common suffix: same
language as the plain alternation (checked against the IR's own recogniser), fewer states."""

from __future__ import annotations

import random

from grammar.ir_recognizer import accepts
from hypothesis import given, settings
from hypothesis import strategies as st
from support import walk

import structgen as sg
from structgen.automata.nfa import NfaBuilder
from structgen.grammar.ir import Alt, Grammar, Lit, Ref, Regex, Repeat, Seq

VOCAB = sg.Vocabulary.byte_level([b"ab", b"{a", b"x}"])
POOL = [
    Lit(b"{"),
    Lit(b"a"),
    Lit(b"ab"),
    Lit(b"}"),
    Regex("[xy]?"),
    Regex("b+"),
    Ref("r"),
    Repeat(Lit(b"x"), 0, 2),
    Lit(b""),
]


def _grammar(rng: random.Random) -> Grammar:
    prefix = [rng.choice(POOL) for _ in range(rng.randrange(3))]
    suffix = [rng.choice(POOL) for _ in range(rng.randrange(3))]
    items = []
    for _ in range(rng.randrange(4, 9)):
        middle = [rng.choice(POOL) for _ in range(rng.randrange(3))]
        share = prefix[: rng.randrange(len(prefix) + 1)]
        items.append(Seq(tuple(share + middle + suffix)) if share + middle + suffix else Lit(b""))
    return Grammar.from_rules({"start": Alt(tuple(items)), "r": Alt((Lit(b"a"), Lit(b"xy")))})


def _samples(rng: random.Random) -> list[str]:
    alphabet = "{}abxy"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(8))) for _ in range(150)]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**9))
def test_factored_alternation_matches_the_ir(seed: int) -> None:
    rng = random.Random(seed)
    grammar = _grammar(rng)
    compiled = sg.compile(grammar, VOCAB, use_cache=False)
    for text in _samples(rng):
        assert walk(compiled, list(text.encode()), check_masks=False) == accepts(grammar, text)


def test_enum_of_objects_shares_keys_and_whitespace() -> None:
    enum = [{"a": i, "b": str(i)} for i in range(200)]
    grammar = sg.Grammar.from_json_schema({"enum": enum})
    alt = grammar.rule_map[grammar.start]
    assert isinstance(alt, Alt)
    builder = NfaBuilder(grammar)
    factored = builder.states(alt)
    plain = 2 + sum(builder.states(item) for item in alt.items)
    assert factored < 0.6 * plain
    compiled = sg.compile(grammar, VOCAB, use_cache=False)
    assert walk(compiled, list(b'{"a": 17, "b": "17"}'))
    assert walk(compiled, list(b'{"b":"199","a":199}'))
    assert not walk(compiled, list(b'{"a": 17, "b": "18"}'))
