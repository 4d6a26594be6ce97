"""``string_excluding``: a JSON string whose decoded value is none of the keys, in any spelling.

Checked against ``json.loads`` on every spelling of short strings over an alphabet that has key
characters, characters outside the trie, escapes and prefixes of keys.
"""

from __future__ import annotations

import itertools
import json
import random

import pytest

from structgen.automata.lazy_dfa import LazyByteDFA
from structgen.automata.nfa import ByteNFA, NfaBuilder
from structgen.grammar.ir import Grammar
from structgen.grammar.json_strings import string_excluding


def _matcher(keys: list[str]) -> LazyByteDFA:
    expr = string_excluding(keys)
    builder = NfaBuilder(Grammar.from_rules([("start", expr)]), ByteNFA())
    start, end = builder.build_checked(expr)
    builder.nfa.accept[end] = 0
    return LazyByteDFA(builder.nfa, start)


def _accepts(dfa: LazyByteDFA, data: bytes) -> bool:
    state = dfa.initial
    for byte in data:
        state = int(dfa.row(state)[byte])
        if state == dfa.dead:
            return False
    return bool(dfa.accept_list[state])


def _spellings(text: str) -> list[bytes]:
    """A few JSON spellings of ``text``: plain, every character as \\u escape (both cases)."""
    plain = json.dumps(text, ensure_ascii=False).encode()
    escaped = '"' + "".join(f"\\u{ord(c):04x}" for c in text) + '"'
    return [plain, json.dumps(text).encode(), escaped.encode(), escaped.upper().encode()
            .replace(b"\\U", b"\\u")]


KEY_SETS = [
    ["a"],
    [""],
    ["", "a"],
    ["a", "ab", "abc"],
    ["ab", "b"],
    ['"q"', "back\\slash", "new\nline"],
    ["é", "éa", "x/y"],
]


@pytest.mark.parametrize("keys", KEY_SETS)
def test_language_is_strings_other_than_keys(keys: list[str]) -> None:
    dfa = _matcher(keys)
    alphabet = sorted({c for k in keys for c in k} | {"a", "z", "/", "é"})
    for n in range(4):
        for chars in itertools.product(alphabet, repeat=n):
            text = "".join(chars)
            for spelled in _spellings(text):
                assert json.loads(spelled) == text
                assert _accepts(dfa, spelled) == (text not in keys), (keys, spelled)


def test_random_key_sets() -> None:
    rng = random.Random(14)
    alphabet = ["a", "b", "é", '"', "\\", "\n", "/"]
    for _ in range(25):
        keys = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
                for _ in range(rng.randint(1, 4))]
        dfa = _matcher(keys)
        for key in keys:
            for spelled in _spellings(key):
                assert not _accepts(dfa, spelled)
        for n in range(4):
            for chars in itertools.product(["a", "b", "\\", "z"], repeat=n):
                text = "".join(chars)
                assert _accepts(dfa, json.dumps(text).encode()) == (text not in keys)
        assert not _accepts(dfa, b'"unterminated')
