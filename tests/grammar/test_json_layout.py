"""The ``whitespace`` layouts of the JSON Schema lowering against ``json.dumps``: ``compact`` is
``separators=(",", ":")``, ``pretty`` is ``indent=2`` (exactly: no other spelling of the value),
``flexible`` accepts both and ``json.dumps``' default; checked on the real engine."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

import structgen as sg
from structgen.errors import ConfigurationError
from structgen.grammar.json_layout import MAX_PRETTY_DEPTH

VOCAB = sg.Vocabulary.byte_level([])


def accepts(schema: Any, text: str, **options: Any) -> bool:
    compiled = sg.compile(sg.Grammar.from_json_schema(schema, **options), VOCAB)
    m = compiled.matcher()
    return m.consume_bytes(text.encode()) and m.is_accepting()


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["obj", "arr", "str", "num", "lit"] if depth < 4 else ["str", "num", "lit"])
    if kind == "obj":
        return {
            f"k{i}{rng.choice('xyz')}": random_value(rng, depth + 1)
            for i in range(rng.randint(0, 3))
        }
    if kind == "arr":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "str":
        return rng.choice(["", "a", "é", 'q"u', "x y"])
    if kind == "num":
        return rng.choice([0, -1, 12, 1.5])
    return rng.choice([True, False, None])


LAYOUTS = {
    "compact": lambda v: json.dumps(v, separators=(",", ":")),
    "default": json.dumps,
    "pretty": lambda v: json.dumps(v, indent=2),
    "indent4": lambda v: json.dumps(v, indent=4),
}
ACCEPTED = {
    "compact": {"compact"},
    "pretty": {"pretty"},
    "flexible": {"compact", "default", "pretty", "indent4"},
}


@pytest.mark.parametrize("mode", ["compact", "pretty", "flexible"])
def test_layouts_against_json_dumps(mode: str) -> None:
    rng = random.Random(11)
    values = [random_value(rng) for _ in range(60)] + [{}, [], [[]], {"a": {}}, [{}, []], "s", 3]
    for value in values:
        texts = {name: dump(value) for name, dump in LAYOUTS.items()}
        for name, text in texts.items():
            expected = any(texts[ok] == text for ok in ACCEPTED[mode])
            assert accepts({}, text, whitespace=mode) == expected, (mode, name, text)


def test_pretty_follows_the_schema_structure() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "point": {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"enum": [[1, 2], {"k": []}]}},
                "required": ["x"],
            },
            "c": {"const": {"q": [1, {"r": None}]}},
            "extra": {"type": "array", "prefixItems": [{"type": "number"}], "items": False},
        },
        "required": ["tags"],
    }
    values = [
        {"tags": []},
        {"tags": ["a", "b"], "point": {"x": 1, "y": [1, 2]}},
        {"tags": ["a"], "point": {"x": 1, "y": {"k": []}}, "c": {"q": [1, {"r": None}]}},
        {"tags": ["a"], "extra": [1.5]},
    ]
    for value in values:
        assert accepts(schema, json.dumps(value, indent=2), whitespace="pretty"), value
        assert not accepts(schema, json.dumps(value), whitespace="pretty"), value
        assert accepts(schema, json.dumps(value, separators=(",", ":")), whitespace="compact")
    # values the schema rejects stay rejected in every layout
    bad = {"tags": ["a", "a"]}
    for mode in ("compact", "pretty", "flexible"):
        assert not accepts(schema, LAYOUTS["pretty" if mode == "pretty" else "compact"](bad),
                           whitespace=mode)  # fmt: skip


def test_pretty_is_exact_up_to_the_depth_bound_on_recursive_schemas() -> None:
    schema = {
        "$defs": {"n": {"type": "object", "properties": {"c": {"$ref": "#/$defs/n"}}}},
        "$ref": "#/$defs/n",
    }
    value: Any = {}
    for depth in range(MAX_PRETTY_DEPTH + 3):
        pretty = json.dumps(value, indent=2)
        if depth <= MAX_PRETTY_DEPTH:
            assert accepts(schema, pretty, whitespace="pretty"), depth
        if value:
            assert not accepts(schema, json.dumps(value), whitespace="pretty"), depth
        value = {"c": value}
    # deeper than the bound: flexible whitespace there (here: line breaks, no indentation)
    deep: Any = {}
    for _ in range(MAX_PRETTY_DEPTH + 3):
        deep = {"c": deep}
    assert accepts(schema, _pretty_then_flexible(deep, 0), whitespace="pretty")
    assert not accepts(schema, json.dumps(deep, indent=2), whitespace="pretty")  # 26 spaces


def _pretty_then_flexible(value: Any, depth: int) -> str:
    """``json.dumps(indent=2)`` down to ``MAX_PRETTY_DEPTH``, bare line breaks below it."""
    if not isinstance(value, dict) or not value:
        return json.dumps(value)
    inner = depth + 1 if 0 <= depth < MAX_PRETTY_DEPTH else -1
    open_ws = "\n" + "  " * inner if inner >= 0 else "\n"
    close_ws = "\n" + "  " * depth if inner >= 0 else "\n"
    members = [f"{json.dumps(k)}: {_pretty_then_flexible(v, inner)}" for k, v in value.items()]
    return "{" + open_ws + ("," + open_ws).join(members) + close_ws + "}"


def test_whitespace_option_values() -> None:
    with pytest.raises(ConfigurationError, match="'compact', 'flexible', 'pretty'"):
        sg.Grammar.from_json_schema({}, whitespace="tabs")
    old = sg.Grammar.from_json_schema({"type": "array"}, whitespace="bounded")
    new = sg.Grammar.from_json_schema({"type": "array"}, whitespace="flexible")
    default = sg.Grammar.from_json_schema({"type": "array"})
    assert old.rules == new.rules == default.rules
    notes = " ".join(sg.Grammar.from_json_schema({}, whitespace="pretty").notes)
    assert "json.dumps(indent=2)" in notes
