"""JSON Schema keywords enforced by semantic checks, on the real engine, with jsonschema as the
oracle: hand-written schemas and MaskBench schemas whose lowering needs checks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema
import pytest
from support import tokenize_random, walk

import structgen as sg
from structgen.grammar.json_formats import format_checker

VOCAB = sg.Vocabulary.byte_level([b'", "', b'": ', b"[1", b"2,", b'"}', b"-0", b".5"])

CASES = [
    (
        {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        [[1, 2], [1, 1], [], [3, 2, 3]],
    ),
    ({"type": "string", "format": "iri"}, ["http://a/b", "x y", "http://ex.com/\u00e9", "a:"]),
    ({"type": "number", "multipleOf": 0.5, "minimum": 0}, [1.5, 1.3, -0.5, 0]),
    ({"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 2}]}, [1, 5, 2.5, "a"]),
    ({"not": {"type": "string"}}, ["a", 1, None, [1]]),
    (
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "if": {"properties": {"a": {"const": 1}}},
            "then": {"required": ["b"]},
        },
        [{"a": 1}, {"a": 1, "b": 2}, {"a": 2}],
    ),
    (
        {
            "allOf": [
                {"type": "object", "properties": {"x": {"type": "integer"}}},
                {"required": ["x"]},
            ]
        },
        [{"x": 1}, {}, {"x": "s"}],
    ),
    (
        {"type": "object", "patternProperties": {"^n_": {"type": "integer"}}},
        [{"n_a": 1}, {"n_a": "x"}, {"other": "x"}],
    ),
    ({"type": "object", "minProperties": 2}, [{"a": 1}, {"a": 1, "b": 2}]),
    # counts above the unrolling limit (256) are checked instead of unrolled
    ({"type": "string", "maxLength": 300}, ["é" * 300, "x" * 301, ""]),
    ({"type": "string", "minLength": 257, "maxLength": 3000}, ["x" * 257, "x" * 256]),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 400}, [[1] * 400, [1] * 401]),
    (  # a check inside a nested $id resource: its own $refs resolve against that base
        {
            "$id": "http://example.com/root",
            "$defs": {
                "n": {"type": "string"},
                "s": {
                    "$id": "sub/",
                    "$defs": {"n": {"type": "integer"}},
                    "type": "array",
                    "items": {"$ref": "#/$defs/n"},
                    "uniqueItems": True,
                },
            },
            "$ref": "#/$defs/s",
        },
        [[1, 2], [1, 1], ["a"], []],
    ),
    ({"type": "array", "contains": {"const": 3}, "maxContains": 1}, [[1, 3], [3, 3], [1]]),
    ({"type": "object", "dependentRequired": {"a": ["b"]}}, [{"a": 1}, {"a": 1, "b": 1}, {}]),
    ({"type": "string", "pattern": "^a\\s*b"}, ["a  b", "ab!", "a-b", " ab"]),
    ({"type": "string", "format": "json-pointer"}, ["/a/b", "a", "/~2", ""]),
]


@pytest.mark.parametrize("schema, instances", CASES)
def test_checked_keywords_match_jsonschema(schema, instances) -> None:
    grammar = sg.Grammar.from_json_schema(schema, additional_properties="spec")
    assert any(k.status == "check" for k in grammar.report), grammar.report
    compiled = sg.compile(grammar, VOCAB)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    rng = random.Random(0)
    for value in instances:
        text = json.dumps(value)
        expected = validator.is_valid(value)
        assert walk(compiled, tokenize_random(text.encode(), VOCAB, rng)) == expected, text


def test_reference_keywords_stay_refused() -> None:
    with pytest.raises(sg.UnsupportedFeature, match=r"\$ref|remote|reference"):
        sg.Grammar.from_json_schema({"$ref": "https://example.com/schema.json"})


def test_unknown_format_is_an_annotation_and_an_uncheckable_one_is_refused(monkeypatch) -> None:
    grammar = sg.Grammar.from_json_schema({"type": "string", "format": "no-such-format"})
    (status,) = [k for k in grammar.report if k.keyword == "format"]
    assert status.status == "annotation" and "not defined" in status.note
    assert walk(sg.compile(grammar, VOCAB), list(b'"x"'))  # anything goes, as in jsonschema
    # a format the spec defines but this jsonschema install cannot assert: refused, not ignored
    checkers = format_checker(jsonschema.Draft202012Validator).checkers  # what checks assert
    monkeypatch.delitem(checkers, "duration")
    with pytest.raises(sg.UnsupportedFeature) as info:
        sg.Grammar.from_json_schema({"type": "string", "format": "duration"})
    assert info.value.location == "#/format"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "\\p{Letter}+"},
        {"type": "object", "patternProperties": {"\\p{Lu}": {"type": "integer"}}},
        {"not": {"type": "string", "pattern": "^\\p{L}$"}},
    ],
)
def test_check_on_a_regex_python_cannot_compile_is_refused(schema) -> None:
    with pytest.raises(sg.UnsupportedFeature, match="cannot compile"):
        sg.Grammar.from_json_schema(schema, additional_properties="spec")
    grammar = sg.Grammar.from_json_schema(schema, additional_properties="spec", best_effort=True)
    assert any(k.status == "refused" for k in grammar.report)
    assert not any(k.status == "check" for k in grammar.report)


def test_checks_off_refuses() -> None:
    with pytest.raises(sg.UnsupportedFeature) as info:
        sg.Grammar.from_json_schema({"type": "array", "uniqueItems": True}, semantic_checks=False)
    assert info.value.location == "#/uniqueItems"


MASKBENCH = Path(__file__).resolve().parents[2].parent / "shared/jsonschemabench/maskbench"


def _checked_sample(count: int) -> list[Path]:
    picked = []
    for path in sorted(MASKBENCH.glob("*.json"))[::37]:
        data = json.loads(path.read_text())
        if not data.get("tests"):
            continue
        try:
            g = sg.Grammar.from_json_schema(data["schema"], additional_properties="spec")
        except sg.StructgenError:
            continue
        if any(k.status == "check" for k in g.report):
            picked.append(path)
        if len(picked) == count:
            break
    return picked


@pytest.mark.skipif(not MASKBENCH.is_dir(), reason="MaskBench data not found")
def test_maskbench_schemas_with_checks() -> None:
    rng = random.Random(1)
    sample = _checked_sample(12)
    assert len(sample) >= 8
    for path in sample:
        data = json.loads(path.read_text())
        compiled = sg.compile(
            sg.Grammar.from_json_schema(data["schema"], additional_properties="spec"), VOCAB
        )
        for case in data["tests"][:4]:
            text = json.dumps(case["data"])
            # declared property order: an instance out of order is rejected by design
            got = walk(compiled, tokenize_random(text.encode(), VOCAB, rng), check_masks=False)
            if case["valid"] and not got:
                assert _out_of_order(data["schema"], case["data"]), (path.name, text)
            elif not case["valid"]:
                assert not got, (path.name, text)  # never a false accept


def _out_of_order(schema, value) -> bool:
    """Whether ``value`` (or a nested object) lists declared keys out of schema order."""
    if isinstance(value, dict):
        props = list((schema or {}).get("properties", {})) if isinstance(schema, dict) else []
        keys = [k for k in value if k in props]
        if keys != [k for k in props if k in value]:
            return True
        return any(
            _out_of_order(
                (schema.get("properties", {}) or {}).get(k, {}) if isinstance(schema, dict) else {},
                v,
            )
            for k, v in value.items()
        )
    if isinstance(value, list):
        items = schema.get("items", {}) if isinstance(schema, dict) else {}
        return any(_out_of_order(items if isinstance(items, dict) else {}, v) for v in value)
    return False


ANY_ORDER_SCHEMAS = [
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "null"}},
        "required": ["a", "c"],
    },
    {
        "type": "object",
        "properties": {"x": {"type": "array", "items": {"type": "integer"}}},
        "additionalProperties": {"type": "boolean"},
    },
]


@pytest.mark.parametrize("schema", ANY_ORDER_SCHEMAS)
@pytest.mark.parametrize("mode", ["spec", "declared"])
def test_any_property_order_matches_jsonschema(schema, mode) -> None:
    import itertools

    grammar = sg.Grammar.from_json_schema(schema, additional_properties=mode, property_order="any")
    compiled = sg.compile(grammar, VOCAB)
    oracle_schema = dict(schema)
    if mode == "declared":
        oracle_schema.setdefault("additionalProperties", False)
    validator = jsonschema.Draft202012Validator(oracle_schema)
    rng = random.Random(1)
    members = [("a", 1), ("b", "s"), ("c", None), ("x", [1, 2]), ("y", True), ("z", "s")]
    verdicts = set()
    for size in range(4):
        for chosen in itertools.combinations(members, size):
            for order in itertools.permutations(chosen):
                value = dict(order)
                expected = validator.is_valid(value)
                verdicts.add(expected)
                text = json.dumps(value)
                assert walk(compiled, tokenize_random(text.encode(), VOCAB, rng)) == expected, text
    assert verdicts == {True, False}
    duplicate = b'{"a": 1, "c": null, "a": 2}'  # distinct names are required
    assert not walk(compiled, tokenize_random(duplicate, VOCAB, rng))


def test_check_needing_a_remote_ref_is_refused() -> None:
    schema = {"type": "array", "uniqueItems": True, "items": {"$ref": "http://example.com/x.json"}}
    with pytest.raises(sg.UnsupportedFeature):
        sg.Grammar.from_json_schema(schema)
    schema = {"not": {"$ref": "other.json"}}  # the grammar never lowers it; the check would
    with pytest.raises(sg.UnsupportedFeature, match="points outside"):
        sg.Grammar.from_json_schema(schema)


@pytest.mark.parametrize(
    "schema",
    [
        # a property *named* like an annotation keyword still holds a schema
        {"not": {"properties": {"title": {"$ref": "https://example.com/s.json"}}}},
        # a pattern reached through a $ref inside the checked subschema
        {
            "properties": {"x": {"not": {"$ref": "#/$defs/a"}}},
            "$defs": {"a": {"type": "string", "pattern": "\\p{L}+"}},
        },
    ],
)
def test_uncheckable_subschemas_are_found_through_refs_and_property_names(schema) -> None:
    with pytest.raises(sg.UnsupportedFeature, match="cannot compile|outside this document"):
        sg.Grammar.from_json_schema(schema, additional_properties="spec")


@pytest.mark.parametrize(
    "schema",
    [{"type": "array", "uniqueItems": True}, {"not": {"type": "string"}}],
)
def test_a_value_json_loads_cannot_read_is_rejected_not_raised(schema) -> None:
    """Nesting deeper than json.loads reads (result.value uses it too) is rejected while
    decoding, never an exception; shallow values still follow jsonschema."""
    deep = "[" * 1200 + "]" * 1200
    with pytest.raises(RecursionError):
        json.loads(deep)
    compiled = sg.compile(sg.Grammar.from_json_schema(schema), VOCAB)
    assert not walk(compiled, list(deep.encode()), check_masks=False)
    for value in [[[[]]], [1, 1], "x"]:
        expected = jsonschema.Draft202012Validator(schema).is_valid(value)
        assert walk(compiled, list(json.dumps(value).encode())) == expected
