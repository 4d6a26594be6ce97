"""Final clean-up of the rules the JSON Schema front end built.

One job: turn the raw rule table into a grammar the engines can use: drop the parts that can derive
nothing (``false`` subschemas reached through ``$ref``), drop unreachable rules, and reject ``$ref``
cycles that consume no input (a validator would recurse forever on them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from structgen.errors import InvalidSchema
from structgen.grammar.ir import (
    EMPTY,
    Alt,
    Check,
    Expr,
    KeyExclusion,
    Lit,
    Ref,
    Regex,
    Repeat,
    Seq,
    seq,
)

# Expressions are DAGs (subtrees are shared), so every walk memoizes on node identity; and they
# can be deep (nested schemas), so every walk is iterative.


def _children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, (Seq, Alt)):
        return expr.items
    if isinstance(expr, (Repeat, Check)):
        return (expr.item,)
    return ()


def _bottom_up(expr: Expr, memo: dict[int, Any], combine: Callable[[Expr, list[Any]], Any]) -> Any:
    """``combine(node, [results of its children])`` for every node under ``expr``, children
    first, each node once (``memo`` by identity); returns the result for ``expr``."""
    if id(expr) in memo:
        return memo[id(expr)]
    stack: list[tuple[Expr, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in memo:
            continue
        kids = _children(node)
        if kids and not ready:
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids if id(kid) not in memo)
            continue
        memo[id(node)] = combine(node, [memo[id(kid)] for kid in kids])
    return memo[id(expr)]


def _prune(expr: Expr, known: set[str], memo: dict[int, Expr | None]) -> Expr | None:
    """``expr`` without its unproductive parts; ``None`` if nothing is left (unchanged nodes are
    kept as they are, so sharing survives)."""

    def combine(node: Expr, kids: list[Expr | None]) -> Expr | None:
        if isinstance(node, (Lit, Regex, KeyExclusion)):
            return node
        if isinstance(node, Ref):
            return node if node.name in known else None
        same = all(new is old for new, old in zip(kids, _children(node), strict=True))
        if isinstance(node, Seq):
            if any(kid is None for kid in kids):
                return None
            return node if same else seq(*kids)  # type: ignore[arg-type]
        if isinstance(node, Alt):
            if same:
                return node
            flat: dict[int, Expr] = {}
            for kid in kids:
                if kid is not None:
                    for sub in kid.items if isinstance(kid, Alt) else (kid,):
                        flat.setdefault(id(sub), sub)
            if not flat:
                return None
            return next(iter(flat.values())) if len(flat) == 1 else Alt(tuple(flat.values()))
        if isinstance(node, Check):
            if kids[0] is None:
                return None
            return node if same else Check(kids[0], node.predicate)
        assert isinstance(node, Repeat)
        if kids[0] is None:
            return EMPTY if node.min == 0 else None
        return node if same else Repeat(kids[0], node.min, node.max)

    return _bottom_up(expr, memo, combine)  # type: ignore[no-any-return]


def _nullable(expr: Expr, memo: dict[int, bool]) -> bool:
    """Whether ``expr`` may match the empty string (a ``Ref`` never does: rules are JSON values)."""

    def combine(node: Expr, kids: list[bool]) -> bool:
        if isinstance(node, Lit):
            return not node.value
        if isinstance(node, Regex):
            try:
                return re.fullmatch(node.pattern, "") is not None
            except (re.error, RecursionError, OverflowError):
                return True  # conservative: may only report a spurious cycle
        if isinstance(node, Seq):
            return all(kids)
        if isinstance(node, Alt):
            return any(kids)
        if isinstance(node, Repeat):
            return node.min == 0 or kids[0]
        if isinstance(node, Check):
            return kids[0]
        if isinstance(node, KeyExclusion):
            return "" not in node.keys
        return False

    return bool(_bottom_up(expr, memo, combine))


def _leading_refs(
    expr: Expr, into: set[str], seen: set[int], nullable: dict[int, bool]
) -> set[str]:
    """Rules ``expr`` can enter before consuming any input."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Ref):
            into.add(node.name)
        elif isinstance(node, Alt):
            stack.extend(node.items)
        elif isinstance(node, Seq):
            for item in node.items:
                stack.append(item)
                if not _nullable(item, nullable):
                    break
        elif isinstance(node, (Repeat, Check)):
            stack.append(node.item)
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
    reachable, known, every_node = _productive_rules(rules, start)
    _check_progress(rules, pointers, reachable)
    if start not in known:
        where, why = unsatisfiable
        raise InvalidSchema(f"unsatisfiable schema: {why}", location=where)
    if every_node:  # nothing to prune: the rules and what they reach stay as they are
        return [(name, rules[name]) for name in rules if name in reachable]
    memo: dict[int, Expr | None] = {}
    pruned: dict[str, Expr] = {}
    for name, expr in rules.items():
        if name in known:
            pruned[name] = _prune(expr, known, memo)  # type: ignore[assignment]
    reachable = _reachable(pruned, start)
    return [(name, pruned[name]) for name in rules if name in reachable]


def _productive_rules(rules: Mapping[str, Expr], start: str) -> tuple[set[str], set[str], bool]:
    """The rules ``start`` reaches, those of them that derive some string, and whether every
    node under them does.

    One walk from ``start`` (into the rules it reaches) finds the nodes; then the least
    fixpoint of "a literal or regex is productive; a sequence when all its items are, an
    alternation when one is, a repeat when its minimum is 0 or its item is, a check when its
    item is, a reference when its rule is" is propagated from the leaves: each distinct node
    visited once and each parent link followed once (linear), where re-walking every rule
    until nothing changes costs a walk of every rule per round. The rules a start reaches only
    refer to rules it reaches, so their verdicts are those of the whole table.
    """
    reachable = {start}
    seen: set[int] = set()  # ids of nodes found (all reachable from ``rules``: alive)
    need: dict[int, int] = {}  # id -> productive children still needed
    parents: dict[int, list[Expr]] = {}
    refs_to: dict[str, list[Expr]] = {}
    rules_of: dict[int, list[str]] = {id(rules[start]): [start]}
    ready: list[Expr] = []
    stack = [rules[start]]
    while stack:
        node = stack.pop()
        nid = id(node)
        if nid in seen:
            continue
        seen.add(nid)
        kind = type(node)
        if kind is Lit or kind is Regex or kind is KeyExclusion:
            ready.append(node)
            continue
        if kind is Ref:
            name = node.name  # type: ignore[union-attr]
            refs_to.setdefault(name, []).append(node)
            if name not in reachable and name in rules:
                reachable.add(name)
                body = rules[name]
                rules_of.setdefault(id(body), []).append(name)
                stack.append(body)
            continue
        if kind is Seq:
            kids: tuple[Expr, ...] = node.items  # type: ignore[union-attr]
            need[nid] = len(kids)
            if not kids:
                ready.append(node)
        elif kind is Alt:
            kids = node.items  # type: ignore[union-attr]
            need[nid] = 1  # an empty alternation is never productive
        else:  # Repeat, Check
            kids = (node.item,)  # type: ignore[union-attr]
            if kind is Repeat and node.min == 0:  # type: ignore[union-attr]
                need[nid] = 0
                ready.append(node)
            else:
                need[nid] = 1
        for kid in kids:
            parents.setdefault(id(kid), []).append(node)
        stack.extend(kids)
    done: set[int] = set()
    known: set[str] = set()
    while ready:
        node = ready.pop()
        nid = id(node)
        if nid in done:
            continue
        done.add(nid)
        for parent in parents.get(nid, ()):
            pid = id(parent)
            left = need[pid] - 1
            need[pid] = left
            if left == 0:
                ready.append(parent)
        names = rules_of.get(nid)
        if names is not None:
            for name in names:
                known.add(name)
                ready.extend(refs_to.get(name, ()))
    return reachable, known, len(done) == len(seen)


def _reachable(rules: Mapping[str, Expr], start: str) -> set[str]:
    """The rules ``start`` reaches (one walk: a node shared by several rules is visited once)."""
    reachable, todo = {start}, [start]
    seen: set[int] = set()
    while todo:
        for node in _unseen(rules[todo.pop()], seen):
            if isinstance(node, Ref) and node.name not in reachable and node.name in rules:
                reachable.add(node.name)
                todo.append(node.name)
    return reachable


def _unseen(root: Expr, seen: set[int]) -> Iterator[Expr]:
    """The nodes under ``root`` (not through ``Ref``) not in ``seen``, each once; adds them."""
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            yield node
            stack.extend(_children(node))


def _check_progress(
    rules: Mapping[str, Expr], pointers: Mapping[str, str], names: set[str]
) -> None:
    """Raise if a rule can reach itself without consuming input (iterative depth-first search)."""
    nullable: dict[int, bool] = {}
    leading = {name: _leading_refs(rules[name], set(), set(), nullable) for name in names}
    state: dict[str, int] = {}
    for root in sorted(names):
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(sorted(leading.get(root, ()))))]
        while stack:
            name, todo = stack[-1]
            nxt = next(todo, None)
            if nxt is None:
                state[name] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                raise InvalidSchema(
                    "a $ref cycle consumes no input (a validator would recurse forever)",
                    location=pointers.get(nxt, "#"),
                    keyword="$ref",
                )
            if nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(leading.get(nxt, ())))))


__all__ = ["finish_rules"]
