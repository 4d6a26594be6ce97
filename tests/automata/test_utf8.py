"""UTF-8 range splitting against Python's own encoder."""

from __future__ import annotations

import random

import pytest

from structgen.automata.utf8 import codepoints_to_ranges, complement_ranges, utf8_sequences


def _matches(seqs: list[list[tuple[int, int]]], data: bytes) -> bool:
    return any(
        len(seq) == len(data) and all(lo <= b <= hi for (lo, hi), b in zip(seq, data, strict=True))
        for seq in seqs
    )


BOUNDARIES = [
    0,
    0x7F,
    0x80,
    0x7FF,
    0x800,
    0xFFF,
    0x1000,
    0xD7FF,
    0xE000,
    0xFFFF,
    0x10000,
    0x3FFFF,
    0x40000,
    0x10FFFF,
]


@pytest.mark.parametrize("seed", range(20))
def test_sequences_encode_exactly_the_range(seed: int) -> None:
    rng = random.Random(seed)
    lo = rng.choice(BOUNDARIES + [rng.randrange(0x110000) for _ in range(3)])
    hi = rng.choice([b for b in BOUNDARIES if b >= lo] + [min(0x10FFFF, lo + rng.randrange(5000))])
    seqs = list(utf8_sequences(lo, hi))
    probes = {lo, hi, lo + 1, hi - 1, *(rng.randrange(0x110000) for _ in range(300))}
    probes |= {b + d for b in BOUNDARIES for d in (-1, 0, 1)}
    for cp in probes:
        if not 0 <= cp <= 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            continue
        assert _matches(seqs, chr(cp).encode("utf-8")) == (lo <= cp <= hi), hex(cp)


def test_no_sequence_matches_a_surrogate_or_invalid_byte() -> None:
    seqs = list(utf8_sequences(0, 0x10FFFF))
    assert not _matches(seqs, b"\xed\xa0\x80")  # encoded surrogate U+D800
    assert not _matches(seqs, b"\xc0\x80")  # overlong NUL
    assert not _matches(seqs, b"\xf5\x80\x80\x80")  # beyond U+10FFFF
    assert _matches(seqs, "😀".encode())


def test_ranges_and_complement() -> None:
    assert codepoints_to_ranges([5, 1, 2, 3, 9]) == [(1, 3), (5, 5), (9, 9)]
    assert complement_ranges([(1, 3), (5, 5)]) == [(0, 0), (4, 4), (6, 0x10FFFF)]
