"""Regexes for JSON strings, object keys, ``pattern`` and whitespace, for the JSON Schema front end.

One job: everything about the *spelling* of JSON strings and of the whitespace between tokens.

All regexes here use only syntax that both Python ``re`` and interegular read the same way
(no ``\\d``/``\\w``/``\\s`` of our own, no ``\\u`` escapes: non-ASCII characters appear literally).

Deliberate simplifications:
    * A string is any RFC 8259 string; with ``minLength``/``maxLength`` the length is counted in
      code points like the spec: an escape is one character and an escaped surrogate pair
      (``\\ud83d\\ude00``) is one character. Lone surrogate escapes are then not accepted at all
      (their count would need look-ahead).
    * ``pattern`` is lowered only when it uses the syntax subset that ECMA-262 and Python agree on
      and every character it can match is printable ASCII other than ``"`` and ``\\`` (so the
      pattern describes the JSON spelling directly). Those characters are then accepted only in
      their plain spelling (``a``, not ``\\u0061``): this is the spelling ``json.dumps`` writes.
    * Keys of extra properties may use any spelling; excluding the declared keys is exact on the
      decoded key (``"\\u0061"`` is the key ``a``). Declared keys with characters outside the
      BMP are not supported there (the front end refuses).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import interegular

from structgen.grammar.ir import EMPTY, Expr, KeyExclusion, Regex, alt, lit, seq

RAW_CHAR = r'[^"\\\x00-\x1f]'
"""One unescaped string character."""

STRING_CHAR = RAW_CHAR + r'|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}'
"""One string character in any RFC 8259 spelling (escapes of surrogates count singly here)."""

STRING_BODY = f"(?:{STRING_CHAR})*"
"""Everything between the quotes of a JSON string."""

STRING_PATTERN = f'"{STRING_BODY}"'
"""A whole JSON string."""

_NON_SURROGATE_ESCAPE = r"\\u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2})"
_SURROGATE_PAIR_ESCAPE = r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"

COUNTED_CHAR = "|".join((RAW_CHAR, r'\\["\\/bfnrt]', _NON_SURROGATE_ESCAPE, _SURROGATE_PAIR_ESCAPE))
"""Exactly one code point of a string (an escaped surrogate pair is one code point)."""

PLAIN_ASCII_CHAR = r"[ !#-\[\]-~]"
"""A printable ASCII character that JSON writes unescaped (not ``"`` or ``\\``)."""

_REGEX_SPECIAL = set("\\.^$*+?{}[]|()-/#&~ ")
_CLASS_SPECIAL = set("\\]^-[")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r"}
_SIMPLE_ESCAPES["\t"] = "t"


def regex_escape(text: str) -> str:
    """Escape ``text`` as a regex literal readable by both Python ``re`` and interegular."""
    out = []
    for ch in text:
        if ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _class_escape(ch: str) -> str:
    if ch in _CLASS_SPECIAL:
        return "\\" + ch
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02x}"
    return ch


def _hex_digit(digit: str) -> str:
    return f"[{digit.lower()}{digit.upper()}]" if digit.isalpha() else digit


@lru_cache(maxsize=4096)
def char_spellings(ch: str) -> str:
    """Regex for every JSON spelling of the single (BMP, non-surrogate) character ``ch``."""
    options = []
    if ch not in '"\\' and ord(ch) >= 0x20:
        options.append(regex_escape(ch))
    if ch in _SIMPLE_ESCAPES:
        options.append(r"\\" + regex_escape(_SIMPLE_ESCAPES[ch]))
    options.append(r"\\u" + "".join(_hex_digit(d) for d in f"{ord(ch):04x}"))
    return "(?:" + "|".join(options) + ")"


def _hex_excluding(codes: set[str], width: int) -> str | None:
    """Regex for ``width`` hex digits (either case) spelling none of ``codes`` (lowercase).

    Returns ``None`` when every spelling is excluded.
    """
    if not codes:
        return "[0-9a-fA-F]" + (f"{{{width}}}" if width > 1 else "")
    heads = sorted({code[0] for code in codes})
    alternatives = []
    free = [d for d in "0123456789abcdef" if d not in heads]
    if free:
        cls = "".join(d + d.upper() if d.isalpha() else d for d in free)
        alternatives.append(f"[{cls}]" + (_hex_excluding(set(), width - 1) if width > 1 else ""))
    if width > 1:
        for head in heads:
            rest = _hex_excluding({code[1:] for code in codes if code[0] == head}, width - 1)
            if rest is not None:
                alternatives.append(_hex_digit(head) + rest)
    if not alternatives:
        return None
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


@dataclass
class KeyTrie:
    """A trie of keys: ``terminal`` where a key ends, ``children`` by next character."""

    terminal: bool = False
    children: dict[str, KeyTrie] | None = None


def _refuse_outside_bmp(key: str) -> None:
    if any(ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF for c in key):
        raise ValueError(f"key {key!r} has a character outside the BMP")


def key_trie(keys: Iterable[str]) -> KeyTrie:
    """The trie of ``keys``.

    Raises:
        ValueError: a key contains a surrogate or a character outside the BMP (not supported).
    """
    root = KeyTrie()
    for key in keys:
        _refuse_outside_bmp(key)
        node = root
        for ch in key:
            if node.children is None:
                node.children = {}
            node = node.children.setdefault(ch, KeyTrie())
        node.terminal = True
    return root


@lru_cache(maxsize=4096)
def other_char(excluded: tuple[str, ...]) -> str:
    """Regex for one string character (any spelling) whose decoded value is none of
    ``excluded`` (sorted, distinct; memoised: trie nodes of keys repeat the same few
    characters, across objects and schemas)."""
    raw = RAW_CHAR[:-1] + "".join(_class_escape(c) for c in excluded if ord(c) >= 0x20) + "]"
    simple = "".join(
        _class_escape(esc) for ch, esc in _SIMPLE_ESCAPES.items() if ch not in excluded
    )
    options = [raw]
    if simple:
        options.append(r"\\[" + simple + "]")
    hex_part = _hex_excluding({f"{ord(c):04x}" for c in excluded}, 4)
    if hex_part is not None:
        options.append(r"\\u" + hex_part)
    return "(?:" + "|".join(options) + ")"


def string_excluding(keys: Iterable[str]) -> Expr:
    """A JSON string (any spelling, quotes included) whose *decoded* value is none of ``keys``.

    The body is one ``KeyExclusion`` leaf, whose automaton is built straight from the key trie
    (``structgen.automata.nfa``); ``not_key_ir`` is the same language as IR, the reference the
    tests compare it with. As IR the exclusions were about half of a schema's IR nodes, and the
    largest share of TTFM where extra keys are allowed; as a single regex they were slower
    still (its parse, NFA template and ``re`` checks: TTFM p50 about 1.5x the IR's).

    Raises:
        ValueError: a key contains a surrogate or a character outside the BMP (not supported).
    """
    distinct = tuple(sorted(set(keys)))
    for key in distinct:
        _refuse_outside_bmp(key)
    if not distinct:
        return Regex(STRING_PATTERN)
    return seq(lit('"'), KeyExclusion(distinct), lit('"'))


# The reference: the same language as IR over the key trie (the tests compare the leaf's
# automaton with it; the grammar used it until the leaf replaced it).


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> Regex:
    """One ``Regex`` object per pattern (the engines memoise per node object)."""
    return Regex(pattern)


def _not_key(node: KeyTrie) -> Expr:
    """String bodies (from ``node``) that are not keys: they stop at a trie node that ends no
    key, or leave the trie at some character (then anything may follow), or go on to a child.

    One walk of the trie where a body that leaves it and one that stops early were two (the
    union is the same language: by induction on the trie, ``_not_key(n)`` is
    ``leave(n) BODY | stop(n)``)."""
    children = node.children or {}
    branches: list[Expr] = [] if node.terminal else [EMPTY]
    branches.append(_leave_then_body(tuple(sorted(children))))
    for ch, child in sorted(children.items()):
        branches.append(seq(_regex(char_spellings(ch)), _not_key(child)))
    return alt(*branches)


@lru_cache(maxsize=4096)
def _leave_then_body(children: tuple[str, ...]) -> Expr:
    """A first character that is none of ``children`` (any spelling), then any string body."""
    return seq(_regex(other_char(children)), _regex(STRING_BODY))


def not_key_ir(keys: Iterable[str]) -> Expr:
    """The language of ``KeyExclusion(keys)`` as IR: per trie node, "stop here if no key ends
    here | leave the trie, then any body | each child's spellings, then on from the child".

    Raises:
        ValueError: a key contains a surrogate or a character outside the BMP (not supported).
    """
    return _not_key(key_trie(keys))


# --- whitespace -------------------------------------------------------------------------------

BOUNDED_WHITESPACE = r"(?: ?|\r?\n(?: {0,20}|\t{0,5}))"
"""Default whitespace between two tokens: at most one space, or one line break (``\\n`` or
``\\r\\n``) followed by up to 20 spaces or up to 5 tabs. Accepts ``json.dumps`` separators and
``indent=2``/``indent=4``/tab-indented output up to 10/5/5 levels deep. Kept tight on purpose:
measured with SmolLM2, a looser bound (a line break plus up to 40 spaces or tabs) let the model
pad every line with tabs until it ran out of tokens."""


def check_whitespace_pattern(pattern: str) -> None:
    """Raise ValueError unless ``pattern`` parses and matches only strings of JSON whitespace.

    Decided on the parse tree (every character class within space, tab, CR and LF), in time
    linear in the pattern: no automaton is built, so ``[ ]{0,1000000}`` costs nothing here.
    """
    try:
        tree = interegular.parse_pattern(pattern)
        plain = _walk_pattern(tree, frozenset(" \t\n\r")).plain
    except (RecursionError, _TooDeep):
        raise ValueError(f"whitespace pattern {pattern!r} nests groups too deeply") from None
    except Exception as exc:  # interegular raises several exception types
        raise ValueError(f"cannot parse whitespace pattern {pattern!r}: {exc}") from exc
    if not plain:
        raise ValueError(f"whitespace pattern {pattern!r} matches non-whitespace characters")


# --- pattern ----------------------------------------------------------------------------------


class PatternError(ValueError):
    """The pattern is not a valid regex (``unsupported`` False) or cannot be lowered (True)."""

    def __init__(self, message: str, *, unsupported: bool) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True)
class PatternBody:
    """A ``pattern`` lowered to a string-body regex.

    Attributes:
        regex: the regex for the string body (between the quotes).
        min_length: the fewest characters a matching string has, if the pattern is anchored at
            both ends (then every matching string is exactly a word of the pattern).
        max_length: the most characters (``None``: unbounded or not anchored).
        anchored: anchored at both ends.
    """

    regex: str
    min_length: int
    max_length: int | None
    anchored: bool


_ALLOWED_ESCAPE_LETTERS = set("dDwWtnrfvx")


def _scan_pattern(pattern: str) -> tuple[bool, bool, bool]:
    """Check the ECMA-262/Python common syntax subset; return (starts ^, ends $, top-level |)."""

    def refuse(what: str) -> PatternError:
        return PatternError(f"pattern {pattern!r}: {what}", unsupported=True)

    i, depth, in_class, bar, end_anchor = 0, 0, False, False, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 >= len(pattern):
                raise PatternError(f"pattern {pattern!r} ends with a backslash", unsupported=False)
            nxt = pattern[i + 1]
            if (
                nxt.isalnum()
                and nxt not in _ALLOWED_ESCAPE_LETTERS
                and not (in_class and nxt == "b")
            ):
                raise refuse(
                    f"escape \\{nxt} differs between ECMA-262 and Python or is unsupported"
                )
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            if pattern.startswith(("[]", "[^]"), i):
                raise refuse("empty or negated-empty class [] / [^] (ECMA-262 only)")
            in_class = True
            if pattern.startswith("[^", i):
                i += 1
        elif c == "(":
            if pattern.startswith("(?", i) and not pattern.startswith("(?:", i):
                raise refuse("look-around, named groups and inline flags are not supported")
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            bar = True
        elif c == "{" and pattern.startswith("{,", i):
            raise refuse("'{,n}' means different things in ECMA-262 and Python")
        elif c == "^" and i != 0:
            raise refuse("'^' is only supported as the first character")
        elif c == "$":
            if i != len(pattern) - 1:
                raise refuse("'$' is only supported as the last character")
            end_anchor = True
        i += 1
    return pattern.startswith("^"), end_anchor, bar


_PLAIN_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\')
_MAX_PATTERN_NESTING = 200


class _TooDeep(Exception):
    """The regex nests groups deeper than ``_MAX_PATTERN_NESTING``."""


@dataclass(frozen=True)
class _PatternInfo:
    """What the lowering needs to know about a parsed regex."""

    min_length: int | None  # None: the language is empty
    max_length: int | None  # None: unbounded (or empty)
    plain: bool  # every character it can match is in the allowed set


def _walk_pattern(node: object, allowed: frozenset[str], depth: int = 0) -> _PatternInfo:
    """Lengths and alphabet of an interegular parse tree, computed on the tree (linear in its
    size: counted repeats are multiplied, not expanded)."""
    pats = interegular.patterns
    if depth > _MAX_PATTERN_NESTING:
        raise _TooDeep
    if isinstance(node, pats._CharGroup):
        plain = not node.negated and node.chars <= allowed
        empty = not node.negated and not node.chars
        return _PatternInfo(None if empty else 1, None if empty else 1, plain)
    if isinstance(node, pats.Pattern):
        if node.added_flags or node.removed_flags:
            return _PatternInfo(0, None, False)
        infos = [_walk_pattern(o, allowed, depth + 1) for o in node.options]
        live = [i for i in infos if i.min_length is not None]
        if not live:
            return _PatternInfo(None, None, all(i.plain for i in infos))
        high = [i.max_length for i in live]
        return _PatternInfo(
            min(i.min_length for i in live),  # type: ignore[type-var]
            None if None in high else max(high),  # type: ignore[type-var]
            all(i.plain for i in infos),
        )
    if isinstance(node, pats._Concatenation):
        low: int | None = 0
        top: int | None = 0
        plain = True
        for part in node.parts:
            info = _walk_pattern(part, allowed, depth + 1)
            plain = plain and info.plain
            if info.min_length is None or low is None:
                low = None
                continue
            low += info.min_length
            top = None if top is None or info.max_length is None else top + info.max_length
        return _PatternInfo(low, None if low is None else top, plain)
    if isinstance(node, pats._Repeated):
        info = _walk_pattern(node.base, allowed, depth + 1)
        if info.min_length is None:  # only the empty repetition is left
            return _PatternInfo(
                0 if node.min == 0 else None, 0 if node.min == 0 else None, info.plain
            )
        top = None
        if node.max is not None and info.max_length is not None:
            top = node.max * info.max_length
        return _PatternInfo(node.min * info.min_length, top, info.plain)
    if node is pats._EMPTY:
        return _PatternInfo(0, 0, True)
    # the dot, look-arounds and anything else: treat as outside the supported subset
    return _PatternInfo(1, None, False)


def pattern_string_body(pattern: str) -> PatternBody:
    """Lower a JSON Schema ``pattern`` (an ECMA-262 *search*) to a string-body regex.

    Raises:
        PatternError: invalid (``unsupported=False``) or outside the supported subset.
    """
    if not isinstance(pattern, str):
        raise PatternError("pattern must be a string", unsupported=False)
    starts, ends, bar = _scan_pattern(pattern)
    if bar and (starts or ends):
        raise PatternError(
            f"pattern {pattern!r}: top-level '|' next to anchors is not supported", unsupported=True
        )
    core = pattern[1 if starts else 0 : len(pattern) - 1 if ends else len(pattern)]
    try:
        tree = interegular.parse_pattern(core)
        info = _walk_pattern(tree, _PLAIN_CHARS)
    except (RecursionError, _TooDeep):
        raise PatternError(
            f"pattern {pattern[:60]!r}... nests groups too deeply", unsupported=True
        ) from None
    except interegular.patterns.Unsupported as exc:
        raise PatternError(f"pattern {pattern!r}: {exc}", unsupported=True) from exc
    except Exception as exc:  # interegular raises several exception types on bad syntax
        raise PatternError(f"invalid pattern {pattern!r}: {exc}", unsupported=False) from exc
    if not info.plain:
        raise PatternError(
            f"pattern {pattern!r} can match characters that are non-ASCII, control characters, "
            "'\"' or '\\' (their JSON spelling differs from the character)",
            unsupported=True,
        )
    if info.min_length is None:
        raise PatternError(f"pattern {pattern!r} matches nothing", unsupported=False)
    regex = ("" if starts else STRING_BODY) + f"(?:{core})" + ("" if ends else STRING_BODY)
    anchored = starts and ends
    return PatternBody(
        regex, info.min_length if anchored else 0, info.max_length if anchored else None, anchored
    )


__all__ = [
    "BOUNDED_WHITESPACE",
    "COUNTED_CHAR",
    "PLAIN_ASCII_CHAR",
    "RAW_CHAR",
    "STRING_BODY",
    "STRING_CHAR",
    "STRING_PATTERN",
    "KeyTrie",
    "PatternBody",
    "PatternError",
    "char_spellings",
    "check_whitespace_pattern",
    "key_trie",
    "not_key_ir",
    "other_char",
    "pattern_string_body",
    "regex_escape",
    "string_excluding",
]
