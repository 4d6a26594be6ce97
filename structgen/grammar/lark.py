"""Lark front end: Lark EBNF text to a Grammar.

Its one job: run lark's own loader (``lark.load_grammar.load_grammar``, then ``.compile``), so
``?rule``, ``*``, ``+``, ``?``, ``[...]``, ``~n..m``, templates and ``%import`` of lark's bundled
grammars mean what they mean in lark, and lower the BNF rules and terminals it produces to the IR.

Semantics and deliberate simplifications (docs/lark_subset.md has the full list):

* One IR rule per lark rule (lark's names, helpers like ``__start_star_0`` and template instances
  like ``sep{NUMBER}`` included): an ``Alt`` of ``Seq`` expansions; terminals are inlined.
* A terminal is the regular *set* its regex fully matches. lark's dynamic lexers try only the match
  Python's ``re`` returns (``dynamic_complete``: and its prefixes); the readings agree for greedy
  regexes whose leftmost match is the longest. Lazy/possessive quantifiers and atomic groups are
  refused; lark's lazy ``common.ESCAPED_STRING`` and ``common.C_COMMENT`` get exact greedy twins.
* ``%ignore``: ``Repeat(Alt(ignored...), 0, None)`` between every two symbols of every expansion
  and around the start rule's body. lark skips only the longest match of an ignored terminal, so
  the two agree when cutting an ignored string short cannot help (whitespace runs, delimited
  comments); a line comment ``/#[^\\n]*/`` may end early here (an over-approximation).
* Priorities, aliases, ``!``/``?``/``_`` markers shape trees, not the language: ignored.
* Flags ``i`` and ``s`` are kept, ``m``/``u``/``a`` dropped (no-ops: anchors are refused and
  ``\\d``, ``\\w``, ``\\s`` are ASCII classes in structgen, Unicode in Python), ``x`` refused.
  Case folding is interegular's (Python also folds U+0130, U+0131, U+017F, U+212A to i, s, k).
* Terminals that match the empty string are allowed (lark's Earley refuses them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import lark
from lark.exceptions import UnexpectedInput, VisitError
from lark.grammar import NonTerminal, Rule, Symbol
from lark.lexer import TOKEN_DEFAULT_PRIORITY, PatternStr, TerminalDef
from lark.load_grammar import load_grammar

from structgen.errors import InvalidGrammar, StructgenError, UnsupportedFeature
from structgen.grammar.ir import Expr, Grammar, KeywordStatus, Lit, Ref, Regex, Repeat, alt, seq
from structgen.grammar.regex import check_regex

_SOURCE_NAME = "<grammar>"
_DROPPED_FLAGS = "amu"
_FLAG_GROUP = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]*))?([:)])")
_BRACE_QUANTIFIER = re.compile(r"\{(?:\d+(?:,\d*)?|,\d+)\}")
_ASCII_CLASS = re.compile(r"(?<!\\)(?:\\\\)*\\[dDwWsS]")
_LINE_COL = re.compile(r",? at line (\d+),? col(?:umn)? (\d+)")
_TWICE = re.compile(r"'(\w+)' defined more than once")
_UNDEFINED = re.compile(r"'([^']+)' used but not defined \(in (?:rule|terminal) ([^)\s]+)\)")
_REGULAR_HINT = "lark matches the first regex match only; structgen treats a terminal as a set"

# Exact greedy equivalents of the tokens lark's lexer cuts with these lazy common.lark terminals.
_GREEDY_COMMON = {
    "ESCAPED_STRING": r'"(?:[^"\\\n]|\\[^\n])*"',
    "C_COMMENT": r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/",
}


def lark_grammar(text: str, start: str = "start") -> Grammar:
    """Lower Lark EBNF ``text`` to a Grammar whose start rule is ``start``.

    Raises:
        InvalidGrammar: malformed text, an undefined symbol, a bad regex, or no rule ``start``.
        UnsupportedFeature: a terminal that is not regular (look-around, back-references,
            ``\\b``, inner anchors, lazy quantifiers, the ``x`` flag) or a used ``%declare``.
    """
    if not isinstance(text, str):
        raise InvalidGrammar(f"a lark grammar must be a string, got {type(text).__name__}")
    source = _SourceIndex(text)
    terminals, rules, ignore = _compile(text, start, source)
    notes: list[str] = [f"lark grammar, start rule {start!r}"]
    lowered = {str(t.name): _lower_terminal(t, source, notes) for t in terminals}
    bodies = _lower_rules(start, rules, lowered, [str(name) for name in ignore], source)
    if ignore:
        shown = [t.pattern.raw or str(t.name) for t in terminals if t.name in ignore]
        notes.append(
            f"%ignore {', '.join(shown)}: allowed between any two symbols; approximation: any "
            "match of an ignored terminal is skipped, where lark skips only the longest one (an "
            "ignored line comment may end early), see docs/lark_subset.md"
        )
    order = [start] + [name for name in bodies if name != start]
    return Grammar(
        start=start,
        rules=tuple((name, bodies[name]) for name in order),
        report=_report(rules, terminals, ignore),
        notes=tuple(dict.fromkeys(notes)),
    )


def _compile(
    text: str, start: str, source: _SourceIndex
) -> tuple[list[TerminalDef], list[Rule], list[str]]:
    """Run lark's loader: (terminal definitions, BNF rules, ignored terminal names)."""
    try:
        loaded, _ = load_grammar(text, _SOURCE_NAME, [], False)
    except Exception as exc:  # lark raises GrammarError, UnexpectedInput, OSError, ...
        raise _load_error(exc, source) from exc
    defined = {name: params for name, params, _tree, _options in loaded.rule_defs}
    if start not in defined or defined[start]:
        what = "a template" if start in defined else "not defined"
        raise InvalidGrammar(
            f"start rule {start!r} is {what}", keyword="start", hint="pass start=<rule name>"
        )
    try:
        return loaded.compile([start], set())
    except Exception as exc:
        raise _load_error(exc, source) from exc


def _load_error(exc: Exception, source: _SourceIndex) -> StructgenError:
    """Translate an exception from lark's loader into InvalidGrammar / UnsupportedFeature."""
    declared = source.declared_rules()
    if declared:  # lark crashes on a %declare'd rule; a declared rule has no expansion anyway
        name, location = declared[0]
        return UnsupportedFeature(
            f"rule {name} is declared with %declare and has no definition",
            keyword="%declare",
            location=location,
            hint="define the rule",
        )
    location: str | None = None
    construct = "grammar"
    if isinstance(exc, VisitError):  # a transformer inside lark failed on one construct
        construct = str(exc.rule)
        if isinstance(exc.obj, lark.Tree):
            tokens = exc.obj.scan_values(lambda v: isinstance(v, lark.Token))
            location = next((_loc(t) for t in tokens if t.line is not None), None)
        exc = exc.orig_exc
    message = str(exc).strip().split("\n")[0].rstrip(": ") or f"invalid {construct}"
    if isinstance(exc, UnexpectedInput):
        location = f"{exc.line}:{exc.column}"
    elif found := _LINE_COL.search(message):
        location = f"{found[1]}:{found[2]}"
        message = _LINE_COL.sub("", message).replace(f" in {_SOURCE_NAME}", "")
    elif found := _UNDEFINED.search(message):
        location = source.use_location(found[1], owner=found[2])
    elif found := _TWICE.search(message):
        location = source.definition_location(found[1], last=True)
    elif isinstance(exc, OSError):
        message = f"%import failed: {exc.strerror}: {exc.filename}"
        location = source.use_location(str(exc.filename).split(".")[0].split("/")[0])
    elif location is None:
        quoted = re.findall(r"'(\w+)'", message)
        location = next(filter(None, map(source.use_location, quoted)), None)
    return InvalidGrammar(f"invalid lark grammar: {message}", keyword="lark", location=location)


def _lower_terminal(term: TerminalDef, source: _SourceIndex, notes: list[str]) -> Expr:
    """The IR expression for one compiled lark terminal; errors name it and locate it."""
    pattern, flags = term.pattern, frozenset(term.pattern.flags)
    if isinstance(pattern, PatternStr):
        if "i" in flags:
            return Regex(re.escape(str(pattern.value)), case_insensitive=True)
        return Lit(str(pattern.value).encode("utf-8"))
    try:
        return _lower_regex(pattern.to_regexp(), str(pattern.value), flags, notes)
    except (InvalidGrammar, UnsupportedFeature) as exc:
        what, location = source.terminal_location(term)
        raise type(exc)(
            f"{what}: {exc.message}", keyword="regex", location=location, hint=exc.hint
        ) from exc


def _lower_regex(full: str, body: str, flags: frozenset[str], notes: list[str]) -> Regex:
    """A Regex for lark's pattern ``body`` with ``flags`` (``full``: both, as lark compiles it)."""
    try:
        re.compile(full)
    except re.error as exc:
        raise InvalidGrammar(f"invalid regex {full!r}: {exc}") from exc
    greedy = _greedy_common().get(full)
    if greedy is not None:
        return Regex(greedy)
    try:
        if "x" in flags:
            raise _Refusal("the x (verbose) flag", "write the regex without x")
        body = _normalize(body)
    except _Refusal as refusal:
        raise UnsupportedFeature(
            f"{refusal.construct} in {full!r} is not supported", hint=refusal.hint
        ) from None
    if "s" in flags:
        body = f"(?s:{body})"
    case_insensitive = "i" in flags
    check_regex(f"(?i:{body})" if case_insensitive else body)
    if _ASCII_CLASS.search(body):
        notes.append("\\d, \\w, \\s in lark regexes are read as ASCII classes")
    return Regex(body, case_insensitive=case_insensitive)


@lru_cache(maxsize=1)
def _greedy_common() -> dict[str, str]:
    """Map lark's own compiled regexes for the lazy common.lark terminals to greedy ones."""
    text = "".join(f"%import common.{name}\n" for name in _GREEDY_COMMON)
    loaded, _ = load_grammar(text, "<common>", [], False)
    terminals, _, _ = loaded.compile([], "*")
    return {
        t.pattern.to_regexp(): _GREEDY_COMMON[t.name] for t in terminals if t.name in _GREEDY_COMMON
    }


@dataclass
class _Refusal(Exception):
    """A regex construct whose lark meaning is not a regular set."""

    construct: str
    hint: str


def _normalize(pattern: str) -> str:
    """Drop no-op flags and comments; refuse lazy/possessive quantifiers and atomic groups."""
    out: list[str] = []
    i, after_quantifier = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch in "?+" and after_quantifier:
            kind = "lazy" if ch == "?" else "possessive"
            raise _Refusal(f"a {kind} quantifier", f"use a greedy quantifier; {_REGULAR_HINT}")
        after_quantifier = False
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif ch == "[":
            end = _class_end(pattern, i)
            out.append(pattern[i:end])
            i = end
        elif pattern.startswith("(?#", i):
            i = pattern.find(")", i) + 1 or len(pattern)
        elif pattern.startswith("(?>", i):
            raise _Refusal("an atomic group", _REGULAR_HINT)
        elif group := _FLAG_GROUP.match(pattern, i):
            out.append(_flag_group(group[1], group[2] or "", group[3]))
            i = group.end()
        elif pattern.startswith("(?", i):
            out.append("(?")
            i += 2
        elif brace := _BRACE_QUANTIFIER.match(pattern, i):
            out.append(brace[0])
            i, after_quantifier = brace.end(), True
        else:
            out.append(ch)
            i, after_quantifier = i + 1, ch in "*+?"
    return "".join(out)


def _flag_group(on: str, off: str, close: str) -> str:
    """Rewrite an inline flag group ``(?on-off:`` / ``(?on)`` without the no-op flags."""
    if "x" in on + off:
        raise _Refusal("the x (verbose) flag", "write the regex without x")
    on = "".join(f for f in on if f not in _DROPPED_FLAGS)
    off = "".join(f for f in off if f not in _DROPPED_FLAGS)
    if close == ")":
        return f"(?{on})" if on else ""
    return f"(?{on}{'-' + off if off else ''}:"


def _class_end(pattern: str, i: int) -> int:
    """The index just past the character class that opens at ``pattern[i] == '['``."""
    j = i + 1
    if pattern.startswith("^", j):
        j += 1
    if pattern.startswith("]", j):
        j += 1
    while j < len(pattern):
        if pattern[j] == "\\":
            j += 2
        elif pattern[j] == "]":
            return j + 1
        else:
            j += 1
    return len(pattern)


def _lower_rules(
    start: str,
    rules: list[Rule],
    terminals: dict[str, Expr],
    ignore: list[str],
    source: _SourceIndex,
) -> dict[str, Expr]:
    """One IR expression per rule name, with the ignored terminals interleaved."""
    gap = Repeat(alt(*(terminals[name] for name in ignore)), 0, None) if ignore else None
    expansions: dict[str, list[Expr]] = {}
    for rule in rules:
        items: list[Expr] = []
        for k, symbol in enumerate(rule.expansion):
            if gap is not None and k:
                items.append(gap)
            items.append(_symbol_expr(symbol, terminals, source))
        expansions.setdefault(str(rule.origin.name), []).append(seq(*items))
    bodies = {name: alt(*items) for name, items in expansions.items()}
    if gap is not None:
        bodies[start] = seq(gap, bodies[start], gap)
    return bodies


def _symbol_expr(symbol: Symbol, terminals: dict[str, Expr], source: _SourceIndex) -> Expr:
    """A rule reference, or the inlined expression of a terminal."""
    name = str(symbol.name)
    if isinstance(symbol, NonTerminal):
        return Ref(name)
    if name in terminals:
        return terminals[name]
    location = source.declare_location(name)
    if location is not None or "%declare" in source.text:
        raise UnsupportedFeature(
            f"terminal {name} is declared with %declare and has no pattern",
            keyword="%declare",
            location=location,
            hint="give the terminal a definition",
        )
    raise InvalidGrammar(f"terminal {name} has no definition", keyword="lark")


def _report(
    rules: list[Rule], terminals: list[TerminalDef], ignore: list[str]
) -> tuple[KeywordStatus, ...]:
    """Which lark constructs are enforced (``%ignore``) and which only annotate (priorities)."""
    note = "priorities choose between parse trees; they do not change the accepted strings"
    report = [
        KeywordStatus(str(r.origin.name), "priority", "annotation", note)
        for r in rules
        if r.options.priority is not None
    ]
    report += [
        KeywordStatus(str(t.name), "priority", "annotation", note)
        for t in terminals
        if t.priority != TOKEN_DEFAULT_PRIORITY
    ]
    if ignore:
        report.append(KeywordStatus("", "%ignore", "grammar", "ignored strings between symbols"))
    return tuple(dict.fromkeys(report))


@lru_cache(maxsize=1)
def _meta_parser() -> lark.Lark:
    """A parser for Lark's own syntax (``lark/grammars/lark.lark``), used for locations only."""
    return lark.Lark.open_from_package("lark", "lark.lark", ("grammars",), parser="lalr")


@dataclass(frozen=True)
class _Occurrence:
    """A name or literal token in the text: its text, ``line:column`` and enclosing definition."""

    text: str
    location: str
    owner: str | None


@dataclass
class _Index:
    """What the grammar text defines, uses, imports and declares, with locations."""

    definitions: dict[str, list[str]] = field(default_factory=dict)
    uses: list[_Occurrence] = field(default_factory=list)
    literals: list[_Occurrence] = field(default_factory=list)
    imports: dict[str, str] = field(default_factory=dict)
    declares: dict[str, str] = field(default_factory=dict)


class _SourceIndex:
    """Where definitions, names and literals occur in the grammar text, for error locations.

    Built lazily with lark's public grammar of its own syntax; lark's loader stays the authority
    on meaning, so a text this parser cannot read just yields errors without locations.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._index: _Index | None = None

    def _build(self) -> _Index:
        if self._index is not None:
            return self._index
        index = self._index = _Index()
        try:
            tree = _meta_parser().parse(self.text + "\n")
        except Exception:  # noqa: BLE001 - locations are best effort
            return index
        for stmt in tree.children:
            if not isinstance(stmt, lark.Tree):
                continue
            if stmt.data == "override_rule":
                stmt = stmt.children[0]
            tokens = list(stmt.scan_values(lambda v: isinstance(v, lark.Token)))
            owner = None
            if stmt.data in ("rule", "token"):
                owner = tokens[0].lstrip("!?")
                index.definitions.setdefault(owner, []).append(_loc(tokens[0]))
                tokens = tokens[1:]
            names = [t for t in tokens if t.type in ("RULE", "TOKEN")]
            if stmt.data in ("import", "multi_import"):
                for name in names[-1:] if stmt.data == "import" else names[1:]:
                    index.imports.setdefault(str(name), _loc(tokens[0]))
            elif stmt.data == "declare":
                for name in names:
                    index.declares.setdefault(str(name), _loc(name))
            index.uses += [_Occurrence(str(t).lstrip("!?"), _loc(t), owner) for t in names]
            literals = [t for t in tokens if t.type in ("STRING", "REGEXP")]
            index.literals += [_Occurrence(str(t), _loc(t), owner) for t in literals]
        return index

    def use_location(self, name: str, owner: str | None = None) -> str | None:
        """Where ``name`` is first used (inside definition ``owner`` if given), else defined."""
        for use in self._build().uses:
            if use.text == name and (owner is None or use.owner == owner.lstrip("!?")):
                return use.location
        return self.definition_location(name)

    def definition_location(self, name: str, last: bool = False) -> str | None:
        """Where ``name`` is (first, or with ``last`` last) defined."""
        found = self._build().definitions.get(name)
        return found[-1 if last else 0] if found else None

    def terminal_location(self, term: TerminalDef) -> tuple[str, str | None]:
        """A description of a compiled terminal and where it comes from in the text."""
        index, name = self._build(), str(term.name)
        if name in index.definitions:
            return f"terminal {name}", index.definitions[name][0]
        if name in index.imports:
            return f"terminal {name} (imported)", index.imports[name]
        for literal in index.literals:
            if literal.text == term.pattern.raw:
                where = f"rule {literal.owner}" if literal.owner else "%ignore"
                return f"terminal {literal.text} in {where}", literal.location
        return f"terminal {name}", None

    def declare_location(self, name: str) -> str | None:
        """Where ``name`` is declared with ``%declare``, if it is."""
        return self._build().declares.get(name)

    def declared_rules(self) -> list[tuple[str, str]]:
        """The rules (lower-case names) declared with ``%declare``, with their locations."""
        if "%declare" not in self.text:
            return []
        declares = self._build().declares
        return [(n, loc) for n, loc in declares.items() if not n.lstrip("_").isupper()]


def _loc(token: lark.Token) -> str:
    return f"{token.line}:{token.column}"


__all__ = ["lark_grammar"]
