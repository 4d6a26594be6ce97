"""``KeyExclusion``: the leaf whose automaton is built straight from the key trie is the same
language as its reference IR (``json_strings.not_key_ir``), and both are what ``json.loads``
says (a string body whose decoded value is none of the keys).

Language equality is decided on the two DFAs (a walk of their product over all 256 bytes), on
fixed key sets chosen for the corner cases (the empty key, keys that are prefixes of others,
non-ASCII and escaped characters, characters whose ``\\u`` codes share hex digits), random key
sets, and the key sets of MaskBench schemas where the data is present; with the C extension and
in pure Python.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from structgen import _accel
from structgen.automata.lazy_dfa import LazyByteDFA
from structgen.automata.nfa import ByteNFA, NfaBuilder
from structgen.grammar.ir import Expr, Grammar, KeyExclusion, Lit, Seq
from structgen.grammar.json_strings import not_key_ir, string_excluding

MASKBENCH = Path(__file__).resolve().parents[3] / "shared" / "jsonschemabench" / "maskbench"


def _dfa(expr: Expr) -> LazyByteDFA:
    builder = NfaBuilder(Grammar.from_rules([("start", expr)]), ByteNFA())
    start, end = builder.build_checked(expr)
    builder.nfa.accept[end] = 0
    return LazyByteDFA(builder.nfa, start)


def _difference(a: LazyByteDFA, b: LazyByteDFA) -> bytes | None:
    """A byte string one DFA accepts and the other does not, or None if they are equivalent
    (breadth first over the reachable pairs of states)."""
    start = (a.initial, b.initial)
    seen = {start: b""}
    todo = [start]
    for sa, sb in todo:
        path = seen[(sa, sb)]
        if a.is_accepting(sa) != b.is_accepting(sb):
            return path
        for byte, pair in enumerate(zip(a.row(sa), b.row(sb), strict=True)):
            pair = (int(pair[0]), int(pair[1]))
            if pair not in seen:
                seen[pair] = path + bytes([byte])
                todo.append(pair)
    return None


def _check_same_language(keys: list[str]) -> None:
    leaf = KeyExclusion(tuple(sorted(set(keys))))
    found = _difference(_dfa(leaf), _dfa(not_key_ir(keys)))
    assert found is None, (keys, found)


KEY_SETS = [
    [""],
    ["a"],
    ["", "a"],
    ["a", "ab", "abc"],
    ["ab", "b", "ba"],
    ["abc", "abd", "xyz"],
    ['"', "\\", "/", '"q"', "back\\slash", "a/b"],
    ["\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "new\nline"],
    ["é", "éa", "中文", "中", "\u00aa", "\u00ff", "\u0fff", "\uffff", "\ue000", "\u0800"],
    ["a", "b", "q", "\u0061\u0062", "\u0161", "\u1061", "A", "Z"],  # shared hex digits
    ["$ref", "@type", "x-y", "snake_case", "CamelCase", "with space", "0", "123"],
    ["properties", "property", "prop", "p", "propertyNames", "patternProperties"],
]


@pytest.mark.parametrize("keys", KEY_SETS)
def test_leaf_is_the_reference_language(keys: list[str]) -> None:
    _check_same_language(keys)


@pytest.mark.parametrize("keys", KEY_SETS[:6] + KEY_SETS[8:9])
def test_leaf_is_the_reference_language_in_pure_python(keys: list[str]) -> None:
    with _accel.pure_python():
        _check_same_language(keys)


def test_random_key_sets_are_the_reference_language() -> None:
    rng = random.Random(1414)
    alphabet = ["a", "b", "A", "é", "中", '"', "\\", "\n", "/", "\x7f", "\u0062", "\u00e0"]
    for _ in range(150):
        keys = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
            for _ in range(rng.randint(1, 8))
        ]
        _check_same_language(keys)


def _maskbench_key_sets(limit: int) -> list[list[str]]:
    """Key sets of ``properties`` objects in MaskBench schemas (every 20th file)."""
    found: list[list[str]] = []
    for path in sorted(MASKBENCH.glob("*.json"))[::20]:
        todo = [json.loads(path.read_text())["schema"]]
        while todo and len(found) < limit:
            node = todo.pop()
            if isinstance(node, dict):
                props = node.get("properties")
                if isinstance(props, dict) and props:
                    keys = list(props)
                    if all(ord(c) <= 0xFFFF and not 0xD800 <= ord(c) <= 0xDFFF for k in keys
                           for c in k):
                        found.append(keys)
                todo.extend(node.values())
            elif isinstance(node, list):
                todo.extend(node)
        if len(found) >= limit:
            break
    return found


@pytest.mark.skipif(not MASKBENCH.is_dir(), reason="MaskBench data not present")
def test_maskbench_key_sets_are_the_reference_language() -> None:
    key_sets = _maskbench_key_sets(120)
    assert len(key_sets) >= 100
    for keys in key_sets:
        _check_same_language(keys)


def _accepts(dfa: LazyByteDFA, data: bytes) -> bool:
    return dfa.matches(data)


@pytest.mark.parametrize("keys", [["", "a"], ["a", "ab"], ['"', "é", "\n"]])
def test_both_constructions_agree_with_json_loads(keys: list[str]) -> None:
    """Every spelling of every short text over an alphabet of key characters, others and
    escapes: accepted exactly when ``json.loads`` decodes it to a non-key."""
    leaf = _dfa(string_excluding(keys))
    reference = _dfa(Seq((Lit(b'"'), not_key_ir(keys), Lit(b'"'))))
    pieces = sorted({c for k in keys for c in k} | {"a", "z"})
    spellings = {c: {json.dumps(c), json.dumps(c, ensure_ascii=False),
                     f'"\\u{ord(c):04x}"', f'"\\u{ord(c):04X}"'} for c in pieces}
    pieces_spelled = sorted({s[1:-1] for c in pieces for s in spellings[c]} | {"\\ud83d"})
    for n in range(4):
        for parts in itertools.product(pieces_spelled, repeat=n):
            text = '"' + "".join(parts) + '"'
            want = json.loads(text) not in keys
            data = text.encode()
            assert _accepts(leaf, data) == want, (keys, text)
            assert _accepts(reference, data) == want, (keys, text)


def test_string_excluding_is_one_leaf_between_quotes() -> None:
    """The opening quote stays a literal of its own (early object checks choose an extra key
    at it), and keys are sorted and distinct."""
    expr = string_excluding(["b", "a", "b"])
    assert expr == Seq((Lit(b'"'), KeyExclusion(("a", "b")), Lit(b'"')))
    with pytest.raises(ValueError, match="outside the BMP"):
        string_excluding(["ok", "\U0001f600"])
