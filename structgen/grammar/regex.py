"""Regex front end: a regex pattern to a one-rule Grammar.

The pattern is matched in full (like ``re.fullmatch``). Syntax is what interegular parses: Python
``re`` syntax without look-around, back-references or anchors inside the pattern. ``\\d``, ``\\w``
and ``\\s`` are ASCII classes. Errors are raised here, at grammar construction, not at compile.
"""

from __future__ import annotations

import interegular

from structgen.errors import InvalidGrammar, UnsupportedFeature
from structgen.grammar.ir import Grammar, Regex


def check_regex(pattern: str, *, location: str | None = None) -> None:
    """Raise InvalidGrammar or UnsupportedFeature if ``pattern`` cannot become an automaton."""
    if not isinstance(pattern, str):
        raise InvalidGrammar(
            f"regex must be a string, got {type(pattern).__name__}", location=location
        )
    try:
        interegular.parse_pattern(pattern)
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
    check_regex(pattern)
    return Grammar.from_expr(Regex(pattern), notes=(f"regex {pattern!r}",))


__all__ = ["check_regex", "regex_grammar"]
