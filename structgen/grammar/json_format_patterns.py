"""Grammars for string ``format`` values, over the JSON spellings of their characters.

One job: for each format whose valid strings (as ``jsonschema``'s format checker decides them)
are a regular language, build IR for the JSON string bodies (between the quotes) whose decoded
value is valid: ``"2024-02-29"`` (and, on request, ``"\\u0032024-02-29"``).

Formats are written below as regexes over *decoded* characters (an ASCII subset of Python ``re``
syntax); ``format_body`` parses them and turns every character class into the class of its JSON
spellings: by default the one ``json.dumps`` writes (every valid value has it, so this restricts
spellings, not values), with ``escapes=True`` every one (plain, ``\\uXXXX`` in either case, and
the short escapes such as ``\\/``), at 2 to 8 times the automaton states.

What each checker accepts, and how the grammar matches it (jsonschema 4.x, ``_format.py``):
    * ``date``: ``\\d{4}-\\d{2}-\\d{2}`` (ASCII) that ``date.fromisoformat`` reads: years 0001
      to 9999, month lengths, February 29 in leap years (divisible by 4, centuries only by 400).
    * ``date-time``: ``rfc3339_validator`` on the upper-cased string (so ``t``/``z`` as well as
      ``T``/``Z``): the date as above (``calendar.monthrange``, year 0 refused), hours 00-23,
      seconds 00-59 (no leap second), any number of fraction digits, ``Z`` or ``+hh:mm``; its
      regex ends with ``$``, so one trailing line feed is accepted too.
    * ``time``: ``date-time`` of ``1970-01-01T`` + the value.
    * ``email``/``idn-email``: any string containing ``@``.
    * ``ipv4``: ``ipaddress.IPv4Address``: four decimal octets 0-255, no leading zeros.
    * ``ipv6``: ``ipaddress.IPv6Address`` without a scope (``%eth0`` is refused by jsonschema,
      an empty scope by ipaddress): RFC 4291 text with 1-4 hex digits per group, one ``::``
      standing for one or more groups, an IPv4 tail.
    * ``uri``/``uri-reference``: ``rfc3987``'s RFC 3986 regex (built from that library's own
      pattern text, so the language is the same), plus a trailing line feed (``$``).
    * ``duration``: ``isoduration.parse_duration`` and a last character in ``DMYWHMS``: an
      optional sign, ``P``, values before ``Y M D W`` (in that order, ``W`` only after zero
      values) and after ``T``, ``H M S``; values are decimals with ``.`` or ``,``; characters
      between the last date value and ``T`` are ignored by the parser and accepted here too.

Deliberate simplifications (each rejects valid strings; documented in the report notes):
    * ``uri``/``uri-reference`` with ``escapes=True``: IP literals (``http://[::1]/``) in plain
      spelling only (their IPv6 grammar with every escape of every hex digit would be most of
      the automaton).
    * ``uuid``: the canonical ``8-4-4-4-12`` hex form only (``uuid.UUID`` also reads braces,
      ``urn:uuid:`` prefixes and ``int()`` spellings such as ``0x``, ``_`` and Unicode digits).
    * ``duration``: values without exponents (``P1e2D`` is valid: an exponent of a million
      digits makes ``decimal`` overflow and jsonschema raise, so its value is not regular).
    * ``hostname``: ``fqdn`` accepts labels of up to 63 characters and names of up to 253; both
      counts at once need a two-counter automaton far larger than any practical regex, so the
      grammar bounds the labels by how many there are: up to 4 labels of up to 62 characters,
      up to 8 of up to 30, up to 16 of up to 14, up to 32 of up to 6 (every name so built has at
      most 251 characters before an optional final dot). ASCII letters, digits and ``-`` only
      (``fqdn`` also reads Unicode digits and three case-folding letters), plain spelling.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from structgen.grammar.ir import EMPTY, Expr, Regex, Repeat, alt, seq
from structgen.grammar.json_strings import STRING_CHAR

_SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r"}
_SHORT_ESCAPES["\t"] = "t"
_CLASS_SPECIAL = set("\\]^-[")


def _class(chars: list[str]) -> str:
    """A regex class of ``chars`` (sorted ASCII), with ranges for runs."""
    codes = sorted({ord(c) for c in chars})
    out, i = [], 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1

        def one(code: int) -> str:
            ch = chr(code)
            if ch in _CLASS_SPECIAL:
                return "\\" + ch
            if code < 0x20 or code == 0x7F:
                return f"\\x{code:02x}"
            return ch

        out.append(
            one(codes[i]) if j == i else one(codes[i]) + ("-" if j > i + 1 else "") + one(codes[j])
        )
        i = j + 1
    body = "".join(out)
    return body if len(codes) == 1 and len(body) == 1 and body.isalnum() else f"[{body}]"


@functools.lru_cache(maxsize=1024)
def spelled_class(chars: frozenset[str], plain: bool = False) -> str:
    """Regex for one JSON string character, in any spelling (plain; ``\\u00XX`` with either
    case of hex letters; ``\\"``, ``\\\\``, ``\\/``, ``\\b``...), whose value is in ``chars``
    (ASCII). With ``plain``, only the spelling ``json.dumps`` writes (the character itself, or
    its short escape ``\\n``, ``\\"``, ``\\\\``; ``\\u00XX`` for other control characters)."""
    if any(ord(c) > 0x7F for c in chars):
        raise ValueError("only ASCII characters are supported")
    options = []
    raw = [c for c in chars if ord(c) >= 0x20 and c not in '"\\']
    if raw:
        options.append(_class(raw))
    if plain:
        written = [json.dumps(c)[1:-1] for c in sorted(chars) if c not in raw]
        options.extend(re.escape(w) for w in written)
    else:
        short = [esc for c, esc in _SHORT_ESCAPES.items() if c in chars]
        if short:
            options.append("\\\\" + _class(short))
        by_high: dict[str, list[str]] = {}
        for c in chars:
            high, low = f"{ord(c):02x}"
            by_high.setdefault(high, []).append(low)
        hexes = []
        for high, lows in sorted(by_high.items()):
            letters = [x for x in lows if x.isalpha()] + [x.upper() for x in lows if x.isalpha()]
            hexes.append(high + _class([x for x in lows if x.isdigit()] + letters))
        if hexes:
            options.append(
                "\\\\u00" + (hexes[0] if len(hexes) == 1 else "(?:" + "|".join(hexes) + ")")
            )
    if len(options) == 1:
        return options[0]
    return "(?:" + "|".join(options) + ")"


# --- a regex over decoded characters, to IR over their JSON spellings ---------------------------


@dataclass(frozen=True)
class FormatBody:
    """A format's JSON string body (between the quotes) as IR, with its lengths in characters.

    Attributes:
        expr: the IR.
        min_length: the fewest characters (code points) a valid string has.
        max_length: the most (``None``: unbounded).
        notes: the documented restrictions that apply (empty: exact).
        subset: some valid *values* are left out (not only spellings of them).
    """

    expr: Expr
    min_length: int
    max_length: int | None
    notes: tuple[str, ...] = ()
    subset: bool = False


_ANY = Regex(f"(?:{STRING_CHAR})")
_MERGE_UP_TO = 600
"""Regexes of adjacent characters are merged up to about this many pattern characters."""


class _Parser:
    """Recursive descent over the supported syntax: literals, ``\\x`` escapes, classes
    ``[...]`` (no negation), ``.`` (any character), groups ``(...)``/``(?:...)``, ``|``, and the
    quantifiers ``? * + {m} {m,} {m,n} {,n}``; and ``(?p:...)``, a group whose characters take
    their plain spelling only. Returns (IR, min length, max length)."""

    def __init__(self, pattern: str, plain: bool) -> None:
        self.p, self.i, self.plain = pattern, 0, plain

    def parse(self) -> tuple[Expr, int, int | None]:
        out = self._alternation()
        if self.i != len(self.p):
            raise ValueError(f"unexpected {self.p[self.i]!r} at {self.i} in {self.p!r}")
        return out

    def _peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def _alternation(self) -> tuple[Expr, int, int | None]:
        branches = [self._concat()]
        while self._peek() == "|":
            self.i += 1
            branches.append(self._concat())
        if len(branches) == 1:
            return branches[0]
        lows = [b[1] for b in branches]
        highs = [b[2] for b in branches]
        high = None if any(h is None for h in highs) else max(highs)  # type: ignore[type-var]
        return alt(*(b[0] for b in branches)), min(lows), high

    def _concat(self) -> tuple[Expr, int, int | None]:
        items: list[Expr] = []
        low, high = 0, 0
        while self._peek() not in ("", "|", ")"):
            expr, a, b = self._quantified()
            if (
                isinstance(expr, Regex)
                and items
                and isinstance(items[-1], Regex)
                and len(items[-1].pattern) < _MERGE_UP_TO
            ):
                # adjacent characters as one regex: fewer IR nodes for every walk over the
                # grammar (each merged pattern is parsed once per process and its NFA reused)
                items[-1] = Regex(items[-1].pattern + expr.pattern)
            else:
                items.append(expr)
            low += a
            high = None if high is None or b is None else high + b  # type: ignore[assignment]
        return (seq(*items) if items else EMPTY), low, high

    def _quantified(self) -> tuple[Expr, int, int | None]:
        expr, low, high = self._atom()
        c = self._peek()
        if c and c in "?*+":
            self.i += 1
            lo, hi = {"?": (0, 1), "*": (0, None), "+": (1, None)}[c]
        elif c == "{":
            end = self.p.index("}", self.i)
            body = self.p[self.i + 1 : end]
            self.i = end + 1
            if "," in body:
                a, b = body.split(",")
                lo, hi = int(a or 0), (int(b) if b else None)
            else:
                lo = hi = int(body)
        else:
            return expr, low, high
        total_high = None if hi is None or high is None else high * hi
        if isinstance(expr, Regex) and len(expr.pattern) < _MERGE_UP_TO:
            count = f"{{{lo},{'' if hi is None else hi}}}"
            return Regex(f"(?:{expr.pattern}){count}"), low * lo, total_high
        return Repeat(expr, lo, hi), low * lo, total_high

    def _atom(self) -> tuple[Expr, int, int | None]:
        c = self._peek()
        if c == "(":
            plain = self.plain
            if self.p.startswith("(?p:", self.i):  # ours: plain spellings inside
                self.plain = True
                self.i += 4
            else:
                self.i += 3 if self.p.startswith("(?:", self.i) else 1
            inner = self._alternation()
            self.plain = plain
            if self._peek() != ")":
                raise ValueError(f"unbalanced group in {self.p!r}")
            self.i += 1
            return inner
        if c == "[":
            return self._chars(self._class_set()), 1, 1
        if c == ".":
            self.i += 1
            return _ANY, 1, 1
        if c == "\\":
            self.i += 2
            return self._chars({self._escaped(self.p[self.i - 1])}), 1, 1
        self.i += 1
        return self._chars({c}), 1, 1

    @staticmethod
    def _escaped(ch: str) -> str:
        return {"n": "\n", "t": "\t", "r": "\r", "f": "\f"}.get(ch, ch)

    def _class_set(self) -> set[str]:
        self.i += 1  # '['
        chars: set[str] = set()
        prev: str | None = None
        while self._peek() != "]":
            c = self.p[self.i]
            if c == "\\":
                c = self._escaped(self.p[self.i + 1])
                self.i += 2
            elif c == "-" and prev is not None and self.p[self.i + 1] != "]":
                hi = self.p[self.i + 1]
                if hi == "\\":
                    hi = self._escaped(self.p[self.i + 2])
                    self.i += 1
                self.i += 2
                chars.update(chr(x) for x in range(ord(prev), ord(hi) + 1))
                prev = None
                continue
            else:
                self.i += 1
            chars.add(c)
            prev = c
        self.i += 1
        return chars

    def _chars(self, chars: set[str]) -> Expr:
        return Regex(spelled_class(frozenset(chars), self.plain))


def format_body(
    pattern: str, *, plain: bool = False, notes: tuple[str, ...] = (), subset: bool = False
) -> FormatBody:
    """The IR for JSON string bodies whose decoded value ``re.fullmatch``-es ``pattern`` (the
    syntax ``_Parser`` reads), over every spelling (``plain``: plain spellings only)."""
    expr, low, high = _Parser(pattern, plain).parse()
    return FormatBody(expr, low, high, notes, subset)


# --- the formats -------------------------------------------------------------------------------

_YEAR = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_FOUR = "(?:0[48]|[2468][048]|[13579][26])"  # two-digit multiples of 4, 00 excluded
_LEAP_YEAR = f"(?:[0-9]{{2}}{_FOUR}|{_FOUR}00)"  # 0000 is not a year
DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
"""``date``, over decoded characters."""

_HOUR = "(?:[01][0-9]|2[0-3])"
TIME = f"{_HOUR}:[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?(?:[Zz]|[+\\-]{_HOUR}:[0-5][0-9])\\n?"
"""``time`` (``rfc3339_validator`` through ``1970-01-01T``; the line feed: its ``$``)."""

DATE_TIME = f"{DATE}[Tt]{TIME}"
"""``date-time``."""

EMAIL = ".*@.*"
"""``email``, ``idn-email``: jsonschema checks only for an ``@``."""

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4 = f"(?:{_OCTET}\\.){{3}}{_OCTET}"
"""``ipv4``: ``ipaddress`` octets, no leading zeros."""

_H16 = "[0-9A-Fa-f]{1,4}"
_LS32 = f"(?:{_H16}:{_H16}|{IPV4})"
IPV6 = (
    f"(?:(?:{_H16}:){{6}}{_LS32}"
    f"|::(?:{_H16}:){{5}}{_LS32}"
    f"|(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}"
    f"|(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}"
    f"|(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}"
    f"|(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}"
    f"|(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}"
    f"|(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}"
    f"|(?:(?:{_H16}:){{0,6}}{_H16})?::)"
)
"""``ipv6``: RFC 4291 text form (``ipaddress`` reads the same set), no scope."""

_HEX = "[0-9a-fA-F]"
UUID = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
"""``uuid``, canonical form only."""

_HOST_BUDGET = 251
"""Characters of labels and inner dots, so that a final dot and a line feed still fit 253."""
_HOST_BUCKETS = ((1, 4), (5, 8), (9, 16), (17, 32))
"""Label counts; each bucket's labels get the longest length that keeps names in budget."""


def _hostname() -> str:
    alnum, inner = "[A-Za-z0-9]", "[A-Za-z0-9\\-]"
    parts = []
    for first, last in _HOST_BUCKETS:
        cap = min(63, (_HOST_BUDGET - (last - 1)) // last)
        label = alnum if cap == 1 else f"{alnum}(?:{inner}{{0,{cap - 2}}}{alnum})?"
        parts.append(f"{label}(?:\\.{label}){{{first - 1},{last - 1}}}")
    return "(?:" + "|".join(parts) + ")\\.?\\n?"


HOSTNAME = _hostname()
"""``hostname`` (a subset: see the module docstring)."""

_SIGN = "[+\\-]?"
_NUM = f"{_SIGN}(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)"
_ZERO = f"{_SIGN}(?:0+(?:[.,]0*)?|[.,]0+)"
_STRAY = "[+\\-0-9.,eE]*"


def _designators(letters: str, value: str) -> str:
    """One or more of ``letters`` in order, each after a value."""
    options = []
    for i, first in enumerate(letters):
        rest = "".join(f"(?:{value}{c})?" for c in letters[i + 1 :])
        options.append(f"{value}{first}{rest}")
    return "(?:" + "|".join(options) + ")"


_DATE_PART = f"(?:{_designators('YMD', _NUM)}|(?:{_ZERO}Y)?(?:{_ZERO}M)?(?:{_ZERO}D)?{_NUM}W)"
_TIME_PART = "T" + _designators("HMS", _NUM)
DURATION = f"{_SIGN}P(?:{_DATE_PART}(?:{_STRAY}{_TIME_PART})?|(?:{_STRAY},{_STRAY})?{_TIME_PART})"
"""``duration`` (values without exponents; see the module docstring)."""


def _rfc3987(rule: str) -> str:
    """rfc3987's own pattern for ``rule`` (RFC 3986 ABNF as a regex), in our syntax."""
    import re

    import rfc3987

    # IP literals (``[v6::addr]``) in plain spelling: the IPv6 grammar is most of the pattern
    # and would be most of the automaton with every escape spelling of every hex digit
    pattern = rfc3987.format_patterns(IP_literal=lambda p: f"(?p:{p})")[rule]
    return re.sub(r"\{,(\d+)\}", r"{0,\1}", pattern) + "\\n?"


_PLAIN = "characters spelled as json.dumps writes them"
_RESTRICTIONS = {
    "uuid": "uuid: canonical 8-4-4-4-12 form only",
    "duration": "duration: values without exponents",
    "hostname": "hostname: ASCII, plain spelling, label lengths bounded by label count",
    "uri": "uri: IP literals in plain spelling",
    "uri-reference": "uri-reference: IP literals in plain spelling",
}


@functools.cache
def format_grammar(name: str, escapes: bool = False) -> FormatBody | None:
    """The grammar of format ``name`` (``None``: not a regular format built here).

    Args:
        name: the format.
        escapes: accept every JSON spelling of each character (``\\u0032024-02-29``); by
            default only the one ``json.dumps`` writes. Every valid value has that spelling,
            so this restricts spellings, not values; the escapes cost 2 to 8 times the
            automaton states (``date``: 798 against 127), which the lowering does not pay.
    """
    notes = () if escapes else (_PLAIN,)
    if name in ("uri", "uri-reference"):
        rule = "URI" if name == "uri" else "URI_reference"
        extra = (_RESTRICTIONS[name],) if escapes else ()
        return format_body(_rfc3987(rule), plain=not escapes, notes=notes + extra)
    pattern = {
        "date": DATE,
        "time": TIME,
        "date-time": DATE_TIME,
        "email": EMAIL,
        "idn-email": EMAIL,
        "ipv4": IPV4,
        "ipv6": IPV6,
        "uuid": UUID,
        "duration": DURATION,
        "hostname": HOSTNAME,
    }.get(name)
    if pattern is None:
        return None
    note = _RESTRICTIONS.get(name)
    plain = name == "hostname" or not escapes
    return format_body(
        pattern, plain=plain, notes=notes + ((note,) if note else ()), subset=note is not None
    )


CHECKER_FUNCTIONS = {
    "date": "is_date",
    "time": "is_time",
    "date-time": "is_datetime",
    "email": "is_email",
    "idn-email": "is_email",
    "ipv4": "is_ipv4",
    "ipv6": "is_ipv6",
    "uuid": "is_uuid",
    "duration": "is_duration",
    "hostname": "is_host_name",
    "uri": "is_uri",
    "uri-reference": "is_uri_reference",
}
"""The jsonschema checker each grammar reproduces (``jsonschema._format``'s function names); a
format is lowered to its grammar only where the document's checker is that function."""


def grammar_matches_checker(name: str, check: object) -> bool:
    """Whether ``check`` (a format checker's function) is the one ``format_grammar(name)``
    reproduces (for ``uri``: the ``rfc3987`` flavour)."""
    import jsonschema._format as fmt

    expected = CHECKER_FUNCTIONS.get(name)
    if expected is None or check is not getattr(fmt, expected, None):
        return False
    return name not in ("uri", "uri-reference") or hasattr(fmt, "rfc3987")


__all__ = [
    "CHECKER_FUNCTIONS",
    "DATE",
    "DATE_TIME",
    "DURATION",
    "EMAIL",
    "FormatBody",
    "HOSTNAME",
    "IPV4",
    "IPV6",
    "TIME",
    "UUID",
    "format_body",
    "format_grammar",
    "grammar_matches_checker",
    "spelled_class",
]
