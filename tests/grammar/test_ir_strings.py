"""``finite_strings``: the exact language of small IR expressions, None past the limit, for
unbounded repeats and for rules not lowered yet. Oracle: the strings written out by hand, and
Python's ``re`` on every string over a small alphabet for regexes."""

from __future__ import annotations

import itertools
import re

import pytest

from structgen.grammar.ir import EMPTY, Alt, Check, Lit, Ref, Regex, Repeat, alt, seq
from structgen.grammar.ir_strings import finite_strings


class _Short:
    """A predicate: at most two bytes."""

    def __call__(self, data: bytes) -> bool:
        return len(data) <= 2

    def describe(self) -> str:
        return "short"


def test_literals_sequences_alternatives_and_repeats() -> None:
    ab = alt(Lit(b"a"), Lit(b"b"))
    assert finite_strings(seq(ab, Lit(b"!")), {}, 10) == {b"a!", b"b!"}
    assert finite_strings(Repeat(ab, 1, 2), {}, 10) == {b"a", b"b", b"aa", b"ab", b"ba", b"bb"}
    assert finite_strings(Repeat(ab, 0, 1), {}, 10) == {b"", b"a", b"b"}
    assert finite_strings(Repeat(EMPTY, 0, None), {}, 10) == {b""}
    assert finite_strings(Repeat(Alt(()), 0, 3), {}, 10) is None  # NEVER: not known
    assert finite_strings(Repeat(ab, 0, None), {}, 10) is None
    assert finite_strings(Repeat(ab, 3, 3), {}, 7) is None  # 8 strings
    assert finite_strings(Check(Repeat(ab, 1, 3), _Short()), {}, 20) == {
        b"a", b"b", b"aa", b"ab", b"ba", b"bb"
    }  # fmt: skip


def test_rules_are_followed_unless_unknown() -> None:
    rules = {"x": Lit(b"x"), "pending": Alt(())}
    assert finite_strings(seq(Ref("x"), Ref("x")), rules, 4) == {b"xx"}
    assert finite_strings(Ref("x"), rules, 4, frozenset({"x"})) is None
    assert finite_strings(Ref("pending"), rules, 4) is None
    assert finite_strings(Ref("missing"), rules, 4) is None


@pytest.mark.parametrize(
    "pattern", ['"[abc]"', "(ab|c){0,2}", "a?b?c?", "[a-c]{2}", "(?:a|bc)+c?|x{1,2}"]
)
def test_regexes_match_python_re(pattern: str) -> None:
    found = finite_strings(Regex(pattern), {}, 100)
    if pattern.endswith("x{1,2}"):
        assert found is None  # the + is unbounded
        return
    assert found is not None
    words = ["".join(t) for n in range(7) for t in itertools.product('abcx"', repeat=n)]
    assert found == {w.encode() for w in words if re.fullmatch(pattern, w)}


def test_large_classes_are_not_listed() -> None:
    assert finite_strings(Regex("[^a]"), {}, 256) is None
    assert finite_strings(Regex("é|ü"), {}, 4) == {"é".encode(), "ü".encode()}
