"""The grammar IR: a context-free grammar whose terminals are regular languages over bytes.

Every front end (regex, JSON Schema, Lark) lowers to this one representation; the automata layer
compiles it. The IR is frozen and hashable, so compiled artifacts can be cached by content.

Expressions:
    ``Lit(b"...")``            an exact byte string
    ``Regex(pattern)``         a regular language given as a regex over characters (UTF-8 encoded)
    ``Seq(items)``             concatenation
    ``Alt(items)``             alternation
    ``Repeat(item, min, max)`` bounded (or, with ``max=None``, unbounded) repetition
    ``Ref(name)``              a reference to a rule (recursion allowed in the IR)
    ``Check(item, predicate)`` ``item`` restricted by a semantic predicate on its bytes
    ``KeyExclusion(keys)``     the body of a JSON string whose decoded value is none of ``keys``
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

KeywordStatusKind = Literal["grammar", "check", "refused", "annotation"]


@dataclass(frozen=True, slots=True)
class Lit:
    """An exact byte string."""

    value: bytes


@dataclass(frozen=True, slots=True)
class Regex:
    """A regular language, written as a regex over characters and matched in full.

    The syntax is the one interegular parses (Python ``re`` without look-around or
    back-references). Characters are encoded as UTF-8 when lowered to bytes.
    """

    pattern: str
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class Seq:
    """Concatenation of ``items``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    """Alternation between ``items``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    """``item`` repeated between ``min`` and ``max`` times (``max=None``: unbounded)."""

    item: Expr
    min: int = 0
    max: int | None = None


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to the rule called ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Check:
    """``item``, restricted to the strings ``predicate`` accepts.

    The predicate sees the complete bytes ``item`` matched and is evaluated when ``item``
    completes, so the token that would complete a failing value is rejected. It must be a frozen,
    hashable, picklable object with ``__call__(data: bytes) -> bool`` and a ``describe() -> str``.
    Used for what a context-free grammar cannot express (``uniqueItems``, ``not``, ...).
    Prefixes are not guaranteed to be completable: a check rejects at completion only.
    """

    item: Expr
    predicate: Any


@dataclass(frozen=True, slots=True)
class KeyExclusion:
    """The body of a JSON string (between the quotes, any RFC 8259 spelling) whose *decoded*
    value is none of ``keys``: the extra keys of an object, which must not spell a declared key.

    A leaf: its automaton is built straight from the trie of ``keys``
    (``structgen.automata.nfa``), where the same language as IR (``json_strings.not_key_ir``,
    the reference) is two IR nodes per trie node, and each IR node costs a walk of every
    stage. ``keys`` are sorted and distinct, every character in the BMP and no surrogate
    (``json_strings.string_excluding`` makes them so).
    """

    keys: tuple[str, ...]


Expr = Union[Lit, Regex, Seq, Alt, Repeat, Ref, Check, KeyExclusion]  # noqa: UP007 - runtime alias

EMPTY: Expr = Lit(b"")


def lit(text: str | bytes) -> Lit:
    """A literal from text (UTF-8 encoded) or bytes."""
    return Lit(text.encode("utf-8") if isinstance(text, str) else text)


def seq(*items: Expr) -> Expr:
    """Concatenation that flattens nested sequences and drops empty literals."""
    flat: list[Expr] = []
    for item in items:
        if isinstance(item, Seq):
            flat.extend(item.items)
        elif isinstance(item, Lit) and not item.value:
            continue
        elif isinstance(item, Lit) and flat and isinstance(flat[-1], Lit):
            flat[-1] = Lit(flat[-1].value + item.value)  # type: ignore[union-attr]
        else:
            flat.append(item)
    if not flat:
        return EMPTY
    if len(flat) == 1:
        return flat[0]
    return Seq(tuple(flat))


def alt(*items: Expr) -> Expr:
    """Alternation that flattens nested alternations and removes duplicates (order kept)."""
    flat: list[Expr] = []
    for item in items:
        for sub in item.items if isinstance(item, Alt) else (item,):
            if sub not in flat:
                flat.append(sub)
    if len(flat) == 1:
        return flat[0]
    return Alt(tuple(flat))


def opt(item: Expr) -> Expr:
    """``item`` or nothing."""
    return Repeat(item, 0, 1)


@dataclass(frozen=True, slots=True)
class KeywordStatus:
    """How one schema keyword (or grammar construct) is enforced.

    ``status`` is ``grammar`` (exact, by the grammar), ``check`` (exact, by a semantic check),
    ``refused`` (not enforced; only present in best-effort mode) or ``annotation`` (has no
    effect on validity, e.g. ``title``).
    """

    pointer: str
    keyword: str
    status: KeywordStatusKind
    note: str = ""


@dataclass(frozen=True)
class Grammar:
    """A frozen, hashable CFG over byte terminals.

    Args:
        start: the name of the start rule.
        rules: ``(name, expr)`` pairs; names are unique.
        report: per-keyword enforcement report filled in by the front end.
        notes: free-form facts about the lowering (e.g. which ``additionalProperties`` reading).
    """

    start: str
    rules: tuple[tuple[str, Expr], ...]
    report: tuple[KeywordStatus, ...] = field(default=(), compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        names = [name for name, _ in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("Invalid Grammar: duplicate rule names")
        if self.start not in names:
            raise ValueError(f"Invalid Grammar: start rule {self.start!r} is not defined")

    @classmethod
    def from_rules(
        cls,
        rules: Mapping[str, Expr] | Iterable[tuple[str, Expr]],
        start: str = "start",
        **kwargs: Any,
    ) -> Grammar:
        """Build a grammar from a mapping of rule names to expressions."""
        items = tuple(rules.items()) if isinstance(rules, Mapping) else tuple(rules)
        return cls(start=start, rules=items, **kwargs)

    @classmethod
    def from_expr(cls, expr: Expr, **kwargs: Any) -> Grammar:
        """A grammar with a single start rule."""
        return cls(start="start", rules=(("start", expr),), **kwargs)

    @classmethod
    def from_regex(cls, pattern: str) -> Grammar:
        """A grammar for the strings that ``re.fullmatch(pattern, s)`` accepts.

        Raises:
            InvalidGrammar: the pattern is not a valid regex.
            UnsupportedFeature: the pattern uses look-around or back-references.
        """
        from structgen.grammar.regex import regex_grammar

        return regex_grammar(pattern)

    @classmethod
    def from_json_schema(
        cls,
        schema: Mapping[str, Any] | bool | str,
        **options: Any,
    ) -> Grammar:
        """A grammar for JSON texts valid under ``schema`` (a dict, a bool, or JSON text).

        See ``structgen.grammar.json_schema.JsonSchemaOptions`` for the options.
        """
        from structgen.grammar.json_schema import json_schema_grammar

        return json_schema_grammar(schema, **options)

    @classmethod
    def from_lark(cls, text: str, start: str = "start") -> Grammar:
        """A grammar from Lark EBNF text."""
        from structgen.grammar.lark import lark_grammar

        return lark_grammar(text, start=start)

    @property
    def rule_map(self) -> dict[str, Expr]:
        """The rules as a dict."""
        return dict(self.rules)

    def fingerprint(self) -> str:
        """A content hash (hex) of the rules and start symbol, stable across processes.

        Linear in the number of distinct expression objects: front ends share sub-expressions
        (a schema's ``items`` appears twice in its array rule), so the rules form a DAG whose
        tree expansion can be exponentially larger; each shared node is hashed once.
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            digester = ExprDigester()
            h = hashlib.sha256(b"grammar\0")
            h.update(repr(self.start).encode("utf-8"))
            for name, expr in self.rules:
                h.update(repr(name).encode("utf-8"))
                h.update(digester.digest(expr))
            cached = h.hexdigest()
            self.__dict__["_fingerprint"] = cached  # frozen: cache without __setattr__
        return str(cached)


class ExprDigester:
    """Content digests of IR expressions, memoised by node identity (linear on shared DAGs).

    Equal expressions get equal digests, in any process. The memo keeps the nodes it has seen
    alive, so an id is never reused while the digester lives.
    """

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Expr, bytes]] = {}

    def digest(self, expr: Expr) -> bytes:
        """The 32-byte digest of ``expr`` (iterative: deep nesting needs no recursion)."""
        memo = self._memo
        hit = memo.get(id(expr))
        if hit is not None:
            return hit[1]
        stack: list[tuple[Expr, bool]] = [(expr, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in memo:
                continue
            children = _children(node)
            if not expanded and children:
                stack.append((node, True))
                stack.extend((c, False) for c in children if id(c) not in memo)
                continue
            memo[id(node)] = (node, self._node_digest(node))
        return memo[id(expr)][1]

    def _node_digest(self, node: Expr) -> bytes:
        memo = self._memo
        if isinstance(node, Lit):
            parts: tuple[Any, ...] = ("Lit", node.value)
        elif isinstance(node, Regex):
            parts = ("Regex", node.pattern, node.case_insensitive)
        elif isinstance(node, Ref):
            parts = ("Ref", node.name)
        elif isinstance(node, KeyExclusion):
            parts = ("KeyExclusion", node.keys)
        elif isinstance(node, (Seq, Alt)):
            parts = (type(node).__name__, *(memo[id(c)][1] for c in node.items))
        elif isinstance(node, Repeat):
            parts = ("Repeat", memo[id(node.item)][1], node.min, node.max)
        elif isinstance(node, Check):
            parts = ("Check", memo[id(node.item)][1], repr(node.predicate))
        else:
            raise TypeError(f"Invalid IR node: expected an Expr, got {type(node).__name__}")
        return hashlib.sha256(repr(parts).encode("utf-8")).digest()


def distinct_nodes(*roots: Expr) -> list[Expr]:
    """Every node reachable from ``roots`` (not through ``Ref``), each object once.

    Linear in the distinct objects, where a recursive walk would visit a shared sub-expression
    once per path to it (exponentially often in nested schemas).
    """
    seen: set[int] = set()
    out: list[Expr] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        stack.extend(_children(node))
    return out


def _children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, (Seq, Alt)):
        return node.items
    if isinstance(node, (Repeat, Check)):
        return (node.item,)
    return ()


__all__ = [
    "EMPTY",
    "Alt",
    "Check",
    "Expr",
    "ExprDigester",
    "distinct_nodes",
    "Grammar",
    "KeyExclusion",
    "KeywordStatus",
    "Lit",
    "Ref",
    "Regex",
    "Repeat",
    "Seq",
    "alt",
    "lit",
    "opt",
    "seq",
]
