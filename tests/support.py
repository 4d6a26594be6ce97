"""Shared test helpers: the grammar walker, random re-tokenisation and tiny vocabularies."""

from __future__ import annotations

import random

import numpy as np

import structgen as sg


def tokenize_random(
    data: bytes, vocab: sg.Vocabulary, rng: random.Random, max_len: int = 16
) -> list[int]:
    """A random segmentation of ``data`` into vocabulary tokens (needs all single bytes)."""
    by_bytes = _token_lookup(vocab)
    out: list[int] = []
    pos = 0
    while pos < len(data):
        options = [
            by_bytes[data[pos : pos + n]]
            for n in range(1, min(max_len, len(data) - pos) + 1)
            if data[pos : pos + n] in by_bytes
        ]
        if not options:
            raise ValueError(f"no token covers byte {data[pos]} at {pos}")
        tid = rng.choice(options)
        out.append(tid)
        pos += len(vocab.token_bytes[tid])
    return out


_LOOKUPS: dict[int, dict[bytes, int]] = {}


def _token_lookup(vocab: sg.Vocabulary) -> dict[bytes, int]:
    key = id(vocab)
    if key not in _LOOKUPS:
        table: dict[bytes, int] = {}
        for tid, data in enumerate(vocab.token_bytes):
            if data and tid not in vocab.special_token_ids:
                table.setdefault(data, tid)
        _LOOKUPS[key] = table
    return _LOOKUPS[key]


def mask_bit(mask_words: np.ndarray, token: int) -> bool:
    """Whether ``token``'s bit is set in a packed int32 bitmask row."""
    return bool((int(mask_words.view(np.uint32)[token >> 5]) >> (token & 31)) & 1)


def walk(compiled: sg.CompiledGrammar, tokens: list[int], *, check_masks: bool = True) -> bool:
    """Feed ``tokens``; at each step the mask bit must agree with ``validate_tokens``.

    Returns True iff every token is accepted and the matcher is accepting at the end (then EOS
    must be allowed too).
    """
    m = compiled.matcher()
    eos = min(compiled.vocab.eos_token_ids)
    for tid in tokens:
        ok = m.validate_tokens([tid]) == 1
        if check_masks:
            words = m.next_token_bitmask_np()
            assert mask_bit(words, tid) == ok, (tid, compiled.vocab.token_bytes[tid])
            assert words.any(), "empty mask in a live state"
        if not ok:
            assert not m.consume_token(tid)
            return False
        assert m.consume_token(tid)
    accepting = m.is_accepting()
    assert (m.validate_tokens([eos]) == 1) == accepting
    if check_masks:
        assert mask_bit(m.next_token_bitmask_np(), eos) == accepting
    return accepting
