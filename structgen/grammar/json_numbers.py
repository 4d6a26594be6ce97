"""Regexes for JSON numbers and for integers in a range, used by the JSON Schema front end.

One job: turn numeric schema keywords into exact regular expressions over the number's spelling.

Every spelling accepted here is judged by its value under ``json.loads`` (the parser the semantic
checks and ``result.value`` use): a spelling is accepted only if the value it parses to is one the
schema allows. ``1.0`` parses to a float, so an integral spelling with a fraction is accepted only
where the float holds the value exactly.

Deliberate simplifications (documented choices, not approximations of the accepted *values*):
    * ``number`` is the RFC 8259 number grammar, exactly.
    * ``integer`` accepts ``-?(0|[1-9][0-9]*)``; JSON Schema draft 6 and later count ``1.0`` as an
      integer, so there it also accepts ``.0+`` after an integer of magnitude at most 2**53
      (every such integer is exact as a float; ``9007199254740993.0`` reads as ``...992``, and
      ``1`` followed by 400 zeros and ``.0`` reads as ``inf``). Drafts 3 and 4 count only ``1``
      as an integer: no fraction at all (``fraction=False``). Integral values spelled with an
      exponent (``1e2``) are rejected: "the value is integral" is not a regular property of
      exponent spellings.
    * ``-0`` (and, with fractions, ``-0.0``) is accepted wherever ``0`` is in range.
    * Integer ranges are unions of flat alternatives (a common prefix, one digit class, then any
      digits), at most about two per digit of the bounds: no nested groups, so deep bounds such
      as ``1e308`` need no recursion to parse or build. Bounds on ``number`` are not lowered here
      (the front end checks them).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from structgen.grammar.ir import Expr, Regex, alt, lit, seq

NUMBER_PATTERN = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
"""The RFC 8259 ``number`` production."""

INTEGER_FRACTION = r"\.0+"
"""The all-zero fraction an integer may carry in draft 6 and later (``1.0`` is an integer)."""

FRACTION_MAGNITUDE = 2**53
"""Integers of at most this magnitude may carry ``INTEGER_FRACTION`` (all exact as floats)."""

_FRACTION_MAGNITUDE_PATTERN = (
    "(?:0|[1-9][0-9]{0,14}|[1-8][0-9]{15}|900[0-6][0-9]{12}|90070[0-9]{11}|90071[0-8][0-9]{10}"
    "|900719[0-8][0-9]{9}|9007199[0-1][0-9]{8}|90071992[0-4][0-9]{7}|900719925[0-3][0-9]{6}"
    "|9007199254[0-6][0-9]{5}|90071992547[0-3][0-9]{4}|9007199254740[0-8][0-9]{2}"
    "|90071992547409[0-8][0-9]|900719925474099[0-1]|9007199254740992)"
)
"""``0 ..= FRACTION_MAGNITUDE`` (spelled out: ``integer_range_pattern`` comes later; a test
compares the two)."""

INTEGER_DIGITS_PATTERN = r"-?(?:0|[1-9][0-9]*)"
"""Any integer, without a fraction."""

INTEGER_PATTERN = (
    f"(?:{INTEGER_DIGITS_PATTERN}"
    + rf"|-?{_FRACTION_MAGNITUDE_PATTERN}{INTEGER_FRACTION})"
)
"""Any integer, with a fraction where ``json.loads`` keeps the value (draft 6 and later)."""

MAX_RANGE_DIGITS = 320
"""Integer bounds with more digits than this are not lowered to a range (a float bound has at
most 309): the front end checks them instead."""


def integer_pattern(fraction: bool) -> str:
    """The regex of any integer: with ``.0+`` spellings (``fraction``, draft 6+) or without."""
    return INTEGER_PATTERN if fraction else INTEGER_DIGITS_PATTERN


def number_spellings(value: int | float, fraction: bool = True) -> list[tuple[str, str]]:
    """The plain decimal spellings that ``json.loads`` reads as ``value``, as ``(text, suffix)``
    pairs: a literal, then a regex of what may follow it (``""``: nothing).

    ``2`` -> ``("2", "(?:\\.0+)?")``, ``-2.5`` -> ``("-2.5", "0*")``, ``0`` -> ``"0"`` and ``"-0"``
    (JSON Schema compares numbers by value, so ``1.0`` equals ``1``). An integral value gets the
    ``.0+`` spellings only with ``fraction`` and only where the float is exact
    (``9007199254740993.0`` reads as ``9007199254740992.0``). A float is spelled from its
    shortest repr. Exponent spellings (``1e0``) are not included.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        suffix = f"(?:{INTEGER_FRACTION})?" if fraction and _float_exact(value) else ""
        texts = ["0", "-0"] if value == 0 else [str(value)]
        return [(text, suffix) for text in texts]
    text = format(Decimal(repr(value)), "f")
    return [(text.rstrip("0"), "0*")]


def literal_number_pattern(value: int | float, fraction: bool = True) -> str:
    """A regex for the spellings of ``number_spellings`` (``2`` -> ``2(?:\\.0+)?``)."""
    texts = [
        text.replace(".", "\\.") + suffix for text, suffix in number_spellings(value, fraction)
    ]
    return texts[0] if len(texts) == 1 else "(?:" + "|".join(texts) + ")"


def _float_exact(value: int) -> bool:
    """Whether ``json.loads`` of ``value`` spelled with ``.0`` gives back exactly ``value``."""
    try:
        return float(value) == value
    except OverflowError:
        return False


def _digit_class(lo: int, hi: int) -> str:
    if lo == hi:
        return str(lo)
    if lo == 0 and hi == 9:
        return "[0-9]"
    return f"[{lo}-{hi}]"


def _any_digits(count: int) -> str:
    if count == 0:
        return ""
    if count == 1:
        return "[0-9]"
    return f"[0-9]{{{count}}}"


# An alternative is (prefix, rest): a literal digit prefix, then a small flat regex.
_Alternative = tuple[str, str]


def _at_least(digits: str) -> list[_Alternative]:
    """Alternatives for the digit strings ``s`` with ``len(s) == len(digits)``, ``s >= digits``."""
    out: list[_Alternative] = []
    width = len(digits)
    for j in range(width):
        if digits[j:] == "0" * (width - j):
            out.append((digits[:j], _any_digits(width - j)))
            return out
        d = int(digits[j])
        if d < 9:
            out.append((digits[:j], _digit_class(d + 1, 9) + _any_digits(width - j - 1)))
    out.append((digits, ""))
    return out


def _at_most(digits: str) -> list[_Alternative]:
    """Alternatives for the digit strings ``s`` with ``len(s) == len(digits)``, ``s <= digits``."""
    out: list[_Alternative] = []
    width = len(digits)
    for j in range(width):
        if digits[j:] == "9" * (width - j):
            out.append((digits[:j], _any_digits(width - j)))
            return out
        d = int(digits[j])
        if d > 0:
            out.append((digits[:j], _digit_class(0, d - 1) + _any_digits(width - j - 1)))
    out.append((digits, ""))
    return out


def _same_length_range(low: str, high: str) -> list[_Alternative]:
    """Alternatives for the digit strings ``s`` with ``len(s) == len(low)``, ``low <= s <= high``.

    ``low`` and ``high`` are digit strings of equal length with ``low <= high``; leading zeros are
    treated as ordinary digits (the caller guarantees they only occur where intended).
    """
    if low == high:
        return [(low, "")]
    i = 0
    while low[i] == high[i]:
        i += 1
    prefix = low[:i]
    first, last = int(low[i]), int(high[i])
    low_rest, high_rest = low[i + 1 :], high[i + 1 :]
    width = len(low_rest)
    out: list[_Alternative] = []
    if low_rest != "0" * width:
        out += [(prefix + str(first) + p, r) for p, r in _at_least(low_rest)]
        first += 1
    if high_rest != "9" * width:
        out += [(prefix + str(last) + p, r) for p, r in _at_most(high_rest)]
        last -= 1
    if first <= last:
        out.append((prefix, _digit_class(first, last) + _any_digits(width)))
    return out


def _unsigned_range(low: int, high: int | None) -> list[_Alternative]:
    """Alternatives for the canonical spellings (no leading zeros) of ``low <= n <= high``."""
    out: list[_Alternative] = []
    low_len = len(str(low))
    high_len = low_len if high is None else len(str(high))
    full: list[int] = []  # lengths whose every number is in range
    for length in range(low_len, high_len + 1):
        smallest = 0 if length == 1 else 10 ** (length - 1)
        largest = 10**length - 1
        a = max(low, smallest)
        b = largest if high is None or length < high_len else min(high, largest)
        if a == smallest and b == largest and length > 1:
            full.append(length)
        elif a <= b:
            out += _same_length_range(str(a), str(b))
    if full:  # consecutive lengths: one bounded repeat instead of one alternative per length
        lo, hi = full[0] - 1, full[-1] - 1
        out.append(("", "[1-9]" + (f"[0-9]{{{lo},{hi}}}" if lo != hi else _any_digits(lo))))
    if high is None:
        # every number with more digits than ``low`` is larger than it
        out.append(("", f"[1-9][0-9]{{{low_len},}}"))
    return out


def _range_alternatives(low: int | None, high: int | None) -> list[_Alternative] | None:
    if low is not None and high is not None and low > high:
        return None
    out: list[_Alternative] = []
    if low is None or low < 0:
        # negative part: magnitudes from max(1, -high) up to -low
        mag_low = 1 if high is None or high >= 0 else -high
        mag_high = None if low is None else -low
        out += [("-" + p, r) for p, r in _unsigned_range(mag_low, mag_high)]
    if high is None or high >= 0:
        out += _unsigned_range(0 if low is None else max(low, 0), high)
    if (low is None or low <= 0) and (high is None or high >= 0):
        out.append(("-0", ""))
    return out


def integer_range_pattern(low: int | None, high: int | None) -> str | None:
    """Regex for the integers ``n`` with ``low <= n <= high`` (``None``: unbounded on that side).

    Matches the canonical decimal spelling (no leading zeros, no ``+``) and also ``-0`` when 0 is in
    range; no fraction part. One group of flat alternatives. Returns ``None`` if the range is
    empty.
    """
    alternatives = _range_alternatives(low, high)
    if alternatives is None:
        return None
    texts = [p + r for p, r in alternatives]
    return texts[0] if len(texts) == 1 else "(?:" + "|".join(texts) + ")"


def integer_range_expr(low: int | None, high: int | None, fraction: bool) -> Expr | None:
    """IR for the integers ``low <= n <= high`` (``None``: unbounded), ``None`` if there are none.

    The alternatives of ``integer_range_pattern`` as IR (a literal prefix, then a small regex that
    recurs across ranges), so no large regex has to be parsed. With ``fraction`` (draft 6+),
    integers of magnitude at most ``FRACTION_MAGNITUDE`` may also carry ``.0+``.
    """
    alternatives = _range_alternatives(low, high)
    if alternatives is None:
        return None
    whole = alt(*(seq(lit(p), Regex(r)) if r else lit(p) for p, r in alternatives))
    if not fraction:
        return whole
    cap = FRACTION_MAGNITUDE
    small_low = -cap if low is None else max(low, -cap)
    small_high = cap if high is None else min(high, cap)
    small = integer_range_pattern(small_low, small_high)
    if small is None:
        return whole
    return alt(whole, Regex(small + INTEGER_FRACTION))


def _exact(value: int | float) -> Fraction:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("bound is not finite")
    return Fraction(value)


def integer_bounds(
    minimum: int | float | None = None,
    maximum: int | float | None = None,
    exclusive_minimum: int | float | None = None,
    exclusive_maximum: int | float | None = None,
) -> tuple[int | None, int | None]:
    """The inclusive integer range ``[low, high]`` the four JSON Schema bounds leave open.

    Bounds may be floats (``minimum: 1.5`` means ``low = 2``); arithmetic is exact.

    Raises:
        ValueError: a bound is not finite.
    """
    low: int | None = None
    high: int | None = None
    if minimum is not None:
        low = math.ceil(_exact(minimum))
    if exclusive_minimum is not None:
        candidate = math.floor(_exact(exclusive_minimum)) + 1
        low = candidate if low is None else max(low, candidate)
    if maximum is not None:
        high = math.floor(_exact(maximum))
    if exclusive_maximum is not None:
        candidate = math.ceil(_exact(exclusive_maximum)) - 1
        high = candidate if high is None else min(high, candidate)
    return low, high


def numeric_interval_empty(
    minimum: int | float | None = None,
    maximum: int | float | None = None,
    exclusive_minimum: int | float | None = None,
    exclusive_maximum: int | float | None = None,
) -> bool:
    """Whether no real number satisfies the four bounds (the schema contradicts itself)."""
    lows = [(_exact(minimum), False)] if minimum is not None else []
    if exclusive_minimum is not None:
        lows.append((_exact(exclusive_minimum), True))
    highs = [(_exact(maximum), False)] if maximum is not None else []
    if exclusive_maximum is not None:
        highs.append((_exact(exclusive_maximum), True))
    for low, low_open in lows:
        for high, high_open in highs:
            if low > high or (low == high and (low_open or high_open)):
                return True
    return False


__all__ = [
    "FRACTION_MAGNITUDE",
    "INTEGER_DIGITS_PATTERN",
    "INTEGER_FRACTION",
    "INTEGER_PATTERN",
    "MAX_RANGE_DIGITS",
    "NUMBER_PATTERN",
    "integer_bounds",
    "integer_pattern",
    "integer_range_expr",
    "integer_range_pattern",
    "literal_number_pattern",
    "number_spellings",
    "numeric_interval_empty",
]
