"""Immutable byte DFAs: subset construction, trimming and minimisation.

A ``ByteDFA`` has ``n`` live states plus one dead state (index ``n``, a sink). Every live state can
still reach an accepting state, so "not dead" means "the bytes so far are a viable prefix". Bytes
are grouped into equivalence classes (bytes no state distinguishes), so the transition table is
``int32[n + 1, num_classes]``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from structgen.automata.nfa import ByteNFA
from structgen.errors import LimitExceeded

DEFAULT_MAX_DFA_STATES = 200_000


@dataclass(frozen=True, eq=False)
class ByteDFA:
    """A trimmed, minimal DFA over bytes.

    Attributes:
        trans: ``int32[num_states + 1, num_classes]``; row ``dead`` maps to itself.
        byte_class: ``uint8[256]`` (or uint16), the class of each byte.
        accepting: ``bool[num_states + 1]``.
        initial: the initial state (``dead`` if the language is empty).
        labels: for each state, the set of accept labels (used by lexers; ``{0}`` for one pattern).
    """

    trans: np.ndarray
    byte_class: np.ndarray
    accepting: np.ndarray
    initial: int
    labels: tuple[frozenset[int], ...] = ()
    _rows: list[list[int]] | None = field(default=None, repr=False, compare=False)

    @property
    def dead(self) -> int:
        """The dead (sink) state."""
        return self.trans.shape[0] - 1

    @property
    def num_states(self) -> int:
        """Number of live states."""
        return self.trans.shape[0] - 1

    def rows(self) -> list[list[int]]:
        """The transition table as Python lists indexed by byte (fast scalar stepping)."""
        if self._rows is None:
            full = self.trans[:, self.byte_class.astype(np.int64)]
            object.__setattr__(self, "_rows", full.tolist())
        return self._rows  # type: ignore[return-value]

    def step(self, state: int, data: bytes) -> int:
        """The state after reading ``data`` from ``state`` (``dead`` if rejected)."""
        rows = self.rows()
        dead = self.dead
        for byte in data:
            state = rows[state][byte]
            if state == dead:
                return dead
        return state

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` is in the language."""
        return bool(self.accepting[self.step(self.initial, data)])

    def __getstate__(self) -> dict[str, Any]:
        return {
            "trans": self.trans,
            "byte_class": self.byte_class,
            "accepting": self.accepting,
            "initial": self.initial,
            "labels": self.labels,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_rows", None)


def _closure(nfa: ByteNFA, states: set[int], memo: dict[int, frozenset[int]]) -> frozenset[int]:
    out: set[int] = set()
    for s in states:
        c = memo.get(s)
        if c is None:
            seen = {s}
            stack = [s]
            while stack:
                for t in nfa.eps[stack.pop()]:
                    if t not in seen:
                        seen.add(t)
                        stack.append(t)
            c = frozenset(seen)
            memo[s] = c
        out |= c
    return frozenset(out)


def determinize(nfa: ByteNFA, initial: int, max_states: int = DEFAULT_MAX_DFA_STATES) -> ByteDFA:
    """Subset construction, then trimming and minimisation."""
    memo: dict[int, frozenset[int]] = {}
    start = _closure(nfa, {initial}, memo)
    ids: dict[frozenset[int], int] = {start: 0}
    order = [start]
    rows: list[list[int]] = []
    queue = deque([start])
    while queue:
        current = queue.popleft()
        row = [-1] * 256
        edges = [e for s in current for e in nfa.edges[s]]
        if edges:
            points = sorted({e[0] for e in edges} | {e[1] + 1 for e in edges})
            for a, b in zip(points, points[1:], strict=False):
                targets = {t for lo, hi, t in edges if lo <= a <= hi}
                if not targets:
                    continue
                nxt = _closure(nfa, targets, memo)
                tid = ids.get(nxt)
                if tid is None:
                    tid = len(order)
                    if tid >= max_states:
                        raise LimitExceeded(
                            f"the byte DFA exceeds {max_states} states",
                            hint="simplify the grammar or raise max_dfa_states",
                        )
                    ids[nxt] = tid
                    order.append(nxt)
                    queue.append(nxt)
                for byte in range(a, b):
                    row[byte] = tid
        rows.append(row)
    labels = [frozenset(nfa.accept[s] for s in st if s in nfa.accept) for st in order]
    trans = np.array(rows, dtype=np.int64).reshape(len(rows), 256)
    return _trim_and_minimize(trans, labels, 0)


def _trim_and_minimize(trans: np.ndarray, labels: list[frozenset[int]], initial: int) -> ByteDFA:
    """Drop states that cannot reach acceptance, then merge equivalent states (Moore)."""
    n = trans.shape[0]
    accepting = np.array([bool(lab) for lab in labels], dtype=bool)
    # co-reachability: reverse BFS from accepting states
    preds: list[list[int]] = [[] for _ in range(n)]
    for s in range(n):
        for t in set(trans[s].tolist()):
            if t >= 0:
                preds[t].append(s)
    alive = accepting.copy()
    queue = deque(np.flatnonzero(accepting).tolist())
    while queue:
        t = queue.popleft()
        for s in preds[t]:
            if not alive[s]:
                alive[s] = True
                queue.append(s)
    # remap: dead = index n
    full = np.where(trans >= 0, trans, n)
    full = np.vstack([full, np.full((1, 256), n, dtype=np.int64)])
    alive_ext = np.append(alive, False)
    full = np.where(alive_ext[full], full, n)
    full[~alive_ext] = n
    label_list = [*labels, frozenset()]
    # byte classes: bytes whose columns are identical
    _, byte_class = np.unique(full.T, axis=0, return_inverse=True)
    byte_class = byte_class.reshape(-1)
    reps = np.array([int(np.flatnonzero(byte_class == c)[0]) for c in range(byte_class.max() + 1)])
    table = full[:, reps]
    # Moore refinement; the dead state gets its own block
    label_ids: dict[tuple[Any, ...], int] = {}
    block = np.array(
        [
            label_ids.setdefault(
                ("dead",) if not alive_ext[s] else tuple(sorted(label_list[s])), len(label_ids)
            )
            for s in range(n + 1)
        ],
        dtype=np.int64,
    )
    num_blocks = int(block.max()) + 1
    while True:
        # exact refinement: rows keyed by tuples (np.unique(axis=0) is ~10x slower here)
        sig = np.concatenate([block[:, None], block[table]], axis=1).tolist()
        ids: dict[tuple[int, ...], int] = {}
        new_block = np.fromiter(
            (ids.setdefault(tuple(row), len(ids)) for row in sig), dtype=np.int64, count=n + 1
        )
        block = new_block
        if len(ids) == num_blocks:
            break
        num_blocks = len(ids)
    # renumber blocks: live blocks first in order of first appearance from BFS, dead last
    dead_block = int(block[n])
    init_block = int(block[initial]) if alive[initial] else dead_block
    order: dict[int, int] = {}
    if init_block != dead_block:
        order[init_block] = 0
        queue = deque([init_block])
        rep_of: dict[int, int] = {}
        for s in range(n + 1):
            rep_of.setdefault(int(block[s]), s)
        while queue:
            b = queue.popleft()
            for t in table[rep_of[b]].tolist():
                tb = int(block[t])
                if tb != dead_block and tb not in order:
                    order[tb] = len(order)
                    queue.append(tb)
    else:
        rep_of = {int(block[s]): s for s in range(n + 1)}
    num_live = len(order)
    new_trans = np.full((num_live + 1, table.shape[1]), num_live, dtype=np.int32)
    new_acc = np.zeros(num_live + 1, dtype=bool)
    new_labels: list[frozenset[int]] = [frozenset()] * (num_live + 1)
    for b, idx in order.items():
        rep = rep_of[b]
        new_trans[idx] = [order.get(int(block[t]), num_live) for t in table[rep].tolist()]
        new_acc[idx] = accepting[rep] if rep < n else False
        new_labels[idx] = label_list[rep]
    return ByteDFA(
        trans=new_trans,
        byte_class=byte_class.astype(np.uint16),
        accepting=new_acc,
        initial=0 if num_live else num_live,
        labels=tuple(new_labels),
    )


__all__ = ["DEFAULT_MAX_DFA_STATES", "ByteDFA", "determinize"]
