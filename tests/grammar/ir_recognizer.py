"""Test-only reference recognizer for IR grammars, at the character level.

Its one job: decide ``accepts(grammar, text)`` for any IR Grammar, recursive ones included
(left recursion, nullable rules, ambiguity), independently of the production CFG engine.

How: ``ends(expr, i)`` is the set of positions ``j`` such that ``expr`` derives ``text[i:j]``.
Rule results are memoized per ``(rule, i)`` and computed as a least fixpoint: each pass evaluates
the start rule with the current approximations (a rule reached again inside itself in the same
pass reads its current value), and passes repeat until no memo entry grows. All operations are
monotone, so this converges to the exact sets.

Deliberate simplifications (fine for the short strings of the tests): ``Lit`` bytes are decoded
as UTF-8 and compared as text; a ``Regex`` is tried with ``re.fullmatch`` on every slice end,
compiled with ``re.ASCII`` (``\\d``, ``\\w``, ``\\s`` are ASCII classes in structgen) and
``re.IGNORECASE`` when case-insensitive.
"""

from __future__ import annotations

import json
import re
from functools import cache

from structgen.grammar.ir import Alt, Expr, Grammar, KeyExclusion, Lit, Ref, Regex, Repeat, Seq
from structgen.grammar.json_strings import STRING_BODY

_BODY = re.compile(STRING_BODY)


def excluded_key_ends(expr: KeyExclusion, text: str, i: int) -> frozenset[int]:
    """The ends ``j`` where ``text[i:j]`` is a JSON string body (any spelling) whose value,
    decoded by ``json.loads``, is none of the keys: ``KeyExclusion`` by its definition."""
    return frozenset(
        j
        for j in range(i, len(text) + 1)
        if _BODY.fullmatch(text, i, j) and json.loads(f'"{text[i:j]}"') not in expr.keys
    )


@cache
def _compiled(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    flags = re.ASCII | (re.IGNORECASE if case_insensitive else 0)
    return re.compile(pattern, flags)


class _Recognizer:
    """Fixpoint evaluation of ``ends`` over one text."""

    def __init__(self, grammar: Grammar, text: str) -> None:
        self.rules = grammar.rule_map
        self.text = text
        self.memo: dict[tuple[str, int], frozenset[int]] = {}
        self.regex_memo: dict[tuple[Regex, int], frozenset[int]] = {}
        self.visited: set[tuple[str, int]] = set()
        self.changed = False

    def run(self, start: str) -> frozenset[int]:
        while True:
            self.visited.clear()
            self.changed = False
            result = self.ends(Ref(start), 0)
            if not self.changed:
                return result

    def ends(self, expr: Expr, i: int) -> frozenset[int]:
        if isinstance(expr, Lit):
            value = expr.value.decode("utf-8")
            return frozenset({i + len(value)}) if self.text.startswith(value, i) else frozenset()
        if isinstance(expr, Regex):
            return self._regex(expr, i)
        if isinstance(expr, Seq):
            positions = frozenset({i})
            for item in expr.items:
                positions = frozenset().union(*(self.ends(item, p) for p in positions))
                if not positions:
                    break
            return positions
        if isinstance(expr, Alt):
            return frozenset().union(*(self.ends(item, i) for item in expr.items))
        if isinstance(expr, Repeat):
            return self._repeat(expr, i)
        if isinstance(expr, Ref):
            return self._ref(expr.name, i)
        if isinstance(expr, KeyExclusion):
            return excluded_key_ends(expr, self.text, i)
        raise TypeError(f"not an IR expression: {expr!r}")

    def _regex(self, expr: Regex, i: int) -> frozenset[int]:
        key = (expr, i)
        if key not in self.regex_memo:
            compiled = _compiled(expr.pattern, expr.case_insensitive)
            found = {j for j in range(i, len(self.text) + 1) if compiled.fullmatch(self.text, i, j)}
            self.regex_memo[key] = frozenset(found)
        return self.regex_memo[key]

    def _repeat(self, expr: Repeat, i: int) -> frozenset[int]:
        frontier, result = frozenset({i}), set()
        count = 0
        seen: set[int] = set()
        while frontier:
            if count >= expr.min:
                result |= frontier
            if expr.max is not None and count >= expr.max:
                break
            if count >= expr.min:  # beyond the minimum only new positions matter
                frontier = frozenset(frontier - seen)
                seen |= frontier
            frontier = frozenset().union(*(self.ends(expr.item, p) for p in frontier))
            count += 1
        return frozenset(result)

    def _ref(self, name: str, i: int) -> frozenset[int]:
        key = (name, i)
        current = self.memo.get(key, frozenset())
        if key in self.visited:
            return current
        self.visited.add(key)
        if name not in self.rules:
            raise KeyError(f"undefined rule {name!r}")
        found = self.ends(self.rules[name], i)
        if not found <= current:
            self.memo[key] = current | found
            self.changed = True
        return self.memo.get(key, frozenset())


def accepts(grammar: Grammar, text: str) -> bool:
    """Whether ``grammar`` derives exactly ``text``."""
    return len(text) in _Recognizer(grammar, text).run(grammar.start)


__all__ = ["accepts"]
