"""Early ``contains`` counts: refuse the item after which an array can no longer be completed.

One job: for an array whose check enforces ``contains`` (with ``minContains``/``maxContains``
in drafts 2019-09 and later), build its items so that the count of items matching ``contains``
lives in the grammar: each item is written either as a *matching* or as a *non-matching* variant,
and the rules are the states ``(items so far, matches so far)``. A state is kept only if some
completion from it reaches an accepted array (``minItems``/``maxItems``, ``minContains``,
``maxContains`` together), so:

- an item that would make one match too many is refused where it is decided;
- ``]`` is refused while fewer than ``minContains`` items match;
- a non-matching item is refused when the slots left (``maxItems``) are all needed for matches.

An item is *decided* at its first distinguishing byte where the item schema is a finite set of
values (``enum``/``const``, ``boolean``, ``null``: the values are split by the ``contains``
validator at compile time into two enums), where the item's grammar has at most
``MAX_FINITE_VALUES`` texts (``ir_strings.finite_strings``: split into two sets of literals), or,
for the matching variant, where ``contains`` is a finite set of values (those the item allows).
Elsewhere a variant is the item restricted by a check (``ContainsItem``) that fires as the item
completes. The array's own check still runs, so the language is unchanged.

Deliberate simplifications: where the item is not a finite set of values or texts, whether a
matching (non-matching) item exists at all is judged only by ``json_contradictions.impossible``
(``implied``): types, ``required`` against forbidden keys, and numeric / size bounds (integer
items of ``maximum: 3`` never match a ``contains`` of ``minimum: 5``: no array passes and the
schema is reported unsatisfiable; items of ``minimum: 6`` always do, so ``maxContains`` bounds
the items). Other contradictions, e.g. a ``pattern`` no item string can match, keep prefixes
that are dead ends (the checks then refuse every item, as before). With ``uniqueItems`` too, each
item is also checked for uniqueness (up to ``EARLY_UNIQUE_ITEMS``), but the two are judged apart
(running out of distinct matching values is not foreseen). Arrays needing more than
``MAX_CONTAINS_STATES`` states keep the plain lowering (the array's check alone, at ``]``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from structgen.grammar.ir import Alt, Check, Expr, Lit, Ref, Repeat, alt, lit, seq
from structgen.grammar.ir_strings import finite_strings
from structgen.grammar.json_checks import JsonSchemaCheck, UniqueLastItem, canonical
from structgen.grammar.json_contradictions import implied, impossible

if TYPE_CHECKING:
    from structgen.grammar.json_types import SchemaCtx, TypeLowering

__all__ = [
    "MAX_CONTAINS_STATES",
    "ContainsItem",
    "NoArray",
    "contains_counts",
    "early_contains",
    "finite_values",
]

MAX_CONTAINS_STATES = 1024
"""Arrays whose (items, matches) states would outnumber this keep the plain lowering."""
MAX_FINITE_VALUES = 256
"""Items with more values (texts) than this are not split by value (text) at compile time."""
_LEGACY_CONTAINS = frozenset({"Draft6Validator", "Draft7Validator"})
"""Dialects whose ``contains`` ignores ``minContains``/``maxContains`` (at least one match)."""
_NO_EFFECT = frozenset(
    "title description default examples $comment deprecated readOnly writeOnly".split()
)
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


@dataclass(frozen=True)
class ContainsItem:
    """Accept one array item's JSON text iff its verdict under ``contains`` is ``matches``.

    Args:
        contains: the check of an item against the ``contains`` subschema.
        matches: True for the matching variant, False for the non-matching one.
    """

    contains: JsonSchemaCheck
    matches: bool

    def __call__(self, data: bytes) -> bool:
        return _item_verdict(self, data)

    def describe(self) -> str:
        """What this check enforces."""
        which = "matches" if self.matches else "does not match"
        return f"an item that {which} contains at {self.contains.pointer}"


@functools.lru_cache(maxsize=1 << 16)
def _item_verdict(check: ContainsItem, data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return check.contains(data) == check.matches


@dataclass(frozen=True)
class NoArray:
    """No array satisfies the counts: ``reason`` says why (the caller reports it)."""

    reason: str


def contains_counts(schema: Mapping[str, Any], dialect_name: str) -> tuple[int, int | None] | None:
    """``(minContains, maxContains)`` as the dialect's ``contains`` reads them (1 and None by
    default); None if they are not non-negative integers (the metaschema check catches that)."""
    if dialect_name in _LEGACY_CONTAINS:
        return 1, None
    found: list[int | None] = []
    for key, default in (("minContains", 1), ("maxContains", None)):
        value = schema.get(key, default)
        if value is None:
            found.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if value < 0 or not float(value).is_integer():
            return None
        found.append(int(value))
    low, high = found
    assert low is not None
    return low, high


@dataclass
class _Element:
    """One array position's variants: the plain item, and its matching and non-matching parts
    (None where none exists)."""

    plain: Expr
    match: Expr | None
    other: Expr | None


def _type_list(schema: Any) -> list[str]:
    if isinstance(schema, Mapping):
        names = schema.get("type")
        names = [names] if isinstance(names, str) else names
        if isinstance(names, list) and names and all(n in _TYPES for n in names):
            return list(names)
    return list(_TYPES)


def finite_values(schema: Any) -> list[Any] | None:
    """The values a simple item schema allows, where they are few (a superset: the caller
    filters them by the schema itself); None if it is not such a schema."""
    if not isinstance(schema, Mapping):
        return None
    if any(k not in {"enum", "const", "type"} and k not in _NO_EFFECT for k in schema):
        return None
    if "enum" in schema or "const" in schema:
        values = list(schema["enum"]) if isinstance(schema.get("enum"), list) else None
        if "const" in schema:
            values = [schema["const"]]
        if values is None or len(values) > MAX_FINITE_VALUES:
            return None
        return values
    names = _type_list(schema) if "type" in schema else None
    if names is None or not set(names) <= {"boolean", "null"}:
        return None
    return ([True, False] if "boolean" in names else []) + ([None] if "null" in names else [])


def _enum(low: TypeLowering, schema: Mapping[str, Any], values: list[Any], pointer: str) -> Expr:
    """``values`` as an enum lowered beside ``schema``'s ``type`` (the report left as it was:
    the enum is a part of a subschema, not a keyword of the document)."""
    from structgen.grammar.json_types import SchemaCtx

    report = dict(low.report)
    sub = {"enum": values, **({"type": schema["type"]} if "type" in schema else {})}
    expr = low.lower(sub, SchemaCtx(pointer))
    low.report.clear()
    low.report.update(report)
    assert expr is not None  # the values are valid under the type
    return expr


def _element(
    low: TypeLowering,
    ctx: SchemaCtx,
    expr: Expr,
    pointer: str | None,
    contains: JsonSchemaCheck,
) -> _Element:
    """The variants of the item ``expr`` lowered from the subschema at ``pointer`` (None: no
    item schema, any value)."""
    from structgen.grammar.json_refs import resolve_pointer

    schema = True if pointer is None else resolve_pointer(low.root, pointer)
    item_schema = schema if isinstance(schema, Mapping) else {}
    plain = low._share(expr, ctx)

    def valid(value: Any) -> bool:
        text = canonical(value).encode()
        item_ok = pointer is None or JsonSchemaCheck(low.root_text, pointer, draft=contains.draft)
        return (item_ok is True or item_ok(text)) and contains(text)

    values = finite_values(schema)
    if values is not None and pointer is not None and not low.checked_keywords.get(pointer):
        # the item is one of a few values: split them (decided at the first byte that differs)
        check = JsonSchemaCheck(low.root_text, pointer, draft=contains.draft)
        kept = [v for v in values if check(canonical(v).encode())]
        parts = [
            [v for v in kept if contains(canonical(v).encode()) == matches]
            for matches in (True, False)
        ]
        match, other = (_enum(low, item_schema, p, pointer) if p else None for p in parts)
        return _Element(plain, match, other)
    pending = frozenset(name for name, _, _ in low._pending_refs)
    strings = None
    if low.options.whitespace_mode != "pretty":  # its whitespace is a placeholder until the end
        strings = finite_strings(expr, low.rules, MAX_FINITE_VALUES, pending)
    if strings is not None:
        # the item is one of a few texts: split them (decided at the first byte that differs)
        texts = sorted(strings)
        split = [[Lit(t) for t in texts if contains(t) == matches] for matches in (True, False)]
        match, other = (alt(*lits) if lits else None for lits in split)
        return _Element(plain, match, other)
    branch = resolve_pointer(low.root, contains.pointer)
    types = _type_list(schema)
    every = schema is not False and implied(branch, item_schema, types)  # every item matches
    none = schema is False or impossible(branch, item_schema, types)  # no item matches
    wanted = finite_values(branch)
    match: Expr | None = None
    if every and not none:
        match = plain
    elif wanted is not None and not low.checked_keywords.get(contains.pointer):
        # a few values match: those the item allows, spelled as an enum (decided early)
        kept = [v for v in wanted if valid(v)]
        match = _enum(low, {}, kept, contains.pointer) if kept else None
    elif not none:
        check = Check(plain, ContainsItem(contains, True))
        match = Ref(low.new_rule("contains_match", ctx.pointer, check))
    other: Expr | None = None
    if none and schema is not False:
        other = plain
    elif not every:
        check = Check(plain, ContainsItem(contains, False))
        other = Ref(low.new_rule("contains_other", ctx.pointer, check))
    return _Element(plain, match, other)


def early_contains(
    low: TypeLowering,
    ctx: SchemaCtx,
    prefix: list[Expr],
    item: Expr | None,
    counts: tuple[int, int | None],
    lengths: tuple[int, int | None],
    unique: bool,
) -> Expr | NoArray | None:
    """The array (``prefix`` items, then ``item``s) with its ``contains`` ``counts`` (min, max)
    and ``lengths`` (min, max items; max None: unbounded) in its states; ``NoArray`` if no
    array satisfies them; None if it is too large (the caller lowers it plainly)."""
    from structgen.grammar.json_refs import resolve_pointer
    from structgen.grammar.json_types import EARLY_UNIQUE_ITEMS

    cmin, cmax = counts
    min_items, cap = lengths
    if cap is None and item is None:
        cap = len(prefix)
    if cmax is not None and cmax < cmin:
        return NoArray(f"minContains {cmin} > maxContains {cmax}")
    if cmin == 0 and cmax is None:
        return None  # every array passes contains: nothing to count
    top = cmin if cmax is None else cmax
    depth = cap if cap is not None else max(len(prefix), min_items, 1)
    if unique and cap is None:
        depth = max(depth, EARLY_UNIQUE_ITEMS)
    if (depth + 1) * (top + 1) > MAX_CONTAINS_STATES:
        return None
    contains = JsonSchemaCheck(low.root_text, ctx.at("contains"), ("contains",), low.refs.draft)
    elements = [
        _element(low, ctx, e, ctx.child("prefixItems", i).pointer, contains)
        for i, e in enumerate(prefix[: depth + 1])
    ]
    tail = None
    if item is not None:
        schema = resolve_pointer(low.root, ctx.pointer)
        pointer = ctx.child("items").pointer if "items" in schema else None
        tail = _element(low, ctx, item, pointer, contains)

    def at(k: int) -> _Element | None:
        return elements[k] if k < len(elements) else tail

    def step(n: int, matches: bool) -> int | None:
        if not matches:
            return n
        if cmax is not None:
            return n + 1 if n + 1 <= cmax else None
        return min(n + 1, cmin)

    def accepting(k: int, n: int) -> bool:
        return k >= min_items and n >= cmin

    # live[(k, n)]: some completion from k items with n matches is an accepted array (k ==
    # depth without a cap stands for "depth items or more")
    live: dict[tuple[int, int], bool] = {}
    if cap is None:
        for n in range(top, -1, -1):
            e = at(depth)
            up = step(n, True) if e is not None and e.match is not None else None
            live[(depth, n)] = accepting(depth, n) or (
                up is not None and up != n and live[(depth, up)]
            )
    else:
        for n in range(top + 1):
            live[(depth, n)] = accepting(depth, n)
    for k in range(depth - 1, -1, -1):
        e = at(k)
        for n in range(top + 1):
            nexts = []
            if e is not None:
                nexts = [step(n, m) for m, v in ((True, e.match), (False, e.other)) if v]
            live[(k, n)] = accepting(k, n) or any(m is not None and live[(k + 1, m)] for m in nexts)
    if not live[(0, 0)]:
        lengths_text = f"{min_items}..{'' if cap is None else cap} items"
        return NoArray(
            f"no array of {lengths_text} has {cmin}..{'' if cmax is None else cmax} items "
            "matching contains (and items valid under the item schemas)"
        )

    def extend(previous: Expr | None, element: Expr) -> Expr:
        if previous is None:
            return element
        body = seq(previous, low.sep, element)
        return Check(body, UniqueLastItem()) if unique else body

    rules: dict[tuple[int, int], str] = {}  # the rule of each reachable live state (k >= 1)
    ends: list[Expr] = []
    for k in range(depth):
        e = at(k)
        into: dict[int, list[Expr]] = {}
        sources = [None] if k == 0 else [n for n in range(top + 1) if (k, n) in rules]
        for n in sources:
            previous = None if n is None else Ref(rules[(k, n)])
            here = 0 if n is None else n
            targets: dict[int, list[Expr]] = {}
            for matches, variant in ((True, e.match), (False, e.other)) if e else ():
                m = step(here, matches)
                if variant is not None and m is not None and live[(k + 1, m)]:
                    targets.setdefault(m, []).append(variant)
            for m, variants in targets.items():
                element = e.plain if len(variants) == 2 and e is not None else variants[0]
                into.setdefault(m, []).append(extend(previous, element))
        if k + 1 == depth and cap is None:
            ends += _absorbing(low, ctx, at(depth), into, step, live, accepting, depth, extend)
            break
        for m, bodies in into.items():
            # named by state: rule names stay unique without new_rule's search
            name = f"contains_{k + 1}_{m}"
            rules[(k + 1, m)] = low.new_rule(name, ctx.pointer, alt(*bodies))
            if accepting(k + 1, m):
                ends.append(Ref(rules[(k + 1, m)]))
    # the ends are distinct rules: no need for alt's (quadratic) search for duplicates
    body = ends[0] if len(ends) == 1 else Alt(tuple(ends))
    arrays = [seq(lit("["), low.ws, body, low.ws, lit("]"))] if ends else []
    if accepting(0, 0):
        arrays.append(seq(lit("["), low.ws, lit("]")))
    return alt(*arrays)


def _absorbing(
    low: TypeLowering,
    ctx: SchemaCtx,
    e: _Element | None,
    into: dict[int, list[Expr]],
    step: Any,
    live: dict[tuple[int, int], bool],
    accepting: Any,
    depth: int,
    extend: Any,
) -> list[Expr]:
    """The states with ``depth`` items or more (no ``maxItems``): for each count ``n``, the ways
    in (``into``, and a match from ``n - 1``), then any run of items that keep the count."""
    assert e is not None
    ends: list[Expr] = []
    previous: str | None = None
    for n in range(max(n for _, n in live) + 1):
        if not live[(depth, n)]:
            previous = None
            continue
        bodies = list(into.get(n, []))
        if previous is not None and e.match is not None and step(n - 1, True) == n:
            bodies.append(extend(Ref(previous), e.match))
        if not bodies:
            previous = None
            continue
        entered = low.new_rule(f"contains_in_{n}", ctx.pointer, alt(*bodies))
        keep = e.plain if step(n, True) == n else e.other  # saturated: any item keeps it
        body: Expr = Ref(entered)
        if keep is not None:
            body = seq(body, Repeat(seq(low.sep, keep)))
        previous = low.new_rule(f"contains_more_{n}", ctx.pointer, body)
        if accepting(depth, n):
            ends.append(Ref(previous))
    return ends
