"""Bound proofs of ``json_contradictions``: a branch whose numeric / length / count bounds and its
parent's leave no value is *impossible*; a bound the parent's own bound implies is *implied*.

Oracle: ``jsonschema`` on a brute-force domain fine enough to hold a witness between any two of
the bounds drawn (numbers on a grid of quarters, sizes 0..6). A claim of either kind must hold for
every domain value of the parent's types; the drawn cases must also make claims, so the tests
fail if the proofs stop being made."""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prefix_oracle import (
    VOCAB,
    arrays,
    assert_prefix_exact,
    assert_rejections_sound,
    assert_unsatisfiable,
    compact,
    rejected_at,
)

import structgen as sg
from structgen.grammar.json_contradictions import implied, impossible

NUMBERS: list[Any] = sorted(
    {int(q) if q.denominator == 1 else float(q) for q in (Fraction(i, 4) for i in range(-24, 25))},
    key=float,
)
DOMAIN: dict[str, list[Any]] = {
    "integer": [n for n in NUMBERS if isinstance(n, int)],
    "number": NUMBERS,
    "string": ["x" * n for n in range(7)],
    "array": [[0] * n for n in range(7)],
    "object": [{f"k{i}": 0 for i in range(n)} for n in range(7)],
    "boolean": [True],
    "null": [None],
}
HALVES = [x / 2 for x in range(-8, 9)]


def _of_types(types: list[str]) -> list[Any]:
    return [v for t in types for v in DOMAIN[t]]


def _numeric_bounds(draw: Any, draft4: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for side in ("minimum", "maximum"):
        if draw(st.booleans()):
            value = draw(st.sampled_from(HALVES))
            value = int(value) if float(value).is_integer() and draw(st.booleans()) else value
            if draw(st.booleans()):  # exclusive
                if draft4:
                    schema[side] = value
                    schema["exclusive" + side[0].upper() + side[1:]] = True
                else:
                    schema["exclusive" + side[0].upper() + side[1:]] = value
            else:
                schema[side] = value
    return schema


@st.composite
def _case(draw: Any) -> tuple[dict[str, Any], dict[str, Any], list[str], bool]:
    draft4 = draw(st.booleans())
    kind = draw(st.sampled_from(["numeric", "size"]))
    if kind == "numeric":
        types = draw(st.sampled_from([["integer"], ["number"], ["integer", "string"],
                                      ["number", "null"]]))  # fmt: skip
        parent = {"type": types, **_numeric_bounds(draw, draft4)}
        branch = _numeric_bounds(draw, draft4)
        if draw(st.booleans()):
            branch["type"] = draw(st.sampled_from(["integer", "number", "string"]))
    else:
        sized = draw(st.sampled_from(["string", "array", "object"]))
        low, high = {"string": ("minLength", "maxLength"), "array": ("minItems", "maxItems"),
                     "object": ("minProperties", "maxProperties")}[sized]  # fmt: skip
        types = draw(st.sampled_from([[sized], [sized, "boolean"]]))
        parent = {"type": types}
        branch = {}
        for target in (parent, branch):
            for key in (low, high):
                if draw(st.booleans()):
                    target[key] = draw(st.integers(0, 6))
    return branch, parent, types, draft4


def _judge(branch: dict[str, Any], parent: dict[str, Any], types: list[str], draft4: bool):
    cls = jsonschema.Draft4Validator if draft4 else jsonschema.Draft202012Validator
    in_parent = [v for v in _of_types(types) if cls(parent).is_valid(v)]
    in_branch = [cls(branch).is_valid(v) for v in in_parent]
    return in_parent, in_branch


@settings(max_examples=1500, deadline=None)
@given(_case())
def test_bound_claims_hold_on_the_domain(case: Any) -> None:
    branch, parent, types, draft4 = case
    in_parent, in_branch = _judge(branch, parent, types, draft4)
    if impossible(branch, parent, types):
        assert not any(in_branch), (branch, parent, types)
    if implied(branch, parent, types):
        assert all(in_branch), (branch, parent, types)


def test_the_drawn_cases_make_claims_of_both_kinds() -> None:
    """Completeness on a fixed grid: the proofs are made where the bounds alone decide."""
    made = {"impossible": 0, "implied": 0, "missed_impossible": 0, "missed_implied": 0}
    for lo1, hi1, lo2, hi2 in itertools.product([None, -1, 0.5, 2], repeat=4):
        parent = {"type": "number", **({"minimum": lo1} if lo1 is not None else {}),
                  **({"maximum": hi1} if hi1 is not None else {})}  # fmt: skip
        branch = {**({"minimum": lo2} if lo2 is not None else {}),
                  **({"maximum": hi2} if hi2 is not None else {})}  # fmt: skip
        in_parent, in_branch = _judge(branch, parent, ["number"], False)
        if not in_parent:
            continue
        if impossible(branch, parent, ["number"]):
            made["impossible"] += 1
        elif not any(in_branch):
            made["missed_impossible"] += 1
        if implied(branch, parent, ["number"]):
            made["implied"] += 1
        elif all(in_branch):
            made["missed_implied"] += 1
    # over closed bounds on numbers the proofs are complete
    assert made["missed_impossible"] == made["missed_implied"] == 0, made
    assert made["impossible"] > 0 and made["implied"] > 0, made


@pytest.mark.parametrize(
    ("branch", "parent", "types", "expected"),
    [
        ({"minimum": 5}, {"type": "integer", "maximum": 3}, ["integer"], (True, False)),
        ({"minimum": 5}, {"maximum": 3}, ["integer", "string"], (False, False)),  # strings pass
        ({"minimum": 3.5}, {"type": "integer", "exclusiveMaximum": 4}, ["integer"], (True, False)),
        ({"minimum": 3.5}, {"type": "number", "exclusiveMaximum": 4}, ["number"], (False, False)),
        ({"exclusiveMinimum": 3}, {"type": "integer", "minimum": 4}, ["integer"], (False, True)),
        ({"minimum": 4}, {"type": "integer", "exclusiveMinimum": 3}, ["integer"], (False, True)),
        ({"minimum": 4}, {"type": "number", "exclusiveMinimum": 3}, ["number"], (False, False)),
        ({"maximum": 1, "exclusiveMaximum": True}, {"maximum": 1}, ["number"], (False, False)),
        ({"maximum": 1}, {"maximum": 1, "exclusiveMaximum": True}, ["number"], (False, True)),
        ({"minLength": 4}, {"type": "string", "maxLength": 3}, ["string"], (True, False)),
        ({"maxItems": 9}, {"type": "array", "maxItems": 3}, ["array"], (False, True)),
        ({"minProperties": 1}, {"type": "string"}, ["string"], (False, True)),  # not an object
    ],
)
def test_named_cases(branch: Any, parent: Any, types: list[str], expected: Any) -> None:
    assert (impossible(branch, parent, types), implied(branch, parent, types)) == expected


def test_contains_no_item_can_match_is_unsatisfiable_up_front() -> None:
    """The issue's case: integer items of at most 3 under ``contains: {minimum: 5}``: no array
    passes, so ``generate`` refuses the schema up front (formerly: a dead end at every ``]``)."""
    schema = {"type": "array", "items": {"type": "integer", "maximum": 3},
              "contains": {"minimum": 5}, "maxItems": 3}  # fmt: skip
    assert_unsatisfiable(schema, "#/contains", arrays([1, 2, 3, 5], 3))
    optional = {"type": "object", "properties": {"a": schema}}
    assert_prefix_exact(optional, [{}, {"a": []}, {"a": [1]}])  # the member is dropped


def test_contains_every_item_matches_counts_items() -> None:
    """Every integer item of ``minimum: 6`` matches ``contains: {minimum: 5}``, so
    ``maxContains: 2`` limits the items: a third item is refused at the comma before it
    (formerly: at the item's end, after which no digit could complete it)."""
    schema = {"type": "array", "items": {"type": "integer", "minimum": 6},
              "contains": {"minimum": 5}, "maxContains": 2}  # fmt: skip
    compiled = sg.compile(sg.Grammar.from_json_schema(schema, whitespace="compact"), VOCAB)
    assert rejected_at(compiled, b"[6,70,8]") == 5  # the second comma
    validator = jsonschema.Draft202012Validator(schema)
    corpus = {compact(a): validator.is_valid(a) for a in arrays([6, 7, 12], 3)}
    corpus.update({compact(a): validator.is_valid(a) for a in arrays([1, 6], 2)})
    assert_rejections_sound(compiled, corpus)
