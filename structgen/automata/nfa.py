"""Byte-level NFAs built from the grammar IR (Thompson construction).

Regex terminals are parsed by interegular into character FSMs, whose character classes are turned
into UTF-8 byte-range paths. Rules referenced by name are inlined; a rule that refers to itself
(directly or not) is not regular and is refused here: the CFG engine handles those.

Deliberate simplifications: repetition ``{m,n}`` is unrolled (size grows linearly with ``n``), and
interegular's ``\\d``, ``\\w``, ``\\s`` are ASCII classes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import interegular
from interegular.fsm import anything_else

from structgen.automata.utf8 import (
    codepoints_to_ranges,
    complement_ranges,
    utf8_sequences,
)
from structgen.errors import InvalidGrammar, LimitExceeded, UnsupportedFeature
from structgen.grammar.ir import Alt, Check, Expr, Grammar, Lit, Ref, Regex, Repeat, Seq

DEFAULT_MAX_NFA_STATES = 2_000_000


@dataclass
class ByteNFA:
    """A mutable byte NFA: ``edges[s]`` lists ``(lo, hi, target)``; ``eps[s]`` lists targets.

    ``accept`` maps accepting states to a label (the terminal or pattern id).
    """

    edges: list[list[tuple[int, int, int]]] = field(default_factory=list)
    eps: list[list[int]] = field(default_factory=list)
    accept: dict[int, int] = field(default_factory=dict)
    max_states: int = DEFAULT_MAX_NFA_STATES
    # every state can reach the fragment's end: set by NfaBuilder for what it builds (Thompson
    # fragments of non-empty languages), so automata need not trim; False means "unknown"
    all_live: bool = False

    def new_state(self) -> int:
        """Add a state and return its id."""
        return self.new_states(1)

    def new_states(self, n: int) -> int:
        """Add ``n`` states; return the id of the first (they are consecutive)."""
        count = len(self.edges)
        if count + n > self.max_states:
            raise LimitExceeded(
                f"the byte NFA exceeds {self.max_states} states",
                hint="simplify the grammar (large bounded repeats unroll), or raise the limit",
            )
        if (count ^ (count + n)) >> 12 or not count:  # about every 4096 states
            deadline = _DEADLINE.get()
            if deadline is not None and time.monotonic() >= deadline[0]:
                raise LimitExceeded(
                    f"compilation took longer than its limit of {deadline[1]:g} s",
                    hint="simplify the grammar, or raise CompileLimits.max_seconds",
                )
        self.edges.extend([] for _ in range(n))
        self.eps.extend([] for _ in range(n))
        return count

    @property
    def num_states(self) -> int:
        """Number of states."""
        return len(self.edges)


_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("structgen_deadline", default=None)


@contextmanager
def compile_deadline(seconds: float | None) -> Iterator[None]:
    """NFA construction inside this block raises ``LimitExceeded`` after ``seconds``."""
    token = _DEADLINE.set(None if seconds is None else (time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


# A regex as a list of (src, dst, byte-range path) transitions over abstract local states.
@dataclass(frozen=True)
class _CharFsm:
    num_states: int
    initial: int
    finals: frozenset[int]
    paths: tuple[tuple[int, int, tuple[tuple[int, int], ...]], ...]
    empty: bool  # the language is empty (the initial state cannot reach a final one)


@lru_cache(maxsize=4096)
def _regex_to_char_fsm(pattern: str, case_insensitive: bool) -> _CharFsm:
    """Parse a regex with interegular and turn its character classes into UTF-8 byte paths."""
    source = f"(?i:{pattern})" if case_insensitive else pattern
    try:
        fsm = interegular.parse_pattern(source).to_fsm()
    except interegular.patterns.Unsupported as exc:
        raise UnsupportedFeature(
            f"regex construct not supported: {exc}",
            keyword="regex",
            location=repr(pattern),
            hint="look-around and back-references cannot be compiled to an automaton",
        ) from exc
    except Exception as exc:  # interegular raises several exception types on bad syntax
        raise InvalidGrammar(
            f"invalid regex: {exc}", keyword="regex", location=repr(pattern)
        ) from exc
    explicit = sorted(
        ord(ch) for ch in fsm.alphabet._symbol_mapping if ch is not anything_else and len(ch) == 1
    )
    key_paths: dict[int, list[tuple[tuple[int, int], ...]]] = {}
    for key, chars in fsm.alphabet.by_transition.items():
        if any(ch is anything_else for ch in chars):
            ranges = complement_ranges(codepoints_to_ranges(explicit))
        else:
            ranges = codepoints_to_ranges(ord(ch) for ch in chars)
        key_paths[key] = [tuple(path) for lo, hi in ranges for path in utf8_sequences(lo, hi)]
    # keep only states from which a final state is reachable (so the NFA needs no trimming)
    preds: dict[Any, set[Any]] = {}
    for src, row in fsm.map.items():
        for key, dst in row.items():
            if key_paths[key]:  # a class of surrogates only has no UTF-8 bytes: no edge
                preds.setdefault(dst, set()).add(src)
    live = set(fsm.finals)
    stack = list(live)
    while stack:
        for p in preds.get(stack.pop(), ()):
            if p not in live:
                live.add(p)
                stack.append(p)
    index = {state: i for i, state in enumerate(sorted(live | {fsm.initial}))}
    paths = []
    for src, row in fsm.map.items():
        if src not in live:
            continue
        for key, dst in row.items():
            if dst in live:
                for path in key_paths[key]:
                    paths.append((index[src], index[dst], path))
    return _CharFsm(
        num_states=len(index),
        initial=index[fsm.initial],
        finals=frozenset(index[s] for s in fsm.finals if s in index),
        paths=tuple(paths),
        empty=fsm.initial not in live,
    )


@lru_cache(maxsize=4096)
def _fragment(
    cfsm: _CharFsm,
) -> tuple[int, tuple[tuple[int, int, int, int], ...], tuple[int, ...]]:
    """A regex's NFA fragment over local state ids: ``(size, edges, finals)``; the FSM's states
    come first, then one state per inner byte of multi-byte paths, then the end state."""
    edges = []
    size = cfsm.num_states
    for src, dst, path in cfsm.paths:
        cur = src
        for lo, hi in path[:-1]:
            edges.append((cur, lo, hi, size))
            cur = size
            size += 1
        lo, hi = path[-1]
        edges.append((cur, lo, hi, dst))
    return size + 1, tuple(edges), tuple(sorted(cfsm.finals))


class NfaBuilder:
    """Builds NFA fragments for IR expressions into one ByteNFA."""

    def __init__(self, grammar: Grammar, nfa: ByteNFA | None = None) -> None:
        self.rules = grammar.rule_map
        self.nfa = nfa if nfa is not None else ByteNFA()
        if self.nfa.num_states == 0:
            self.nfa.all_live = True  # until a fragment with an empty language is built
        self._active: list[str] = []

    def build(self, expr: Expr) -> tuple[int, int]:
        """Add a fragment for ``expr``; return its (entry, exit) states."""
        nfa = self.nfa
        if isinstance(expr, Lit):
            start = cur = nfa.new_state()
            for byte in expr.value:
                nxt = nfa.new_state()
                nfa.edges[cur].append((byte, byte, nxt))
                cur = nxt
            return start, cur
        if isinstance(expr, Regex):
            return self._build_regex(expr)
        if isinstance(expr, Seq):
            start, cur = self.build(expr.items[0])
            for item in expr.items[1:]:
                s, e = self.build(item)
                nfa.eps[cur].append(s)
                cur = e
            return start, cur
        if isinstance(expr, Alt):
            if not expr.items:
                nfa.all_live = False  # the empty language: its entry state is dead
            start, end = nfa.new_state(), nfa.new_state()
            for item in expr.items:
                s, e = self.build(item)
                nfa.eps[start].append(s)
                nfa.eps[e].append(end)
            return start, end
        if isinstance(expr, Repeat):
            return self._build_repeat(expr)
        if isinstance(expr, Ref):
            return self._build_ref(expr)
        if isinstance(expr, Check):
            raise UnsupportedFeature(
                "a semantic check cannot be part of a regular automaton",
                keyword=expr.predicate.describe(),
                hint="grammars with checks compile with the CFG engine",
            )
        raise TypeError(f"Invalid IR node: expected an Expr, got {type(expr).__name__}")

    def _build_regex(self, expr: Regex) -> tuple[int, int]:
        cfsm = _regex_to_char_fsm(expr.pattern, expr.case_insensitive)
        nfa = self.nfa
        if cfsm.empty:
            nfa.all_live = False
        size, edges, finals = _fragment(cfsm)
        base = nfa.new_states(size)
        out, eps = nfa.edges, nfa.eps
        for src, lo, hi, dst in edges:
            out[base + src].append((lo, hi, base + dst))
        end = base + size - 1
        for f in finals:
            eps[base + f].append(end)
        return base + cfsm.initial, end

    def _build_repeat(self, expr: Repeat) -> tuple[int, int]:
        nfa = self.nfa
        if expr.min < 0 or (expr.max is not None and expr.max < expr.min):
            raise InvalidGrammar(f"invalid repeat bounds {{{expr.min},{expr.max}}}")
        start = cur = nfa.new_state()
        for _ in range(expr.min):
            s, e = self.build(expr.item)
            nfa.eps[cur].append(s)
            cur = e
        end = nfa.new_state()
        nfa.eps[cur].append(end)
        if expr.max is None:
            s, e = self.build(expr.item)
            nfa.eps[cur].append(s)
            nfa.eps[e].append(cur)
        else:
            for _ in range(expr.max - expr.min):
                s, e = self.build(expr.item)
                nfa.eps[cur].append(s)
                nfa.eps[e].append(end)
                cur = e
        return start, end

    def _build_ref(self, expr: Ref) -> tuple[int, int]:
        if expr.name not in self.rules:
            raise InvalidGrammar(f"undefined rule {expr.name!r}", keyword=expr.name)
        if expr.name in self._active:
            cycle = " -> ".join([*self._active[self._active.index(expr.name) :], expr.name])
            raise UnsupportedFeature(
                f"recursive rule ({cycle}) is not regular",
                keyword=expr.name,
                hint="recursive grammars need the CFG engine",
            )
        self._active.append(expr.name)
        try:
            return self.build(self.rules[expr.name])
        finally:
            self._active.pop()


def grammar_to_nfa(
    grammar: Grammar, max_states: int = DEFAULT_MAX_NFA_STATES
) -> tuple[ByteNFA, int]:
    """The NFA of a regular (non-recursive) grammar; returns it and its initial state."""
    builder = NfaBuilder(grammar, ByteNFA(max_states=max_states))
    start, end = builder.build(Ref(grammar.start))
    builder.nfa.accept[end] = 0
    return builder.nfa, start


def is_recursive(grammar: Grammar) -> bool:
    """Whether the grammar needs the CFG engine: a rule reaches itself, or a check is used."""
    rules = grammar.rule_map
    refs: dict[str, set[str]] = {name: set() for name in rules}

    def collect(expr: Expr, into: set[str]) -> None:
        if isinstance(expr, Ref):
            into.add(expr.name)
        elif isinstance(expr, (Seq, Alt)):
            for item in expr.items:
                collect(item, into)
        elif isinstance(expr, Repeat):
            collect(expr.item, into)

    def has_check(expr: Expr) -> bool:
        if isinstance(expr, Check):
            return True
        if isinstance(expr, (Seq, Alt)):
            return any(has_check(e) for e in expr.items)
        if isinstance(expr, Repeat):
            return has_check(expr.item)
        return False

    if any(has_check(expr) for _, expr in grammar.rules):
        return True  # checks need the CFG engine, like recursion
    for name, expr in rules.items():
        collect(expr, refs[name])
    state: dict[str, int] = {}

    def visit(name: str) -> bool:
        state[name] = 1
        for nxt in refs.get(name, ()):
            if state.get(nxt) == 1:
                return True
            if nxt not in state and nxt in refs and visit(nxt):
                return True
        state[name] = 2
        return False

    return any(name not in state and visit(name) for name in rules)


__all__ = ["compile_deadline", "ByteNFA", "NfaBuilder", "grammar_to_nfa", "is_recursive"]
