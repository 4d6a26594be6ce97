"""Regex front end: a regex pattern to a one-rule Grammar, and the parsed form the automata use.

The pattern is matched in full (like ``re.fullmatch``). Syntax is what interegular parses: Python
``re`` syntax without look-around, back-references or anchors inside the pattern. ``\\d``, ``\\w``
and ``\\s`` are ASCII classes. Errors are raised here, at grammar construction, not at compile.

Only interegular's *parser* is used: ``parse_regex`` turns its parse tree into a small tree of
code-point classes, concatenations, alternations and counted repeats (``RegexNode``), from which
``structgen.automata.nfa`` builds byte NFAs under the compile limits. Parsing is linear in the
pattern's length, so ``a{1000000}`` costs nothing here; its size is paid (and bounded) at compile
time. (interegular's own ``to_fsm`` expands counted repeats eagerly and determinises: seconds for
``a{5000}``, unbounded for ``a{1000000}``.)
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import interegular
from interegular.patterns import REFlags
from interegular.utils.simple_parser import NoMatch, SimpleParser

from structgen.errors import InvalidGrammar, UnsupportedFeature
from structgen.grammar.ir import Grammar, Regex

_LOOKAROUND = ("(?=", "(?!", "(?<=", "(?<!")
MAX_CODEPOINT = 0x10FFFF

# The parsed form: ("c", ranges) a class of code points (sorted, disjoint, inclusive ranges);
# ("s", items) concatenation; ("a", items) alternation; ("r", item, min, max) repetition
# (max None: unbounded).
RegexNode = tuple[Any, ...]


def _scan(pattern: str) -> tuple[list[int], bool]:
    """Positions of look-around groups outside classes/escapes, and whether a class is open."""
    found: list[int] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]" or pattern[i + 1 : i + 3] == "^]":
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif pattern.startswith(_LOOKAROUND, i):
            found.append(i)
        i += 1
    return found, in_class


def strip_anchors(pattern: str) -> str:
    """Drop a leading ``^`` and a trailing unescaped ``$``: no-ops under full matching."""
    if pattern.startswith("^"):
        pattern = pattern[1:]
    if pattern.endswith("$"):
        backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
        if backslashes % 2 == 0:
            pattern = pattern[:-1]
    return pattern


def _syntax_error(pattern: str, location: str | None, detail: str = "") -> InvalidGrammar:
    """InvalidGrammar saying what is wrong where: Python's ``re`` message when it has one."""
    try:
        re.compile(pattern)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        return InvalidGrammar(
            f"invalid regex {pattern!r}: {exc.msg}{where}", keyword="regex", location=location
        )
    except (RecursionError, OverflowError):
        pass
    return InvalidGrammar(
        f"invalid regex {pattern!r}: {detail or 'structgen cannot parse it'}",
        keyword="regex",
        location=location,
        hint="structgen reads Python re syntax without look-around or back-references",
    )


def _parse_error_position(pattern: str) -> int | None:
    """Where interegular's parser gives up (its furthest position), if it says."""
    parser = interegular.patterns._ParsePattern(pattern)
    try:
        SimpleParser.parse(parser)
    except NoMatch as exc:
        return int(exc.index)
    except Exception:  # noqa: BLE001 - only a position for a message is wanted
        return None
    return None


def check_regex(
    pattern: str, *, location: str | None = None, case_insensitive: bool = False
) -> None:
    """Raise InvalidGrammar or UnsupportedFeature if ``pattern`` cannot become an automaton.

    Linear in the length of the pattern (nothing is expanded or determinised here).
    """
    parse_regex(pattern, case_insensitive, location=location)


def parse_regex(
    pattern: str, case_insensitive: bool = False, *, location: str | None = None
) -> RegexNode:
    """The parsed form of ``pattern`` (matched in full), as ``RegexNode`` tuples.

    Raises:
        InvalidGrammar: a syntax error (with Python ``re``'s message and position when it has
            one), or repeat bounds ``{m,n}`` with ``n < m``.
        UnsupportedFeature: look-around, back-references, conditionals, inner anchors, ``\\b``,
            unicode property escapes, unsupported flags, or nesting too deep to parse.
    """
    if not isinstance(pattern, str):
        raise InvalidGrammar(
            f"regex must be a string, got {type(pattern).__name__}", location=location
        )
    try:
        return _parse_cached(pattern, bool(case_insensitive))
    except (InvalidGrammar, UnsupportedFeature) as exc:
        if location is None:
            raise
        raise type(exc)(exc.message, keyword=exc.keyword, location=location, hint=exc.hint) from exc


@lru_cache(maxsize=4096)
def _parse_cached(pattern: str, case_insensitive: bool) -> RegexNode:
    lookarounds, _ = _scan(pattern)
    if lookarounds:
        raise UnsupportedFeature(
            f"regex look-around at offset {lookarounds[0]} in {pattern!r} is not supported",
            keyword="regex",
            hint="rewrite the pattern without (?=, (?!, (?<= or (?<!",
        )
    source = f"(?i:{pattern})" if case_insensitive else pattern
    try:
        parsed = interegular.parse_pattern(source)
    except interegular.patterns.Unsupported as exc:
        raise UnsupportedFeature(
            f"regex construct not supported in {pattern!r}: {exc}",
            keyword="regex",
            hint="look-around, back-references and inner anchors cannot be compiled exactly",
        ) from exc
    except RecursionError:
        if _group_depth(pattern) < _DEEP_GROUPS:
            raise  # the caller's stack was already deep: not this pattern's fault
        raise UnsupportedFeature(
            f"regex {pattern[:40]!r}... nests groups too deeply to parse",
            keyword="regex",
            hint="flatten the nested groups",
        ) from None
    except Exception as exc:  # interegular uses several exception types for syntax errors
        position = _parse_error_position(source)
        detail = f"cannot parse it at position {position}" if position is not None else ""
        raise _syntax_error(pattern, None, detail) from exc
    try:
        return _Converter(pattern).convert(parsed, REFlags(0))
    except RecursionError:
        if _group_depth(pattern) < _DEEP_GROUPS:
            raise
        raise UnsupportedFeature(
            f"regex {pattern[:40]!r}... nests groups too deeply",
            keyword="regex",
            hint="flatten the nested groups",
        ) from None


_DEEP_GROUPS = 50


def _group_depth(pattern: str) -> int:
    """The deepest nesting of parentheses in ``pattern`` (escapes and classes skipped)."""
    depth = deepest = 0
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
        i += 1
    return deepest


class _Converter:
    """interegular's parse tree -> RegexNode, with its flag semantics (``i``, ``s``; ``m`` makes
    a character class unsupported, as in interegular's ``to_fsm``)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def convert(self, node: Any, flags: REFlags) -> RegexNode:
        pats = interegular.patterns
        if isinstance(node, pats.Pattern):
            flags = pats._combine_flags(flags, node.added_flags, node.removed_flags)
            items = tuple(self.convert(o, flags) for o in node.options)
            return items[0] if len(items) == 1 else ("a", items)
        if isinstance(node, pats._Concatenation):
            parts = []
            for part in node.parts:
                if isinstance(part, pats._NonCapturing):
                    raise UnsupportedFeature(
                        f"regex look-around in {self.pattern!r} is not supported",
                        keyword="regex",
                        hint="rewrite the pattern without (?=, (?!, (?<= or (?<!",
                    )
                parts.append(self.convert(part, flags))
            return parts[0] if len(parts) == 1 else ("s", tuple(parts))
        if isinstance(node, pats._Repeated):
            if node.max is not None and node.max < node.min:
                raise _syntax_error(
                    self.pattern, None, f"repeat bounds {{{node.min},{node.max}}}: max < min"
                )
            return ("r", self.convert(node.base, flags), node.min, node.max)
        if isinstance(node, pats._CharGroup):
            return ("c", self._char_group(node, flags))
        if node is pats._DOT:
            if flags & REFlags.SINGLE_LINE:
                return ("c", ((0, MAX_CODEPOINT),))
            return ("c", ((0, 9), (11, MAX_CODEPOINT)))
        if node is pats._EMPTY:
            return ("s", ())
        raise UnsupportedFeature(  # pragma: no cover - interegular has no other node types
            f"regex construct {type(node).__name__} in {self.pattern!r} is not supported",
            keyword="regex",
        )

    def _char_group(self, group: Any, flags: REFlags) -> tuple[tuple[int, int], ...]:
        if flags & ~(REFlags.CASE_INSENSITIVE | REFlags.SINGLE_LINE):
            raise UnsupportedFeature(
                f"regex construct not supported in {self.pattern!r}: {flags}",
                keyword="regex",
                hint="the m (multiline) flag has no meaning under full matching; drop it",
            )
        chars = group.chars
        if flags & REFlags.CASE_INSENSITIVE:
            chars = {*(c.lower() for c in chars), *(c.upper() for c in chars)}
        # case mapping can give several characters ("ß".upper() == "SS"): interegular keeps such
        # a string as a symbol that no single character matches
        points = sorted({ord(c) for c in chars if len(c) == 1})
        ranges = _to_ranges(points)
        if group.negated:
            ranges = _complement(ranges)
        return tuple(ranges)


def _to_ranges(points: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for cp in points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= MAX_CODEPOINT:
        out.append((nxt, MAX_CODEPOINT))
    return out


def regex_grammar(pattern: str) -> Grammar:
    """A Grammar accepting exactly the strings ``pattern`` fully matches."""
    body = strip_anchors(pattern) if isinstance(pattern, str) else pattern
    check_regex(body)
    return Grammar.from_expr(Regex(body), notes=(f"regex {pattern!r}",))


__all__ = ["RegexNode", "check_regex", "parse_regex", "regex_grammar", "strip_anchors"]
