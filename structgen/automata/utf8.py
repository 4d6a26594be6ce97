"""Code-point ranges to UTF-8 byte-range sequences.

A character class such as ``[α-ω]`` is a set of code points; the byte automata need it as a set of
byte sequences. Each code-point range splits into a few sequences of byte ranges, e.g.
``[U+0080, U+07FF]`` becomes ``[C2-DF][80-BF]``. Surrogates (U+D800..U+DFFF) are never produced,
since they are not valid in UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

MAX_CODEPOINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
_LENGTH_LIMITS = (0x7F, 0x7FF, 0xFFFF)

ByteRangeSeq = list[tuple[int, int]]


def utf8_sequences(lo: int, hi: int) -> Iterator[ByteRangeSeq]:
    """Yield byte-range sequences whose union encodes exactly the code points ``lo..hi``.

    >>> list(utf8_sequences(0x61, 0x63))
    [[(97, 99)]]
    >>> list(utf8_sequences(0x80, 0x7FF))
    [[(194, 223), (128, 191)]]
    """
    if lo > hi:
        return
    s_lo, s_hi = _SURROGATES
    if lo <= s_hi and hi >= s_lo:
        yield from utf8_sequences(lo, s_lo - 1)
        yield from utf8_sequences(s_hi + 1, hi)
        return
    for limit in _LENGTH_LIMITS:
        if lo <= limit < hi:
            yield from utf8_sequences(lo, limit)
            yield from utf8_sequences(limit + 1, hi)
            return
    if hi <= 0x7F:
        yield [(lo, hi)]
        return
    for i in range(1, 4):
        m = (1 << (6 * i)) - 1
        if (lo & ~m) != (hi & ~m):
            if lo & m:
                yield from utf8_sequences(lo, lo | m)
                yield from utf8_sequences((lo | m) + 1, hi)
                return
            if (hi & m) != m:
                yield from utf8_sequences(lo, (hi & ~m) - 1)
                yield from utf8_sequences(hi & ~m, hi)
                return
    a = chr(lo).encode("utf-8")
    b = chr(hi).encode("utf-8")
    yield list(zip(a, b, strict=True))


def codepoints_to_ranges(codepoints: Iterable[int]) -> list[tuple[int, int]]:
    """Merge code points into sorted, disjoint, inclusive ranges."""
    ranges: list[tuple[int, int]] = []
    for cp in sorted(set(codepoints)):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges


def complement_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The code points in ``0..MAX_CODEPOINT`` not covered by sorted disjoint ``ranges``."""
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= MAX_CODEPOINT:
        out.append((nxt, MAX_CODEPOINT))
    return out


__all__ = ["MAX_CODEPOINT", "codepoints_to_ranges", "complement_ranges", "utf8_sequences"]
