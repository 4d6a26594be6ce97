"""Regexes for JSON numbers and for integers in a range, used by the JSON Schema front end.

One job: turn numeric schema keywords into exact regular expressions over the number's spelling.

Deliberate simplifications (documented choices, not approximations of the accepted *values*):
    * ``number`` is the RFC 8259 number grammar, exactly.
    * ``integer`` accepts ``-?(0|[1-9][0-9]*)`` optionally followed by ``.0+`` (JSON Schema counts
      ``1.0`` as an integer). Integral values spelled with an exponent (``1e2``, ``1.5e1``) are
      rejected: "the value is integral" is not a regular property of exponent spellings.
    * ``-0`` (and ``-0.0``) is accepted wherever ``0`` is in range.
    * Bounds on ``number`` are not lowered here yet (the front end refuses them).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

NUMBER_PATTERN = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
"""The RFC 8259 ``number`` production."""

INTEGER_FRACTION = r"(?:\.0+)?"
"""The optional all-zero fraction an integer may carry (``1.0`` is an integer)."""

INTEGER_PATTERN = r"-?(?:0|[1-9][0-9]*)" + INTEGER_FRACTION
"""Any integer (no bounds)."""


def literal_number_pattern(value: int | float) -> str:
    """A regex for the plain decimal spellings of ``value``: ``2`` -> ``2(?:\\.0+)?``, ``-2.5`` ->
    ``-2\\.50*``, ``0`` -> ``-?0(?:\\.0+)?`` (JSON Schema compares numbers by value, so ``1.0``
    equals ``1``). A float is spelled from its shortest repr. Exponent spellings (``1e0``) are not
    included."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        sign = "-" if value < 0 else ("-?" if value == 0 else "")
        return sign + str(abs(value)) + INTEGER_FRACTION
    text = format(Decimal(repr(value)), "f")
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    return sign + whole + r"\." + frac.rstrip("0") + "0*"


def _group(alternatives: list[str]) -> str:
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"


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


def _same_length_range(low: str, high: str) -> str:
    """Regex for the digit strings ``s`` with ``len(s) == len(low)`` and ``low <= s <= high``.

    ``low`` and ``high`` are digit strings of equal length with ``low <= high``; leading zeros are
    treated as ordinary digits (the caller guarantees they only occur where intended).
    """
    if low == high:
        return low
    i = 0
    while low[i] == high[i]:
        i += 1
    prefix = low[:i]
    first, last = int(low[i]), int(high[i])
    low_rest, high_rest = low[i + 1 :], high[i + 1 :]
    width = len(low_rest)
    alternatives: list[str] = []
    if low_rest != "0" * width:
        # ``first`` followed by anything from low_rest up to 99..9
        alternatives.append(str(first) + _same_length_range(low_rest, "9" * width))
        first += 1
    if high_rest != "9" * width:
        top = last - 1
        tail = str(last) + _same_length_range("0" * width, high_rest)
    else:
        top = last
        tail = ""
    if first <= top:
        alternatives.append(_digit_class(first, top) + _any_digits(width))
    if tail:
        alternatives.append(tail)
    return prefix + _group(alternatives)


def _unsigned_range(low: int, high: int | None) -> list[str]:
    """Alternatives matching canonical spellings (no leading zeros) of ``low <= n <= high``."""
    alternatives: list[str] = []
    low_len = len(str(low))
    high_len = low_len if high is None else len(str(high))
    for length in range(low_len, high_len + 1):
        smallest = 0 if length == 1 else 10 ** (length - 1)
        largest = 10**length - 1
        a = max(low, smallest)
        b = largest if high is None or length < high_len else min(high, largest)
        if a <= b:
            alternatives.append(_same_length_range(str(a), str(b)))
    if high is None:
        # every number with more digits than ``low`` is larger than it
        alternatives.append(f"[1-9][0-9]{{{low_len},}}")
    return alternatives


def integer_range_pattern(low: int | None, high: int | None) -> str | None:
    """Regex for the integers ``n`` with ``low <= n <= high`` (``None``: unbounded on that side).

    Matches the canonical decimal spelling (no leading zeros, no ``+``) and also ``-0`` when 0 is in
    range; no fraction part (append ``INTEGER_FRACTION`` for that). Returns ``None`` if the range
    is empty.
    """
    if low is not None and high is not None and low > high:
        return None
    alternatives: list[str] = []
    if low is None or low < 0:
        # negative part: magnitudes from max(1, -high) up to -low
        mag_low = 1 if high is None or high >= 0 else -high
        mag_high = None if low is None else -low
        alternatives.append("-" + _group(_unsigned_range(mag_low, mag_high)))
    if high is None or high >= 0:
        alternatives.extend(_unsigned_range(0 if low is None else max(low, 0), high))
    if (low is None or low <= 0) and (high is None or high >= 0):
        alternatives.append("-0")
    return _group(alternatives)


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
    "literal_number_pattern",
    "INTEGER_FRACTION",
    "INTEGER_PATTERN",
    "NUMBER_PATTERN",
    "integer_bounds",
    "integer_range_pattern",
    "numeric_interval_empty",
]
