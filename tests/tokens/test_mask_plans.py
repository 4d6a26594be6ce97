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


def test_nested_replays_below_one_token_are_walked_once() -> None:
    """Where a check fires at each of k nested trie nodes on one token's path (a key check after
    whitespace that may end at every byte of a newline and its indentation), the planner replays
    only the outermost: the mask below it covers the rest. Replaying every one doubled the work
    per level (2**k walks; with SmolLM2's indentation tokens, a minute for one mask on
    MaskBench's ``Github_easy---o83411``, whose schema this is)."""
    run = 16
    vocab = sg.Vocabulary.byte_level(
        [b"\n" + b" " * k for k in range(1, run + 1)] + [b' "', b'"i', b'":', b'"x"', b"}"]
    )
    props = ["identifier", "version", "output", "mimeType", "magicLocation"]
    schema = {
        "type": "object",
        "properties": {p: {"type": "string"} for p in props},
        "required": props,
        "maxProperties": 5,
    }
    grammar = sg.Grammar.from_json_schema(schema, additional_properties="spec")
    compiled = sg.compile(grammar, vocab, use_cache=False)
    index = compiled.index
    calls = 0
    below = index._mask_below

    def counted(state: object, node: int) -> np.ndarray:
        nonlocal calls
        calls += 1
        return below(state, node)  # type: ignore[arg-type]

    index._mask_below = counted  # type: ignore[method-assign]
    m = compiled.matcher()
    assert m.consume_bytes(b'{"identifier": "x",')
    mask = m.next_token_bitmask_np()
    assert calls <= 4 * run  # linear in the run; it was 2**run
    brute = [t for t in range(vocab.vocab_size) if m.copy().consume_token(t)]
    allowed = np.flatnonzero(np.unpackbits(mask.view(np.uint8), bitorder="little"))
    assert allowed.tolist() == brute
    assert np.array_equal(index.reference_bitmask(m._state), mask)
