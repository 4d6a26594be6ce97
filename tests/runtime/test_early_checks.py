"""Early checks (``uniqueItems`` on each item's completion) are sound: a prefix the engine rejects
has no valid completion, and complete documents are accepted exactly when jsonschema says so.

Oracle: ``jsonschema`` on every array of up to four items over a small domain of values (which
includes values equal under JSON equality: ``1``/``1.0``, objects with members in another order),
in three ``json.dumps`` layouts. For each text, the engine is fed byte by byte; where it rejects
a byte, every text of the corpus with that prefix must be invalid (a rejected prefix has no valid
completion among them), and the rejection must come before the closing bracket for some of them
(the check does fire early)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema
import pytest
from prefix_oracle import assert_rejections_sound

import structgen as sg

VOCAB = sg.Vocabulary.byte_level([])

DOMAIN: list[Any] = [1, 1.0, 12, "a", "ab", True, [1], {"a": 1, "b": 2}, {"b": 2, "a": 1}]
LAYOUTS = [
    lambda v: json.dumps(v),
    lambda v: json.dumps(v, separators=(",", ":")),
    lambda v: json.dumps(v, indent=2),
]

SCHEMAS = [
    {"type": "array", "uniqueItems": True},
    {"type": "array", "items": {"type": ["integer", "string"]}, "uniqueItems": True},
    {"type": "array", "uniqueItems": True, "minItems": 2, "maxItems": 3},
    {"type": "array", "prefixItems": [{"type": "number"}], "uniqueItems": True, "minItems": 1},
    {"type": "array", "prefixItems": [{}, {}], "items": False, "uniqueItems": True},
    {
        "type": "object",
        "properties": {"t": {"type": "array", "uniqueItems": True, "items": {"type": "string"}}},
        "required": ["t"],
    },
    {"type": "array", "items": {"type": "array", "uniqueItems": True}, "uniqueItems": True},
]


def _corpus(schema: dict[str, Any]) -> list[Any]:
    arrays: list[Any] = [[]]
    for n in range(1, 4):
        arrays += [list(t) for t in itertools.product(DOMAIN[:6] if n == 3 else DOMAIN, repeat=n)]
    if schema.get("type") == "object":
        return [{"t": a} for a in arrays[:400]]
    items = schema.get("items")
    if isinstance(items, dict) and items.get("type") == "array":
        return [[a, b] for a in ([1], [1, 1], [1, 2], [2, 1]) for b in ([1], [1.0, 2], [2, 1])]
    return arrays


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: json.dumps(s)[:60])
def test_early_rejection_is_sound_and_the_language_is_unchanged(schema: dict[str, Any]) -> None:
    compiled = sg.compile(sg.Grammar.from_json_schema(schema), VOCAB)
    validator = jsonschema.Draft202012Validator(schema)
    texts: dict[bytes, bool] = {}
    for value in _corpus(schema):
        valid = validator.is_valid(value)
        for layout in LAYOUTS:
            texts[layout(value).encode()] = valid
    rejected = assert_rejections_sound(compiled, texts)
    early = sum(cut < len(data.rstrip(b"}").rstrip()) - 1 for data, cut in rejected)
    assert early, "no duplicate was rejected before the closing bracket"


def test_the_token_completing_a_duplicate_item_is_rejected() -> None:
    schema = {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 3}
    vocab = sg.Vocabulary.byte_level([b'"a"', b'",', b'"]'])
    compiled = sg.compile(sg.Grammar.from_json_schema(schema), vocab)
    m = compiled.matcher()
    assert m.consume_bytes(b'["a", "b", "a')
    token = {data: i for i, data in enumerate(vocab.token_bytes)}
    assert m.validate_tokens([token[b'",']]) == 0  # closes a duplicate
    assert m.validate_tokens([token[b'"']]) == 0
    assert m.validate_tokens([token[b"b"]]) == 1  # "ab" is new
    m2 = compiled.matcher()
    assert m2.consume_bytes(b'["a", ')
    assert m2.validate_tokens([token[b'"a"']]) == 0
    assert m2.validate_tokens([token[b'"']]) == 1


def test_long_unique_arrays_stay_exact_past_the_early_bound() -> None:
    from structgen.grammar.json_types import EARLY_UNIQUE_ITEMS

    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    compiled = sg.compile(sg.Grammar.from_json_schema(schema), VOCAB)
    n = EARLY_UNIQUE_ITEMS + 5
    for value, valid in [(list(range(n)), True), ([*range(n), 3], False), ([*range(n), n], True)]:
        m = compiled.matcher()
        ok = m.consume_bytes(json.dumps(value).encode()) and m.is_accepting()
        assert ok == valid


NAME_SCHEMAS = [
    {
        "type": "object",
        "propertyNames": {"pattern": "^[a-z]+$"},
        "additionalProperties": {"type": "integer"},
    },
    {
        "type": "object",
        "properties": {"Bad": {"type": "integer"}, "ok": {"type": "integer"}},
        "propertyNames": {"maxLength": 3},
        "additionalProperties": True,
    },
    {"type": "object", "propertyNames": {"enum": ["a", "ok"]}, "minProperties": 1},
]


@pytest.mark.parametrize("schema", NAME_SCHEMAS, ids=lambda s: json.dumps(s)[:60])
def test_early_property_names_are_sound(schema: dict[str, Any]) -> None:
    # the validation reading (members in any order, extras as the spec allows): exact
    grammar = sg.Grammar.from_json_schema(
        schema, property_order="any", additional_properties="spec"
    )
    compiled = sg.compile(grammar, VOCAB)
    validator = jsonschema.Draft202012Validator(schema)
    keys = ["a", "ok", "Ab", "okay", "Bad", "é"]
    objects: list[Any] = [{}]
    for n in (1, 2):
        for names in itertools.permutations(keys, n):
            for value in (1, "x"):
                objects.append(dict.fromkeys(names, value))
    texts = {layout(o).encode(): validator.is_valid(o) for o in objects for layout in LAYOUTS}
    rejected = assert_rejections_sound(compiled, texts)
    assert any(b":" not in data[cut:] for data, cut in rejected)  # at a key, before its value


FEW = ["red", "green", "blue"]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "items": {"enum": FEW}, "uniqueItems": True},
        {"type": "array", "items": {"enum": FEW}, "uniqueItems": True, "minItems": 3},
        {"type": "array", "items": {"enum": [*FEW, "red"]}, "uniqueItems": True, "maxItems": 9},
        {"type": "array", "prefixItems": [{"const": "red"}], "items": {"enum": FEW},
         "uniqueItems": True},  # fmt: skip
    ],
    ids=lambda s: json.dumps(s)[14:70],
)
def test_unique_items_over_few_values_end_where_the_values_run_out(
    schema: dict[str, Any],
) -> None:
    """Items from a few values, all distinct: once every value is used, the separator is refused
    (formerly the next item was allowed and refused as it completed: a dead end)."""
    from prefix_oracle import arrays, assert_prefix_exact

    assert_prefix_exact(schema, arrays(FEW, 4))


def test_unique_values_are_counted_under_json_equality() -> None:
    """1 and 1.0 are one value and true another: 3 distinct values, a fourth item is refused at
    its separator; minItems beyond them makes the schema unsatisfiable."""
    from prefix_oracle import rejected_at

    schema = {"type": "array", "items": {"enum": [1, 1.0, True, "1"]}, "uniqueItems": True}
    compiled = sg.compile(sg.Grammar.from_json_schema(schema, whitespace="compact"), VOCAB)
    assert rejected_at(compiled, b'[1,true,"1",1.0]') == len(b'[1,true,"1"')
    m = compiled.matcher()
    assert m.consume_bytes(b'[1,true,"1"]') and m.is_accepting()
    with pytest.raises(sg.InvalidSchema, match="distinct values"):
        sg.Grammar.from_json_schema({**schema, "minItems": 4})
