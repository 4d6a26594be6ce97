"""A matcher pickled at any step behaves exactly like the original (regular and Earley engines),
and API misuse (bools, floats as token ids; bad rollback counts) raises a typed error."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from support import tokenize_random

import structgen as sg

EXTRA = [b'{"', b'":', b'": "', b'"}', b"xx", b'x"', b"[1", b"],", b"12", b'"b', b"((", b"))"]
VOCAB = sg.Vocabulary.byte_level(EXTRA)
EOS = min(VOCAB.eos_token_ids)

OBJECT_B = {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]}
RECURSIVE = {
    "type": "object",
    "properties": {"b": {"type": "string"}, "kids": {"type": "array", "items": {"$ref": "#"}}},
    "required": ["b"],
}
LARK = 'start: "a" "b" | "(" start ")" | "[" NUM ("," NUM)* "]"\nNUM: /[0-9]+/\n'

GRAMMARS = {
    "regular-schema": (sg.Grammar.from_json_schema(OBJECT_B), [b'{"b": "xx"}', b'{"b":"x"}']),
    "earley-schema": (
        sg.Grammar.from_json_schema(RECURSIVE),
        [b'{"b": "x", "kids": [{"b": "xx"}]}', b'{"b":"","kids":[]}'],
    ),
    "earley-lark": (sg.Grammar.from_lark(LARK), [b"((ab))", b"([1,23])"]),
    "regex": (sg.Grammar.from_regex(r"(xx|[0-9]{1,3})+"), [b"xx12xx", b"1234"]),
}


def _observe(m: sg.Matcher) -> tuple:
    return (
        m.allowed_token_ids().tolist(),
        m.is_accepting(),
        m.is_terminated(),
        m.can_continue(),
        m.forced_bytes(),
        m.num_rollback_tokens,
    )


def _sequences(texts: list[bytes], rng: random.Random) -> list[list[int]]:
    """Valid texts re-tokenised at random, some cut short, some corrupted, some ended by EOS."""
    out = []
    for text in texts:
        for _ in range(3):
            tokens = tokenize_random(text, VOCAB, rng, max_len=4)
            kind = rng.randrange(4)
            if kind == 1:
                tokens = tokens[: rng.randrange(len(tokens) + 1)]
            elif kind == 2 and tokens:
                tokens[rng.randrange(len(tokens))] = rng.randrange(VOCAB.vocab_size)
            out.append([*tokens, EOS, rng.randrange(256)])
    return out


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_pickled_matcher_behaves_like_the_original_at_every_step(name: str) -> None:
    grammar, texts = GRAMMARS[name]
    compiled = sg.compile(grammar, VOCAB, use_cache=False)
    rng = random.Random(len(name))
    for tokens in _sequences(texts, rng):
        original = compiled.matcher()
        copies: list[sg.Matcher] = []
        for tid in tokens:
            # a fresh pickled copy at this step, and the older copies kept in lockstep
            copies.append(pickle.loads(pickle.dumps(original)))
            expected = _observe(original)
            for copy in copies:
                assert _observe(copy) == expected
                assert copy.validate_tokens(tokens) == original.validate_tokens(tokens)
            verdict = original.consume_token(tid)
            for copy in copies:
                assert copy.consume_token(tid) == verdict
        # pickled after the last token (after EOS too): same state, same history
        last = pickle.loads(pickle.dumps(original))
        assert _observe(last) == _observe(original)
        steps = rng.randrange(original.num_rollback_tokens + 1)
        original.rollback(steps)
        last.rollback(steps)
        assert _observe(last) == _observe(original)


def test_issue_example_pickled_inside_a_string_value() -> None:
    compiled = sg.compile(sg.Grammar.from_json_schema(OBJECT_B), VOCAB, use_cache=False)
    m = compiled.matcher()
    assert m.consume_tokens(list(b'{"b": "xx')) == 9
    back = pickle.loads(pickle.dumps(m))
    assert back.allowed_token_ids().tolist() == m.allowed_token_ids().tolist()
    assert back.consume_token(ord('"')) and not back.is_accepting()
    assert back.consume_token(ord("}")) and back.is_accepting()
    assert back.consume_token(EOS) and back.is_terminated()
    again = pickle.loads(pickle.dumps(back))
    assert again.is_terminated() and again.is_accepting() and not again.can_continue()
    assert again.allowed_token_ids().tolist() == [] and not again.consume_token(ord("x"))
    again.rollback(1)
    assert again.is_accepting() and not again.is_terminated()


@pytest.mark.parametrize("name", ["regular-schema", "earley-schema"])
def test_terminated_matcher_pickles_and_stays_terminated(name: str) -> None:
    grammar, texts = GRAMMARS[name]
    m = sg.compile(grammar, VOCAB).matcher()
    assert m.consume_tokens([*texts[0], EOS]) == len(texts[0]) + 1
    back = pickle.loads(pickle.dumps(m))
    assert back.is_terminated() and back.is_accepting()
    assert not back.can_continue() and back.forced_bytes() == b""
    assert not back.consume_token(ord(" ")) and "terminated" in (back.last_error or "")
    assert "terminated" in repr(back)


# ------------------------------------------------------------------------------ API misuse

MISUSE = [True, False, np.bool_(True), 1.5, np.float64(1.0), "1", None, b"a", [1]]


def _regex_matcher() -> sg.Matcher:
    return sg.compile(sg.Grammar.from_regex(r"[\x01a]+"), VOCAB).matcher()


@pytest.mark.parametrize("bad", MISUSE, ids=repr)
def test_non_integer_token_ids_raise_instead_of_acting_as_a_token(bad: object) -> None:
    m = _regex_matcher()
    assert m.validate_tokens([1]) == 1  # token 1 (b"\x01") would be accepted
    with pytest.raises(sg.ConfigurationError, match="Invalid token id"):
        m.consume_token(bad)  # type: ignore[arg-type]
    with pytest.raises(sg.ConfigurationError, match="Invalid token id at index 1"):
        m.consume_tokens([97, bad])  # type: ignore[list-item]
    assert m.num_rollback_tokens == 0  # nothing consumed: the list is checked first
    with pytest.raises(sg.ConfigurationError, match="Invalid token id at index 0"):
        m.validate_tokens([bad])  # type: ignore[list-item]
    with pytest.raises(sg.ConfigurationError, match="rollback count"):
        m.rollback(bad)  # type: ignore[arg-type]


def test_numpy_integers_and_out_of_range_ids_are_values() -> None:
    m = _regex_matcher()
    for tid in (np.int64(97), np.int32(1), np.uint16(97)):
        assert m.consume_token(tid)  # type: ignore[arg-type]
    assert m.validate_tokens(np.array([97, 1, 98])) == 2
    assert m.consume_tokens(np.array([97, 1], dtype=np.int32)) == 2
    for bad in (-1, VOCAB.vocab_size, 10**12, np.int64(-5)):
        assert not m.consume_token(bad)  # a rejected token is a return value
        assert "outside the vocabulary" in (m.last_error or "")
        assert m.validate_tokens([bad]) == 0
    assert m.num_rollback_tokens == 5
    with pytest.raises(sg.ConfigurationError, match="sequence"):
        m.consume_tokens(97)  # type: ignore[arg-type]
    with pytest.raises(sg.ConfigurationError, match="sequence"):
        m.validate_tokens("aa")  # type: ignore[arg-type]


def test_rollback_bounds() -> None:
    m = _regex_matcher()
    assert m.consume_tokens([97, 97]) == 2
    with pytest.raises(sg.ConfigurationError, match="got -1"):
        m.rollback(-1)
    with pytest.raises(sg.ConfigurationError, match="got 3"):
        m.rollback(3)
    assert m.num_rollback_tokens == 2
    m.rollback(np.int64(2))  # type: ignore[arg-type]
    assert m.num_rollback_tokens == 0
    with pytest.raises(sg.ConfigurationError, match="max_rollback"):
        m.compiled.matcher(max_rollback=1.5)  # type: ignore[arg-type]
