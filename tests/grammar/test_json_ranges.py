"""Number bounds and ``multipleOf`` in the grammar (``structgen.grammar.json_ranges``).

The oracle is ``jsonschema`` on the value ``json.loads`` reads from the text, so float rounding
counts: under ``maximum: 1`` the text ``1.0000000000000001`` is valid (it reads as ``1.0``).
Every test asserts soundness (an accepted text is valid) on every candidate, and equality on the
spellings the grammar covers by design (``FAMILY``: no exponent with more than one leading digit;
at most ``MAX_CHAIN_DIGITS`` digits agreeing with a rounding boundary). The builders are run as
lazy DFAs straight from the IR, and end to end through ``Grammar.from_json_schema``.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from fractions import Fraction
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import structgen as sg
from structgen.automata.lazy_dfa import LazyByteDFA
from structgen.automata.nfa import grammar_to_nfa
from structgen.grammar.ir import Expr, Grammar
from structgen.grammar.json_ranges import (
    Bounds,
    decimal_text,
    float_preimage,
    integer_multiples,
    natural_range,
    number_language,
    number_range_expr,
)

NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
FAMILY = re.compile(
    r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?|-?(?:[1-9](?:\.[0-9]+)?|0(?:\.0+)?)[eE][+-]?[0-9]+"
)
"""The spellings the bounded-number grammar covers (normalised exponents)."""

VOCAB = sg.Vocabulary.byte_level([])
KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _dfa(expr: Expr | None) -> LazyByteDFA | None:
    if expr is None:
        return None
    nfa, start = grammar_to_nfa(Grammar.from_expr(expr))
    return LazyByteDFA(nfa, start)


def _accepts(dfa: LazyByteDFA | None, text: str) -> bool:
    if dfa is None:
        return False
    state = dfa.step(dfa.initial, text.encode())
    return state != 0 and dfa.accept_list[state]


def _oracle(schema: dict[str, Any], text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return bool(jsonschema.Draft202012Validator(schema).is_valid(value))


def _bounds(schema: dict[str, Any]) -> Bounds:
    return Bounds.of(*(schema.get(k) for k in KEYS))


def _near(value: Any) -> set[str]:
    """Spellings at, just inside and just outside ``value``: exact decimals with digits added or
    dropped, neighbouring doubles in repr and exponent forms, signs, trailing zeros."""
    out: set[str] = set()
    q = Fraction(value)
    for delta in (0, 1, -1, Fraction(1, 10**3), Fraction(1, 10**16), Fraction(1, 10**17)):
        for v in (q + delta, q - delta):
            t = decimal_text(v)
            out.update({t, t + ("000" if "." in t else ".0"), t + ("1" if "." in t else ".01")})
            if "." in t and len(t) > 3:
                out.add(t[:-1].rstrip("."))
    if abs(q) < 10**308:
        f = float(q)
        for g in (f, math.nextafter(f, math.inf), math.nextafter(f, -math.inf)):
            r = repr(g)
            out.update({r, f"{g:.17e}", f"{g:.3e}", f"{g:.0e}", f"{g:.25f}", f"{g:.1f}"})
            out.update({r.upper(), r.replace("e-", "e-0"), r.replace("e+", "e")})
    out |= {"-" + s for s in out if not s.startswith("-")}
    return {s for s in out if NUMBER.fullmatch(s) and len(s) <= 90}


GENERIC = ["0", "-0", "0.0", "-0.0", "0e0", "-0E-0", "1", "1.0", "1e0", "1.00e-0", "10e-1",
           "0.1e1", "0.999999", "1.0000", "0.5", "5e-1", "1e-400", "-1e-400", "1e400",
           "-1e400", "1.7976931348623157e308", "1.7976931348623159e308", "5e-324", "2e-324",
           "2.5e-324", "123456789012345678901234567890", "1e22", "9007199254740993",
           "9007199254740993.0", "-2.5", "2.25", "0.3", "0.30000000000000004"]  # fmt: skip

BOUND_CASES = [
    {"minimum": 0, "maximum": 1},
    {"minimum": 0},
    {"exclusiveMinimum": 0},
    {"maximum": 99999999999.99, "minimum": 0},
    {"minimum": -90, "maximum": 90},
    {"minimum": 0.1},
    {"exclusiveMaximum": 1e308},
    {"minimum": -1.5, "exclusiveMaximum": 2.25},
    {"minimum": 5e-324},
    {"maximum": -1e-300},
    {"minimum": 0.5, "maximum": 0.5},
    {"minimum": 2**53 + 1},
    {"maximum": 10**400},
    {"exclusiveMinimum": 0.1, "exclusiveMaximum": 0.3},
    {"minimum": 1, "exclusiveMinimum": 1},
    {"maximum": 1.7976931348623157e308, "minimum": -1.7976931348623157e308},
]


@pytest.mark.parametrize("schema", BOUND_CASES, ids=lambda s: json.dumps(s)[:60])
def test_bounds_match_json_loads_and_jsonschema(schema: dict[str, Any]) -> None:
    dfa = _dfa(number_range_expr(_bounds(schema)))
    candidates = set(GENERIC)
    for v in [*schema.values(), 0, 1, -1, 0.5, 1e-300, 5e-324, 1e308, 2**53]:
        candidates |= _near(v)
    rng = random.Random(0)
    for _ in range(300):
        exp = rng.choice([0, 0, 1, 2, 17, 300, 308, 309, -5, -20, -320, -330])
        value = rng.random() * 10 * 10.0 ** min(exp, 300)
        candidates.add(f"{value:.{rng.randint(0, 20)}e}")
        candidates.add(str(rng.randint(-(10**6), 10**6)))
        candidates.add(f"{rng.randint(0, 9)}.{rng.getrandbits(60)}")
    oracle_schema = {"type": "number", **schema}
    for text in sorted(c for c in candidates if NUMBER.fullmatch(c)):
        accepted, valid = _accepts(dfa, text), _oracle(oracle_schema, text)
        assert not accepted or valid, ("false accept", text)
        if FAMILY.fullmatch(text):
            assert accepted == valid, ("false reject", text)


@pytest.mark.parametrize(
    "schema",
    [{"minimum": 0, "maximum": 1}, {"exclusiveMinimum": 0.5, "maximum": 5}, {"minimum": -1}],
    ids=str,
)
def test_short_spellings_exhaustively(schema: dict[str, Any]) -> None:
    """Every string of up to five characters over a number alphabet."""
    dfa = _dfa(number_range_expr(_bounds(schema)))
    oracle_schema = {"type": "number", **schema}
    for n in range(1, 6):
        for chars in itertools.product("-0159.e", repeat=n):
            text = "".join(chars)
            if NUMBER.fullmatch(text):
                accepted, valid = _accepts(dfa, text), _oracle(oracle_schema, text)
                assert not accepted or valid, text
                assert accepted == valid or not FAMILY.fullmatch(text), text


_BOUND_VALUES = st.one_of(
    st.sampled_from([0, 1, -1, 0.5, 0.1, 100, 1e-7, 2.5, 1e20, -3.75, 9007199254740993]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30),
    st.integers(-(10**20), 10**20),
)
_TEXTS = st.builds(
    lambda sign, whole, frac, exp: sign + whole + frac + exp,
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,22}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,25}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[eE][+-]?0?[0-9]{1,3}", fullmatch=True)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.sets(st.sampled_from(KEYS), min_size=1, max_size=2),
    values=st.lists(_BOUND_VALUES, min_size=2, max_size=2),
    texts=st.lists(_TEXTS, min_size=20, max_size=20),
)
def test_random_bounds_and_spellings(keys: set[str], values: list[Any], texts: list[str]) -> None:
    schema = dict(zip(sorted(keys), values, strict=False))
    if float_preimage(_bounds(schema)) is None and _bounds(schema).integers() == (None, None):
        return
    lows = [schema[k] for k in ("minimum", "exclusiveMinimum") if k in schema]
    highs = [schema[k] for k in ("maximum", "exclusiveMaximum") if k in schema]
    if lows and highs and max(lows) > min(highs):
        return
    dfa = _dfa(number_range_expr(_bounds(schema)))
    oracle_schema = {"type": "number", **schema}
    for text in texts + sorted(_near(values[0]))[:40]:
        accepted, valid = _accepts(dfa, text), _oracle(oracle_schema, text)
        assert not accepted or valid, (schema, text)
        if FAMILY.fullmatch(text):
            assert accepted == valid, (schema, text)


def test_large_bounds_build_small_automata() -> None:
    """+-1.7976931348623157e308 (309-digit bounds): comparisons cost O(n^1.5) NFA states."""
    top = 1.7976931348623157e308
    expr = number_range_expr(Bounds.of(minimum=-top, maximum=top))
    nfa, _ = grammar_to_nfa(Grammar.from_expr(expr))
    assert nfa.num_states < 60_000
    dfa = _dfa(expr)
    exact = str(int(top))
    for text in [exact, str(int(top) + 1), "-" + exact, "1" + "0" * 308, "2" + "0" * 308, "1e308"]:
        assert _accepts(dfa, text) == _oracle({"minimum": -top, "maximum": top}, text), text


def test_natural_range_matches_integers() -> None:
    dfa = _dfa(natural_range(37, 12345))
    for n in range(0, 13000, 7):
        assert _accepts(dfa, str(n)) == (37 <= n <= 12345), n
    assert not _accepts(dfa, "037")


# --- multipleOf --------------------------------------------------------------------------------

_INTS = [*range(-260, 261), 10**6, 10**6 + 7, 7 * 10**15, 7 * 10**15 + 1, 10**20, -(10**20)]


@pytest.mark.parametrize(
    "k, low, high",
    [(5, None, None), (2, 0, None), (25, -100, 1000), (7, 0, 30), (7, None, None), (3, 100, None),
     (11, -50, 50), (8, None, -16), (1000, None, None), (7, 0, 10**9)],
)  # fmt: skip
def test_integer_multiples(k: int, low: int | None, high: int | None) -> None:
    expr, exact = integer_multiples(k, low, high)
    dfa = _dfa(expr)
    for n in _INTS:
        valid = n % k == 0 and (low is None or n >= low) and (high is None or n <= high)
        if exact:
            assert _accepts(dfa, str(n)) == valid, n
        elif valid:
            assert _accepts(dfa, str(n)), n
        if _accepts(dfa, str(n)) and not valid:
            # a superset: a side unbounded in magnitude, where more digits reach a multiple
            assert any(int(str(n) + str(d).zfill(2)) % k == 0 for d in range(100)), n
    if low is not None and low <= 0 and (high is None or high >= 0):
        assert _accepts(dfa, "-0")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "number", "multipleOf": 5},
        {"type": "number", "multipleOf": 0.01, "minimum": 0, "maximum": 1},
        {"type": "number", "multipleOf": 0.25, "minimum": -3, "exclusiveMaximum": 3},
        {"type": "integer", "multipleOf": 2.5, "minimum": 15, "maximum": 100},
        {"type": "number", "multipleOf": 1.0, "minimum": -10, "maximum": 10},
        {"type": "number", "multipleOf": 3, "minimum": 0, "maximum": 100},
        {"type": "integer", "multipleOf": 4},
    ],
    ids=lambda s: json.dumps(s)[:60],
)
def test_multiples_by_the_validator(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)

    def verdict(text: str) -> bool:
        return bool(validator.is_valid(json.loads(text)))

    lang = number_language(
        _bounds(schema),
        schema["multipleOf"],
        integer=schema["type"] == "integer",
        verdict=verdict,
    )
    assert lang.exact and lang.expr is not None
    dfa = _dfa(lang.expr)
    candidates = {"0", "-0", "0.0", "-0.0", "1e1", "5e0"}
    for n in range(-1200, 1201):
        text = decimal_text(Fraction(n, 100))
        candidates |= {text, text + "0", str(n), f"{n}.0", f"{n}.00"}
    for text in sorted(candidates):
        accepted = _accepts(dfa, text)
        valid = _oracle(schema, text)
        assert not accepted or valid, text
        if "e" not in text and (schema["type"] == "number" or "." not in text.rstrip("0")):
            assert accepted == valid, text


def test_fractional_multiple_unbounded_stays_a_check() -> None:
    lang = number_language(Bounds.of(minimum=0), 0.01, verdict=lambda t: True)
    assert lang.expr is None and not lang.exact


# --- end to end --------------------------------------------------------------------------------


def _compiled(schema: Any) -> sg.CompiledGrammar:
    return sg.compile(sg.Grammar.from_json_schema(schema), VOCAB)


def _live(compiled: sg.CompiledGrammar, text: str) -> bool:
    """Whether ``text`` is a prefix the matcher still accepts."""
    data = text.encode()
    return compiled.matcher().consume_tokens(list(data)) == len(data)


def test_issue_score_in_unit_interval_has_no_dead_end() -> None:
    schema = {"type": "object", "properties": {"score": {"type": "number", "minimum": 0,
              "maximum": 1}}, "required": ["score"]}  # fmt: skip
    grammar = sg.Grammar.from_json_schema(schema)
    statuses = {k.keyword: k.status for k in grammar.report}
    assert statuses["minimum"] == statuses["maximum"] == "grammar"
    compiled = sg.compile(grammar, VOCAB)
    # the issue's run-away value: every prefix still has a valid completion (8.5e-1), and the
    # grammar alone decides (no check), so the model is never walked into a dead end
    assert not _live(compiled, '{"score": 8.5}') and _live(compiled, '{"score": 8.5000000000')
    assert _accepts_text(compiled, '{"score": 8.5e-1}')
    assert not _live(compiled, '{"score": 10')  # refused at the second digit
    assert not _live(compiled, '{"score": 1.1}') and not _live(compiled, '{"score": 2}')
    assert _accepts_text(compiled, '{"score": 1.0000000000000001}')  # reads as 1.0


def _accepts_text(compiled: sg.CompiledGrammar, text: str) -> bool:
    m = compiled.matcher()
    return m.consume_tokens(list(text.encode())) == len(text.encode()) and m.is_accepting()


@pytest.mark.parametrize(
    "schema, texts",
    [
        ({"type": "number", "exclusiveMinimum": 0}, ["0", "-0", "1e-400", "5e-324", "0.1", "-1"]),
        ({"type": "integer", "multipleOf": 3, "maximum": 10}, ["9", "10", "-3", "12", "9.0", "-0"]),
        ({"type": "number", "multipleOf": 0.01, "minimum": 0, "maximum": 1},
         ["0.07", "0.47", "0.5", "1", "1.00", "0.005"]),
        ({"type": ["number", "null"], "minimum": 0, "maximum": 100}, ["null", "100", "100.5"]),
        ({"multipleOf": 2, "minimum": 3}, ['"x"', "4", "3", "2", "4.0", "4e0"]),
    ],
    ids=lambda v: json.dumps(v)[:50] if isinstance(v, dict) else "",
)  # fmt: skip
def test_schemas_end_to_end(schema: Any, texts: list[str]) -> None:
    compiled = _compiled(schema)
    for text in texts:
        data = text.encode()
        m = compiled.matcher()
        accepted = m.consume_tokens(list(data)) == len(data) and m.is_accepting()
        valid = _oracle(schema, text)
        assert not accepted or valid, text
        if "e" not in text:
            assert accepted == valid, text
