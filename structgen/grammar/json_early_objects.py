"""Early object checks: refuse the key after which an object can no longer be completed.

One job: for an object whose ``maxProperties``, ``minProperties``, ``dependentRequired`` (or the
array form of ``dependencies``), ``oneOf`` over ``required`` groups or ``not: {required: ...}``
is enforced by a check on the whole object, build its members (schema order) so that a check
fires as each *key* completes (``ObjectKeys``): the prefix ``{"a":1,"b"`` is refused as soon as no
completion can satisfy those keywords any more, instead of the closing ``}`` being refused with
nowhere left to go (a dead end). The object's own check still runs on completion, so the language
is unchanged: ``ObjectKeys`` only refuses prefixes with no valid completion (sound).

The members become a chain of rules without recursion (``key_i``: the members up to key ``i``,
each choice of the member before it, checked; ``member_i``: ``key_i`` with its value), as the
early ``uniqueItems`` chain does; extra members repeat ``EARLY_EXTRAS`` times in the chain, then
unchecked (the object's check still covers them). Deliberate simplifications: each keyword is
judged on its own (a prefix that satisfies each but not all together passes: the object's check
then refuses at ``}``); objects with more than ``MAX_CHAIN_CHOICES`` member choices keep the plain
lowering; members in any order (``property_order="any"``) are not chained.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from structgen.grammar.ir import Alt, Check, Expr, Lit, Ref, Repeat, Seq, alt, lit, seq

if TYPE_CHECKING:
    from structgen.grammar.json_types import SchemaCtx, TypeLowering

__all__ = ["EARLY_EXTRAS", "MAX_CHAIN_CHOICES", "ObjectKeys", "early_object", "object_keys"]

EARLY_EXTRAS = 16
"""Extra (undeclared) members checked as their key completes, up to this many per object."""
MAX_CHAIN_CHOICES = 2000
"""Objects whose chain would need more (member before, member) choices keep the plain lowering."""
_EARLY = ("maxProperties", "minProperties", "dependentRequired", "dependencies", "oneOf", "not")
_NO_EFFECT = frozenset("title description $comment".split())


@dataclass(frozen=True)
class ObjectKeys:
    """Accept the members of an object written so far, ending in a key (``"a":1, "b"``), iff
    the object can still be completed under the keywords below (each on its own).

    Args:
        order: the declared member names in the order the grammar writes them.
        extras: whether undeclared members may follow the declared ones.
        required: names every object has (the grammar makes them come).
        max_properties, min_properties: the bounds (``None``: none).
        dependent: ``(name, names it requires)`` pairs (``dependentRequired``).
        one_of: the ``required`` groups of a ``oneOf`` of ``required``-only branches.
        not_required: ``required`` groups no object may contain (``not: {required: [...]}``).
        next_key: the name whose first ``cut`` bytes end the text (the check sits on a key's
            first character, where the key is chosen); None: the text ends in a whole key or
            in a separator.
    """

    order: tuple[str, ...]
    extras: bool
    required: tuple[str, ...] = ()
    max_properties: int | None = None
    min_properties: int | None = None
    dependent: tuple[tuple[str, tuple[str, ...]], ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()
    not_required: tuple[tuple[str, ...], ...] = ()
    next_key: str | None = None
    cut: int = 0

    def __call__(self, data: bytes) -> bool:
        return _completable_text(self, data)

    def describe(self) -> str:
        """What this check enforces."""
        return "object keywords on each key's completion (max/minProperties, dependencies, ...)"


_FRESH = "\uffff fresh"
"""Stands for any undeclared name (extra members) when the next key is looked for."""
_SPACE = b" \t\r\n"


def _names(data: bytes) -> tuple[str, ...] | None:
    """The member names of ``data`` (members ending in a key, or in ``,``), else None."""
    found: list[list[str]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found.append([name for name, _ in pairs])  # innermost first: the outer object last
        return {}

    text = data.rstrip(_SPACE)
    closed = b"{" + text[:-1] + b"}" if text.endswith(b",") else b"{" + text + b":0}"
    try:
        json.loads(closed, object_pairs_hook=hook)
    except (ValueError, RecursionError):
        return None
    return tuple(found[-1]) if found else None


@functools.lru_cache(maxsize=1 << 16)
def _completable_text(check: ObjectKeys, data: bytes) -> bool:
    """A prefix ending in a key: can the object still be completed? Ending in ``,``: can some
    next key (one the grammar allows there) keep it completable?"""
    if check.next_key is not None:  # members, a separator, the key's first bytes
        head = data[: len(data) - check.cut]
        names = _names(head) if head.strip(_SPACE) else ()
        return names is not None and _completable(check, (*names, check.next_key))
    names = _names(data)
    if names is None:
        return False
    if not data.rstrip(_SPACE).endswith(b","):
        return _completable(check, names)
    later = _later(check, names)
    missing = [n for n in later if n in check.required and n not in names]
    # schema order: the next key is a later declared one, up to the first missing required one;
    # an extra one only once no required one is missing
    upto = later.index(missing[0]) + 1 if missing else len(later)
    nexts = list(later[:upto]) + ([_FRESH] if check.extras and not missing else [])
    return any(_completable(check, (*names, name)) for name in nexts)


def _later(check: ObjectKeys, names: tuple[str, ...]) -> tuple[str, ...]:
    """The declared names that may still follow ``names`` (schema order)."""
    position = {name: i for i, name in enumerate(check.order)}
    if all(name in position for name in names):
        return check.order[max((position[n] for n in names), default=-1) + 1 :]
    return ()  # an extra member: the declared ones are behind


def _completable(check: ObjectKeys, names: tuple[str, ...]) -> bool:
    present = set(names)
    declared = set(check.order)
    later = set(_later(check, names))

    def can_come(name: str) -> bool:
        return name in later or (check.extras and name not in declared and name not in present)

    missing = [name for name in check.required if name not in present]
    if check.max_properties is not None and len(present) + len(missing) > check.max_properties:
        return False
    if check.min_properties is not None and not check.extras:
        if len(present) + len(later) < check.min_properties:
            return False
    needs = dict(check.dependent)
    needed, todo = set(present), list(present)
    while todo:  # the names present ones need, and the names those need in turn
        for other in needs.get(todo.pop(), ()):
            if other not in needed:
                if not can_come(other):
                    return False
                needed.add(other)
                todo.append(other)
    least = present | set(check.required)  # in every completion
    if any(set(group) <= least for group in check.not_required):
        return False
    if check.one_of:
        groups = [set(g) for g in check.one_of]
        if sum(g <= present for g in groups) > 1:
            return False
        if not any(
            all(n in present or can_come(n) for n in g)
            and not any(other <= least | g for j, other in enumerate(groups) if j != i)
            for i, g in enumerate(groups)
        ):
            return False
    return True


def _groups(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(n, str) for n in value):
        return tuple(value)
    return None


def _required_only(branch: Any) -> tuple[str, ...] | None:
    """The ``required`` list of a branch that has nothing else that matters, else None."""
    if not isinstance(branch, Mapping) or "required" not in branch:
        return None
    if any(key != "required" and key not in _NO_EFFECT for key in branch):
        return None
    return _groups(branch["required"])


def object_keys(
    schema: Mapping[str, Any],
    checked: set[str],
    order: list[str],
    required: list[str],
    extras: bool,
) -> ObjectKeys | None:
    """The ``ObjectKeys`` check for the keywords of ``checked`` it covers; None if none."""
    if not checked.intersection(_EARLY):
        return None
    fields: dict[str, Any] = {}
    for key, name in (("maxProperties", "max_properties"), ("minProperties", "min_properties")):
        value = schema.get(key)
        if key in checked and isinstance(value, int) and not isinstance(value, bool):
            fields[name] = value
    dependent = []
    for key in ("dependentRequired", "dependencies"):
        value = schema.get(key)
        if key in checked and isinstance(value, Mapping):
            dependent += [(k, g) for k, v in value.items() if (g := _groups(v)) is not None]
    one_of: tuple[tuple[str, ...], ...] = ()
    branches = schema.get("oneOf")
    if "oneOf" in checked and isinstance(branches, list) and branches:
        groups = [_required_only(b) for b in branches]
        if all(g is not None for g in groups):
            one_of = tuple(g for g in groups if g is not None)
    not_required: tuple[tuple[str, ...], ...] = ()
    if "not" in checked and (group := _required_only(schema.get("not"))) is not None:
        not_required = (group,)
    if not (fields or dependent or one_of or not_required):
        return None
    return ObjectKeys(
        tuple(order),
        extras,
        tuple(required),
        dependent=tuple(dependent),
        one_of=one_of,
        not_required=not_required,
        **fields,
    )


def early_object(
    low: TypeLowering,
    ctx: SchemaCtx,
    members: list[tuple[str, Expr, Expr, bool]],
    extra: tuple[Expr, Expr] | None,
    check: ObjectKeys,
) -> Expr | None:
    """The object with ``members`` (``(name, key, value, required)`` in order) and ``extra``
    (an extra member's key and value) as a chain checked on each key; None if it is too large."""
    required = [i for i, (_, _, _, req) in enumerate(members) if req]
    last_required = required[-1] if required else -1
    choices = 0
    for i in range(len(members)):
        choices += i - max((r for r in required if r < i), default=0) + 1
    if choices > MAX_CHAIN_CHOICES:
        return None

    def chosen(before: Expr | None, key: Expr, name: str) -> list[Expr]:
        """``before`` then ``key``, checked where the key's first character chooses it (an
        extra key: its opening quote)."""
        out: list[Expr] = []
        for spelling in key.items if isinstance(key, Alt) else (key,):
            if isinstance(spelling, Lit):
                first, rest = Lit(spelling.value[:2]), Lit(spelling.value[2:])
            elif isinstance(spelling, Seq) and spelling.items[0] == Lit(b'"'):
                first, rest = Lit(b'"'), seq(*spelling.items[1:])
            else:  # checked once it is whole
                out.append(Check(spelling if before is None else seq(before, spelling), check))
                continue
            pick = replace(check, next_key=name, cut=len(first.value))
            head = first if before is None else seq(before, first)
            out.append(seq(Check(head, pick), rest))
        return out

    full: list[str] = []  # member_i: the members up to member i, its value included
    comma: list[str] = []  # the same and a separator, checked: some next key must fit

    def then(name: str) -> Expr:
        return Ref(low.new_rule("sep", ctx.pointer, Check(seq(Ref(name), low.sep), check)))

    for i, (name, key, value, _) in enumerate(members):
        before = max((r for r in required if r < i), default=-1)
        options = chosen(None, key, name) if before < 0 else []
        for p in range(max(before, 0), i):
            options += chosen(Ref(comma[p]), key, name)
        keyed = low.new_rule("key", ctx.pointer, alt(*options))
        full.append(low.new_rule("member", ctx.pointer, seq(Ref(keyed), low.colon, value)))
        comma.append(low.new_rule("sep", ctx.pointer, Check(seq(Ref(full[-1]), low.sep), check)))
    ends: list[Expr] = [Ref(name) for name in full[max(last_required, 0) :]]
    if extra is not None:
        key, value = extra
        options = chosen(None, key, _FRESH) if last_required < 0 else []
        for after in comma[max(last_required, 0) :]:
            options += chosen(Ref(after), key, _FRESH)
        most = EARLY_EXTRAS  # extra members in the chain (declared ones may all be skipped)
        if check.max_properties is not None:
            most = min(most, check.max_properties)
        previous: str | None = None
        for _ in range(max(most, 1)):
            body = alt(*options) if previous is None else alt(*chosen(then(previous), key, _FRESH))
            keyed = low.new_rule("key", ctx.pointer, body)
            previous = low.new_rule("member", ctx.pointer, seq(Ref(keyed), low.colon, value))
            ends.append(Ref(previous))
        if check.max_properties is None or check.max_properties > most:
            assert previous is not None
            ends.append(seq(Ref(previous), Repeat(seq(low.sep, key, low.colon, value), 1, None)))
    objects = [seq(lit("{"), low.ws, alt(*ends), low.ws, lit("}"))] if ends else []
    if last_required < 0:
        objects.append(seq(lit("{"), low.ws, lit("}")))
    return alt(*objects)
