"""Both engines on the real SmolLM2 vocabulary (49,152 tokens): the tokenizer's own tokenization
and random re-tokenisations are accepted exactly when the oracle (re / json + jsonschema)
accepts, and mask bits agree with single-token checks."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import mask_bit, tokenize_random, walk

import structgen as sg

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age"],
}


@pytest.fixture(scope="module")
def vocab(smollm2_tokenizer):
    return sg.Vocabulary.from_tokenizer(smollm2_tokenizer)


def _own_tokens(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_regex_on_real_vocabulary(vocab, smollm2_tokenizer) -> None:
    pattern = r"(?:[A-Z][a-zé]{1,8} ){1,3}\d{2,4}(?:\.\d+)?"
    compiled = sg.compile(sg.Grammar.from_regex(pattern), vocab)
    oracle = re.compile(pattern, re.ASCII)
    rng = random.Random(0)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(oracle, fullmatch=True))
    def positives(text: str) -> None:
        assert walk(compiled, _own_tokens(smollm2_tokenizer, text))
        assert walk(compiled, tokenize_random(text.encode(), vocab, rng))

    positives()
    for bad in ["Ab 12x", "ab 12", "Ab  12", "Ab 1", "Abé 12.", ""]:
        assert not walk(compiled, _own_tokens(smollm2_tokenizer, bad)), bad


@pytest.mark.parametrize("schema", [PERSON, {"type": "array", "items": {}, "maxItems": 4}])
def test_schema_instances_on_real_vocabulary(vocab, smollm2_tokenizer, schema) -> None:
    compiled = sg.compile(sg.Grammar.from_json_schema(schema), vocab)
    validator = jsonschema.Draft202012Validator(schema)
    rng = random.Random(1)
    instances = [
        {"name": "Zoë", "age": 42},
        {"name": 'A"b\\c', "age": 0, "tags": ["x", "中文"]},
        {"name": "Bo", "age": 131},
        {"name": "Bo"},
        {"name": "toolongnameXYZ", "age": 1},
        {"name": "Bo", "age": 3, "ok": True, "tags": []},
        [1, {"a": [None, 2.5]}, "s"],
        [1, 2, 3, 4, 5],
        [],
        {"age": 3, "name": "Bo"},
    ]
    for value in instances:
        text = json.dumps(value)
        # declared order only: an instance with keys out of schema order is rejected by design
        in_order = not isinstance(value, dict) or list(value) == [
            k for k in schema.get("properties", {}) if k in value
        ]
        expected = validator.is_valid(value) and in_order
        assert walk(compiled, _own_tokens(smollm2_tokenizer, text)) == expected, text
        assert walk(compiled, tokenize_random(text.encode(), vocab, rng)) == expected, text


@pytest.mark.parametrize("schema", [PERSON, {"type": "object"}])
def test_masks_agree_with_token_checks(vocab, smollm2_tokenizer, schema) -> None:
    compiled = sg.compile(sg.Grammar.from_json_schema(schema), vocab)
    text = json.dumps({"name": "Ann", "age": 30, "tags": ["a"]})
    tokens = _own_tokens(smollm2_tokenizer, text)
    rng = random.Random(2)
    m = compiled.matcher()
    sample = rng.sample(range(vocab.vocab_size), 3000)
    for i, tid in enumerate(tokens):
        words = m.next_token_bitmask_np()
        candidates = sample if i % 3 else range(vocab.vocab_size)  # full sweep every 3rd step
        for cand in candidates:
            assert mask_bit(words, cand) == (m.validate_tokens([cand]) == 1), (i, cand)
        assert m.consume_token(tid)
    assert m.is_accepting()
