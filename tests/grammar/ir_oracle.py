"""Test-only acceptance oracles for grammar IR: does a grammar accept a string?

Two independent implementations, both over characters (IR literals are UTF-8 decoded):
    * ``to_python_regex``/``RegexOracle``: inline every ``Ref`` of a non-recursive grammar into one
      Python ``re`` pattern and use ``re.fullmatch``.
    * ``Recognizer``: a memoized set-of-end-positions recognizer over the IR, which also handles
      recursive grammars (not left-recursive ones). ``Regex`` nodes are run as interegular FSMs
      (all match ends in one linear scan; Python ``re`` would backtrack exponentially on chains of
      optional whitespace).

The regex oracle can backtrack exponentially too; use it for small grammars, e.g. to cross-check
the recognizer (and, with it, interegular's reading of the patterns against Python's). Regex
nodes use the IR's syntax (Python ``re`` with ASCII ``\\d``/``\\w``/``\\s``): ``re.ASCII``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import interegular

from structgen.grammar.ir import Alt, Expr, Grammar, KeyExclusion, Lit, Ref, Regex, Repeat, Seq
from structgen.grammar.json_strings import not_key_ir

try:
    from .ir_recognizer import excluded_key_ends
except ImportError:  # rootdir-style import: tests/grammar is on sys.path
    from ir_recognizer import excluded_key_ends  # type: ignore[no-redef]


class RecursiveGrammar(ValueError):
    """The grammar is recursive and cannot become one regex."""


@lru_cache(maxsize=4096)
def _fsm(pattern: str, case_insensitive: bool) -> tuple[Any, dict[Any, dict[Any, Any]], Any, Any]:
    fsm = interegular.parse_pattern(f"(?i:{pattern})" if case_insensitive else pattern).to_fsm()
    return fsm.alphabet, fsm.map, fsm.initial, fsm.finals


def to_python_regex(grammar: Grammar) -> str:
    """One Python regex equivalent to a non-recursive ``grammar``."""
    rules = grammar.rule_map

    def conv(expr: Expr, active: tuple[str, ...]) -> str:
        if isinstance(expr, Lit):
            return re.escape(expr.value.decode("utf-8"))
        if isinstance(expr, Regex):
            body = f"(?:{expr.pattern})"
            return f"(?i:{body})" if expr.case_insensitive else body
        if isinstance(expr, Seq):
            return "".join(conv(item, active) for item in expr.items)
        if isinstance(expr, Alt):
            if not expr.items:
                return "(?!)"
            return "(?:" + "|".join(conv(item, active) for item in expr.items) + ")"
        if isinstance(expr, Repeat):
            upper = "" if expr.max is None else str(expr.max)
            return f"(?:{conv(expr.item, active)}){{{expr.min},{upper}}}"
        if isinstance(expr, Ref):
            if expr.name in active:
                raise RecursiveGrammar(expr.name)
            return "(?:" + conv(rules[expr.name], (*active, expr.name)) + ")"
        if isinstance(expr, KeyExclusion):  # its reference IR (tested against json.loads)
            return "(?:" + conv(not_key_ir(expr.keys), active) + ")"
        raise TypeError(expr)

    return conv(Ref(grammar.start), ())


class RegexOracle:
    """``accepts(text)`` for a non-recursive grammar, via one compiled Python regex."""

    def __init__(self, grammar: Grammar) -> None:
        self.pattern = re.compile(to_python_regex(grammar), re.ASCII)

    def accepts(self, text: str) -> bool:
        return self.pattern.fullmatch(text) is not None


class Recognizer:
    """``accepts(text)`` for any non-left-recursive grammar (exponential-free, memoized)."""

    def __init__(self, grammar: Grammar) -> None:
        self.rules = grammar.rule_map
        self.start = grammar.start

    def accepts(self, text: str) -> bool:
        self.text = text
        self.memo: dict[tuple[int, int], frozenset[int]] = {}
        return len(text) in self._ends(Ref(self.start), 0)

    def _ends(self, expr: Expr, pos: int) -> frozenset[int]:
        key = (id(expr), pos)
        found = self.memo.get(key)
        if found is None:
            self.memo[key] = frozenset()  # a left-recursive re-entry sees no match
            found = self.memo[key] = self._compute(expr, pos)
        return found

    def _compute(self, expr: Expr, pos: int) -> frozenset[int]:
        text = self.text
        if isinstance(expr, Lit):
            value = expr.value.decode("utf-8")
            return frozenset({pos + len(value)}) if text.startswith(value, pos) else frozenset()
        if isinstance(expr, Regex):
            alphabet, transitions, state, finals = _fsm(expr.pattern, expr.case_insensitive)
            ends = [pos] if state in finals else []
            for i in range(pos, len(text)):
                state = transitions[state].get(alphabet[text[i]])
                if state is None:
                    break
                if state in finals:
                    ends.append(i + 1)
            return frozenset(ends)
        if isinstance(expr, Seq):
            current = {pos}
            for item in expr.items:
                current = {end for start in current for end in self._ends(item, start)}
                if not current:
                    break
            return frozenset(current)
        if isinstance(expr, Alt):
            return frozenset(end for item in expr.items for end in self._ends(item, pos))
        if isinstance(expr, Repeat):
            result: set[int] = {pos} if expr.min == 0 else set()
            frontier, count = {pos}, 0
            while frontier and (expr.max is None or count < expr.max):
                count += 1
                frontier = {end for start in frontier for end in self._ends(expr.item, start)}
                if count >= expr.min:
                    fresh = frontier - result
                    result |= frontier
                    if expr.max is None:
                        frontier = fresh  # positions seen before add nothing new
            return frozenset(result)
        if isinstance(expr, Ref):
            return self._ends(self.rules[expr.name], pos)
        if isinstance(expr, KeyExclusion):
            return excluded_key_ends(expr, text, pos)
        raise TypeError(expr)


def oracle(grammar: Grammar) -> RegexOracle | Recognizer:
    """The fast regex oracle when the grammar is not recursive, else the recognizer."""
    try:
        return RegexOracle(grammar)
    except RecursiveGrammar:
        return Recognizer(grammar)


__all__ = ["RecursiveGrammar", "Recognizer", "RegexOracle", "oracle", "to_python_regex"]
