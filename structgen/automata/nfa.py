"""Byte-level NFAs built from the grammar IR (Thompson construction).

Regex terminals are parsed (``structgen.grammar.regex.parse_regex``) into trees of code-point
classes, whose classes are turned into UTF-8 byte-range paths. Rules referenced by name are
inlined; a rule that refers to itself (directly or not) is not regular and is refused here: the
CFG engine handles those.

Deliberate simplifications: repetition ``{m,n}`` is unrolled (size grows linearly with ``n``), and
interegular's ``\\d``, ``\\w``, ``\\s`` are ASCII classes. The number of states a build needs
is computed first (``NfaBuilder.states``, linear in the IR's distinct nodes), so exceeding
``max_states`` raises ``LimitExceeded`` before anything large is allocated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from structgen.automata.utf8 import utf8_sequences
from structgen.errors import InvalidGrammar, LimitExceeded, UnsupportedFeature
from structgen.grammar.ir import (
    Alt,
    Check,
    Expr,
    Grammar,
    Lit,
    Ref,
    Regex,
    Repeat,
    Seq,
    distinct_nodes,
)
from structgen.grammar.regex import RegexNode, parse_regex

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
            check_deadline()
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


def check_deadline() -> None:
    """Raise ``LimitExceeded`` if the current ``compile_deadline`` has passed."""
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline[0]:
        raise LimitExceeded(
            f"compilation took longer than its limit of {deadline[1]:g} s",
            hint="simplify the grammar, or raise CompileLimits.max_seconds",
        )


# ---------------------------------------------------------------------------- regex fragments
#
# A regex is parsed (``parse_regex``) into a tree of code-point classes, concatenations,
# alternations and counted repeats, and built here by Thompson construction. Its size is known
# before anything is allocated (``regex_states``), so a huge counted repeat raises
# ``LimitExceeded`` at once instead of filling memory first.

_CONT = (0x80, 0xBF)  # a UTF-8 continuation byte
_CACHED_FRAGMENT_STATES = 20_000  # fragments up to this size are built once and copied


@dataclass(frozen=True)
class _ClassPlan:
    """The byte fragment of one code-point class over local states: 0 entry, 1 exit."""

    size: int
    edges: tuple[tuple[int, int, int, int], ...]  # (src, lo, hi, dst)
    empty: bool


@lru_cache(maxsize=4096)
def _class_plan(ranges: tuple[tuple[int, int], ...]) -> _ClassPlan:
    """UTF-8 byte paths of a class; runs of trailing continuation bytes share their states."""
    edges: list[tuple[int, int, int, int]] = []
    size = 2
    cont: dict[int, int] = {0: 1}  # k -> the state that needs k more continuation bytes

    def cont_state(k: int) -> int:
        nonlocal size
        if k not in cont:
            below = cont_state(k - 1)
            cont[k] = size
            size += 1
            edges.append((cont[k], _CONT[0], _CONT[1], below))
        return cont[k]

    empty = True
    for lo, hi in ranges:
        for path in utf8_sequences(lo, hi):
            empty = False
            j = len(path)
            while j > 1 and tuple(path[j - 1]) == _CONT:
                j -= 1
            after = cont_state(len(path) - j)
            cur = 0
            for i in range(j):
                if i == j - 1:
                    dst = after
                else:
                    dst = size
                    size += 1
                edges.append((cur, path[i][0], path[i][1], dst))
                cur = dst
    return _ClassPlan(size, tuple(edges), empty)


def regex_states(node: RegexNode) -> int:
    """The number of NFA states ``_emit`` uses for ``node`` (computed, not built)."""
    kind = node[0]
    if kind == "c":
        return _class_plan(node[1]).size
    if kind == "s":
        if not node[1]:
            return 1
        return regex_states(node[1][0]) + sum(_chained_states(item) for item in node[1][1:])
    if kind == "a":
        return 2 + sum(regex_states(item) for item in node[1])
    item = _chained_states(node[1])
    low, high = node[2], node[3]
    return 2 + low * item + (item if high is None else (high - low) * item)


def _chained_states(node: RegexNode) -> int:
    """States of ``node`` emitted after another fragment (a class reuses the exit before it)."""
    if node[0] == "c":
        return _class_plan(node[1]).size - 1
    return regex_states(node)


class _LocalNfa:
    """A fragment recorded over local state ids (the emitter target for cached fragments)."""

    def __init__(self) -> None:
        self.num_states = 0
        self.edges: list[tuple[int, int, int, int]] = []
        self.eps: list[tuple[int, int]] = []
        self.empty = False

    def new_states(self, n: int) -> int:
        first = self.num_states
        self.num_states += n
        if (first ^ self.num_states) >> 12:
            check_deadline()
        return first

    def add_edge(self, src: int, lo: int, hi: int, dst: int) -> None:
        self.edges.append((src, lo, hi, dst))

    def add_eps(self, src: int, dst: int) -> None:
        self.eps.append((src, dst))

    def mark_empty(self) -> None:
        self.empty = True


class _DirectNfa:
    """Emitter target writing straight into a ByteNFA (for fragments too big to cache)."""

    def __init__(self, nfa: ByteNFA) -> None:
        self.nfa = nfa
        self.new_states = nfa.new_states

    def add_edge(self, src: int, lo: int, hi: int, dst: int) -> None:
        self.nfa.edges[src].append((lo, hi, dst))

    def add_eps(self, src: int, dst: int) -> None:
        self.nfa.eps[src].append(dst)

    def mark_empty(self) -> None:
        self.nfa.all_live = False


def _emit(node: RegexNode, out: Any) -> tuple[int, int]:
    """Thompson construction of ``node`` into ``out``; returns its (entry, exit) states."""
    kind = node[0]
    if kind == "c":
        entry = out.new_states(1)
        return entry, _emit_class(node[1], out, entry)
    if kind == "s":
        if not node[1]:
            state = out.new_states(1)
            return state, state
        start, cur = _emit(node[1][0], out)
        for item in node[1][1:]:
            cur = _emit_after(item, out, cur)
        return start, cur
    if kind == "a":
        start = out.new_states(1)
        end = out.new_states(1)
        for item in node[1]:
            s, e = _emit(item, out)
            out.add_eps(start, s)
            out.add_eps(e, end)
        return start, end
    item, low, high = node[1], node[2], node[3]
    start = cur = out.new_states(1)
    for _ in range(low):
        cur = _emit_after(item, out, cur)
    end = out.new_states(1)
    out.add_eps(cur, end)
    if high is None:
        e = _emit_after(item, out, cur)
        out.add_eps(e, cur)
    else:
        for _ in range(high - low):
            cur = _emit_after(item, out, cur)
            out.add_eps(cur, end)
    return start, end


def _emit_after(node: RegexNode, out: Any, cur: int) -> int:
    """Emit ``node`` to start at state ``cur`` (an exit with no outgoing transitions, or one
    whose other transitions may follow it); returns the new exit.

    A class takes ``cur`` itself as its entry (its entry has no incoming transitions, so the
    merge adds no paths); anything else is linked by an epsilon edge.
    """
    if node[0] == "c":
        return _emit_class(node[1], out, cur)
    s, e = _emit(node, out)
    out.add_eps(cur, s)
    return e


def _emit_class(ranges: tuple[tuple[int, int], ...], out: Any, entry: int) -> int:
    """The byte paths of a class from the existing state ``entry``; returns the exit state."""
    plan = _class_plan(ranges)
    base = out.new_states(plan.size - 1) - 1  # local state i > 0 is base + i
    for src, lo, hi, dst in plan.edges:
        out.add_edge(entry if src == 0 else base + src, lo, hi, base + dst)
    if plan.empty:
        out.mark_empty()
    return base + 1


@lru_cache(maxsize=4096)
def _regex_size(pattern: str, case_insensitive: bool) -> int:
    return regex_states(parse_regex(pattern, case_insensitive))


@lru_cache(maxsize=4096)
def _regex_fragment(pattern: str, case_insensitive: bool) -> tuple[Any, ...]:
    """A small regex's fragment over local ids: (size, edges, eps, entry, exit, empty)."""
    local = _LocalNfa()
    start, end = _emit(parse_regex(pattern, case_insensitive), local)
    return local.num_states, tuple(local.edges), tuple(local.eps), start, end, local.empty


def _ensure_room(nfa: ByteNFA, size: int) -> None:
    if nfa.num_states + size > nfa.max_states:
        raise LimitExceeded(
            f"the byte NFA exceeds {nfa.max_states} states (it would need {nfa.num_states + size})",
            hint="simplify the grammar (large bounded repeats unroll), or raise the limit",
        )


class NfaBuilder:
    """Builds NFA fragments for IR expressions into one ByteNFA."""

    def __init__(self, grammar: Grammar, nfa: ByteNFA | None = None) -> None:
        self.rules = grammar.rule_map
        self.nfa = nfa if nfa is not None else ByteNFA()
        if self.nfa.num_states == 0:
            self.nfa.all_live = True  # until a fragment with an empty language is built
        self._active: list[str] = []
        self._sizes: dict[int, tuple[Expr, int]] = {}  # id -> (node kept alive, states)
        self._rule_sizes: dict[str, int] = {}

    def states(self, expr: Expr) -> int:
        """How many NFA states ``build(expr)`` adds, without building anything.

        Memoised per node (and per rule), so it is linear in the distinct nodes even where the
        IR shares sub-expressions and the NFA (which inlines them) is exponentially larger.

        Raises:
            UnsupportedFeature: a check or a recursive rule (as ``build`` would).
        """
        memo = self._sizes
        hit = memo.get(id(expr))
        if hit is not None:
            return hit[1]
        if isinstance(expr, Lit):
            n = len(expr.value) + 1
        elif isinstance(expr, Regex):
            n = _regex_size(expr.pattern, expr.case_insensitive)
        elif isinstance(expr, Seq):
            n = sum(self.states(item) for item in expr.items)
        elif isinstance(expr, Alt):
            n = 2 + sum(self.states(item) for item in expr.items)
        elif isinstance(expr, Repeat):
            if expr.min < 0 or (expr.max is not None and expr.max < expr.min):
                raise InvalidGrammar(f"invalid repeat bounds {{{expr.min},{expr.max}}}")
            item = self.states(expr.item)
            extra = item if expr.max is None else (expr.max - expr.min) * item
            n = 2 + expr.min * item + extra
        elif isinstance(expr, Ref):
            n = self._rule_states(expr)
        elif isinstance(expr, Check):
            raise UnsupportedFeature(
                "a semantic check cannot be part of a regular automaton",
                keyword=expr.predicate.describe(),
                hint="grammars with checks compile with the CFG engine",
            )
        else:
            raise TypeError(f"Invalid IR node: expected an Expr, got {type(expr).__name__}")
        memo[id(expr)] = (expr, n)
        return n

    def _rule_states(self, expr: Ref) -> int:
        known = self._rule_sizes.get(expr.name)
        if known is not None:
            return known
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
            n = self.states(self.rules[expr.name])
        finally:
            self._active.pop()
        self._rule_sizes[expr.name] = n
        return n

    def build_checked(self, expr: Expr) -> tuple[int, int]:
        """``build``, after checking that the NFA's ``max_states`` leaves room for it."""
        _ensure_room(self.nfa, self.states(expr))
        return self.build(expr)

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
        nfa = self.nfa
        size = _regex_size(expr.pattern, expr.case_insensitive)
        _ensure_room(nfa, size)
        if size > _CACHED_FRAGMENT_STATES:
            return _emit(parse_regex(expr.pattern, expr.case_insensitive), _DirectNfa(nfa))
        size, edges, eps, start, end, empty = _regex_fragment(expr.pattern, expr.case_insensitive)
        if empty:
            nfa.all_live = False
        base = nfa.new_states(size)
        out, out_eps = nfa.edges, nfa.eps
        for src, lo, hi, dst in edges:
            out[base + src].append((lo, hi, base + dst))
        for src, dst in eps:
            out_eps[base + src].append(base + dst)
        return base + start, base + end

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
    start, end = builder.build_checked(Ref(grammar.start))
    builder.nfa.accept[end] = 0
    return builder.nfa, start


def is_recursive(grammar: Grammar) -> bool:
    """Whether the grammar needs the CFG engine: a rule reaches itself, or a check is used.

    Linear in the grammar's distinct nodes (shared sub-expressions are visited once).
    """
    rules = grammar.rule_map
    refs: dict[str, set[str]] = {}
    for name, expr in rules.items():
        out: set[str] = set()
        for node in distinct_nodes(expr):
            if isinstance(node, Check):
                return True  # checks need the CFG engine, like recursion
            if isinstance(node, Ref):
                out.add(node.name)
        refs[name] = out
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in rules:
        if root in state:
            continue
        state[root] = 1
        work = [(root, iter(refs[root]))]
        while work:
            name, successors = work[-1]
            for nxt in successors:
                if state.get(nxt) == 1:
                    return True
                if nxt not in state and nxt in refs:
                    state[nxt] = 1
                    work.append((nxt, iter(refs[nxt])))
                    break
            else:
                state[name] = 2
                work.pop()
    return False


__all__ = ["compile_deadline", "ByteNFA", "NfaBuilder", "grammar_to_nfa", "is_recursive"]
