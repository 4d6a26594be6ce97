"""Schemas that used to break the automata layer: a chain of 300 ``$ref`` definitions (the NFA
builder recursed once per rule: RecursionError) and an enum of 2,000 two-member objects (the NFA
grew past its limit). Both compile and match exactly; no timing is asserted here."""

from __future__ import annotations

import json

import pytest
from support import walk

import structgen as sg

VOCAB = sg.Vocabulary.byte_level([b'{"', b'":', b'": ', b'"}', b", ", b'"next"'])


def _chain(n: int) -> dict:
    defs = {
        f"d{i}": {
            "type": "object",
            "properties": {"next": {"$ref": f"#/$defs/d{i + 1}"}},
            "required": ["next"],
        }
        for i in range(n)
    }
    defs[f"d{n}"] = {"type": "integer"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def _nested(n: int, leaf: object) -> object:
    value = leaf
    for _ in range(n):
        value = {"next": value}
    return value


@pytest.mark.parametrize("order", ["schema", "any"])
def test_ref_chain_of_300_definitions(order: str) -> None:
    grammar = sg.Grammar.from_json_schema(_chain(300), property_order=order)
    compiled = sg.compile(grammar, VOCAB, use_cache=False)
    good = json.dumps(_nested(300, 7), separators=(",", ":")).encode()
    assert walk(compiled, list(good), check_masks=False)
    short = json.dumps(_nested(299, 7), separators=(",", ":")).encode()
    assert not walk(compiled, list(short), check_masks=False)
    m = compiled.matcher()
    assert m.consume_bytes(good[:1500])
    assert m.next_token_bitmask_np().any()


def test_enum_of_2000_objects() -> None:
    enum = [{"a": i, "b": str(i)} for i in range(2000)]
    compiled = sg.compile(sg.Grammar.from_json_schema({"enum": enum}), VOCAB, use_cache=False)
    for value, ok in [
        ({"a": 1234, "b": "1234"}, True),
        ({"b": "7", "a": 7}, True),
        ({"a": 1234, "b": "1235"}, False),
        ({"a": 2000, "b": "2000"}, False),
    ]:
        assert walk(compiled, list(json.dumps(value).encode())) == ok, value
