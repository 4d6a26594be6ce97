"""Regex -> byte DFA against Python's ``re`` as the oracle."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from structgen.automata.lazy_dfa import LazyByteDFA
from structgen.automata.nfa import grammar_to_nfa
from structgen.errors import InvalidGrammar, UnsupportedFeature
from structgen.grammar.ir import Grammar, Regex

PATTERNS = [
    r"[a-c]+x?",
    r"(ab|a)*b",
    r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?",
    r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"',
    r"[α-ω]{2,4}é?",
    r"(?:x|😀|中文)+",
    r"a{3,5}",
    r"[^a]*a",
    r"\d{2}-\d{2}",
    r"(?:[a-z0-9]+\.)+[a-z]{2,3}",
    r".{0,3}",
]


def _dfa(pattern: str, ci: bool = False):
    nfa, start = grammar_to_nfa(Grammar.from_expr(Regex(pattern, case_insensitive=ci)))
    return LazyByteDFA(nfa, start)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_accepts_what_re_generates(pattern: str) -> None:
    dfa = _dfa(pattern)
    oracle = re.compile(pattern, re.ASCII | re.DOTALL if False else re.ASCII)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(oracle, fullmatch=True))
    def check(text: str) -> None:
        data = text.encode("utf-8")
        assert dfa.matches(data)
        for end in range(len(data) + 1):  # every prefix stays alive
            assert dfa.step(dfa.initial, data[:end]) != dfa.dead

    check()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_agrees_with_re_on_random_text(pattern: str) -> None:
    dfa = _dfa(pattern)
    oracle = re.compile(pattern, re.ASCII)
    alphabet = st.sampled_from(list('abcx-.0129eE+"\\u/ nα β ω é 😀 中 文 \n\x00'))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(alphabet, max_size=8).map("".join))
    def check(text: str) -> None:
        assert dfa.matches(text.encode("utf-8")) == bool(oracle.fullmatch(text)), text

    check()


def test_case_insensitive() -> None:
    dfa = _dfa("select", ci=True)
    assert dfa.matches(b"SeLeCT") and not dfa.matches(b"selec")


def test_invalid_bytes_are_rejected() -> None:
    dfa = _dfa(r"[^a]*")
    assert dfa.matches("é".encode())
    assert not dfa.matches(b"\xff")
    assert not dfa.matches("é".encode()[:1])  # half a character is a live prefix only
    assert dfa.step(dfa.initial, "é".encode()[:1]) != dfa.dead


def test_lazy_rows_and_pickling() -> None:
    dfa = _dfa(r"(a|b)*abb")
    assert dfa.num_states == 2  # the dead and the initial state: nothing determinised yet
    assert dfa.matches(b"ababb") and not dfa.matches(b"abab")
    back = pickle.loads(pickle.dumps(dfa))
    assert back.matches(b"ababb") and not back.matches(b"abab")
    assert back.row(back.initial)[ord("a")] != back.dead and back.row(back.initial)[0] == 0


def test_errors() -> None:
    with pytest.raises(UnsupportedFeature, match="regex"):
        Grammar.from_regex(r"(?=a)b")  # noqa: look-around
    with pytest.raises(InvalidGrammar, match="invalid regex"):
        Grammar.from_regex(r"(ab")


def test_lookaround_refused_even_where_interegular_parses_it() -> None:
    for pattern in (r"a(?=b)", r"(?!x)y", r"[(?=]a"):
        if pattern.startswith("["):
            Grammar.from_regex(pattern)  # inside a class it is just characters
            continue
        with pytest.raises(UnsupportedFeature, match="look-around"):
            Grammar.from_regex(pattern)


def test_outer_anchors_are_full_match_noops() -> None:
    g = Grammar.from_regex(r"^ab+$")
    nfa, start = grammar_to_nfa(g)
    dfa = LazyByteDFA(nfa, start)
    assert dfa.matches(b"abb") and not dfa.matches(b"ab$")
    g2 = Grammar.from_regex(r"a\$")
    nfa, start = grammar_to_nfa(g2)
    assert LazyByteDFA(nfa, start).matches(b"a$")


def test_surrogate_only_class_leaves_no_dead_prefix() -> None:
    """A character class of surrogates only has no UTF-8 bytes: ``a`` followed by it is not a
    viable prefix, in the regular and in the CFG engine (whose NFAs are not trimmed)."""
    import structgen as sg
    from structgen.grammar.ir import Ref, alt, lit, seq

    vocab = sg.Vocabulary.byte_level([])
    pattern = "a[\ud800-\udfff]|b"
    recursive = Grammar.from_rules(
        {"start": alt(seq(lit("("), Ref("start"), lit(")")), Regex(pattern))}
    )
    for grammar, first in ((Grammar.from_regex(pattern), b""), (recursive, b"((")):
        m = sg.compile(grammar, vocab, use_cache=False).matcher()
        assert m.consume_tokens(list(first)) == len(first)
        allowed = {vocab.token_bytes[t] for t in m.allowed_token_ids()} - {b""}
        assert b"a" not in allowed and b"b" in allowed
