"""The fast regex parser gives exactly ``parse_regex``'s tree wherever it answers, and declines
(None) wherever ``parse_regex`` refuses or the pattern is outside its subset."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import structgen as sg
from structgen.automata.regex_fast import fast_parse
from structgen.errors import StructgenError
from structgen.grammar.ir import KeyExclusion, Regex, distinct_nodes
from structgen.grammar.json_strings import not_key_ir
from structgen.grammar.regex import parse_regex

EDGE = [
    "",
    "a",
    "abc",
    "a{3}",
    "a{2,}",
    "a{2,5}",
    "a{0}",
    "a?b*c+",
    "(?:a|b)",
    "(a|)",
    "a|",
    "|",
    "()",
    "(?:)",
    r'[^"\\\x00-\x1fcdr]',
    r"\\u(?:[0-9a-f]{4})",
    r"[a\-z]",
    r"[\]]",
    r"\.",
    r"\n\t\r\f\v",
    r"[\n]",
    r"[\x41-\x43]",
    "é[α-ω]",
    "a**",
    "a??",
    "a+?",
    "a{2}{3}",
    "(ab",
    "ab)",
    "[z-a]",
    "a{3,2}",
    "[]",
    "[^]",
    "[a-]",
    "[-a]",
    "\\",
    "a\\",
    r"\d",
    r"\w+",
    ".",
    "^a$",
    "(?i:a)",
    "(?=a)",
    r"\bx",
    r"\x4",
    r"\u12g4",
    r"\ud800",
    "[\U0001f600-\U0001f64f]",
    "😀+",
    "a{,3}",
    "a{x}",
    "{",
    "}",
    "]",
    r"\/",
    r"\"",
    '[^\\\\"]',
    r"(?:\\[\"\\/bfnrt])*",
    "x{1,1000}",
]


def _agree(pattern: str) -> None:
    fast = fast_parse(pattern)
    try:
        slow = parse_regex(pattern)
    except StructgenError:
        assert fast is None, pattern
        return
    assert fast is None or fast == slow, pattern


@pytest.mark.parametrize("pattern", EDGE)
def test_edge_cases(pattern: str) -> None:
    _agree(pattern)


def test_simple_patterns_take_the_fast_path() -> None:
    for pattern in ["abc", r'[^"\\\x00-\x1fcdr]', r"(?:a|b){2,5}", r"\\u[0-9a-fA-F]{4}"]:
        assert fast_parse(pattern) is not None


ATOMS = [
    "a",
    "b",
    "é",
    "😀",
    r"\.",
    r"\\",
    r"\"",
    r"\n",
    r"\x41",
    r"\u00e9",
    "[a-c]",
    "[^a]",
    r"[\x00-\x1f]",
    r'[^"\\]',
    "[0-9a-fA-F]",
    ".",
    r"\d",
    "(?:x|y)",
    "(z)",
    "(?:)",
    "[α-ω]",
]
QUANTS = ["", "", "", "?", "*", "+", "{2}", "{1,3}", "{2,}", "??", "{3,1}", "{,2}"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(ATOMS), st.sampled_from(QUANTS)), max_size=6),
    st.integers(0, 3),
)
def test_random_patterns_agree(parts: list[tuple[str, str]], bars: int) -> None:
    pieces = [a + q for a, q in parts]
    rng = random.Random(len(pieces) * 31 + bars)
    for _ in range(bars):  # alternation bars between atoms
        pieces.insert(rng.randrange(len(pieces) + 1), "|")
    body = "".join(pieces)
    _agree(body)
    _agree(f"(?:{body})")
    _agree(f"({body})*")


def test_front_end_patterns_agree() -> None:
    """Every regex the JSON front end generates for a sample of JSONSchemaBench schemas."""
    data = Path(__file__).resolve().parents[3] / "shared" / "jsonschemabench" / "maskbench"
    files = sorted(data.glob("*.json"))
    if not files:
        pytest.skip("no MaskBench data")
    patterns: set[str] = set()
    for path in random.Random(0).sample(files, min(60, len(files))):
        schema = json.loads(path.read_text())["schema"]
        for order in ("any", "schema"):
            try:
                g = sg.Grammar.from_json_schema(
                    schema, property_order=order, additional_properties="spec"
                )
            except StructgenError:
                continue
            for _, expr in g.rules:
                nodes = distinct_nodes(expr)
                # a key exclusion's automaton is made of the regexes of its reference IR
                nodes += [
                    x for n in nodes if isinstance(n, KeyExclusion)
                    for x in distinct_nodes(not_key_ir(n.keys))
                ]
                patterns.update(
                    n.pattern for n in nodes if isinstance(n, Regex) and not n.case_insensitive
                )
    fast = 0
    for pattern in patterns:
        _agree(pattern)
        fast += fast_parse(pattern) is not None
    assert fast > 0.8 * len(patterns)  # most generated patterns take the fast path
