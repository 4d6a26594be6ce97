"""The strings of an IR expression, where they are few: a bounded enumeration.

One job: ``finite_strings(expr, rules, limit)`` lists every byte string ``expr`` matches when
there are at most ``limit`` of them, and gives None otherwise (an unbounded repeat, a large
character class, a product past the limit, a rule not lowered yet, nesting past ``MAX_DEPTH``).
Checks filter the strings of their item with their predicate, so the result is the language
exactly. An empty alternation counts as not finite: it is also the placeholder of a rule whose
lowering has not finished. The front ends use it to decide at compile time what a small value
language holds (``json_early_arrays`` splits an item's strings by ``contains``).

Deliberate simplification: the work is bounded by ``limit`` at every node, not by the sum over
nodes, so an expression with many small parts costs their number times ``limit``.
"""

from __future__ import annotations

from collections.abc import Mapping

from structgen.errors import GrammarError
from structgen.grammar.ir import Alt, Check, Expr, KeyExclusion, Lit, Ref, Regex, Repeat, Seq
from structgen.grammar.regex import RegexNode, parse_regex

__all__ = ["MAX_DEPTH", "finite_strings"]

MAX_DEPTH = 64
"""Nesting (rules followed included) past which an expression counts as not finite."""

_Strings = frozenset[bytes]


def finite_strings(
    expr: Expr, rules: Mapping[str, Expr], limit: int, unknown: frozenset[str] = frozenset()
) -> _Strings | None:
    """Every string ``expr`` matches, if there are at most ``limit``; else None.

    Args:
        expr: the expression.
        rules: the rule table its ``Ref``s name.
        limit: the most strings to list (at every node).
        unknown: rules whose expression is not final yet (a ``$ref`` still to lower): None.
    """
    return _strings(expr, rules, limit, unknown, 0)


def _strings(
    expr: Expr, rules: Mapping[str, Expr], limit: int, unknown: frozenset[str], depth: int
) -> _Strings | None:
    if depth > MAX_DEPTH:
        return None
    deeper = depth + 1
    if isinstance(expr, Lit):
        return frozenset({expr.value})
    if isinstance(expr, Regex):
        try:
            node = parse_regex(expr.pattern, expr.case_insensitive)
        except GrammarError:
            return None
        found = _regex(node, limit, 0)
        return None if found is None else frozenset(s.encode() for s in found)
    if isinstance(expr, Ref):
        if expr.name in unknown or expr.name not in rules:
            return None
        return _strings(rules[expr.name], rules, limit, unknown, deeper)
    if isinstance(expr, Check):
        inner = _strings(expr.item, rules, limit, unknown, deeper)
        return None if inner is None else frozenset(s for s in inner if expr.predicate(s))
    if isinstance(expr, Alt):
        if not expr.items:  # NEVER: also the placeholder of a rule still being lowered
            return None
        out: set[bytes] = set()
        for item in expr.items:
            part = _strings(item, rules, limit, unknown, deeper)
            if part is None:
                return None
            out |= part
            if len(out) > limit:
                return None
        return frozenset(out)
    if isinstance(expr, Seq):
        parts = []
        for item in expr.items:
            part = _strings(item, rules, limit, unknown, deeper)
            if part is None:
                return None
            parts.append(part)
        return _product(parts, limit)
    if isinstance(expr, KeyExclusion):
        return None  # infinitely many: a body that leaves the key trie goes on freely
    assert isinstance(expr, Repeat)
    one = _strings(expr.item, rules, limit, unknown, deeper)
    if one is None:
        return None
    return _repeat(one, expr.min, expr.max, limit)


def _product(parts: list[frozenset[bytes]], limit: int) -> _Strings | None:
    acc: frozenset[bytes] = frozenset({b""})
    for part in parts:
        acc = frozenset(a + b for a in acc for b in part)
        if len(acc) > limit:
            return None
    return acc


def _repeat(one: frozenset[bytes], low: int, high: int | None, limit: int) -> _Strings | None:
    if not one:
        return frozenset({b""}) if low == 0 else one
    if one == {b""}:
        return one
    if high is None:
        return None
    out: set[bytes] = set()
    run: frozenset[bytes] | None = frozenset({b""})
    for count in range(high + 1):
        if count >= low:
            out |= run
            if len(out) > limit:
                return None
        if count < high:
            run = _product([run, one], limit)
            if run is None:
                return None
    return frozenset(out)


def _regex(node: RegexNode, limit: int, depth: int) -> frozenset[str] | None:
    """The strings of a parsed regex (``regex.RegexNode``), if there are at most ``limit``."""
    if depth > MAX_DEPTH:
        return None
    kind = node[0]
    if kind == "c":
        if sum(hi - lo + 1 for lo, hi in node[1]) > limit:
            return None
        return frozenset(chr(c) for lo, hi in node[1] for c in range(lo, hi + 1))
    parts = []
    for item in node[1] if kind in ("s", "a") else (node[1],):
        part = _regex(item, limit, depth + 1)
        if part is None:
            return None
        parts.append(part)
    if kind == "a":
        out = frozenset().union(*parts)
        return out if len(out) <= limit else None
    encoded = [frozenset(s.encode("utf-8", "surrogatepass") for s in p) for p in parts]
    if kind == "s":
        joined = _product(encoded, limit)
    else:
        joined = _repeat(encoded[0], node[2], node[3], limit)
    return None if joined is None else frozenset(s.decode("utf-8", "surrogatepass") for s in joined)
