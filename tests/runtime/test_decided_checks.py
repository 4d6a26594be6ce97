"""Checked values with few texts (``json_decided``): ``not``, ``oneOf``, ``if``/``then``/``else``,
``uniqueItems``... over a value whose grammar allows at most 256 texts are decided at compile
time, so every prefix the engine accepts completes to a valid document.

Oracle: ``jsonschema`` on brute-force finite languages (``prefix_oracle``), compact layout."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefix_oracle import VOCAB, arrays, assert_prefix_exact, assert_unsatisfiable, objects

import structgen as sg
from structgen.grammar.ir import Check
from structgen.integrations.generate import resolve_constraint

WORDS = ["a", "ab", "b", "ba"]
W = {"enum": WORDS}

SCHEMAS: list[tuple[dict[str, Any], list[Any]]] = [
    ({**W, "not": {"const": "a"}}, WORDS),
    ({**W, "oneOf": [{"pattern": "a"}, {"pattern": "b"}]}, WORDS),
    ({**W, "if": {"pattern": "^a"}, "then": {"maxLength": 1}, "else": {"minLength": 2}}, WORDS),
    ({"type": "array", "items": W, "maxItems": 3, "uniqueItems": True}, arrays(WORDS, 3)),
    (
        {
            "type": "array",
            "items": {"enum": ["a", "b"]},
            "maxItems": 3,
            "not": {"contains": {"const": "b"}},
        },
        arrays(["a", "b"], 3),
    ),
    (
        {
            "type": "object",
            "properties": {"p": W, "q": {"enum": ["x", "y"]}},
            "additionalProperties": False,
            "if": {"properties": {"p": {"const": "a"}}, "required": ["p"]},
            "then": {"required": ["q"]},
        },
        objects(["p", "q"], ["a", "b", "x", "y"], any_order=False),
    ),
    ({"type": "boolean", "not": {"const": False}}, [True, False]),
]


@pytest.mark.parametrize(("schema", "domain"), SCHEMAS, ids=lambda s: json.dumps(s)[:70])
def test_every_accepted_prefix_completes_to_a_valid_document(
    schema: dict[str, Any], domain: list[Any]
) -> None:
    assert_prefix_exact(schema, domain)


def test_a_prefix_that_only_a_refused_value_completes_is_refused() -> None:
    schema = {**W, "not": {"enum": ["a", "b"]}}
    m = sg.compile(sg.Grammar.from_json_schema(schema), VOCAB).matcher()
    assert m.consume_bytes(b'"a')
    assert not m.copy().consume_bytes(b'"')  # "a" is refused before its closing quote's end
    assert m.consume_bytes(b'b"') and m.is_accepting()


def _has_check(grammar: sg.Grammar) -> bool:
    todo = [expr for _, expr in grammar.rules]
    while todo:
        node = todo.pop()
        if isinstance(node, Check):
            return True
        todo.extend(getattr(node, "items", ()))
        if hasattr(node, "item"):
            todo.append(node.item)
    return False


def test_checks_stay_where_values_are_many_or_the_layout_is_pretty() -> None:
    few = {**W, "not": {"const": "a"}}
    assert not _has_check(sg.Grammar.from_json_schema(few))
    assert _has_check(sg.Grammar.from_json_schema(few, whitespace="pretty"))
    many = {"type": "string", "not": {"const": "a"}}
    assert _has_check(sg.Grammar.from_json_schema(many))


def test_a_value_no_text_of_which_passes_is_unsatisfiable() -> None:
    assert_unsatisfiable({**W, "not": {"pattern": "^[ab]"}}, "#/not", WORDS)
    schema = {"type": "object", "properties": {"p": {**W, "not": {"minLength": 1}}}}
    m = sg.compile(sg.Grammar.from_json_schema(schema, whitespace="compact"), VOCAB).matcher()
    assert not m.copy().consume_bytes(b'{"p"')  # the optional member is left out
    assert m.consume_bytes(b"{}") and m.is_accepting()


SUBSCHEMAS = [{"const": "a"}, {"enum": ["ab", "ba"]}, {"pattern": "^a"}, {"maxLength": 1},
              {"minLength": 2}, {"pattern": "b$"}, {}, False]  # fmt: skip
SUB = st.sampled_from(SUBSCHEMAS)


@st.composite
def _checked_enums(draw: st.DrawFn) -> dict[str, Any]:
    words = st.lists(st.sampled_from(WORDS), min_size=1, unique=True)
    schema: dict[str, Any] = {"enum": draw(words)}
    kind = draw(st.sampled_from(["not", "oneOf", "allOf", "if"]))
    if kind == "not":
        schema["not"] = draw(SUB)
    elif kind == "if":
        schema.update({"if": draw(SUB), "then": draw(SUB), "else": draw(SUB)})
    else:
        schema[kind] = draw(st.lists(SUB, min_size=1, max_size=3))
    if draw(st.booleans()):  # as an array's items, or inside an object
        return {"type": "array", "items": schema, "maxItems": 2}
    return schema


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_checked_enums())
def test_random_checked_enums_are_prefix_exact(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    domain: list[Any] = arrays(WORDS, 2) if schema.get("type") == "array" else list(WORDS)
    if not any(validator.is_valid(v) for v in domain):
        with pytest.raises(sg.InvalidSchema):
            resolve_constraint(VOCAB, schema=schema)
        return
    assert_prefix_exact(schema, domain)
