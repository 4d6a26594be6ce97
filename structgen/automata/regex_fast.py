"""A fast parser for simple regexes, giving exactly the tree ``grammar.regex.parse_regex`` gives.

The JSON front end generates many small regexes (a key that is none of the declared names, a
string body with escapes) that interegular's general parser reads in milliseconds each: it
expands every character class into a set of characters. This parser covers the common subset
and reads them in microseconds; for anything else (``.``, anchors, look-around, ``\\d``-style
classes, flags, lazy quantifiers, unusual escapes, syntax errors) it returns None and the caller
uses ``parse_regex``, so what it accepts it parses identically (tests compare the trees).

Subset: literal characters; escapes of punctuation, ``\\n \\r \\t \\f \\v``, ``\\xHH``;
classes ``[...]``/``[^...]`` of those with ranges; groups ``(...)``, ``(?:...)``;
``|``; one greedy quantifier per atom: ``? * + {n} {n,} {n,m}``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from structgen.automata.utf8 import complement_ranges

_PUNCT = frozenset('\\"/[](){}|?*+.^$-')
_CONTROL = {"n": 10, "r": 13, "t": 9, "f": 12, "v": 11}
_HEX = frozenset("0123456789abcdefABCDEF")
_NOT_LITERAL = frozenset("\\[](){}|?*+.^$")


class _Bail(Exception):
    """Outside the subset: the caller uses the general parser."""


# A character class's text (candidate end: the first unescaped "]"), and the classes parsed so
# far by their exact text: generated regexes repeat a few long classes ([0-9a-fA-F],
# [123456789aAbBcCdDeEfF], ...). An entry is only ever the text the parser itself consumed,
# and what it reads depends on that text alone, so a hit is the parse it would make again.
_CLASS_TEXT = re.compile(r"\[\^?(?:\\.|[^\]\\])*\]", re.DOTALL)
_CLASSES: dict[str, tuple[tuple[int, int], ...]] = {}
_MAX_CLASSES = 4096


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.i = 0
        self.n = len(pattern)

    def peek(self) -> str:
        return self.s[self.i] if self.i < self.n else ""

    def alt(self) -> Any:
        options = [self.concat()]
        while self.peek() == "|":
            self.i += 1
            options.append(self.concat())
        return options[0] if len(options) == 1 else ("a", tuple(options))

    def concat(self) -> Any:
        parts = []
        while self.i < self.n and self.s[self.i] not in "|)":
            parts.append(self.quantified(self.atom()))
        return parts[0] if len(parts) == 1 else ("s", tuple(parts))

    def atom(self) -> Any:
        c = self.s[self.i]
        if c == "(":
            self.i += 1
            if self.peek() == "?":
                if self.s[self.i : self.i + 2] != "?:":
                    raise _Bail
                self.i += 2
            node = self.alt()
            if self.peek() != ")":
                raise _Bail
            self.i += 1
            return node
        if c == "[":
            return ("c", self.char_class())
        if c == "\\":
            cp = self.escape()
            return ("c", ((cp, cp),))
        if c in _NOT_LITERAL:
            raise _Bail
        self.i += 1
        cp = ord(c)
        return ("c", ((cp, cp),))

    def quantified(self, node: Any) -> Any:
        c = self.peek()
        if c == "?":
            self.i += 1
            out = ("r", node, 0, 1)
        elif c == "*":
            self.i += 1
            out = ("r", node, 0, None)
        elif c == "+":
            self.i += 1
            out = ("r", node, 1, None)
        elif c == "{":
            out = ("r", node, *self.bounds())
        else:
            return node
        if self.peek() in ("?", "*", "+", "{"):
            raise _Bail  # lazy, possessive or stacked quantifiers
        return out

    def bounds(self) -> tuple[int, int | None]:
        end = self.s.find("}", self.i)
        if end < 0:
            raise _Bail
        body = self.s[self.i + 1 : end]
        lo_text, comma, hi_text = body.partition(",")
        if not lo_text.isdigit() or not lo_text.isascii():
            raise _Bail
        if comma and hi_text and not (hi_text.isdigit() and hi_text.isascii()):
            raise _Bail
        lo = int(lo_text)
        hi: int | None = lo if not comma else (int(hi_text) if hi_text else None)
        if hi is not None and hi < lo:
            raise _Bail  # a syntax error: the general parser reports it
        self.i = end + 1
        return lo, hi

    def escape(self) -> int:
        """The code point of the escape at ``self.i`` (a backslash)."""
        if self.i + 1 >= self.n:
            raise _Bail
        c = self.s[self.i + 1]
        if c in _PUNCT:
            self.i += 2
            return ord(c)
        if c in _CONTROL:
            self.i += 2
            return _CONTROL[c]
        width = {"x": 2}.get(c)  # parse_regex refuses \uHHHH (interegular reads no such escape)
        if width is None:
            raise _Bail
        digits = self.s[self.i + 2 : self.i + 2 + width]
        if len(digits) != width or not set(digits) <= _HEX:
            raise _Bail
        self.i += 2 + width
        return int(digits, 16)

    def class_char(self) -> int:
        c = self.peek()
        if not c or c in "[]":
            raise _Bail
        if c == "\\":
            return self.escape()
        self.i += 1
        return ord(c)

    def char_class(self) -> tuple[tuple[int, int], ...]:
        start = self.i
        text = _CLASS_TEXT.match(self.s, start)
        if text is not None:
            hit = _CLASSES.get(text.group())
            if hit is not None:
                self.i = text.end()
                return hit
        ranges = self._char_class()
        if len(_CLASSES) >= _MAX_CLASSES:
            _CLASSES.clear()
        _CLASSES[self.s[start : self.i]] = ranges
        return ranges

    def _char_class(self) -> tuple[tuple[int, int], ...]:
        self.i += 1  # [
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        if self.peek() in ("]", "-"):
            raise _Bail  # a leading ] or -: literal in some dialects, not worth the risk
        ranges: list[tuple[int, int]] = []
        while self.peek() != "]":
            if not self.peek():
                raise _Bail
            lo = self.class_char()
            if self.peek() == "-":
                if self.s[self.i + 1 : self.i + 2] in ("]", ""):
                    raise _Bail
                self.i += 1
                hi = self.class_char()
                if hi < lo:
                    raise _Bail
            else:
                hi = lo
            ranges.append((lo, hi))
        self.i += 1  # ]
        ranges.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        if negated:
            merged = complement_ranges(merged)
        return tuple(merged)


@lru_cache(maxsize=4096)
def fast_parse(pattern: str) -> Any:
    """The ``parse_regex`` tree of ``pattern`` (case-sensitive), or None outside the subset."""
    parser = _Parser(pattern)
    try:
        node = parser.alt()
    except (_Bail, IndexError):
        return None
    if parser.i != parser.n:
        return None  # an unmatched ")"
    return node


__all__ = ["fast_parse"]
