"""Regex front end: a regex pattern to a one-rule Grammar.

The pattern is matched in full (like ``re.fullmatch``). Syntax is what interegular parses: Python
``re`` syntax without look-around, back-references or anchors inside the pattern. ``\\d``, ``\\w``
and ``\\s`` are ASCII classes. Errors are raised here, at grammar construction, not at compile.
"""

from __future__ import annotations

import interegular

from structgen.errors import InvalidGrammar, UnsupportedFeature
from structgen.grammar.ir import Grammar, Regex

_LOOKAROUND = ("(?=", "(?!", "(?<=", "(?<!")


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


def check_regex(pattern: str, *, location: str | None = None) -> None:
    """Raise InvalidGrammar or UnsupportedFeature if ``pattern`` cannot become an automaton."""
    if not isinstance(pattern, str):
        raise InvalidGrammar(
            f"regex must be a string, got {type(pattern).__name__}", location=location
        )
    lookarounds, _ = _scan(pattern)
    if lookarounds:
        raise UnsupportedFeature(
            f"regex look-around at offset {lookarounds[0]} in {pattern!r} is not supported",
            keyword="regex",
            location=location,
            hint="rewrite the pattern without (?=, (?!, (?<= or (?<!",
        )
    try:
        interegular.parse_pattern(pattern).to_fsm()
    except interegular.patterns.Unsupported as exc:
        raise UnsupportedFeature(
            f"regex construct not supported in {pattern!r}: {exc}",
            keyword="regex",
            location=location,
            hint="look-around, back-references and inner anchors cannot be compiled exactly",
        ) from exc
    except Exception as exc:  # interegular uses several exception types for syntax errors
        raise InvalidGrammar(
            f"invalid regex {pattern!r}: {exc}", keyword="regex", location=location
        ) from exc


def regex_grammar(pattern: str) -> Grammar:
    """A Grammar accepting exactly the strings ``pattern`` fully matches."""
    body = strip_anchors(pattern) if isinstance(pattern, str) else pattern
    check_regex(body)
    return Grammar.from_expr(Regex(body), notes=(f"regex {pattern!r}",))


__all__ = ["check_regex", "regex_grammar", "strip_anchors"]
