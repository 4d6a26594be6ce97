"""Mask plans (masks cached by parse configuration, with the tokens whose fate a semantic check
decides settled exactly) give the same masks as the direct computation, at every step, for
grammars with and without checks; and repeated configurations reuse one plan."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from support import tokenize_random

import structgen as sg
from structgen import _accel

VOCAB = sg.Vocabulary.byte_level(
    [
        b'{"',
        b'":',
        b'": "',
        b'"}',
        b'"},',
        b'"}]',
        b'", "',
        b"}}",
        b"]}",
        b"xx",
        b"12",
        b"[1",
        b"],",
        b'"a',
        b'"b"',
        b'{"a"',
        b" {",
        b"\xc3\xa9",
    ]
)

CASES = [
    (  # members in any order: a check per object (distinct names, required)
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
            "required": ["a"],
        },
        {"additional_properties": "spec", "property_order": "any"},
        [{"a": "xx", "b": 12}, {"b": 1, "a": ""}, {"a": "é", "c": {"a": [1, "x"]}}],
    ),
    (  # uniqueItems on nested arrays
        {
            "type": "array",
            "items": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        },
        {},
        [[[1, 2], [2, 1]], [[]], [[12, 12]]],
    ),
    (  # recursive, no checks
        {
            "type": "object",
            "properties": {"v": {"type": "string"}, "k": {"type": "array", "items": {"$ref": "#"}}},
        },
        {"property_order": "schema"},
        [{"v": "a", "k": [{"v": "b"}, {}]}, {}],
    ),
]


def _walks(compiled: sg.CompiledGrammar, texts: list[bytes], rng: random.Random) -> None:
    index = compiled.index
    for text in texts:
        for _ in range(3):
            tokens = tokenize_random(text, compiled.vocab, rng, max_len=5)
            if tokens and rng.random() < 0.3:
                tokens[rng.randrange(len(tokens))] = rng.randrange(compiled.vocab.vocab_size)
            m = compiled.matcher()
            for tid in [*tokens, None]:
                state = m._state
                planned = index.token_bitmask(state)
                assert np.array_equal(planned, index.reference_bitmask(state))
                if tid is None or not m.consume_token(tid):
                    break


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_plans_equal_direct_masks(case: int, native: bool) -> None:
    if native and _accel.native() is None:
        pytest.skip(_accel.describe())
    schema, options, values = CASES[case]
    grammar = sg.Grammar.from_json_schema(schema, **options)
    texts = [json.dumps(v, ensure_ascii=False).encode() for v in values]
    texts += [json.dumps(v, separators=(",", ":")).encode() for v in values]
    if native:
        compiled = sg.compile(grammar, VOCAB, use_cache=False)
    else:
        with _accel.pure_python():
            compiled = sg.compile(grammar, VOCAB, use_cache=False)
    assert type(compiled.index).__name__ == "CfgTokenIndex"
    _walks(compiled, texts, random.Random(case))


def test_repeated_configurations_share_a_plan() -> None:
    schema, options, _ = CASES[0]
    compiled = sg.compile(sg.Grammar.from_json_schema(schema, **options), VOCAB, use_cache=False)
    m = compiled.matcher()
    assert m.consume_bytes(b'{"a": "x')
    m.next_token_bitmask_np()
    plans = len(compiled.index._plans)
    for _ in range(5):  # inside the string: the same configuration after every character
        assert m.consume_bytes(b"x")
        m.next_token_bitmask_np()
    assert len(compiled.index._plans) == plans
