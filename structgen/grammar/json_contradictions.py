"""Cheap proofs that a subschema's checked keywords can never pass: unsatisfiable ``oneOf``/``not``/
``allOf`` beside the keywords around them.

One job: given a subschema, the keywords a semantic check enforces there and the instance types
its grammar allows, find a keyword that no instance can satisfy. The lowering then treats the
subschema as unsatisfiable (``_never``): an optional property or an ``anyOf`` branch drops it, and
a required one makes the compile fail with ``InvalidSchema`` naming the keyword's pointer. Without
this, such a schema compiles and every generation walks into a dead end: the check refuses the
last token of every candidate value (MaskBench ``Glaiveai2K---calculate_area``: ``dimensions``
requires all five keys and ``oneOf`` asks for exactly one of three ``required`` groups).

Deliberate simplification: sound, not complete. A branch is *implied* by its parent only when each
of its keywords is: an annotation, a ``required`` list the parent requires too, a ``type`` that
covers the parent's types, or a keyword the parent has with an equal value (keywords that act
alone: ``additionalProperties`` or ``unevaluated*`` next to others are never compared). A branch is
*impossible* only when it is ``false``, its ``type`` is disjoint from the parent's, its ``enum`` is
empty, it requires a key the parent forbids (``properties: {k: false}``, or
``additionalProperties: false`` without ``k`` declared or ``patternProperties``) where the parent
admits objects only, or its bounds and the parent's leave no value: numbers (``minimum``,
``maximum``, ``exclusive*`` in either draft's form, exact rationals, rounded to integers where
only integers are left) where every type both admit is numeric, lengths / item counts / property
counts where all are strings / arrays / objects. A bound keyword of the branch is *implied* where
the parent's own bound is as tight or the keyword does not apply to any of the parent's types.
Anything else is left to the check. For objects, ``object_contradiction``
compares ``minProperties``/``maxProperties`` with each other, with ``required`` and with the
members the grammar allows (only declared ones, under ``additional_properties="declared"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

__all__ = [
    "UNSATISFIABLE_NOTE",
    "checked_contradiction",
    "implied",
    "impossible",
    "object_contradiction",
    "unsatisfiable_note",
]

UNSATISFIABLE_NOTE = "unsatisfiable (its checks refuse every document):"
"""How a grammar's notes start the line saying no document passes its checks."""


def unsatisfiable_note(notes: tuple[str, ...]) -> tuple[str, str] | None:
    """``(pointer, reason)`` from the note of ``Grammar.notes`` that says the schema is
    unsatisfiable, if there is one."""
    note = next((n for n in notes if n.startswith(UNSATISFIABLE_NOTE)), None)
    if note is None:
        return None
    where, _, why = note[len(UNSATISFIABLE_NOTE) :].strip().partition(" ")
    return where, why

_NO_EFFECT = frozenset(
    "title description default examples $comment deprecated readOnly writeOnly".split()
)
_ALONE = frozenset(
    "type enum const required minimum maximum exclusiveMinimum exclusiveMaximum multipleOf "
    "minLength maxLength pattern format minItems maxItems uniqueItems minProperties "
    "maxProperties propertyNames dependentRequired not allOf anyOf oneOf".split()
)
"""Keywords whose verdict does not depend on sibling keywords (``items`` depends on
``prefixItems``, ``additionalProperties`` on ``properties``...): equal values imply each other."""


def _type_names(value: Any) -> set[str] | None:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return set(names)


def _covers(branch_types: set[str], parent_types: list[str]) -> bool:
    """Whether every instance type in ``parent_types`` is one of ``branch_types``."""
    return all(t in branch_types or (t == "integer" and "number" in branch_types)
               for t in parent_types)  # fmt: skip


def _meets(branch_types: set[str], parent_types: list[str]) -> bool:
    """Whether some instance has a type of ``branch_types`` and one of ``parent_types``."""
    for t in parent_types:
        if t in branch_types or (t == "integer" and "number" in branch_types):
            return True
        if t == "number" and "integer" in branch_types:
            return True
    return False


def _required(schema: Mapping[str, Any]) -> set[str]:
    value = schema.get("required")
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return set(value)
    return set()


_NUMERIC = frozenset({"integer", "number"})
_SIZES = {
    "string": ("minLength", "maxLength"),
    "array": ("minItems", "maxItems"),
    "object": ("minProperties", "maxProperties"),
}
"""Each instance type's size keywords (a lower and an upper bound on a count)."""
_SIZE_TYPE = {k: t for t, pair in _SIZES.items() for k in pair}
_Bound = tuple[Fraction, bool]  # (value, strict)


def _number(value: Any) -> Fraction | None:
    """A JSON number keyword value exactly (None for anything else)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return Fraction(value)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value) if float(value).is_integer() else None


def _bound(schema: Mapping[str, Any], side: str) -> _Bound | None:
    """The tightest bound ``schema``'s own keywords put on numbers from ``side`` ("minimum" or
    "maximum"; draft 4's boolean ``exclusive*`` and later drafts' numeric one)."""
    found: list[_Bound] = []
    exclusive = schema.get("exclusive" + side[0].upper() + side[1:])
    value = _number(schema.get(side))
    if value is not None:
        found.append((value, exclusive is True))
    value = _number(exclusive)
    if value is not None:
        found.append((value, True))
    if side == "minimum":
        return max(found, default=None)  # at equal values a strict bound is the tighter
    return min(found, key=lambda b: (b[0], not b[1]), default=None)


def _lower(schema: Mapping[str, Any]) -> _Bound | None:
    return _bound(schema, "minimum")


def _upper(schema: Mapping[str, Any]) -> _Bound | None:
    return _bound(schema, "maximum")


def _integer_floor(bound: _Bound) -> _Bound:
    """The same lower bound on integers: the least integer it admits, inclusive."""
    value, strict = bound
    least = math.floor(value) + 1 if strict else math.ceil(value)
    return Fraction(least), False


def _integer_ceiling(bound: _Bound) -> _Bound:
    value, strict = bound
    most = math.ceil(value) - 1 if strict else math.floor(value)
    return Fraction(most), False


def _at_least(have: _Bound | None, need: _Bound) -> bool:
    """Whether lower bound ``have`` admits only numbers that ``need`` admits."""
    return have is not None and (have[0] > need[0] or (have[0] == need[0] and have[1] >= need[1]))


def _at_most(have: _Bound | None, need: _Bound) -> bool:
    return have is not None and (have[0] < need[0] or (have[0] == need[0] and have[1] >= need[1]))


def _common_types(branch: Mapping[str, Any], types: list[str]) -> set[str]:
    """The instance types of ``types`` that ``branch``'s ``type`` admits (``integer`` where one
    side says ``number`` and the other ``integer``)."""
    names = _type_names(branch.get("type")) if "type" in branch else None
    if names is None:
        return set(types)
    common: set[str] = set()
    for t in types:
        if t in names:
            common.add(t)
        elif t == "integer" and "number" in names or t == "number" and "integer" in names:
            common.add("integer")
    return common


def _disjoint_ranges(branch: Mapping[str, Any], parent: Mapping[str, Any], types: set[str]) -> bool:
    """Whether no instance of ``types`` meets both schemas' numeric bounds or size bounds (only
    where every one of ``types`` is numeric, or all are one sized type)."""
    if types and types <= _NUMERIC:
        lows = [b for b in (_lower(branch), _lower(parent)) if b is not None]
        highs = [b for b in (_upper(branch), _upper(parent)) if b is not None]
        if not lows or not highs:
            return False
        low = max(lows)
        high = min(highs, key=lambda b: (b[0], not b[1]))
        if types == {"integer"}:
            low, high = _integer_floor(low), _integer_ceiling(high)
        return low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1]))
    if len(types) == 1:
        pair = _SIZES.get(next(iter(types)))
        if pair is None:
            return False
        lows = [c for c in (_count(branch.get(pair[0])), _count(parent.get(pair[0]))) if c]
        highs = [c for c in (_count(branch.get(pair[1])), _count(parent.get(pair[1])))]
        highs = [c for c in highs if c is not None]
        return bool(lows and highs) and max(lows) > min(highs)
    return False


def _bound_implied(key: str, branch: Mapping[str, Any], parent: Mapping[str, Any],
                   types: list[str]) -> bool:  # fmt: skip
    """Whether the bound keyword ``key`` of ``branch`` holds for every instance of ``parent``
    (of ``types``): the keyword does not apply to them, or ``parent``'s own bound is tighter."""
    value = branch[key]
    if key in _SIZE_TYPE:
        kind = _SIZE_TYPE[key]
        if kind not in types:
            return True
        need = _count(value)
        have = _count(parent.get(key))
        if need is None or have is None:
            return False
        return have >= need if key.startswith("min") else have <= need
    numeric = _NUMERIC & set(types)
    if not numeric:
        return True
    if isinstance(value, bool):  # draft 4's modifier of minimum/maximum: judged with it
        base = "minimum" if key == "exclusiveMinimum" else "maximum"
        if not value or base not in branch:
            return True  # it has no effect
        return _bound_implied(base, branch, parent, types)
    bound = _number(value)
    if bound is None:
        return False
    lower = key in ("minimum", "exclusiveMinimum")
    strict = key.startswith("exclusive") or branch.get(
        "exclusiveMinimum" if lower else "exclusiveMaximum"
    ) is True
    need: _Bound = (bound, strict)
    have = _lower(parent) if lower else _upper(parent)
    if have is not None and numeric == {"integer"}:
        have = _integer_floor(have) if lower else _integer_ceiling(have)
    return _at_least(have, need) if lower else _at_most(have, need)


_BOUNDS = frozenset(
    "minimum maximum exclusiveMinimum exclusiveMaximum minLength maxLength minItems maxItems "
    "minProperties maxProperties".split()
)


def implied(branch: Any, parent: Mapping[str, Any], types: list[str]) -> bool:
    """Whether every instance valid under ``parent`` (of ``types``) is valid under ``branch``."""
    from structgen.grammar.json_types import json_equal  # json_types imports this module

    if branch is True:
        return True
    if not isinstance(branch, Mapping):
        return False
    for key, value in branch.items():
        if key in _NO_EFFECT:
            continue
        if key == "required" and isinstance(value, list) and set(value) <= _required(parent):
            continue  # a non-object passes ``required`` anyway
        if key == "type":
            names = _type_names(value)
            if names is not None and _covers(names, types):
                continue
            return False
        if key == "properties" and isinstance(value, Mapping):
            props = parent.get("properties")
            props = props if isinstance(props, Mapping) else {}
            if all(
                sub is True or sub == {} or (name in props and json_equal(props[name], sub))
                for name, sub in value.items()
            ):
                continue
            return False
        if key in _ALONE and key in parent and json_equal(parent[key], value):
            continue
        if key in _BOUNDS and _bound_implied(key, branch, parent, types):
            continue
        return False
    return True


def _forbidden(key: str, parent: Mapping[str, Any]) -> bool:
    """Whether ``parent`` forbids an object member named ``key``."""
    props = parent.get("properties")
    props = props if isinstance(props, Mapping) else {}
    if key in props:
        return props[key] is False
    if parent.get("patternProperties"):
        return False
    return parent.get("additionalProperties") is False


def impossible(branch: Any, parent: Mapping[str, Any], types: list[str]) -> bool:
    """Whether no instance valid under ``parent`` (of ``types``) is valid under ``branch``."""
    if branch is False:
        return True
    if not isinstance(branch, Mapping):
        return False
    names = _type_names(branch.get("type")) if "type" in branch else None
    if names is not None and not _meets(names, types):
        return True
    if isinstance(branch.get("enum"), list) and not branch["enum"]:
        return True
    if set(types) <= {"object"} and any(_forbidden(k, parent) for k in _required(branch)):
        return True
    return _disjoint_ranges(branch, parent, _common_types(branch, types))


def checked_contradiction(
    schema: Mapping[str, Any], keywords: set[str], types: list[str]
) -> tuple[str, str] | None:
    """``(keyword, reason)`` for a keyword in ``keywords`` no instance of ``types`` valid under the
    rest of ``schema`` can satisfy; ``None`` where none is proven (see the module docstring)."""
    branches = schema.get("oneOf")
    if "oneOf" in keywords and isinstance(branches, list) and branches:
        sure = [i for i, b in enumerate(branches) if implied(b, schema, types)]
        if len(sure) >= 2:
            return (
                "oneOf",
                f"every value valid here matches oneOf branches {sure[0]} and {sure[1]} (the "
                "keywords beside oneOf imply both), so none matches exactly one",
            )
        if all(impossible(b, schema, types) for b in branches):
            return "oneOf", "no oneOf branch can match beside the keywords around it"
    if "not" in keywords and "not" in schema and implied(schema["not"], schema, types):
        return "not", "every value valid here also matches the schema under not"
    branches = schema.get("allOf")
    if "allOf" in keywords and isinstance(branches, list):
        for i, branch in enumerate(branches):
            if impossible(branch, schema, types):
                return "allOf", f"allOf branch {i} can never match beside the keywords around it"
    return None


def object_contradiction(
    schema: Mapping[str, Any], keywords: set[str], members: list[Any], extras: bool
) -> tuple[str, str] | None:
    """``(keyword, reason)`` where the checked property counts of an object are impossible:
    ``members`` are the members the grammar allows (required ones marked by a true last item),
    ``extras`` whether undeclared ones may follow."""
    low = schema.get("minProperties") if "minProperties" in keywords else None
    high = schema.get("maxProperties") if "maxProperties" in keywords else None
    low = low if isinstance(low, int) and not isinstance(low, bool) else None
    high = high if isinstance(high, int) and not isinstance(high, bool) else None
    must = sum(1 for member in members if member[-1])
    if low is not None and high is not None and low > high:
        return "maxProperties", f"minProperties {low} > maxProperties {high}"
    if high is not None and must > high:
        return "maxProperties", f"{must} required properties > maxProperties {high}"
    if low is not None and not extras and len(members) < low:
        return (
            "minProperties",
            f"minProperties {low}, but only {len(members)} properties are allowed (with "
            "additionalProperties unspecified, generation allows only the declared ones: "
            "additional_properties='spec' allows others)",
        )
    return None
