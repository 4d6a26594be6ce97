"""Final clean-up of the rules the JSON Schema front end built.

One job: turn the raw rule table into a grammar the engines can use: drop the parts that can derive
nothing (``false`` subschemas reached through ``$ref``), drop unreachable rules, and reject ``$ref``
cycles that consume no input (a validator would recurse forever on them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from structgen.errors import InvalidSchema
from structgen.grammar.ir import EMPTY, Alt, Check, Expr, Lit, Ref, Regex, Repeat, Seq, alt, seq

# Expressions are DAGs (subtrees are shared), so every walk memoizes on node identity.


def _productive(expr: Expr, known: set[str], memo: dict[int, bool]) -> bool:
    result = memo.get(id(expr))
    if result is None:
        if isinstance(expr, (Lit, Regex)):
            result = True
        elif isinstance(expr, Ref):
            result = expr.name in known
        elif isinstance(expr, Seq):
            result = all(_productive(item, known, memo) for item in expr.items)
        elif isinstance(expr, Alt):
            result = any(_productive(item, known, memo) for item in expr.items)
        elif isinstance(expr, Check):  # checks only narrow: productive if the item is
            result = _productive(expr.item, known, memo)
        else:
            assert isinstance(expr, Repeat)
            result = expr.min == 0 or _productive(expr.item, known, memo)
        memo[id(expr)] = result
    return result


def _prune(expr: Expr, known: set[str], memo: dict[int, Expr | None]) -> Expr | None:
    """``expr`` without its unproductive parts; ``None`` if nothing is left."""
    if id(expr) not in memo:
        memo[id(expr)] = _prune_node(expr, known, memo)
    return memo[id(expr)]


def _prune_node(expr: Expr, known: set[str], memo: dict[int, Expr | None]) -> Expr | None:
    if isinstance(expr, (Lit, Regex)):
        return expr
    if isinstance(expr, Ref):
        return expr if expr.name in known else None
    if isinstance(expr, Seq):
        items = [_prune(item, known, memo) for item in expr.items]
        return None if any(i is None for i in items) else seq(*items)  # type: ignore[arg-type]
    if isinstance(expr, Alt):
        items = [p for p in (_prune(item, known, memo) for item in expr.items) if p is not None]
        return alt(*items) if items else None
    if isinstance(expr, Check):
        inner = _prune(expr.item, known, memo)
        return None if inner is None else Check(inner, expr.predicate)
    assert isinstance(expr, Repeat)
    item = _prune(expr.item, known, memo)
    if item is None:
        return EMPTY if expr.min == 0 else None
    return Repeat(item, expr.min, expr.max)


def _refs(expr: Expr, into: set[str], seen: set[int]) -> set[str]:
    if id(expr) in seen:
        return into
    seen.add(id(expr))
    if isinstance(expr, Ref):
        into.add(expr.name)
    elif isinstance(expr, (Seq, Alt)):
        for item in expr.items:
            _refs(item, into, seen)
    elif isinstance(expr, (Repeat, Check)):
        _refs(expr.item, into, seen)
    return into


def _nullable(expr: Expr) -> bool:
    """Whether ``expr`` may match the empty string (a ``Ref`` never does: rules are JSON values)."""
    if isinstance(expr, Lit):
        return not expr.value
    if isinstance(expr, Regex):
        try:
            return re.fullmatch(expr.pattern, "") is not None
        except re.error:
            return True  # conservative: may only report a spurious cycle
    if isinstance(expr, Seq):
        return all(_nullable(item) for item in expr.items)
    if isinstance(expr, Alt):
        return any(_nullable(item) for item in expr.items)
    if isinstance(expr, Repeat):
        return expr.min == 0 or _nullable(expr.item)
    if isinstance(expr, Check):
        return _nullable(expr.item)
    return False


def _leading_refs(expr: Expr, into: set[str], seen: set[int]) -> set[str]:
    """Rules ``expr`` can enter before consuming any input."""
    if id(expr) in seen:
        return into
    seen.add(id(expr))
    if isinstance(expr, Ref):
        into.add(expr.name)
    elif isinstance(expr, Alt):
        for item in expr.items:
            _leading_refs(item, into, seen)
    elif isinstance(expr, Seq):
        for item in expr.items:
            _leading_refs(item, into, seen)
            if not _nullable(item):
                break
    elif isinstance(expr, (Repeat, Check)):
        _leading_refs(expr.item, into, seen)
    return into


def finish_rules(
    rules: Mapping[str, Expr],
    pointers: Mapping[str, str],
    *,
    unsatisfiable: tuple[str, str],
    start: str = "start",
) -> list[tuple[str, Expr]]:
    """Prune, trim and check ``rules``; return them in their original order.

    Args:
        rules: the rule table; ``Alt(())`` marks a rule with an empty language.
        pointers: the schema pointer each ``$ref`` rule came from (for error locations).
        unsatisfiable: ``(pointer, reason)`` reported when the start rule derives nothing.
        start: the start rule.

    Raises:
        InvalidSchema: the schema accepts nothing, or has a ``$ref`` cycle consuming no input.
    """
    _check_progress(rules, pointers, _reachable(rules, start))
    known: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, expr in rules.items():
            if name not in known and _productive(expr, known, {}):
                known.add(name)
                changed = True
    if start not in known:
        where, why = unsatisfiable
        raise InvalidSchema(f"unsatisfiable schema: {why}", location=where)
    memo: dict[int, Expr | None] = {}
    pruned: dict[str, Expr] = {}
    for name, expr in rules.items():
        if name in known:
            pruned[name] = _prune(expr, known, memo)  # type: ignore[assignment]
    reachable = _reachable(pruned, start)
    return [(name, pruned[name]) for name in rules if name in reachable]


def _reachable(rules: Mapping[str, Expr], start: str) -> set[str]:
    reachable, todo = {start}, [start]
    while todo:
        for nxt in _refs(rules[todo.pop()], set(), set()):
            if nxt not in reachable and nxt in rules:
                reachable.add(nxt)
                todo.append(nxt)
    return reachable


def _check_progress(
    rules: Mapping[str, Expr], pointers: Mapping[str, str], names: set[str]
) -> None:
    """Raise if a rule can reach itself without consuming input."""
    leading = {name: _leading_refs(rules[name], set(), set()) for name in names}
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        state[name] = 1
        for nxt in leading.get(name, ()):
            if state.get(nxt) == 1:
                raise InvalidSchema(
                    "a $ref cycle consumes no input (a validator would recurse forever)",
                    location=pointers.get(nxt, "#"),
                    keyword="$ref",
                )
            if nxt not in state:
                visit(nxt)
        state[name] = 2

    for name in sorted(names):
        if name not in state:
            visit(name)


__all__ = ["finish_rules"]
