"""A lazily determinised byte DFA: subset construction on demand, one row per visited state.

Eager determinisation plus minimisation of a large schema's automaton costs seconds in Python;
decoding visits only a small part of it. Here compile time is the NFA build, and a state's row
(its 256 successors) is computed the first time a walk needs it, then kept. The NFA is trimmed
first (states that cannot reach acceptance are dropped), so every non-empty state set is live:
"not dead" still means "a viable prefix".

State 0 is the dead state (the empty set), state 1 the initial state. Not minimised: equivalent
states may get different ids, which only costs extra mask-cache entries.

Two implementations share this interface: ``LazyByteDFA`` here is the pure-Python reference; when
the C extension is available (``structgen._accel``), ``LazyByteDFA(...)`` builds a
``NativeLazyByteDFA``, whose subset construction and rows live in C (the same subsets and the same
interning rule; a native trie walk may discover them in another order, so ids can differ).
"""

from __future__ import annotations

import threading
from collections import deque
from functools import lru_cache
from typing import Any

import numpy as np

from structgen import _accel
from structgen.automata.nfa import ByteNFA
from structgen.errors import LimitExceeded

_UNKNOWN = -1

DEFAULT_MAX_DFA_STATES = 200_000
"""Default bound on the states one lazy DFA may discover (``LimitExceeded`` beyond)."""


def _coreachable(nfa: ByteNFA) -> set[int]:
    preds: list[list[int]] = [[] for _ in range(nfa.num_states)]
    edges, eps = nfa.edges, nfa.eps  # properties (expanded from fragments): read once
    for s in range(nfa.num_states):
        for _, _, t in edges[s]:
            preds[t].append(s)
        for t in eps[s]:
            preds[t].append(s)
    seen = set(nfa.accept)
    queue = deque(seen)
    while queue:
        for p in preds[queue.popleft()]:
            if p not in seen:
                seen.add(p)
                queue.append(p)
    return seen


class _AllStates:
    """The live set of an NFA whose states are all co-reachable."""

    def __contains__(self, state: object) -> bool:
        return True


def _restore(state: dict[str, Any]) -> LazyByteDFA:
    """Unpickle with the implementation this process uses (native or pure Python)."""
    dfa = LazyByteDFA.__new__(LazyByteDFA)
    dfa.__setstate__(state)
    return dfa


class LazyByteDFA:
    """On-demand DFA over bytes with the read interface the token layer needs.

    ``native``: None picks the C implementation when available (``structgen._accel``), False
    forces this pure-Python reference, True requires the C one.
    """

    native_impl: Any = None  # the structgen._native.Dfa behind a NativeLazyByteDFA
    # token-level walks from this DFA's states, kept by the token layer (cfg_index); not pickled
    walks: dict[Any, Any]

    def __new__(cls, *args: Any, native: bool | None = None, **kwargs: Any) -> LazyByteDFA:
        if cls is LazyByteDFA:
            if native is None:
                native = _accel.native() is not None
            elif native and _accel.native() is None:
                raise RuntimeError(f"the C extension is not in use: {_accel.describe()}")
            if native:
                cls = NativeLazyByteDFA
        return object.__new__(cls)

    def __init__(
        self,
        nfa: ByteNFA,
        start: int,
        max_states: int = DEFAULT_MAX_DFA_STATES,
        *,
        native: bool | None = None,
    ) -> None:
        self.nfa = nfa
        self.start = start
        self.max_states = max_states
        self._init()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.__getstate__(),))

    def _init(self) -> None:
        self.walks = {}
        self._edges, self._eps = self.nfa.edges, self.nfa.eps  # expanded once (properties)
        # trimmed: every state the subset construction may use can still reach acceptance
        self._live = _AllStates() if self.nfa.all_live else _coreachable(self.nfa)
        self._memo: dict[int, frozenset[int]] = {}
        self._ids: dict[frozenset[int], int] = {}
        self._sets: list[frozenset[int]] = []
        self._table = np.full((64, 256), _UNKNOWN, dtype=np.int32)
        self._accepting = np.zeros(64, dtype=bool)
        self._has_out = np.zeros(64, dtype=bool)  # valid where the row is computed
        self.accept_list: list[bool] = []  # the accepting flags as a list (fast scalar reads)
        self._rows: list[list[int] | None] = []
        self._lock = threading.RLock()
        dead = self._intern(frozenset())
        self._table[dead] = dead
        self._rows[dead] = [dead] * 256
        start = self._closure({self.start}) if self.start in self._live else frozenset()
        self.initial = self._intern(start)

    def __getstate__(self) -> dict[str, Any]:
        # the discovered states travel with the automaton: state ids held elsewhere (a pickled
        # Matcher's position, its rollback history, Earley scan items) must keep their meaning
        with self._lock:
            sets = list(self._sets)
        return {"nfa": self.nfa, "start": self.start, "max_states": self.max_states, "sets": sets}

    def __setstate__(self, state: dict[str, Any]) -> None:
        sets = state.pop("sets", ())
        self.__dict__.update(state)
        self._init()
        for subset in sets[len(self._sets) :]:
            self._intern(subset)
        for sid, subset in enumerate(sets):
            if self._sets[sid] != subset:  # pragma: no cover - construction is deterministic
                raise ValueError("Invalid LazyByteDFA state: discovered states out of order")

    # ------------------------------------------------------------------ construction

    def _closure(self, states: set[int]) -> frozenset[int]:
        out: set[int] = set()
        eps, live, memo = self._eps, self._live, self._memo
        for s in states:
            c = memo.get(s)
            if c is None:
                seen = {s}
                stack = [s]
                while stack:
                    for t in eps[stack.pop()]:
                        if t not in seen and t in live:
                            seen.add(t)
                            stack.append(t)
                c = frozenset(seen)
                memo[s] = c
            out |= c
        return frozenset(out)

    def _intern(self, subset: frozenset[int]) -> int:
        sid = self._ids.get(subset)
        if sid is not None:
            return sid
        sid = len(self._sets)
        if sid >= self.max_states:
            raise LimitExceeded(
                f"the lazy byte DFA exceeds {self.max_states} states",
                hint="simplify the grammar (large bounded repeats multiply states)",
            )
        if sid >= self._table.shape[0]:
            grow = self._table.shape[0]
            self._table = np.vstack([self._table, np.full((grow, 256), _UNKNOWN, np.int32)])
            self._accepting = np.concatenate([self._accepting, np.zeros(grow, dtype=bool)])
            self._has_out = np.concatenate([self._has_out, np.zeros(grow, dtype=bool)])
        self._ids[subset] = sid
        self._sets.append(subset)
        self._rows.append(None)
        accepting = any(s in self.nfa.accept for s in subset)
        self._accepting[sid] = accepting
        self.accept_list.append(accepting)
        return sid

    def _compute_row(self, sid: int) -> list[int]:
        with self._lock:
            row = self._rows[sid]
            if row is not None:
                return row
            row = [0] * 256
            edges = [e for s in self._sets[sid] for e in self._edges[s] if e[2] in self._live]
            if edges:
                points = sorted({e[0] for e in edges} | {e[1] + 1 for e in edges})
                for a, b in zip(points, points[1:], strict=False):
                    targets = {t for lo, hi, t in edges if lo <= a <= hi}
                    if targets:
                        tid = self._intern(self._closure(targets))
                        row[a:b] = [tid] * (b - a)
            self._table[sid] = row
            self._has_out[sid] = bool(edges)
            self._rows[sid] = row
            return row

    # ------------------------------------------------------------------ the read interface

    dead = 0

    @property
    def live_nfa_states(self) -> Any:
        """The NFA states that can reach acceptance (supports ``in``); others are trimmed."""
        return self._live

    @property
    def num_states(self) -> int:
        """States discovered so far (the dead state included)."""
        return len(self._sets)

    @property
    def accepting(self) -> np.ndarray:
        """``bool[capacity]``: accepting flags of the discovered states."""
        return self._accepting

    def row(self, state: int) -> list[int]:
        """The 256 successors of ``state``."""
        row = self._rows[state]
        return row if row is not None else self._compute_row(state)

    def next(self, state: int, byte: int) -> int:
        """The state after one byte (0 = dead)."""
        return self.row(state)[byte]

    def is_accepting(self, state: int) -> bool:
        """Whether ``state`` accepts."""
        return self.accept_list[state]

    def step(self, state: int, data: bytes) -> int:
        """The state after ``data`` (0 = dead)."""
        for byte in data:
            state = self.row(state)[byte]
            if state == 0:
                return 0
        return state

    def gather(self, states: np.ndarray, byts: np.ndarray) -> np.ndarray:
        """Vectorised successors ``trans[states[i], byts[i]]``, computing missing rows."""
        out = self._table[states, byts]
        missing = out == _UNKNOWN
        if missing.any():
            for sid in np.unique(states[missing]).tolist():
                self._compute_row(int(sid))
            out = self._table[states, byts]
        return out

    def has_out(self, states: np.ndarray) -> np.ndarray:
        """``bool`` per state: whether some byte keeps it alive (rows computed as needed)."""
        rows = self._rows
        for sid in np.unique(states).tolist():
            if rows[sid] is None:
                self._compute_row(int(sid))
        return self._has_out[states]

    def row_has_out(self, state: int) -> bool:
        """Whether some byte keeps ``state`` alive."""
        self.row(state)
        return bool(self._has_out[state])

    def single_live_byte(self, state: int) -> int:
        """The only byte that keeps ``state`` alive, or -1."""
        live = [b for b, t in enumerate(self.row(state)) if t != 0]
        return live[0] if len(live) == 1 else -1

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` is in the language."""
        return bool(self._accepting[self.step(self.initial, data)])


@lru_cache(maxsize=16)
def _byte_flags(single: frozenset[int]) -> bytes:
    return bytes(1 if b in single else 0 for b in range(256))


class _LiveSet:
    """``in`` over a bytes object of 0/1 flags (the native automaton's co-reachable states)."""

    __slots__ = ("flags",)

    def __init__(self, flags: bytes) -> None:
        self.flags = flags

    def __contains__(self, state: object) -> bool:
        return bool(self.flags[state])  # type: ignore[index]


class NativeLazyByteDFA(LazyByteDFA):
    """``LazyByteDFA`` with the subset construction and the rows in C (``_native.Dfa``).

    The hot reads (``row``, ``step``, ``row_has_out``, ``next``) are the C object's own
    methods, bound on the instance.
    """

    def _init(self) -> None:
        nat = _accel.native()
        if nat is None:  # pragma: no cover - guarded by LazyByteDFA.__new__
            raise RuntimeError(f"the C extension is not in use: {_accel.describe()}")
        self.walks = {}
        nfa = self.nfa
        arrays = nfa.csr()
        nfa.freeze(arrays)
        e_off, e_lo, e_hi, e_dst, x_off, x_dst = arrays
        accept = bytearray(nfa.num_states)
        for s in nfa.accept:
            accept[s] = 1
        impl = nat.Dfa(
            nfa.num_states,
            e_off,
            e_lo,
            e_hi,
            e_dst,
            x_off,
            x_dst,
            bytes(accept),
            bool(nfa.all_live),
            self.start,
            self.max_states,
        )
        self.native_impl = impl
        self.initial = impl.initial
        self.row = impl.row  # type: ignore[method-assign]
        self.next = impl.next
        self.step = impl.step  # type: ignore[method-assign]
        self.row_has_out = impl.row_has_out  # type: ignore[method-assign]
        self.single_live_byte = impl.single_live_byte  # type: ignore[method-assign]
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        impl = self.native_impl
        sets = [frozenset(impl.subset(sid)) for sid in range(impl.num_states)]
        return {"nfa": self.nfa, "start": self.start, "max_states": self.max_states, "sets": sets}

    def __setstate__(self, state: dict[str, Any]) -> None:
        sets = state.pop("sets", ())
        self.__dict__.update(state)
        self._init()
        impl = self.native_impl
        for sid, subset in enumerate(sets):
            if sid >= impl.num_states:
                impl.intern(sorted(subset))
            if frozenset(impl.subset(sid)) != subset:  # pragma: no cover - deterministic
                raise ValueError("Invalid LazyByteDFA state: discovered states out of order")

    @property
    def accept_list(self) -> list[bool]:  # type: ignore[override]
        """Accepting flags of the discovered states (extended as states are discovered)."""
        return self.native_impl.accept_list  # type: ignore[no-any-return]

    @property
    def live_nfa_states(self) -> Any:
        return _LiveSet(self.native_impl.live_bytes())

    @property
    def num_states(self) -> int:
        return int(self.native_impl.num_states)

    @property
    def accepting(self) -> np.ndarray:
        return np.frombuffer(self.native_impl.accepting_bytes(), dtype=bool)

    def gather(self, states: np.ndarray, byts: np.ndarray) -> np.ndarray:
        out = self.native_impl.gather(
            np.ascontiguousarray(states, dtype=np.int32), np.ascontiguousarray(byts, np.uint8)
        )
        return np.frombuffer(out, dtype=np.int32)

    def has_out(self, states: np.ndarray) -> np.ndarray:
        out = self.native_impl.has_out_many(np.ascontiguousarray(states, dtype=np.int32))
        return np.frombuffer(out, dtype=bool)

    def matches(self, data: bytes) -> bool:
        impl = self.native_impl
        return bool(impl.is_accepting(impl.step(self.initial, data)))

    def is_accepting(self, state: int) -> bool:
        """Whether ``state`` accepts."""
        return bool(self.accept_list[state])

    def structurally_covered(self, single: frozenset[int]) -> bool:
        """``vocab_proof.structurally_covered`` in C."""
        return bool(self.native_impl.structurally_covered(_byte_flags(single)))


__all__ = ["DEFAULT_MAX_DFA_STATES", "LazyByteDFA", "NativeLazyByteDFA"]
