"""Matcher on tiny vocabularies: exact masks, the walker, EOS, copy / rollback / pickle."""

from __future__ import annotations

import pickle
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import mask_bit, tokenize_random, walk

import structgen as sg

NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
OBJECT = r'\{"a": ' + NUMBER + r', "b": ' + STRING + r"\}"

EXTRA = [
    b'{"',
    b'":',
    b'", "',
    b'"}',
    b"12",
    b"3.",
    b' "',
    b"\\u",
    b"\xc3",
    b"\xa9x",
    b'a"',
    "é".encode(),
    "😀".encode()[:2],
    "😀".encode()[2:],
    b"e+",
    b', "b": "',
]
VOCAB = sg.Vocabulary.byte_level(EXTRA)


def _compiled(pattern: str) -> sg.CompiledGrammar:
    return sg.compile(sg.Grammar.from_regex(pattern), VOCAB)


@pytest.mark.parametrize("pattern", [NUMBER, STRING, OBJECT])
def test_oracle_strings_accepted_under_random_tokenisations(pattern: str) -> None:
    compiled = _compiled(pattern)
    oracle = re.compile(pattern, re.ASCII)
    rng = random.Random(0)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(oracle, fullmatch=True))
    def check(text: str) -> None:
        data = text.encode("utf-8")
        for _ in range(3):
            assert walk(compiled, tokenize_random(data, VOCAB, rng))

    check()


@pytest.mark.parametrize("pattern", [NUMBER, STRING, OBJECT])
def test_acceptance_agrees_with_re(pattern: str) -> None:
    compiled = _compiled(pattern)
    oracle = re.compile(pattern, re.ASCII)
    rng = random.Random(1)
    alphabet = st.sampled_from(list('{}"ab:, 0123.eE+-\\u/é😀\n'))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(alphabet, max_size=12).map("".join))
    def check(text: str) -> None:
        tokens = tokenize_random(text.encode("utf-8"), VOCAB, rng)
        assert walk(compiled, tokens) == bool(oracle.fullmatch(text)), text

    check()


def test_mask_equals_brute_force_on_random_prefixes() -> None:
    compiled = _compiled(OBJECT)
    oracle_texts = ['{"a": 12.5e+3, "b": "x\\u00e9😀"}', '{"a": -0, "b": ""}']
    rng = random.Random(2)
    for text in oracle_texts:
        tokens = tokenize_random(text.encode(), VOCAB, rng)
        m = compiled.matcher()
        for tid in tokens:
            words = m.next_token_bitmask_np()
            for cand in range(VOCAB.vocab_size):
                assert mask_bit(words, cand) == (m.copy().consume_token(cand)), cand
            assert m.consume_token(tid)


def test_exact_mask_on_hand_built_vocabulary() -> None:
    vocab = sg.Vocabulary.from_token_bytes(
        [b"a", b"b", b"ab", b"ba", b"abc", b"c", b"", b"<s>"],
        eos_token_ids=[6],
        special_token_ids=[7],
    )
    m = sg.compile(sg.Grammar.from_regex("(ab)+c?"), vocab).matcher()
    assert m.allowed_token_ids().tolist() == [0, 2, 4]
    assert m.consume_token(2)
    assert m.allowed_token_ids().tolist() == [0, 2, 4, 5, 6]  # EOS (6) now allowed
    assert not m.consume_token(7) and "special" in (m.last_error or "")
    assert m.consume_token(5) and m.allowed_token_ids().tolist() == [6]
    assert not m.can_continue()
    assert m.consume_token(6) and m.is_terminated()
    assert m.allowed_token_ids().tolist() == [] and not m.consume_token(0)


def test_rejected_token_leaves_state_unchanged() -> None:
    m = _compiled(NUMBER).matcher()
    assert m.consume_token(ord("1"))
    before = m.next_token_bitmask_np()
    assert not m.consume_token(ord("x"))
    assert m.last_error and "rejected" in m.last_error
    assert (m.next_token_bitmask_np() == before).all()
    assert m.num_rollback_tokens == 1


def test_validate_tokens_does_not_change_state() -> None:
    m = _compiled(NUMBER).matcher()
    toks = [ord(c) for c in "12.5x"]
    assert m.validate_tokens(toks) == 4
    assert m.num_rollback_tokens == 0
    assert m.consume_tokens(toks) == 4 and m.num_rollback_tokens == 4


def test_copy_and_rollback_round_trip() -> None:
    compiled = _compiled(OBJECT)
    tokens = tokenize_random(b'{"a": 1.5, "b": "q"}', VOCAB, random.Random(3))
    m = compiled.matcher()
    snapshots = []
    for tid in tokens:
        snapshots.append(m.next_token_bitmask_np())
        assert m.consume_token(tid)
    assert m.is_accepting()
    clone = m.copy()
    for k in range(len(tokens), 0, -1):
        m.rollback(1)
        assert (m.next_token_bitmask_np() == snapshots[k - 1]).all()
    assert clone.is_accepting() and clone.num_rollback_tokens == len(tokens)
    with pytest.raises(ValueError, match="available history"):
        m.rollback(1)


def test_bounded_rollback_history() -> None:
    m = _compiled(NUMBER).matcher(max_rollback=2)
    m.consume_tokens([ord(c) for c in "1234"])
    assert m.num_rollback_tokens == 2
    m.rollback(2)
    with pytest.raises(sg.ConfigurationError):
        m.rollback(1)


def test_pickle_round_trip() -> None:
    compiled = _compiled(OBJECT)
    back = pickle.loads(pickle.dumps(compiled))
    tokens = tokenize_random(b'{"a": 7, "b": "z"}', VOCAB, random.Random(4))
    a, b = compiled.matcher(), back.matcher()
    for tid in tokens:
        assert (a.next_token_bitmask_np() == b.next_token_bitmask_np()).all()
        assert a.consume_token(tid) and b.consume_token(tid)
    assert b.is_accepting()


def test_fill_bitmask_and_mask_agree() -> None:
    import torch

    from structgen.runtime.bitmask_torch import allocate_token_bitmask, bitmask_to_bool

    m = _compiled(NUMBER).matcher()
    bm = allocate_token_bitmask(2, VOCAB.vocab_size)
    m.fill_next_token_bitmask(bm, row=1)
    assert not bm[0].any()
    assert torch.equal(bitmask_to_bool(bm, VOCAB.vocab_size)[1], m.next_token_mask())
    with pytest.raises(sg.ConfigurationError, match="int32"):
        m.fill_next_token_bitmask(np.zeros((1, 3), dtype=np.int64))


def test_incompatible_vocabulary_is_reported_at_compile_time() -> None:
    vocab = sg.Vocabulary.from_token_bytes([b"a", b"c", b""], eos_token_ids=[2])
    with pytest.raises(sg.IncompatibleVocabulary, match="no token"):
        sg.compile(sg.Grammar.from_regex("ab"), vocab)
    # b is reachable only inside a longer token: still compatible
    vocab2 = sg.Vocabulary.from_token_bytes([b"a", b"bc", b""], eos_token_ids=[2])
    sg.compile(sg.Grammar.from_regex("abc"), vocab2)


def test_compile_cache_and_argument_errors() -> None:
    g = sg.Grammar.from_regex("x+")
    assert sg.compile(g, VOCAB) is sg.compile(g, VOCAB)
    with pytest.raises(sg.ConfigurationError, match="Grammar"):
        sg.compile("x+", VOCAB)  # type: ignore[arg-type]


def test_compile_limits_raise_limit_exceeded_instead_of_hanging() -> None:
    from structgen.grammar.ir import Grammar, Lit, Repeat

    big = Grammar.from_expr(Repeat(Lit(b"ab-"), 0, 30_000))  # unrolls to about 10^5 NFA states
    with pytest.raises(sg.LimitExceeded, match="states"):
        sg.compile(big, VOCAB, limits=sg.CompileLimits(max_nfa_states=10_000), use_cache=False)
    with pytest.raises(sg.LimitExceeded, match="took longer than its limit"):
        sg.compile(big, VOCAB, limits=sg.CompileLimits(max_seconds=0.0), use_cache=False)
    assert sg.compile(big, VOCAB, use_cache=False).matcher().consume_tokens(list(b"ab-ab")) == 5
