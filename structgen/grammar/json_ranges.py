"""Exact grammars for JSON numbers in a range and for multiples, judged by ``json.loads``.

One job: turn ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum`` (and
``multipleOf``) into IR whose language is the set of JSON number spellings that ``json.loads``
parses into a value ``jsonschema`` accepts.

How values are judged (what "exact" means here):
    * An integer spelling (``-?(0|[1-9][0-9]*)``) parses to a Python ``int``, compared exactly with
      the bounds. (``json.loads`` refuses integers of more than 4,300 digits: see
      ``MAX_INTEGER_DIGITS`` for why that is not enforced.)
    * A spelling with a fraction or an exponent parses to the correctly rounded ``float``
      (overflowing to ``inf``), which is compared exactly with the bounds. Rounding is monotone,
      so the set of real values whose float satisfies the bounds is an interval whose ends are
      midpoints between adjacent doubles (``maximum: 1`` admits ``1.0000000000000001``, which
      reads as ``1.0``; ``minimum: 0`` admits ``-0.000...0001`` with 324 zeros, which reads as
      ``-0.0``). Those midpoints have finite decimal expansions (up to 1,075 digits), and the
      grammar compares spellings against them digit by digit, exactly.

Deliberate simplifications (each rejects some valid spellings, never accepts an invalid one):
    * Exponent spellings are accepted only with a normalised mantissa, ``[1-9](\\.[0-9]+)?`` or
      zero (``0(\\.0+)?``), with any exponent spelling (``e``/``E``, sign, leading zeros):
      ``1.5e3`` and ``0e0``, not ``15e2`` or ``0.15e4``. Whether ``d...d.d...d e N`` is in range
      compares the count of digits with the exponent's value, which no finite automaton does;
      with one leading digit it is a comparison per exponent.
    * Spellings agreeing with a rounding boundary in ``MAX_CHAIN_DIGITS`` significant digits
      (see there).
    * ``multipleOf``: see ``number_language``.

Construction: every comparison is a chain along the digits of a bound ("equal so far", then
leave below, above or stop), built as IR one level per digit (see ``MAX_CHAIN_DIGITS``), so the
size is linear in the number of digits and the few distinct regexes recur.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from structgen.grammar.ir import EMPTY, Expr, Regex, alt, lit, seq

MAX_INTEGER_DIGITS: int | None = None
"""A cap on the digits of integer spellings (``None``: none). ``json.loads`` refuses integers of
more than 4,300 digits (``sys.int_info``'s default limit), but a cap of 4,300 unrolls into as
many automaton states (about 40 ms more to compile each bounded number), and the unbounded
``integer``/``number`` patterns accept such spellings too; so like them, none is applied."""

_BLOCK = 32
"""Digits per nested block of a chain (the IR's nesting depth; builders recurse on it)."""

_FIXED_BLOCK = 16
"""Digits per block of a fixed-length (integer) comparison."""

MAX_INTEGER_CHAIN_DIGITS = 400
"""Integer bounds are compared over this many digits (a float bound has at most 309)."""

MAX_CHAIN_DIGITS = 24
"""A spelling is compared with a bound over this many digits past the bound's leading zeros (at
most ``MAX_CHAIN_TOTAL`` in all); one that agrees with the bound in all of them is rejected.
Only rounding boundaries are that long (midpoints between doubles: 53 digits past the point for
1.0, 1,075 for the one next to 0.0), and a double's shortest spelling has at most 17 significant
digits, so this rejects only spellings that agree with such a midpoint in 24 significant digits
(``1.000000000000000111022302`` followed by more digits under ``maximum: 1``), or in 48 digits
past the point (``-0.`` followed by 48 zeros under ``minimum: 0``: it reads as ``-0.0``). Each
digit costs automaton states at compile time, and ``minimum: 0`` is the commonest bound."""

MAX_CHAIN_TOTAL = 48
"""The most digits a fraction is compared over (see ``MAX_CHAIN_DIGITS``)."""


def _cap(bound: str) -> int:
    """How many digits of ``bound`` a chain compares (see ``MAX_CHAIN_DIGITS``)."""
    leading = len(bound) - len(bound.lstrip("0"))
    return min(leading + MAX_CHAIN_DIGITS, MAX_CHAIN_TOTAL)


_OVERFLOW = Fraction(2) ** 1024 - Fraction(2) ** 970
"""Reals at or beyond this magnitude read as ``inf`` (the midpoint past the largest double)."""


# --- regex pieces ------------------------------------------------------------------------------


def _digits(lo: int, hi: int) -> str:
    """A class of one decimal digit ``lo..hi``."""
    if lo == hi:
        return str(lo)
    if lo == 0 and hi == 9:
        return "[0-9]"
    return f"[{lo}-{hi}]"


def _any(count: int) -> str:
    if count == 0:
        return ""
    return "[0-9]" if count == 1 else f"[0-9]{{{count}}}"


def _group(options: Sequence[str]) -> str:
    """Alternation of regex ``options`` ("" among them makes the group optional)."""
    rest = [o for o in options if o]
    if not rest:
        return ""
    body = rest[0] if len(rest) == 1 else "(?:" + "|".join(rest) + ")"
    if len(rest) < len(options):
        return (f"(?:{body})" if len(rest) == 1 and len(body) > 1 else body) + "?"
    return body


def _regex(pattern: str | None) -> Expr | None:
    if pattern is None:
        return None
    return Regex(pattern) if pattern else EMPTY


def _alt(*items: Expr | None) -> Expr | None:
    present = [i for i in items if i is not None]
    return alt(*present) if present else None


def _seq(*items: Expr | None) -> Expr | None:
    if any(i is None for i in items):
        return None
    return seq(*items)  # type: ignore[arg-type]


def _chain(
    bound: str, exits: Sequence[Sequence[str]], final: Expr | None, cap: int = MAX_CHAIN_DIGITS
) -> Expr | None:
    """The strings ``bound[:i] + x`` for ``x`` in ``exits[i]`` (regexes; ``""``: stop there),
    and ``bound + y`` for ``y`` in ``final`` (``None``: none). ``None`` if there are none.

    Built as IR: within a block of ``_BLOCK`` digits one nested level per digit (the few
    distinct exit regexes are parsed once and their NFA fragments reused); the blocks side by
    side, each after the literal digits before it, so the IR nests at most ``_BLOCK`` deep.
    Past ``cap`` digits the chain is cut: strings that agree with all of them are left out (a
    subset: sound, and every prefix left in still completes)."""
    if len(bound) > cap:
        bound, exits, final = bound[:cap], exits[:cap], None
    branches: list[Expr] = []
    for start in range(0, len(bound), _BLOCK):
        end = min(start + _BLOCK, len(bound))
        level: Expr | None = None
        run = ""  # digits with no exits, waiting to prefix ``level``
        i = end
        while i > start:
            i -= 1
            if not exits[i]:
                run = bound[i] + run
                continue
            if list(exits[i]) == [""]:
                # a run of one digit where the string may only stop (``-0.000...``): one
                # counted regex instead of one level per digit
                first = i
                while first > start and list(exits[first - 1]) == [""]:
                    if bound[first - 1] != bound[i]:
                        break
                    first -= 1
                digit, count = bound[i], i - first + 1
                stops: Expr = EMPTY if count == 1 else Regex(f"{digit}{{0,{count - 1}}}")
                options = [stops]
                if level is not None:
                    options.append(seq(lit(digit * count + run), level))
                level, run, i = alt(*options), "", first
                continue
            options = [Regex(x) if x else EMPTY for x in exits[i]]
            if level is not None:
                options.append(seq(lit(bound[i] + run), level))
            level, run = alt(*options), ""
        if level is not None:
            branches.append(seq(lit(bound[:start] + run), level))
    if final is not None:
        branches.append(seq(lit(bound), final))
    return alt(*branches) if branches else None


# --- exact decimals ----------------------------------------------------------------------------


def decimal_parts(value: Fraction) -> tuple[int, str]:
    """``(integer part, fraction digits without trailing zeros)`` of a non-negative ``value``
    with a finite decimal expansion (denominator ``2^a 5^b``)."""
    if value < 0:
        raise ValueError("negative value")
    den = value.denominator
    twos = (den & -den).bit_length() - 1
    fives, rest = 0, den >> twos
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest != 1:
        raise ValueError(f"{value} has no finite decimal expansion")
    places = max(twos, fives)
    scaled = value.numerator * 10**places // den
    whole, frac = divmod(scaled, 10**places)
    digits = str(frac).rjust(places, "0").rstrip("0") if places else ""
    return whole, digits


def decimal_text(value: Fraction) -> str:
    """The plain decimal spelling of a finite-expansion ``value`` (``-0.5``, ``3``)."""
    whole, frac = decimal_parts(abs(value))
    sign = "-" if value < 0 else ""
    return sign + str(whole) + ("." + frac if frac else "")


def floor_log10(value: Fraction) -> int:
    """``floor(log10(value))`` for a positive rational, exactly."""
    estimate = len(str(value.numerator)) - len(str(value.denominator))
    while Fraction(10) ** estimate > value:
        estimate -= 1
    while Fraction(10) ** (estimate + 1) <= value:
        estimate += 1
    return estimate


# --- digit-string comparisons ------------------------------------------------------------------


def _frac_at_most(bound: str, closed: bool, nonempty: bool) -> Expr | None:
    """Fraction digits ``f`` (compared as values: trailing zeros do not count) with
    ``f <= bound`` (``<`` unless ``closed``); ``bound`` has no trailing zeros."""
    cap = _cap(bound)
    if len(bound) > cap:  # cut (see ``_chain``): the equal path is dropped anyway
        bound = bound[:cap]
        return _chain(bound, _at_most_exits(bound, nonempty), None, cap)
    final = None
    if closed:
        final = Regex("0+" if nonempty and not bound else "0*")
    return _chain(bound, _at_most_exits(bound, nonempty), final, cap)


def _at_most_exits(bound: str, nonempty: bool) -> list[list[str]]:
    """Leave below at each digit, or stop early (a proper prefix is smaller)."""
    exits = []
    for i, ch in enumerate(bound):
        options = [] if ch == "0" else [_digits(0, int(ch) - 1) + "[0-9]*"]
        if i > 0 or not nonempty:
            options.append("")
        exits.append(options)
    return exits


def _frac_at_least(bound: str, closed: bool, nonempty: bool) -> Expr | None:
    """Fraction digits ``f`` with ``f >= bound`` (``>`` unless ``closed``), as values."""
    cap = _cap(bound)
    bound_cut = bound[:cap]
    exits = [[] if ch == "9" else [_digits(int(ch) + 1, 9) + "[0-9]*"] for ch in bound_cut]
    if len(bound) > cap:
        return _chain(bound_cut, exits, None, cap)
    if closed:
        final = Regex("[0-9]+" if nonempty and not bound else "[0-9]*")
    else:
        final = Regex("0*[1-9][0-9]*")
    return _chain(bound, exits, final, cap)


def _frac_between(
    low: str, low_closed: bool, high: str, high_closed: bool, nonempty: bool
) -> Expr | None:
    """Fraction digits ``f`` with ``low <= f <= high`` as values (``low < high``)."""
    width = max(len(low), len(high))
    lp, hp = low.ljust(width, "0"), high.ljust(width, "0")
    split = next(i for i in range(width) if lp[i] != hp[i])
    prefix = lp[:split]
    exits: list[list[str]] = []
    for j in range(split):
        # stopping after prefix[:j] gives exactly ``low`` iff low has no digits after j
        ok = len(low) <= j and low_closed and (j > 0 or not nonempty)
        exits.append([""] if ok else [])
    d_low, d_high = int(lp[split]), int(hp[split])
    stop_here = len(low) <= split and low_closed and (split > 0 or not nonempty)
    branches: list[Expr | None] = [EMPTY if stop_here else None]
    branches.append(
        _seq(lit(str(d_low)), _frac_at_least(low[split + 1 :], low_closed, nonempty=False))
    )
    if d_low + 1 <= d_high - 1:
        branches.append(Regex(_digits(d_low + 1, d_high - 1) + "[0-9]*"))
    branches.append(
        _seq(lit(str(d_high)), _frac_at_most(high[split + 1 :], high_closed, nonempty=False))
    )
    return _chain(prefix, exits, _alt(*branches), _cap(prefix))


def _fixed_chain(bound: str, below: bool) -> Expr | None:
    """Digit strings of ``len(bound)`` digits that are ``<= bound`` (``below``) or ``>= bound``.

    A deviation at digit ``i`` is followed by exactly ``n - i - 1`` free digits; in tree-shaped
    IR those tails cannot be shared, so blocks of ``_FIXED_BLOCK`` digits each share one tail
    after the block: O(n^1.5) NFA states (about 6k for a 309-digit bound) instead of n^2 / 2.
    Blocks nest (IR depth about ``n / _FIXED_BLOCK + _FIXED_BLOCK``). Bounds longer than
    ``MAX_INTEGER_CHAIN_DIGITS`` are cut (strings agreeing with all those digits are left out)."""
    n = len(bound)
    # past the last digit that is not 9 (``<=``) or not 0 (``>=``), anything goes
    free = "9" if below else "0"
    k = len(bound.rstrip(free))
    cut = min(k, MAX_INTEGER_CHAIN_DIGITS)
    level: Expr | None = (_regex(_any(n - k)) or EMPTY) if cut == k else None
    for start in reversed(range(0, cut, _FIXED_BLOCK)):
        end = min(start + _FIXED_BLOCK, cut)
        exits = []
        for i in range(start, end):
            d = int(bound[i])
            if below and d > 0:
                exits.append([_digits(0, d - 1) + _any(end - i - 1)])
            elif not below and d < 9:
                exits.append([_digits(d + 1, 9) + _any(end - i - 1)])
            else:
                exits.append([])
        inner = _chain(bound[start:end], exits, None, cap=_FIXED_BLOCK)
        deviate = None if inner is None else seq(inner, _regex(_any(n - end)) or EMPTY)
        tight = None if level is None else seq(lit(bound[start:end]), level)
        level = _alt(deviate, tight)
    return level


def _fixed_at_most(bound: str) -> Expr | None:
    """Digit strings of ``len(bound)`` digits that are ``<= bound``."""
    return _fixed_chain(bound, below=True)


def _fixed_at_least(bound: str) -> Expr | None:
    """Digit strings of ``len(bound)`` digits that are ``>= bound``."""
    return _fixed_chain(bound, below=False)


def _fixed_between(low: str, high: str) -> Expr | None:
    """Digit strings ``s`` with ``len(s) == len(low) == len(high)`` and ``low <= s <= high``."""
    if low == high:
        return lit(low)
    split = next(i for i in range(len(low)) if low[i] != high[i])
    rest = len(low) - split - 1
    d_low, d_high = int(low[split]), int(high[split])
    low_rest, high_rest = low[split + 1 :], high[split + 1 :]
    branches: list[Expr | None] = []
    first, last = d_low + 1, d_high - 1  # digits after which anything goes
    if low_rest.strip("0"):
        branches.append(_seq(lit(str(d_low)), _fixed_at_least(low_rest)))
    else:
        first = d_low
    if high_rest.strip("9"):
        branches.append(_seq(lit(str(d_high)), _fixed_at_most(high_rest)))
    else:
        last = d_high
    if first <= last:
        branches.append(Regex(_digits(first, last) + _any(rest)))
    return _seq(lit(low[:split]), _alt(*branches))


def natural_range(low: int, high: int | None, max_digits: int | None = None) -> Expr | None:
    """Canonical spellings (no leading zeros) of the integers ``low <= n <= high`` (``low >= 0``;
    ``high`` ``None``: unbounded), with at most ``max_digits`` digits if given."""
    if high is not None and low > high:
        return None
    low_len = len(str(low))
    last = len(str(high)) if high is not None else max_digits  # None: no longest length
    if last is not None and max_digits is not None:
        last = min(last, max_digits)
    if last is not None and low_len > last:
        return None
    parts: list[Expr | None] = []
    full: list[int] = []  # lengths whose every number is in range
    for length in sorted({low_len} | ({last} if last is not None else set())):
        smallest = 0 if length == 1 else 10 ** (length - 1)
        largest = 10**length - 1
        a = max(low, smallest)
        b = largest if high is None else min(high, largest)
        if a > b:
            continue
        if a == smallest and b == largest:
            if length == 1:
                parts.append(Regex("[0-9]"))
            else:
                full.append(length)
        else:
            parts.append(_fixed_between(str(a), str(b)))
    if last is not None:
        full.extend(range(low_len + 1, last))  # lengths strictly between: all full
    if full:  # contiguous lengths: one bounded repeat
        lo, hi = min(full) - 1, max(full) - 1
        parts.append(Regex("[1-9]" + (_any(lo) if lo == hi else f"[0-9]{{{lo},{hi}}}")))
    if last is None:
        parts.append(Regex(f"[1-9][0-9]{{{low_len},}}"))
    return _alt(*parts)


# --- the preimage of the bounds under float rounding ---------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A real interval; ``None`` ends are unbounded."""

    low: Fraction | None
    low_closed: bool
    high: Fraction | None
    high_closed: bool

    def contains(self, value: Fraction) -> bool:
        if self.low is not None and (value < self.low or value == self.low and not self.low_closed):
            return False
        return not (
            self.high is not None
            and (value > self.high or value == self.high and not self.high_closed)
        )

    def is_empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        return self.low > self.high or (
            self.low == self.high and not (self.low_closed and self.high_closed)
        )


@dataclass(frozen=True)
class Bounds:
    """The four JSON Schema bounds, as exact rationals (``None``: absent)."""

    minimum: Fraction | None = None
    maximum: Fraction | None = None
    exclusive_minimum: Fraction | None = None
    exclusive_maximum: Fraction | None = None

    @classmethod
    def of(
        cls,
        minimum: int | float | None = None,
        maximum: int | float | None = None,
        exclusive_minimum: int | float | None = None,
        exclusive_maximum: int | float | None = None,
    ) -> Bounds:
        """From schema values (finite ints or floats)."""
        values = (minimum, maximum, exclusive_minimum, exclusive_maximum)
        for v in values:
            if v is not None and isinstance(v, float) and not math.isfinite(v):
                raise ValueError("bound is not finite")
        return cls(*(None if v is None else Fraction(v) for v in values))

    def admits(self, value: Fraction) -> bool:
        """Whether an exactly known value (an int, or a float's value) satisfies the bounds."""
        return (
            (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
            and (self.exclusive_minimum is None or value > self.exclusive_minimum)
            and (self.exclusive_maximum is None or value < self.exclusive_maximum)
        )

    def integers(self) -> tuple[int | None, int | None]:
        """The inclusive integer range the bounds leave (``None``: unbounded)."""
        low = high = None
        if self.minimum is not None:
            low = math.ceil(self.minimum)
        if self.exclusive_minimum is not None:
            c = math.floor(self.exclusive_minimum) + 1
            low = c if low is None else max(low, c)
        if self.maximum is not None:
            high = math.floor(self.maximum)
        if self.exclusive_maximum is not None:
            c = math.ceil(self.exclusive_maximum) - 1
            high = c if high is None else min(high, c)
        return low, high


def _admits_double(bounds: Bounds, f: float) -> bool:
    """Whether the double ``f`` (possibly infinite) satisfies ``bounds``, as Python compares."""
    if math.isinf(f):
        lows = (bounds.minimum, bounds.exclusive_minimum)
        highs = (bounds.maximum, bounds.exclusive_maximum)
        # inf is above every finite bound, -inf below
        return all(b is None for b in (highs if f > 0 else lows))
    return bounds.admits(Fraction(f))


def _least_double(bounds: Bounds) -> float:
    """The least double (``inf`` included) the bounds' lower side admits (``-inf`` if none)."""
    lows = [(b, False) for b in (bounds.minimum,) if b is not None]
    lows += [(b, True) for b in (bounds.exclusive_minimum,) if b is not None]
    best = -math.inf
    for b, strict in lows:

        def ok(f: float, b: Fraction = b, strict: bool = strict) -> bool:
            if math.isinf(f):
                return f > 0
            return Fraction(f) > b if strict else Fraction(f) >= b

        try:
            f = float(b)
        except OverflowError:
            f = math.inf if b > 0 else -_MAX_FLOAT
        while not ok(f):
            f = math.nextafter(f, math.inf)
        while True:
            g = math.nextafter(f, -math.inf)
            if g == f or not ok(g):
                break
            f = g
        best = max(best, f)
    return best


def _greatest_double(bounds: Bounds) -> float:
    """The greatest double (``-inf`` included) the upper side admits (``inf`` if none)."""
    mirrored = Bounds(
        minimum=None if bounds.maximum is None else -bounds.maximum,
        exclusive_minimum=None if bounds.exclusive_maximum is None else -bounds.exclusive_maximum,
    )
    return -_least_double(mirrored)


_MAX_FLOAT = 1.7976931348623157e308


def _midpoint_below(f: float) -> Fraction | None:
    """The midpoint between ``f`` and the double below it (``None`` for ``-inf``)."""
    if f == -math.inf:
        return None
    if f == math.inf:
        return _OVERFLOW
    g = math.nextafter(f, -math.inf)
    if g == -math.inf:
        return -_OVERFLOW
    return (Fraction(f) + Fraction(g)) / 2


def float_preimage(bounds: Bounds) -> Interval | None:
    """The reals whose correctly rounded double (``inf`` past the largest) satisfies ``bounds``;
    ``None`` if no double does."""
    f_low, f_high = _least_double(bounds), _greatest_double(bounds)
    if f_low > f_high:
        return None
    low = _midpoint_below(f_low)
    above = _midpoint_below(-f_high)
    high = None if above is None else -above
    # a tie rounds to the even neighbour: whether the midpoint itself is in, float() says
    low_closed = low is not None and _admits_double(bounds, float(decimal_text(low)))
    high_closed = high is not None and _admits_double(bounds, float(decimal_text(high)))
    return Interval(low, low_closed, high, high_closed)


# --- spelling families -------------------------------------------------------------------------


def _fraction_magnitudes(
    low: Fraction, low_closed: bool, high: Fraction | None, high_closed: bool
) -> Expr | None:
    """``(0|[1-9][0-9]*)\\.[0-9]+`` spellings of magnitudes in the interval (``low >= 0``)."""
    li, lf = decimal_parts(low)
    if high is None:
        hi_int, hf = None, ""
    else:
        if high < low or (high == low and not (low_closed and high_closed)):
            return None
        hi_int, hf = decimal_parts(high)
    point = lit(".")
    if hi_int is not None and li == hi_int:
        if lf == hf:
            body = _regex("0+" if not lf else "0*") if low_closed and high_closed else None
            if lf and body is not None:
                body = _seq(lit(lf), body)
            return _seq(lit(str(li)), point, body)
        return _seq(lit(str(li)), point, _frac_between(lf, low_closed, hf, high_closed, True))
    parts = [_seq(lit(str(li)), point, _frac_at_least(lf, low_closed, nonempty=True))]
    middle_high = None if hi_int is None else hi_int - 1
    if middle_high is None or li + 1 <= middle_high:
        parts.append(_seq(natural_range(li + 1, middle_high), Regex(r"\.[0-9]+")))
    if hi_int is not None:
        parts.append(_seq(lit(str(hi_int)), point, _frac_at_most(hf, high_closed, nonempty=True)))
    return _alt(*parts)


def _mantissas(
    low: Fraction, low_closed: bool, high: Fraction | None, high_closed: bool
) -> Expr | None:
    """``[1-9](\\.[0-9]+)?`` spellings of values in the interval intersected with ``[1, 10)``."""
    if low < 1:
        low, low_closed = Fraction(1), True
    if high is None or high >= 10:
        high, high_closed = Fraction(10), False
    if low > high or (low == high and not (low_closed and high_closed)):
        return None
    whole = Interval(low, low_closed, high, high_closed)
    digits = [d for d in range(1, 10) if whole.contains(Fraction(d))]
    fractions = _fraction_magnitudes(low, low_closed, high, high_closed)
    singles = None
    if digits:
        # consecutive runs of single digits
        singles = (
            Regex("[" + "".join(str(d) for d in digits) + "]")
            if len(digits) > 1
            else lit(str(digits[0]))
        )
    return _alt(singles, fractions)


def exponent_range(low: int | None, high: int | None) -> Expr | None:
    """Every JSON spelling (``[eE][+-]?[0-9]+``, leading zeros allowed) of the exponents
    ``low <= e <= high`` (``None``: unbounded)."""
    if low is not None and high is not None and low > high:
        return None
    parts: list[Expr | None] = []
    if high is None or high >= 0:
        nonneg = natural_range(max(low or 0, 0), high)
        parts.append(_seq(Regex(r"\+?0*"), nonneg))
        if low is None or low <= 0:
            parts.append(Regex("-0+"))
    if low is None or low < 0:
        neg_low = 1 if high is None or high >= 0 else -high
        neg_high = None if low is None else -low
        parts.append(_seq(Regex("-0*"), natural_range(neg_low, neg_high)))
    body = _alt(*parts)
    return _seq(Regex("[eE]"), body)


def _exponent_magnitudes(
    low: Fraction, low_closed: bool, high: Fraction | None, high_closed: bool
) -> Expr | None:
    """Normalised exponent spellings ``m[eE]n`` of magnitudes in the interval (``low >= 0``;
    ``low == 0`` means open at zero)."""
    if high is not None and (high < low or high == low and not (low_closed and high_closed)):
        return None
    if high is not None and high <= 0:
        return None
    e_low = None if low == 0 else floor_log10(low)
    e_high = None if high is None else floor_log10(high)
    parts: list[Expr | None] = []

    def mantissa_at(e: int, lo: Fraction, lo_c: bool, hi: Fraction | None, hi_c: bool) -> None:
        scale = Fraction(10) ** e
        m = _mantissas(lo / scale, lo_c, None if hi is None else hi / scale, hi_c)
        parts.append(_seq(m, exponent_range(e, e)))

    if e_low is not None and e_low == e_high:
        mantissa_at(e_low, low, low_closed, high, high_closed)
        return _alt(*parts)
    if e_low is not None:
        mantissa_at(e_low, low, low_closed, None, False)
    if e_high is not None:
        mantissa_at(e_high, Fraction(0), True, high, high_closed)
    inner_low = None if e_low is None else e_low + 1
    inner_high = None if e_high is None else e_high - 1
    if inner_low is None or inner_high is None or inner_low <= inner_high:
        parts.append(_seq(Regex(r"[1-9](?:\.[0-9]+)?"), exponent_range(inner_low, inner_high)))
    return _alt(*parts)


def _signed(
    interval: Interval,
    magnitudes: object,
) -> Expr | None:
    """Positive and negative magnitudes of ``interval`` (zero excluded) via ``magnitudes``."""
    build = magnitudes  # a function (low, low_closed, high, high_closed) -> Expr | None
    parts: list[Expr | None] = []
    # positive values: (0, high] intersected with [low, ...)
    if interval.high is None or interval.high > 0:
        if interval.low is None or interval.low <= 0:
            lo, lo_c = Fraction(0), False
        else:
            lo, lo_c = interval.low, interval.low_closed
        parts.append(build(lo, lo_c, interval.high, interval.high_closed))  # type: ignore[operator]
    # negative values: magnitudes (0, -low] intersected with [-high, ...)
    if interval.low is None or interval.low < 0:
        if interval.high is None or interval.high >= 0:
            lo, lo_c = Fraction(0), False
        else:
            lo, lo_c = -interval.high, interval.high_closed
        hi = None if interval.low is None else -interval.low
        parts.append(_seq(lit("-"), build(lo, lo_c, hi, interval.low_closed)))  # type: ignore[operator]
    return _alt(*parts)


def integer_spellings(low: int | None, high: int | None) -> Expr | None:
    """``-?(0|[1-9][0-9]*)`` spellings of ``low <= n <= high`` that ``json.loads`` reads
    (at most ``MAX_INTEGER_DIGITS`` digits); ``-0`` where 0 is in range."""
    if low is not None and high is not None and low > high:
        return None
    parts: list[Expr | None] = []
    if high is None or high >= 0:
        parts.append(natural_range(max(low or 0, 0), high, MAX_INTEGER_DIGITS))
    if low is None or low < 0:
        mag_low = 1 if high is None or high >= 0 else -high
        mag_high = None if low is None else -low
        parts.append(_seq(lit("-"), natural_range(mag_low, mag_high, MAX_INTEGER_DIGITS)))
        if high is None or high >= 0:
            parts.append(lit("-0"))
    elif low <= 0 and (high is None or high >= 0):
        parts.append(lit("-0"))
    return _alt(*parts)


@functools.lru_cache(maxsize=256)  # pure, and the IR is immutable: schemas repeat their bounds
def number_range_expr(bounds: Bounds, *, exponents: bool = True) -> Expr | None:
    """IR for the JSON number spellings whose ``json.loads`` value satisfies ``bounds`` (see the
    module docstring for the spellings); ``None`` if there are none.

    Args:
        bounds: the schema's bounds.
        exponents: include the normalised exponent spellings (``1.5e3``).
    """
    low, high = bounds.integers()
    parts = [integer_spellings(low, high)]
    interval = float_preimage(bounds)
    if interval is not None:
        if interval.contains(Fraction(0)):
            parts.append(Regex(r"-?0\.0+"))
            if exponents:
                parts.append(seq(Regex(r"-?0(?:\.0+)?"), exponent_range(None, None)))  # type: ignore[arg-type]
        parts.append(_signed(interval, _fraction_magnitudes))
        if exponents:
            parts.append(_signed(interval, _exponent_magnitudes))
    return _alt(*parts)


__all__ = [
    "Bounds",
    "Interval",
    "MAX_INTEGER_DIGITS",
    "decimal_parts",
    "decimal_text",
    "exponent_range",
    "float_preimage",
    "floor_log10",
    "integer_spellings",
    "natural_range",
    "number_range_expr",
]


# --- multipleOf --------------------------------------------------------------------------------

ENUMERATE_UP_TO = 1000
"""A bounded side with at most this many multiples is spelled out value by value."""

_LAST_DIGITS_UP_TO = 200
"""``k`` dividing ``10^t`` is decided by the last ``t`` digits when ``10^t / k`` is at most
this (``k`` in 2, 4, 5, 8, 10, 16, 20, 25, 50, 100, ...)."""

FLOAT_EXACT_DIGITS = 15
"""Integers of at most this many digits are exact as floats (their ``.0`` spellings too)."""


@dataclass(frozen=True)
class NumberLanguage:
    """The IR of a numeric subschema and how it relates to the validator's verdict.

    Attributes:
        expr: the spellings (``None``: no value is valid, or none could be built).
        exact: every spelling is valid; ``False``: a superset whose every prefix still has a
            valid completion (a check must decide on completion).
        notes: spellings left out on purpose (generation restrictions), for the report.
    """

    expr: Expr | None
    exact: bool
    notes: tuple[str, ...] = ()


def _trie(strings: Sequence[str]) -> Expr | None:
    """IR for a finite set of strings, as a trie (depth: the longest string)."""
    if not strings:
        return None
    children: dict[str, list[str]] = {}
    stop = False
    for s in strings:
        if s:
            children.setdefault(s[0], []).append(s[1:])
        else:
            stop = True
    options: list[Expr] = [EMPTY] if stop else []
    leaves = sorted(ch for ch, rest in children.items() if rest == [""])
    if len(leaves) > 1:
        options.append(Regex("[" + "".join(_class_char(c) for c in leaves) + "]"))
    for ch, rest in sorted(children.items()):
        if len(leaves) > 1 and ch in leaves:
            continue
        sub = _trie(sorted(set(rest)))
        options.append(seq(lit(ch), sub) if sub is not None else lit(ch))
    return alt(*options)


def _class_char(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else ch


def _count_multiples(k: int, a: int, b: int) -> int:
    return max(0, b // k - (a + k - 1) // k + 1)


def _multiples_side(k: int, a: int, b: int | None) -> tuple[Expr | None, bool]:
    """Canonical spellings of the multiples of ``k`` in ``[a, b]`` (``a >= 0``; ``b`` ``None``:
    unbounded), and whether that is exact (else: all of ``[a, b]``, a superset)."""
    if b is not None and a > b:
        return None, True
    if b is not None and _count_multiples(k, a, b) <= ENUMERATE_UP_TO:
        first = (a + k - 1) // k * k
        return _trie([str(m) for m in range(first, b + 1, k)]), True
    t = _power_of_ten_multiple(k)
    if t is None:
        return natural_range(a, b, MAX_INTEGER_DIGITS), False
    unit = 10**t
    pads = [str(r).rjust(t, "0") for r in range(0, unit, k)]
    parts: list[Expr | None] = []
    small_high = unit - 1 if b is None else min(b, unit - 1)
    if a <= small_high:
        first = (a + k - 1) // k * k
        parts.append(_trie([str(m) for m in range(first, small_high + 1, k)]))
    start = max(a, unit)
    if b is None or start <= b:
        q_lo, r_lo = divmod(start, unit)
        q_hi, r_hi = (None, None) if b is None else divmod(b, unit)
        if q_hi is not None and q_lo == q_hi:
            parts.append(_seq(lit(str(q_lo)), _trie([p for p in pads if r_lo <= int(p) <= r_hi])))
        else:
            # the first and last quotients join the middle when every residue is allowed there
            inner_lo, inner_hi = q_lo, q_hi
            if r_lo > 0:
                parts.append(_seq(lit(str(q_lo)), _trie([p for p in pads if int(p) >= r_lo])))
                inner_lo += 1
            if q_hi is not None and r_hi is not None and r_hi < int(pads[-1]):
                parts.append(_seq(lit(str(q_hi)), _trie([p for p in pads if int(p) <= r_hi])))
                inner_hi = q_hi - 1
            if inner_hi is None or inner_lo <= inner_hi:
                digits = None if MAX_INTEGER_DIGITS is None else MAX_INTEGER_DIGITS - t
                parts.append(_seq(natural_range(inner_lo, inner_hi, digits), _trie(pads)))
    return _alt(*parts), True


def _power_of_ten_multiple(k: int) -> int | None:
    """The least ``t`` with ``k | 10^t`` if ``10^t / k <= _LAST_DIGITS_UP_TO``, else ``None``."""
    for t in range(0, 40):
        if 10**t % k == 0:
            return t if 10**t // k <= _LAST_DIGITS_UP_TO else None
        if 10**t > k * _LAST_DIGITS_UP_TO:
            return None
    return None


@functools.lru_cache(maxsize=256)
def integer_multiples(k: int, low: int | None, high: int | None) -> tuple[Expr | None, bool]:
    """``-?(0|[1-9][0-9]*)`` spellings of the multiples of ``k >= 1`` in ``[low, high]``
    (``-0`` where 0 is in range), and whether exact (else a prefix-safe superset: a side that is
    unbounded in magnitude can always be completed by more digits; a bounded side with more than
    ``ENUMERATE_UP_TO`` multiples is approximated by its range)."""
    if low is not None and high is not None and low > high:
        return None, True
    parts: list[Expr | None] = []
    exact = True
    if high is None or high >= 0:
        expr, ok = _multiples_side(k, max(low or 0, 0), high)
        parts.append(expr)
        exact &= ok
    if low is None or low < 0:
        mag_low = 1 if high is None or high >= 0 else -high
        expr, ok = _multiples_side(k, mag_low, None if low is None else -low)
        parts.append(_seq(lit("-"), expr))
        exact &= ok
    if (low is None or low <= 0) and (high is None or high >= 0):
        parts.append(lit("-0"))
    return _alt(*parts), exact


def _decimal(value: int | float) -> Fraction:
    """The value a schema number stands for as written (a float by its shortest repr)."""
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def _clamp(low: int | None, high: int | None, cap: int) -> tuple[int, int]:
    return (-cap if low is None else max(low, -cap)), (cap if high is None else min(high, cap))


def number_language(
    bounds: Bounds,
    multiple_of: int | float | None = None,
    *,
    integer: bool = False,
    integral_floats: bool = True,
    verdict: Callable[[str], bool] | None = None,
) -> NumberLanguage:
    """The spellings of a ``number`` (or, with ``integer``, an ``integer``) subschema with these
    bounds and ``multipleOf``.

    * No ``multipleOf``: ``number_range_expr`` (exact but for the exponent restriction); for
      ``integer``, integer spellings (exact) and ``.0+`` after integers of at most
      ``FLOAT_EXACT_DIGITS`` digits where ``integral_floats`` (draft 6+).
    * An integral ``multipleOf`` ``k`` (``5``; ``5.0`` up to ``2**52`` in magnitude, where
      jsonschema's float division still decides divisibility): the integer spellings of the
      multiples, and their ``.0+`` spellings up to ``FLOAT_EXACT_DIGITS`` digits (floats that
      are exact). Exact where ``k`` divides a power of ten (last digits decide) or a bounded
      side has at most ``ENUMERATE_UP_TO`` multiples; otherwise the range, a prefix-safe
      superset on a side unbounded in magnitude (more digits reach a multiple).
    * A fractional ``multipleOf`` (``0.01``): jsonschema divides floats, and ``0.07 / 0.01`` is
      ``7.000000000000001``, so some multiples are invalid. With both bounds and at most
      ``ENUMERATE_UP_TO`` multiples, the plain spellings of the multiples ``verdict`` accepts
      (exact for those spellings); otherwise ``expr`` is ``None`` (the caller keeps a check).

    Args:
        bounds: the four bounds.
        multiple_of: ``multipleOf`` (a positive int or float), or ``None``.
        integer: ``type: integer``.
        integral_floats: whether the dialect counts ``1.0`` as an integer.
        verdict: ``text -> bool``, the validator's verdict on a JSON number text.
    """
    low, high = bounds.integers()
    cap = 10**FLOAT_EXACT_DIGITS - 1
    point_zero = integral_floats or not integer
    if multiple_of is None:
        if not integer:
            return NumberLanguage(number_range_expr(bounds), True, ("exponent",))
        parts = [integer_spellings(low, high)]
        if point_zero:
            parts.append(_seq(integer_spellings(*_clamp(low, high, cap)), Regex(r"\.0+")))
        return NumberLanguage(_alt(*parts), True)
    k = _decimal(multiple_of)
    if k <= 0:
        raise ValueError("multipleOf must be positive")
    notes: list[str] = []
    if k.denominator == 1 and (not isinstance(multiple_of, float) or k <= 2**52):
        if isinstance(multiple_of, float):
            low, high = _clamp(low, high, 2**52)
            notes.append("float-multiple-range")
        whole, exact = integer_multiples(int(k), low, high)
        parts = [whole]
        if point_zero and k <= 2**53:
            small, _ = integer_multiples(int(k), *_clamp(low, high, cap))
            parts.append(_seq(small, Regex(r"\.0+")))
        if not integer:
            notes.append("integer-multiples")
        return NumberLanguage(_alt(*parts), exact, tuple(notes))
    lows = [b for b in (bounds.minimum, bounds.exclusive_minimum) if b is not None]
    highs = [b for b in (bounds.maximum, bounds.exclusive_maximum) if b is not None]
    if not lows or not highs or verdict is None:
        return NumberLanguage(None, False, ("fraction-multiples-check",))
    first, last = math.floor(max(lows) / k), math.ceil(min(highs) / k)
    if last - first + 1 > ENUMERATE_UP_TO:
        return NumberLanguage(None, False, ("fraction-multiples-check",))
    ints, floats_int, fracs = [], [], []
    for n in range(first, last + 1):
        value = n * k
        text = decimal_text(value)
        if value.denominator != 1:
            if not integer and verdict(text):
                fracs.append(text)
            continue
        for spelling in [text, "-0"] if value == 0 else [text]:
            if verdict(spelling):
                ints.append(spelling)
            if (
                point_zero
                and len(spelling.lstrip("-")) <= FLOAT_EXACT_DIGITS
                and verdict(spelling + ".0")
            ):
                floats_int.append(spelling)
    expr = _alt(
        _trie(ints),
        _seq(_trie(floats_int), Regex(r"\.0+")) if floats_int else None,
        _seq(_trie(fracs), Regex("0*")) if fracs else None,
    )
    return NumberLanguage(expr, True, ("fraction-multiples",))


__all__ += [
    "ENUMERATE_UP_TO",
    "NumberLanguage",
    "integer_multiples",
    "number_language",
]
