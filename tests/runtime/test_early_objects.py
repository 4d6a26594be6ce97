"""Early object checks (``json_early_objects``): a key after which the object cannot be completed
is refused as it completes, so no prefix the engine accepts is a dead end.

Oracle: ``jsonschema`` on a brute-force finite language (``prefix_oracle``): every object over
three short keys with enum values, compact layout. The engine's language must equal the valid
objects of that domain, and every prefix it accepts must extend to one of them."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from prefix_oracle import VOCAB, assert_prefix_exact, assert_unsatisfiable, objects

import structgen as sg

X = {"enum": ["x", "y"]}
PROPS = {"a": X, "b": X, "c": X}
CLOSED = {"type": "object", "properties": PROPS, "additionalProperties": False}
DRAFT7 = "http://json-schema.org/draft-07/schema#"

SCHEMAS: list[dict[str, Any]] = [
    {**CLOSED, "maxProperties": 1},
    {**CLOSED, "maxProperties": 2, "required": ["c"]},
    {**CLOSED, "minProperties": 2},
    {**CLOSED, "minProperties": 1, "maxProperties": 1},
    {**CLOSED, "dependentRequired": {"c": ["a"]}},
    {**CLOSED, "dependentRequired": {"b": ["a", "c"]}, "required": ["b"]},
    {**CLOSED, "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
    {**CLOSED, "oneOf": [{"required": ["a", "c"]}, {"required": ["b"]}], "required": ["c"]},
    {**CLOSED, "oneOf": [{"required": ["a"]}, {"required": ["a", "b"]}, {"required": ["c"]}]},
    {**CLOSED, "not": {"required": ["a", "b"]}},
    {**CLOSED, "not": {"required": ["a"]}, "required": ["b"], "maxProperties": 2},
    {**CLOSED, "required": ["a"], "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
]
DOMAIN = objects(["a", "b", "c"], ["x", "y"], any_order=False)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: json.dumps(s)[80:150])
def test_every_accepted_prefix_completes_to_a_valid_object(schema: dict[str, Any]) -> None:
    assert_prefix_exact(schema, DOMAIN)


def test_dependencies_array_form_in_draft_7() -> None:
    schema = {**CLOSED, "$schema": DRAFT7, "dependencies": {"c": ["a"], "b": ["c"]}}
    assert_prefix_exact(schema, DOMAIN, draft=jsonschema.Draft7Validator)


def test_the_key_is_refused_at_its_first_character_and_the_separator_when_none_fits() -> None:
    schema = {"type": "object", "properties": {**PROPS, "d": X}, "additionalProperties": False,
              "dependentRequired": {"c": ["a"]}, "maxProperties": 2}  # fmt: skip
    grammar = sg.Grammar.from_json_schema(schema, whitespace="compact", early_objects=True)
    compiled = sg.compile(grammar, VOCAB)
    m = compiled.matcher()
    assert m.consume_bytes(b'{"b":"x",')
    assert not m.copy().consume_bytes(b'"c')  # c needs a, which can no longer come
    assert m.consume_bytes(b'"d":"x"')
    assert not m.copy().consume_bytes(b",")  # a third member: none fits maxProperties 2
    assert m.consume_bytes(b"}") and m.is_accepting()


def test_extra_members_count_too() -> None:
    schema = {"type": "object", "properties": {"a": X}, "maxProperties": 2,
              "additionalProperties": {"type": "integer"}}  # fmt: skip
    grammar = sg.Grammar.from_json_schema(schema, whitespace="compact", early_objects=True)
    compiled = sg.compile(grammar, VOCAB)
    m = compiled.matcher()
    assert m.consume_bytes(b'{"a":"x","zz":1')
    assert not m.copy().consume_bytes(b",")
    assert m.consume_bytes(b"}") and m.is_accepting()
    m2 = compiled.matcher()
    assert m2.consume_bytes(b'{"zz":1,"q":2}') and m2.is_accepting()


def test_an_impossible_property_count_is_found_at_compile_time() -> None:
    for schema, where in [
        ({**CLOSED, "minProperties": 4}, "#/minProperties"),
        ({"type": "object", "properties": PROPS, "minProperties": 4}, "#/minProperties"),
        ({**CLOSED, "minProperties": 2, "maxProperties": 1}, "#/maxProperties"),
        ({**CLOSED, "required": ["a", "b"], "maxProperties": 1}, "#/maxProperties"),
    ]:
        assert_unsatisfiable(schema, where, objects(["a", "b", "c"], ["x"], any_order=False))


def test_the_language_stays_exact_with_any_order() -> None:
    """Members in any order are not chained: the object's check alone, still exact."""
    schema = {**CLOSED, "maxProperties": 2, "dependentRequired": {"c": ["a"]}}
    compiled = sg.compile(
        sg.Grammar.from_json_schema(schema, whitespace="compact", property_order="any"), VOCAB
    )
    validator = jsonschema.Draft202012Validator(schema)
    for value in objects(["a", "b", "c"], ["x"], any_order=True):
        m = compiled.matcher()
        ok = m.consume_bytes(json.dumps(value, separators=(",", ":")).encode())
        assert (ok and m.is_accepting()) == validator.is_valid(value), value
