"""Byte-level NFAs built from the grammar IR (Thompson construction).

Regex terminals are parsed (``structgen.grammar.regex.parse_regex``) into trees of code-point
classes, whose classes are turned into UTF-8 byte-range paths. Every distinct IR node, and every
rule, becomes one ``Fragment``, built once (iteratively: a long chain of rules needs no Python
stack) and placed wherever it is used; the NFA's state lists are expanded from the placements
when an automaton is made (in C when the extension is in use). A rule that refers to itself
(directly or not) is not regular and is refused here: the CFG engine handles those.

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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from structgen import _accel
from structgen.automata.regex_fast import fast_parse
from structgen.automata.utf8 import utf8_sequences
from structgen.errors import InvalidGrammar, LimitExceeded, UnsupportedFeature
from structgen.grammar.ir import (
    Alt,
    Check,
    Expr,
    Grammar,
    KeyExclusion,
    Lit,
    Ref,
    Regex,
    Repeat,
    Seq,
    distinct_nodes,
)
from structgen.grammar.json_strings import STRING_BODY, char_spellings, key_trie, other_char
from structgen.grammar.regex import RegexNode, parse_regex

DEFAULT_MAX_NFA_STATES = 2_000_000


class Fragment:
    """An NFA piece over local states ``0 .. size-1``: its own byte edges ``(src, lo, hi,
    dst)`` and epsilon edges ``(src, dst)``, plus nested fragments placed at local offsets.

    One fragment is built per distinct IR node (and per rule), and a node used many times is
    placed many times, never rebuilt: building is linear in the IR's distinct nodes, and an
    automaton expands the placements (in C when the extension is in use) into its state lists.
    Immutable; ``native`` is its ``_native.Fragment`` twin (None in pure-Python mode).
    """

    __slots__ = ("size", "edges", "eps", "subs", "start", "end", "empty", "native")

    def __init__(
        self,
        size: int,
        edges: Any,
        eps: Any,
        subs: Any,
        start: int,
        end: int,
        empty: bool,
    ) -> None:
        self.size = size
        # tuples: the cyclic GC stops tracking tuples of ints, so many fragments stay cheap
        self.edges = tuple(edges)
        self.eps = tuple(eps)
        self.subs = tuple(subs)
        self.start = start
        self.end = end
        # some state cannot reach the end (an empty language inside): automata must trim
        self.empty = empty
        nat = _accel.native()
        self.native: Any = None
        if nat is not None and all(f.native is not None for f, _ in subs):
            self.native = nat.Fragment(size, self.edges, self.eps, [(f.native, b) for f, b in subs])


class ByteNFA:
    """A byte NFA: ``edges[s]`` lists ``(lo, hi, target)``; ``eps[s]`` lists targets.

    ``accept`` maps accepting states to a label (the terminal or pattern id). States are added
    with ``new_states``; edges directly (``add_edge``, ``add_eps``) or by placing a
    ``Fragment`` (``place``). The per-state lists ``edges`` and ``eps`` are expanded on first
    read; ``csr()`` gives the flat arrays the C automata take.
    """

    def __init__(
        self,
        max_states: int = DEFAULT_MAX_NFA_STATES,
        accept: dict[int, int] | None = None,
        all_live: bool = False,
    ) -> None:
        self.accept: dict[int, int] = {} if accept is None else accept
        self.max_states = max_states
        # every state can reach the fragment's end: set by NfaBuilder for what it builds (Thompson
        # fragments of non-empty languages), so automata need not trim; False means "unknown"
        self.all_live = all_live
        self._n = 0
        self._edges: list[tuple[int, int, int, int]] = []
        self._eps: list[tuple[int, int]] = []
        self._placed: list[tuple[Fragment, int]] = []
        self._lists: (
            tuple[tuple[int, ...], list[list[tuple[int, int, int]]], list[list[int]]] | None
        )
        self._lists = None
        self._csr: tuple[bytes, ...] | None = None  # flat arrays (an unpickled NFA)

    # pickling: the flat arrays (fragments are a build-time structure, and deep)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "max_states": self.max_states,
            "accept": self.accept,
            "all_live": self.all_live,
            "n": self._n,
            "csr": self._flat_arrays(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_states"], state["accept"], state["all_live"])  # type: ignore[misc]
        self._n = state["n"]
        self._csr = tuple(state["csr"])

    def _flat_arrays(self) -> tuple[bytes, ...]:
        if self._csr is not None and not (self._edges or self._eps or self._placed):
            return self._csr
        if _accel.native() is not None:
            return self.csr()
        import numpy as np

        edges, eps = self._expand()
        e_off = np.zeros(self._n + 1, dtype=np.int32)
        np.cumsum([len(e) for e in edges], out=e_off[1:])
        x_off = np.zeros(self._n + 1, dtype=np.int32)
        np.cumsum([len(x) for x in eps], out=x_off[1:])
        flat = [e for es in edges for e in es]
        lo = np.array([e[0] for e in flat], dtype=np.uint8)
        hi = np.array([e[1] for e in flat], dtype=np.uint8)
        dst = np.array([e[2] for e in flat], dtype=np.int32)
        x_dst = np.array([t for xs in eps for t in xs], dtype=np.int32)
        return (
            e_off.tobytes(),
            lo.tobytes(),
            hi.tobytes(),
            dst.tobytes(),
            x_off.tobytes(),
            x_dst.tobytes(),
        )

    def _thaw(self) -> None:
        """Turn flat arrays (from unpickling) back into edges, before anything is added."""
        if self._csr is None:
            return
        import numpy as np

        e_off, lo, hi, dst, x_off, x_dst = (
            np.frombuffer(b, dtype=t)
            for b, t in zip(
                self._csr,
                (np.int32, np.uint8, np.uint8, np.int32, np.int32, np.int32),
                strict=True,
            )
        )
        src = np.repeat(np.arange(self._n), np.diff(e_off))
        self._edges = list(zip(src.tolist(), lo.tolist(), hi.tolist(), dst.tolist(), strict=True))
        xsrc = np.repeat(np.arange(self._n), np.diff(x_off))
        self._eps = list(zip(xsrc.tolist(), x_dst.tolist(), strict=True))
        self._csr = None

    def new_state(self) -> int:
        """Add a state and return its id."""
        return self.new_states(1)

    def new_states(self, n: int) -> int:
        """Add ``n`` states; return the id of the first (they are consecutive)."""
        count = self._n
        if count + n > self.max_states:
            raise LimitExceeded(
                f"the byte NFA exceeds {self.max_states} states",
                hint="simplify the grammar (large bounded repeats unroll), or raise the limit",
            )
        if (count ^ (count + n)) >> 12 or not count:  # about every 4096 states
            check_deadline()
        self._n = count + n
        return count

    def add_edge(self, src: int, lo: int, hi: int, dst: int) -> None:
        """A byte edge on ``lo..hi`` (inclusive)."""
        self._thaw()
        self._edges.append((src, lo, hi, dst))

    def add_eps(self, src: int, dst: int) -> None:
        """An epsilon edge."""
        self._thaw()
        self._eps.append((src, dst))

    def place(self, frag: Fragment) -> int:
        """Add a copy of ``frag`` on new states; returns the offset of its local state 0."""
        self._thaw()
        base = self.new_states(frag.size)
        self._placed.append((frag, base))
        if frag.empty:
            self.all_live = False
        return base

    @property
    def num_states(self) -> int:
        """Number of states."""
        return self._n

    def _version(self) -> tuple[int, ...]:
        return (self._n, len(self._edges), len(self._eps), len(self._placed))

    def _expand(self) -> tuple[list[list[tuple[int, int, int]]], list[list[int]]]:
        self._thaw()
        lists = self._lists
        if lists is not None and lists[0] == self._version():
            return lists[1], lists[2]
        edges: list[list[tuple[int, int, int]]] = [[] for _ in range(self._n)]
        eps: list[list[int]] = [[] for _ in range(self._n)]
        for src, lo, hi, dst in self._edges:
            edges[src].append((lo, hi, dst))
        for src, dst in self._eps:
            eps[src].append(dst)
        stack = list(self._placed)
        while stack:
            frag, base = stack.pop()
            for src, lo, hi, dst in frag.edges:
                edges[base + src].append((lo, hi, base + dst))
            for src, dst in frag.eps:
                eps[base + src].append(base + dst)
            stack.extend((f, base + b) for f, b in frag.subs)
        self._lists = (self._version(), edges, eps)
        return edges, eps

    @property
    def edges(self) -> list[list[tuple[int, int, int]]]:
        """``edges[s]``: the byte edges ``(lo, hi, target)`` of state ``s``."""
        return self._expand()[0]

    @property
    def eps(self) -> list[list[int]]:
        """``eps[s]``: the epsilon targets of state ``s``."""
        return self._expand()[1]

    def freeze(self, arrays: tuple[bytes, ...]) -> None:
        """Keep only the flat arrays ``csr()`` returned (drops the fragments: an automaton
        built from them needs nothing else, and fewer objects is less work for the GC)."""
        self._csr = tuple(arrays)
        self._edges, self._eps, self._placed, self._lists = [], [], [], None

    def csr(self) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
        """``(e_off, e_lo, e_hi, e_dst, x_off, x_dst)``: the edges as flat arrays grouped by
        source state (int32 offsets and targets, uint8 byte bounds). Needs the C extension."""
        nat = _accel.native()
        if nat is None:
            raise RuntimeError(f"ByteNFA.csr needs the C extension: {_accel.describe()}")
        if self._csr is not None:
            return self._csr  # type: ignore[return-value]
        if all(f.native is not None for f, _ in self._placed):
            placed = [(f.native, base) for f, base in self._placed]
            return nat.expand(self._n, self._edges, self._eps, placed)  # type: ignore[no-any-return]
        return nat.csr(self.edges, self.eps)  # type: ignore[no-any-return]


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


def _parsed(pattern: str, case_insensitive: bool) -> RegexNode:
    """``parse_regex``, through the fast parser where it applies (the same tree)."""
    tree = None if case_insensitive else fast_parse(pattern)
    return tree if tree is not None else parse_regex(pattern, case_insensitive)


@lru_cache(maxsize=4096)
def _regex_size(pattern: str, case_insensitive: bool) -> int:
    return regex_states(_parsed(pattern, case_insensitive))


_REGEX_TEMPLATES: dict[tuple[str, bool, bool], Fragment] = {}


def _regex_template(pattern: str, case_insensitive: bool) -> Fragment:
    """The fragment of a regex (cached per pattern when small: regexes recur across schemas)."""
    key = (pattern, case_insensitive, _accel.native() is not None)
    hit = _REGEX_TEMPLATES.get(key)
    if hit is not None:
        return hit
    local = _LocalNfa()
    start, end = _emit(_parsed(pattern, case_insensitive), local)
    frag = Fragment(local.num_states, local.edges, local.eps, [], start, end, local.empty)
    if local.num_states <= _CACHED_FRAGMENT_STATES:
        if len(_REGEX_TEMPLATES) >= 4096:
            _REGEX_TEMPLATES.clear()
        _REGEX_TEMPLATES[key] = frag
    return frag


def _ensure_room(nfa: ByteNFA, size: int) -> None:
    if nfa.num_states + size > nfa.max_states:
        raise LimitExceeded(
            f"the byte NFA exceeds {nfa.max_states} states (it would need {nfa.num_states + size})",
            hint="simplify the grammar (large bounded repeats unroll), or raise the limit",
        )


def _check_node(expr: Expr) -> None:
    if isinstance(expr, Check):
        raise UnsupportedFeature(
            "a semantic check cannot be part of a regular automaton",
            keyword=expr.predicate.describe(),
            hint="grammars with checks compile with the CFG engine",
        )
    if not isinstance(expr, (Lit, Regex, Seq, Alt, Repeat, Ref, KeyExclusion)):
        raise TypeError(f"Invalid IR node: expected an Expr, got {type(expr).__name__}")
    if isinstance(expr, Repeat) and (
        expr.min < 0 or (expr.max is not None and expr.max < expr.min)
    ):
        raise InvalidGrammar(f"invalid repeat bounds {{{expr.min},{expr.max}}}")


_FACTOR_MIN_ITEMS = 4  # alternations with fewer items are built as they are


def _factor_key(node: Expr) -> tuple[Any, ...]:
    """Equality of items for factoring: leaves by value, rules by name, the rest by identity."""
    if isinstance(node, Lit):
        return ("L", node.value)
    if isinstance(node, Regex):
        return ("R", node.pattern, node.case_insensitive)
    if isinstance(node, Ref):
        return ("F", node.name)
    if isinstance(node, KeyExclusion):
        return ("K", node.keys)
    return ("I", id(node))


def _key_exclusion_fragment(node: KeyExclusion) -> Fragment:
    """The fragment of ``KeyExclusion(keys)``, straight from the key trie.

    One state per trie node. From it: to the exit if no key ends there; the regex fragment of
    "a character none of the children, in any spelling" (``json_strings.other_char``), then one
    string body shared by every trie node (after leaving the trie anything may follow: one
    copy, where the IR placed one per trie node); and per child, the fragment of its
    character's spellings, then the child's state. Character fragments are the cached regex
    templates, so the Python work is a few tuples per trie node. The language is the one of
    the reference IR (``json_strings.not_key_ir``): the same regexes, wired by the same
    equations (not_key(n) = [empty] | other(n) BODY | each spelling(c) not_key(child)).

    Local layout: state 0 is the exit, the body follows it; then each trie node's state (the
    root first) and the fragments placed for it.
    """
    body = _regex_template(STRING_BODY, False)
    subs: list[tuple[Fragment, int]] = [(body, 1)]
    eps: list[tuple[int, int]] = [(1 + body.end, 0)]
    body_start = 1 + body.start
    root = size = 1 + body.size
    size += 1
    queue = [(key_trie(node.keys), root)]
    for trie, state in queue:  # breadth first: the queue grows while it is read
        children = sorted(trie.children.items()) if trie.children else []
        if not trie.terminal:
            eps.append((state, 0))
        leave = _regex_template(other_char(tuple(ch for ch, _ in children)), False)
        subs.append((leave, size))
        eps.append((state, size + leave.start))
        eps.append((size + leave.end, body_start))
        size += leave.size
        for ch, child in children:
            spelled = _regex_template(char_spellings(ch), False)
            subs.append((spelled, size))
            child_state = size + spelled.size
            eps.append((state, size + spelled.start))
            eps.append((size + spelled.end, child_state))
            size = child_state + 1
            queue.append((child, child_state))
    return Fragment(size, [], eps, subs, root, 0, any(f.empty for f, _ in subs))


@dataclass(frozen=True)
class _AltPlan:
    """An alternation of sequences as a trie of their items (shared prefixes built once) and
    their common suffix (built once after the trie): the same language as the plain Thompson
    ``Alt``, in fewer states where alternatives share items (enums of objects share every
    key and whitespace slot up to the first differing value).

    Local layout: trie node ``i`` is state ``i``, then the exit state ``nodes``; the items on
    trie edges and the suffix items are placed after it."""

    nodes: int
    edges: tuple[tuple[int, int, Expr], ...]  # (parent node, child node, item)
    ends: tuple[int, ...]  # trie nodes where an alternative (before the suffix) ends
    suffix: tuple[Expr, ...]


def _alt_plan(node: Alt) -> _AltPlan | None:
    """The factored plan of ``node``, or None where factoring saves nothing."""
    if len(node.items) < _FACTOR_MIN_ITEMS:
        return None
    seqs = [item.items if isinstance(item, Seq) else (item,) for item in node.items]
    keys = [[_factor_key(x) for x in seq] for seq in seqs]
    k = min(len(seq) for seq in seqs)
    suffix = 0
    while suffix < k and all(ks[-1 - suffix] == keys[0][-1 - suffix] for ks in keys):
        suffix += 1
    children: list[dict[tuple[Any, ...], int]] = [{}]
    edges: list[tuple[int, int, Expr]] = []
    ends: set[int] = set()
    for seq, ks in zip(seqs, keys, strict=True):
        cur = 0
        for x, key in zip(seq[: len(seq) - suffix], ks[: len(ks) - suffix], strict=True):
            nxt = children[cur].get(key)
            if nxt is None:
                nxt = len(children)
                children[cur][key] = nxt
                children.append({})
                edges.append((cur, nxt, x))
            cur = nxt
        ends.add(cur)
    placed = len(edges) + suffix
    if placed >= sum(len(seq) for seq in seqs):
        return None  # nothing shared
    return _AltPlan(
        len(children), tuple(edges), tuple(sorted(ends)), seqs[0][len(seqs[0]) - suffix :]
    )


class NfaBuilder:
    """Builds NFA fragments for IR expressions into one ByteNFA.

    Both walks (``states`` and the fragments of ``build``) are iterative post-orders over the
    distinct IR nodes, following rule references without recursion, so a long chain of rules
    (``$ref`` to ``$ref`` ...) needs no Python stack. Builders made with ``sharing`` reuse
    each other's sizes and fragments (the CFG lowering builds one NFA per terminal).
    """

    def __init__(
        self, grammar: Grammar, nfa: ByteNFA | None = None, *, sharing: NfaBuilder | None = None
    ) -> None:
        self.rules = grammar.rule_map if sharing is None else sharing.rules
        self.nfa = nfa if nfa is not None else ByteNFA()
        if self.nfa.num_states == 0:
            self.nfa.all_live = True  # until a fragment with an empty language is built
        # id -> (node kept alive, value); rule name -> value
        self._sizes: dict[int, tuple[Expr, int]] = {} if sharing is None else sharing._sizes
        self._rule_sizes: dict[str, int] = {} if sharing is None else sharing._rule_sizes
        self._frags: dict[int, tuple[Expr, Fragment]] = {} if sharing is None else sharing._frags
        self._rule_frags: dict[str, Fragment] = {} if sharing is None else sharing._rule_frags
        self._plans: dict[int, tuple[Alt, _AltPlan | None]] = (
            {} if sharing is None else sharing._plans
        )

    def _key_exclusion(self, node: KeyExclusion) -> Fragment:
        """The fragment of ``node``, made when it is first sized (its size is the fragment's)
        and kept in the fragment memo, where ``fragment`` finds it."""
        hit = self._frags.get(id(node))
        if hit is None:
            hit = (node, _key_exclusion_fragment(node))
            self._frags[id(node)] = hit
        return hit[1]

    def _plan(self, node: Alt) -> _AltPlan | None:
        hit = self._plans.get(id(node))
        if hit is None:
            hit = (node, _alt_plan(node))
            self._plans[id(node)] = hit
        return hit[1]

    def _post_order(
        self,
        root: Expr,
        memo: dict[int, tuple[Expr, Any]],
        rule_memo: dict[str, Any],
        make: Any,
        check: bool = True,
    ) -> Any:
        """``make(node)`` for ``root`` and every node below it not yet in ``memo``, children
        first; a ``Ref`` gets its rule's value. Raises on a recursive rule. ``check=False``
        skips ``_check_node`` (for nodes already sized: sizing checked them)."""
        hit = memo.get(id(root))
        if hit is not None:
            return hit[1]
        rules = self.rules
        active: list[str] = []  # rules being expanded, outermost first
        stack: list[tuple[Expr, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in memo:
                continue
            if isinstance(node, Ref):
                name = node.name
                known = rule_memo.get(name)
                if known is not None:
                    memo[id(node)] = (node, known)
                    continue
                if name not in rules:
                    raise InvalidGrammar(f"undefined rule {name!r}", keyword=name)
                body = rules[name]
                if not expanded:
                    if name in active:
                        cycle = " -> ".join([*active[active.index(name) :], name])
                        raise UnsupportedFeature(
                            f"recursive rule ({cycle}) is not regular",
                            keyword=name,
                            hint="recursive grammars need the CFG engine",
                        )
                    active.append(name)
                    stack.append((node, True))
                    if id(body) not in memo:
                        stack.append((body, False))
                    continue
                active.pop()
                value = memo[id(body)][1]
                rule_memo[name] = value
                memo[id(node)] = (node, value)
                continue
            if check:
                _check_node(node)
            if isinstance(node, (Seq, Alt)):
                children: tuple[Expr, ...] = node.items
            elif isinstance(node, Repeat):
                children = (node.item,)
            else:
                children = ()
            if not expanded and children:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(children) if id(c) not in memo)
                continue
            memo[id(node)] = (node, make(node))
        return memo[id(root)][1]

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
        return int(self._post_order(expr, memo, self._rule_sizes, self.node_size))

    def node_size(self, node: Expr) -> int:
        """The states ``build(node)`` adds, from its children's sizes (already memoised)."""
        memo = self._sizes
        if isinstance(node, Lit):
            return len(node.value) + 1
        if isinstance(node, Regex):
            return _regex_size(node.pattern, node.case_insensitive)
        if isinstance(node, KeyExclusion):
            return self._key_exclusion(node).size
        if isinstance(node, Seq):
            return sum(memo[id(c)][1] for c in node.items) if node.items else 1
        if isinstance(node, Alt):
            plan = self._plan(node)
            if plan is not None:

                def size_of(x: Expr) -> int:
                    return memo[id(x)][1] if not isinstance(x, Ref) else self._rule_sizes[x.name]

                return (
                    plan.nodes
                    + 1
                    + sum(size_of(x) for _, _, x in plan.edges)
                    + sum(size_of(x) for x in plan.suffix)
                )
            return 2 + sum(memo[id(c)][1] for c in node.items)
        assert isinstance(node, Repeat)
        item = memo[id(node.item)][1]
        extra = item if node.max is None else (node.max - node.min) * item
        return 2 + node.min * item + extra

    def fragment(self, expr: Expr) -> Fragment:
        """The fragment of ``expr`` (built once per distinct node; nothing placed yet).

        Raises ``LimitExceeded`` first if ``expr`` alone would exceed the NFA's limit.
        """
        _ensure_room(self.nfa, self.states(expr))
        memo = self._frags
        hit = memo.get(id(expr))
        if hit is not None:
            return hit[1]

        def frag_of(x: Expr) -> Fragment:
            return memo[id(x)][1] if not isinstance(x, Ref) else self._rule_frags[x.name]

        def make(node: Expr) -> Fragment:
            if isinstance(node, Lit):
                v = node.value
                return Fragment(
                    len(v) + 1,
                    [(i, b, b, i + 1) for i, b in enumerate(v)],
                    [],
                    [],
                    0,
                    len(v),
                    False,
                )
            if isinstance(node, Regex):
                return _regex_template(node.pattern, node.case_insensitive)
            if isinstance(node, KeyExclusion):
                return self._key_exclusion(node)
            if isinstance(node, Seq):
                if not node.items:
                    return Fragment(1, [], [], [], 0, 0, False)
                subs: list[tuple[Fragment, int]] = []
                eps: list[tuple[int, int]] = []
                base = 0
                prev_end = -1
                empty = False
                for child in node.items:
                    f = memo[id(child)][1]
                    subs.append((f, base))
                    if prev_end >= 0:
                        eps.append((prev_end, base + f.start))
                    prev_end = base + f.end
                    base += f.size
                    empty = empty or f.empty
                first = subs[0][0]
                return Fragment(base, [], eps, subs, first.start, prev_end, empty)
            if isinstance(node, Alt) and self._plan(node) is not None:
                plan = self._plan(node)
                assert plan is not None
                subs = []
                eps = []
                exit_ = plan.nodes
                base = exit_ + 1
                empty = False
                for parent, child, x in plan.edges:
                    f = frag_of(x)
                    subs.append((f, base))
                    eps.append((parent, base + f.start))
                    eps.append((base + f.end, child))
                    base += f.size
                    empty = empty or f.empty
                for end in plan.ends:
                    eps.append((end, exit_))
                cur = exit_
                for x in plan.suffix:
                    f = frag_of(x)
                    subs.append((f, base))
                    eps.append((cur, base + f.start))
                    cur = base + f.end
                    base += f.size
                    empty = empty or f.empty
                return Fragment(base, [], eps, subs, 0, cur, empty)
            if isinstance(node, Alt):
                subs = []
                eps = []
                base = 2
                empty = not node.items  # the empty language: the entry state is dead
                for child in node.items:
                    f = memo[id(child)][1]
                    subs.append((f, base))
                    eps.append((0, base + f.start))
                    eps.append((base + f.end, 1))
                    base += f.size
                    empty = empty or f.empty
                return Fragment(base, [], eps, subs, 0, 1, empty)
            assert isinstance(node, Repeat)
            f = memo[id(node.item)][1]
            subs = []
            eps = []
            cur, nxt = 0, 1
            for _ in range(node.min):
                subs.append((f, nxt))
                eps.append((cur, nxt + f.start))
                cur = nxt + f.end
                nxt += f.size
            end = nxt
            nxt += 1
            eps.append((cur, end))
            if node.max is None:
                subs.append((f, nxt))
                eps.append((cur, nxt + f.start))
                eps.append((nxt + f.end, cur))
                nxt += f.size
            else:
                for _ in range(node.max - node.min):
                    subs.append((f, nxt))
                    eps.append((cur, nxt + f.start))
                    eps.append((nxt + f.end, end))
                    cur = nxt + f.end
                    nxt += f.size
            return Fragment(nxt, [], eps, subs, 0, end, f.empty)

        # every node under ``expr`` was sized (``states`` above, or the CFG lowering's walk)
        return self._post_order(expr, memo, self._rule_frags, make, check=False)  # type: ignore[no-any-return]

    def build_checked(self, expr: Expr) -> tuple[int, int]:
        """``build``, after checking that the NFA's ``max_states`` leaves room for it."""
        _ensure_room(self.nfa, self.states(expr))
        return self.build(expr)

    def build(self, expr: Expr) -> tuple[int, int]:
        """Add a fragment for ``expr``; return its (entry, exit) states."""
        frag = self.fragment(expr)
        base = self.nfa.place(frag)
        return base + frag.start, base + frag.end


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
