"""Integers with a ``.0+`` fraction (draft 6+): accepted exactly up to 2**53 in magnitude, where
``json.loads`` gives back the same value; the spelled-out pattern equals the range pattern."""

from __future__ import annotations

import json
import re

import jsonschema

from structgen.grammar.json_numbers import (
    _FRACTION_MAGNITUDE_PATTERN,
    FRACTION_MAGNITUDE,
    integer_pattern,
    integer_range_pattern,
)


def test_spelled_out_magnitude_pattern_is_the_range_pattern() -> None:
    ranged = integer_range_pattern(0, FRACTION_MAGNITUDE)
    assert ranged is not None
    for n in [0, 7, 10**15 - 1, 10**15, 8999999999999999, 9007199254740991, 2**53, 2**53 + 1,
              9007199254740999, 10**16, 9100000000000000]:  # fmt: skip
        assert bool(re.fullmatch(_FRACTION_MAGNITUDE_PATTERN, str(n))) == bool(
            re.fullmatch(ranged, str(n))
        ), n


def test_integer_fraction_spellings_follow_json_loads() -> None:
    pattern = integer_pattern(fraction=True)
    for n in [0, 1, -1000000000000000, 10**15, -(2**53), 2**53, 2**53 + 1, -(2**53) - 1, 10**17]:
        text = f"{n}.0"
        exact = float(json.loads(text)) == n
        expected = exact and jsonschema.Draft7Validator({"type": "integer"}).is_valid(
            json.loads(text)
        )
        assert bool(re.fullmatch(pattern, text)) == (expected and abs(n) <= 2**53), text
        assert re.fullmatch(pattern, str(n))  # the integer spelling itself, always
