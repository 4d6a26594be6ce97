"""Unsatisfiable subschemas found at compile time (``json_contradictions`` and the lowering's
min > max bounds): an optional property or an ``anyOf`` branch that holds one is dropped; where
the whole document is unsatisfiable through its checks, the grammar keeps the checks (they refuse
every document, as a validator does) and says where in its notes, and ``generate`` refuses the
schema with ``InvalidSchema`` at the keyword's pointer. Judged against
``jsonschema`` on a brute-force domain: the engine's language must equal the valid documents and
have no dead ends (``prefix_oracle``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefix_oracle import assert_prefix_exact, assert_unsatisfiable, objects

import structgen as sg
from structgen.errors import InvalidSchema
from structgen.grammar.json_contradictions import checked_contradiction
from structgen.integrations.generate import resolve_constraint

AREA = (
    Path(__file__).resolve().parents[3]
    / "shared/jsonschemabench/maskbench/Glaiveai2K---calculate_area_2f92f3ea.json"
)
SMALL = {"enum": ["x", "y"]}


def _area_schema() -> dict[str, Any]:
    if not AREA.exists():
        pytest.skip("MaskBench data not present")
    return json.loads(AREA.read_text())["schema"]  # type: ignore[no-any-return]


def test_calculate_area_is_found_unsatisfiable_naming_the_one_of() -> None:
    schema = _area_schema()
    dims = schema["properties"]["dimensions"]
    keys = sorted(dims["properties"])
    # no object with every required key is valid (the oracle agrees; the rest does not matter)
    domain = [{"shape": "circle", "dimensions": v} for v in objects(keys, [1], any_order=False)]
    assert_unsatisfiable(schema, "#/properties/dimensions/oneOf", domain[:40])
    with pytest.raises(InvalidSchema, match="oneOf branches 0 and 1"):
        resolve_constraint(sg.Vocabulary.byte_level([]), schema=schema)


def test_calculate_area_with_dimensions_optional_drops_them() -> None:
    schema = _area_schema()
    schema["required"] = ["shape"]
    compiled = sg.compile(
        sg.Grammar.from_json_schema(schema, whitespace="compact"), sg.Vocabulary.byte_level([])
    )
    m = compiled.matcher()
    assert m.consume_bytes(b'{"shape":"circle"')
    assert not m.copy().consume_bytes(b',"dimensions"')  # never valid: never started
    assert m.consume_bytes(b"}") and m.is_accepting()


UNSAT: list[tuple[dict[str, Any], str]] = [
    ({"type": "object", "properties": {"a": SMALL, "b": SMALL}, "required": ["a", "b"],
      "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, "/oneOf"),
    ({"type": "object", "properties": {"a": SMALL}, "required": ["a"],
      "oneOf": [{"required": ["a"]}, {"type": "object"}]}, "/oneOf"),
    ({"type": "object", "properties": {"a": SMALL, "b": False},
      "oneOf": [{"required": ["b"]}, {"type": "string"}]}, "/oneOf"),
    ({"type": "object", "properties": {"a": SMALL}, "required": ["a"],
      "not": {"required": ["a"]}}, "/not"),
    ({"type": "integer", "not": {}}, "/not"),
    ({"type": "object", "properties": {"a": SMALL}, "additionalProperties": False,
      "allOf": [{"required": ["c"]}]}, "/allOf"),
    ({"type": "object", "properties": {"a": SMALL}, "allOf": [{"type": "array"}]}, "/allOf"),
    ({"type": "array", "minItems": 3, "maxItems": 1}, "/maxItems"),
    ({"type": "string", "minLength": 3, "maxLength": 1}, "/maxLength"),
    ({"type": "number", "minimum": 3, "maximum": 1}, "/minimum"),
]  # fmt: skip

SAT: list[dict[str, Any]] = [
    # one branch implied, the other possible only without it: satisfiable (b absent)
    {"type": "object", "properties": {"a": SMALL, "b": SMALL}, "required": ["a"],
     "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
    {"type": "object", "properties": {"a": SMALL, "b": SMALL},
     "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
    {"type": "object", "properties": {"a": SMALL}, "not": {"required": ["b"]}},
    {"type": ["object", "boolean"], "properties": {"b": False},
     "oneOf": [{"required": ["b"]}, {"type": "object"}]},
]  # fmt: skip


@pytest.mark.parametrize("schema, where", UNSAT, ids=lambda s: json.dumps(s)[:50])
def test_unsatisfiable_required_subschema_is_refused_for_generation(
    schema: Any, where: str
) -> None:
    wrapped = {"type": "object", "properties": {"p": schema}, "required": ["p"]}
    if where.endswith(("Items", "Length", "minimum")):  # bounds the grammar itself holds
        for doc, at in ((schema, "#" + where), (wrapped, "#/properties/p" + where)):
            with pytest.raises(InvalidSchema, match="unsatisfiable") as info:
                sg.Grammar.from_json_schema(doc)
            assert info.value.location == at
        return
    domain = [*objects(["a", "b"], ["x", "-", 1], any_order=False), "x", 1, [], True]
    assert_unsatisfiable(schema, "#" + where, domain)
    assert_unsatisfiable(wrapped, "#/properties/p" + where, [{"p": v} for v in domain])


@pytest.mark.parametrize("schema, where", UNSAT, ids=lambda s: json.dumps(s)[:50])
def test_unsatisfiable_optional_property_or_branch_is_dropped(schema: Any, where: str) -> None:
    optional = {"type": "object", "properties": {"p": schema, "q": SMALL},
                "additionalProperties": False}  # fmt: skip
    assert_prefix_exact(optional, objects(["p", "q"], ["x", 1, [], {}], any_order=False))
    branch = {"anyOf": [schema, SMALL]}
    assert_prefix_exact(branch, ["x", "y", 1, "", [], {}, ["x", "x", "x"]])


@pytest.mark.parametrize("schema", SAT, ids=lambda s: json.dumps(s)[:50])
def test_satisfiable_schemas_are_not_refused(schema: Any) -> None:
    assert checked_contradiction(schema, {"oneOf", "not", "allOf"}, ["object"]) is None
    domain = [*objects(["a", "b"], ["x", "y"], any_order=False), True, 1]
    # exact, and no dead ends: oneOf over required groups is checked on each key (early objects)
    assert_prefix_exact({**schema, "additionalProperties": False}, domain)


def test_a_contradiction_in_one_type_keeps_the_others() -> None:
    schema = {"type": ["array", "string"], "minItems": 3, "maxItems": 1, "maxLength": 0}
    domain = ["", "a", [], ["x"]]
    compiled = assert_prefix_exact({**schema, "items": SMALL}, domain)
    assert compiled.matcher().consume_bytes(b'""')
