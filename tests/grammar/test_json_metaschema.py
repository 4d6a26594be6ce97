"""The compiled metaschema check (json_metaschema) never passes a document jsonschema rejects.

Differential against ``jsonschema``'s own metaschema validators (the ones the front end uses):
hand-picked edge cases of the keywords it models, then every schema of the JSON Schema Test
Suite and a MaskBench sample, each as it is and with random keyword mutations, under every
dialect. The other direction (jsonschema passes, the compiled check is not sure) only costs time.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from structgen.grammar.json_metaschema import surely_valid
from structgen.grammar.json_schema import _metaschema_validator

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DIALECTS = (
    jsonschema.Draft3Validator,
    jsonschema.Draft4Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft202012Validator,
)
WRONG = (None, True, False, -1, 0, 1, 1.0, 1.5, -0.5, "", "x", "text", [], [1], ["a", "a"],
         [1, 1.0], [True, 1], [{"a": 1}], {}, {"a": 1}, {"type": "nope"}, float("nan"))
KEYWORDS = ("type", "minLength", "maxItems", "required", "enum", "items", "properties",
            "additionalProperties", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
            "pattern", "dependencies", "$ref", "uniqueItems", "allOf", "anyOf", "oneOf", "not",
            "const", "minItems", "propertyNames", "$id", "id", "$anchor", "prefixItems",
            "dependentRequired", "contains", "format", "$defs", "definitions", "if")


def assert_agrees(document: Any) -> None:
    for dialect in DIALECTS:
        meta = _metaschema_validator(dialect)
        if surely_valid(meta, document):
            assert meta.is_valid(document), (dialect.__name__, document)


@pytest.mark.parametrize(
    "document",
    [
        {"type": "string"},
        {"type": "text"},
        {"type": ["string", "string"]},
        {"type": []},
        {"minLength": 1.0},  # an integer from draft 6 on, not in draft 4
        {"minLength": -1},
        {"minLength": True},
        {"multipleOf": 0},
        {"multipleOf": 0.5},
        {"exclusiveMinimum": True},
        {"exclusiveMinimum": True, "minimum": 1},  # draft 4: needs minimum (dependencies)
        {"exclusiveMaximum": 3},
        {"required": []},
        {"required": ["a", "a"]},
        {"required": "a"},
        {"enum": []},
        {"enum": [1, True]},
        {"enum": [1, 1.0]},
        {"enum": ["a", "a"]},
        {"items": [{"type": "string"}]},
        {"items": 3},
        {"properties": {"a": {"type": "bogus"}}},
        {"properties": {"a": {"$ref": "#", "type": "bogus"}}},  # draft 7: siblings ignored
        {"$ref": "#/definitions/a", "type": 3},
        {"definitions": {"a": {"type": 3}}},
        {"$defs": {"a": {"type": 3}}},
        {"dependencies": {"a": ["b", "b"]}},
        {"dependencies": {"a": {"type": 3}}},
        {"$anchor": "1bad"},
        {"$id": "http://x/y#frag"},
        {"propertyNames": {"pattern": 3}},
        {"allOf": []},
        {"anyOf": [True, {"type": 7}]},
        True,
        False,
        [],
        3,
    ],
)
def test_edge_cases(document: Any) -> None:
    assert_agrees(document)


def _mutations(document: Any, rng: random.Random, count: int) -> list[Any]:
    out = []
    for _ in range(count):
        copied = copy.deepcopy(document)
        nodes = []
        stack = [copied]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                nodes.append(node)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        if not nodes:
            continue
        node = rng.choice(nodes)
        node[rng.choice([*node, *KEYWORDS])] = copy.deepcopy(rng.choice(WRONG))
        out.append(copied)
    return out


def _documents() -> list[Any]:
    docs = []
    for path in sorted((SHARED / "json-schema-test-suite" / "tests").rglob("*.json")):
        docs += [group["schema"] for group in json.loads(path.read_text())]
    bench = sorted((SHARED / "jsonschemabench" / "maskbench").glob("*.json"))
    docs += [json.loads(p.read_text())["schema"] for p in bench[::60]]
    return docs


def test_corpus_and_mutations() -> None:
    docs = _documents()
    if not docs:
        pytest.skip("no JSON Schema Test Suite or MaskBench data here")
    rng = random.Random(14)
    for document in docs:
        assert_agrees(document)
        for mutated in _mutations(document, rng, 2):
            assert_agrees(mutated)


def test_fast_path_taken_for_common_dialects() -> None:
    """The point of the module: ordinary valid documents are decided without jsonschema."""
    document = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}},
                "required": ["a"], "additionalProperties": False}
    for dialect in (jsonschema.Draft4Validator, jsonschema.Draft7Validator,
                    jsonschema.Draft202012Validator):
        assert surely_valid(_metaschema_validator(dialect), document)
