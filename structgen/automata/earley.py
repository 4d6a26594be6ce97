"""An incremental Earley recogniser over bytes, with byte-DFA terminals.

Each chart set holds rule items ``(production, dot, origin)`` and scan items ``(terminal,
dfa_state, start)``: a terminal being read since byte position ``start``. A byte advances every
scan item through its DFA; a scan whose DFA accepts completes the terminal, which advances the rule
items waiting for it at ``start``. Nullable symbols use the Aycock-Horspool trick (advance over a
nullable symbol at prediction time), so any CFG works: ambiguous, left-recursive, empty rules.

Lexing is therefore non-deterministic: a terminal may end wherever its DFA accepts, so the
language recognised is exactly the CFG with each terminal replaced by its regular language.

A parse state is a ``ChartState`` handle (the list of sets, and a length). Handles share their
list: appending where the list is longer than the handle copies first (copy-on-write), so copy
and rollback of any number of bytes are O(1).

``EarleyParser`` here is the pure-Python reference. When the C extension is in use and the
terminals are native DFAs, ``EarleyParser(bnf)`` builds a ``NativeEarleyParser``: the same
recogniser (same items, scans and predicate calls) with its sets as ``_native.EarleySet``
objects; chart lists and ``ChartState`` handles work the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from structgen import _accel
from structgen.automata.cfg import Bnf

Item = tuple[int, int, int]  # (production, dot, origin)
Scan = tuple[int, int, int]  # (terminal, dfa state, start position)


class EarleySet:
    """One chart position. Immutable once built."""

    __slots__ = ("items", "waiting", "scans", "accepting", "byte", "key")

    def __init__(self, byte: int | None = -1) -> None:
        self.byte = byte  # the byte that led here; None while unknown (mask shortcuts)
        # (owner, id): canonical id of the parse configuration, per index (see cfg_index)
        self.key: tuple[object, int] | None = None
        self.items: set[Item] = set()
        self.waiting: dict[int, list[Item]] = {}
        self.scans: list[Scan] = []
        self.accepting = False

    def __reduce__(self) -> tuple[Any, ...]:
        # the same parts as a native set: either implementation unpickles either kind
        items = list(self.items)
        index = {item: k for k, item in enumerate(items)}
        waiting = [(sym, index[item]) for sym, lst in self.waiting.items() for item in lst]
        return (_rebuild_set, (self.byte, tuple(items), waiting, tuple(self.scans), self.accepting))


def _rebuild_set(
    byte: int | None,
    items: tuple[Item, ...],
    waiting: list[tuple[int, int]],
    scans: tuple[Scan, ...],
    accepting: bool,
) -> Any:
    """Unpickle a chart set with the implementation this process uses."""
    nat = _accel.native()
    if nat is not None:
        return nat.EarleySet.build(byte, items, waiting, scans, accepting)
    s = EarleySet(byte)
    s.items = set(items)
    for sym, k in waiting:
        s.waiting.setdefault(sym, []).append(items[k])
    s.scans = list(scans)
    s.accepting = bool(accepting)
    return s


@dataclass(frozen=True, slots=True)
class ChartState:
    """A parse position: the first ``length`` sets of the shared list ``sets``."""

    sets: list[EarleySet]
    length: int

    @property
    def last(self) -> EarleySet:
        """The set at the current position."""
        return self.sets[self.length - 1]


class NeedsBytes(Exception):
    """A semantic check must run, but the bytes of its span are not known (mask shortcut)."""


class EarleyParser:
    """Earley recogniser for one ``Bnf``; stateless apart from immutable tables.

    ``native``: None picks the C implementation when available and every terminal is a native
    DFA; False forces this pure-Python reference.
    """

    def __new__(cls, bnf: Bnf, *, native: bool | None = None) -> EarleyParser:
        if cls is EarleyParser:
            if native is None:
                native = _accel.native() is not None and all(
                    t.native_impl is not None for t in bnf.terminals
                )
            if native:
                cls = NativeEarleyParser
        return object.__new__(cls)

    def __init__(self, bnf: Bnf, *, native: bool | None = None) -> None:
        self.bnf = bnf
        self.rhs = [rhs for _, rhs in bnf.productions]
        self.lhs = [lhs for lhs, _ in bnf.productions]
        self.terms = bnf.terminals  # lazy DFAs: rows are determinised on first use
        self.term_initial = [t.initial for t in bnf.terminals]
        self.term_nullable = [t.accept_list[t.initial] for t in bnf.terminals]

    # ------------------------------------------------------------------ construction

    def initial_state(self) -> ChartState:
        """The state before any byte."""
        first = EarleySet()
        self._closure([], 0, first, [(0, 0, 0)])
        return ChartState([first], 1)

    def _add(self, s: EarleySet, item: Item, agenda: list[Item]) -> None:
        if item not in s.items:
            s.items.add(item)
            agenda.append(item)

    def _closure(self, sets: list[EarleySet], pos: int, s: EarleySet, agenda: list[Item]) -> None:
        """Predict and complete at position ``pos`` (``sets`` holds positions < pos)."""
        rhs_of, lhs_of, by_lhs = self.rhs, self.lhs, self.bnf.by_lhs
        nullable = self.bnf.nullable
        predicates = self.bnf.predicates
        verdicts: dict[tuple[int, int], bool] = {}
        for item in agenda:
            s.items.add(item)
        scan_seen = {(t, q, j) for t, q, j in s.scans}
        while agenda:
            item = agenda.pop()
            p, d, o = item
            rhs = rhs_of[p]
            if d == len(rhs):
                if p == 0:
                    s.accepting = True
                    continue
                lhs = lhs_of[p]
                if lhs in predicates:
                    verdict = verdicts.get((lhs, o))
                    if verdict is None:
                        verdict = bool(predicates[lhs](self._span(sets, s, o, pos)))
                        verdicts[(lhs, o)] = verdict
                    if not verdict:
                        continue
                source = s if o == pos else sets[o]
                for p2, d2, o2 in list(source.waiting.get(lhs, ())):
                    self._add(s, (p2, d2 + 1, o2), agenda)
                continue
            sym = rhs[d]
            s.waiting.setdefault(sym, []).append(item)
            if sym >= 0:
                for p2 in by_lhs[sym]:
                    self._add(s, (p2, 0, pos), agenda)
                if sym in nullable:
                    self._add(s, (p, d + 1, o), agenda)
            else:
                t = ~sym
                scan = (t, self.term_initial[t], pos)
                if scan not in scan_seen and self.terms[t].row_has_out(scan[1]):
                    scan_seen.add(scan)
                    s.scans.append(scan)
                if self.term_nullable[t]:
                    self._add(s, (p, d + 1, o), agenda)

    @staticmethod
    def _span(sets: list[EarleySet], s: EarleySet, o: int, pos: int) -> bytes:
        """The bytes between positions ``o`` and ``pos`` (``s`` is the set at ``pos``)."""
        if o == pos:
            return b""
        found = [sets[k].byte for k in range(o + 1, pos)] + [s.byte]
        if any(b is None for b in found):
            raise NeedsBytes
        return bytes(found)  # type: ignore[arg-type]

    def step(self, sets: list[EarleySet], byte: int) -> EarleySet | None:
        """The set after ``byte`` from ``sets[-1]`` (all positions in ``sets``); None if dead."""
        cur = sets[-1]
        pos = len(sets)
        nxt = EarleySet(byte)
        agenda: list[Item] = []
        terms = self.terms
        for t, q, j in cur.scans:
            dfa = terms[t]
            q2 = dfa.row(q)[byte]
            if q2 == 0:  # the dead state
                continue
            if dfa.row_has_out(q2):  # only a state with a live byte keeps a scan item alive
                nxt.scans.append((t, q2, j))
            if dfa.accept_list[q2]:
                for p, d, o in sets[j].waiting.get(~t, ()):
                    item = (p, d + 1, o)
                    if item not in nxt.items:
                        nxt.items.add(item)
                        agenda.append(item)
        if agenda:
            self._closure(sets, pos, nxt, agenda)
        if not nxt.scans and not nxt.accepting:
            return None
        return nxt

    def advance(self, state: ChartState, data: bytes) -> ChartState | None:
        """The state after ``data``, or None if some byte is rejected. ``state`` is unchanged."""
        if not data:
            return state
        base, n = state.sets, state.length
        local: list[EarleySet] = []
        view = _Concat(base, n, local)
        for byte in data:
            new = self.step(view, byte)  # type: ignore[arg-type]
            if new is None:
                return None
            local.append(new)
        if len(base) == n:  # nobody extended the shared list past us: append in place
            base.extend(local)
            return ChartState(base, len(base))
        merged = base[:n] + local
        return ChartState(merged, len(merged))

    def complete_terminal(self, state: ChartState, scan: Scan) -> ChartState | None:
        """The state right after terminal ``scan`` ends here (other hypotheses dropped).

        Used by mask computation: every way a token can end this terminal mid-token leads to
        this same parse state, whatever bytes the terminal read.
        """
        t, _, j = scan
        sets = state.sets[: state.length]
        nxt = EarleySet(None)  # the terminal's bytes are abstracted away: checks raise NeedsBytes
        agenda = [(p, d + 1, o) for p, d, o in sets[j].waiting.get(~t, ())]
        self._closure(sets, len(sets), nxt, agenda)
        if not nxt.scans and not nxt.accepting:
            return None
        sets.append(nxt)
        return ChartState(sets, len(sets))


class NativeEarleyParser(EarleyParser):
    """``EarleyParser`` in C (``_native.Earley``): chart sets are ``_native.EarleySet``."""

    def __init__(self, bnf: Bnf, *, native: bool | None = None) -> None:
        super().__init__(bnf)
        nat = _accel.native()
        if nat is None or any(t.native_impl is None for t in bnf.terminals):
            raise RuntimeError(f"the native Earley parser needs native DFAs: {_accel.describe()}")
        lengths = [len(rhs) for rhs in self.rhs]
        rhs_off = np.zeros(len(self.rhs) + 1, dtype=np.int32)
        np.cumsum(lengths, out=rhs_off[1:])
        flat = np.array([sym for rhs in self.rhs for sym in rhs], dtype=np.int32)
        n_nts = len(bnf.by_lhs)
        nullable = np.zeros(n_nts, dtype=np.uint8)
        for nt in bnf.nullable:
            nullable[nt] = 1
        self.native_impl = nat.Earley(
            np.array(self.lhs, dtype=np.int32),
            rhs_off,
            flat,
            n_nts,
            nullable,
            dict(bnf.predicates),
            [t.native_impl for t in bnf.terminals],
        )
        impl = self.native_impl
        self._advance = impl.advance
        self._complete = impl.complete_terminal
        self.single_live_byte = impl.single_live_byte

    def initial_state(self) -> ChartState:
        return ChartState([self.native_impl.initial()], 1)

    def step(self, sets: list[EarleySet], byte: int) -> EarleySet | None:
        chart = sets if isinstance(sets, list) else [sets[i] for i in range(len(sets))]
        new = self._advance(chart, len(chart), bytes([byte]))
        return None if new is None else new[0]

    def advance(self, state: ChartState, data: bytes) -> ChartState | None:
        if not data:
            return state
        base, n = state.sets, state.length
        new = self._advance(base, n, data)
        if new is None:
            return None
        if len(base) == n:  # nobody extended the shared list past us: append in place
            base.extend(new)
            return ChartState(base, len(base))
        merged = base[:n] + new
        return ChartState(merged, len(merged))

    def complete_terminal(self, state: ChartState, scan: Scan) -> ChartState | None:
        t, _, j = scan
        nxt = self._complete(state.sets, state.length, t, j)
        if nxt is None:
            return None
        sets = state.sets[: state.length]
        sets.append(nxt)
        return ChartState(sets, len(sets))


class _Concat:
    """Read-only view: the first ``n`` sets of ``base``, then ``local``."""

    __slots__ = ("base", "n", "local")

    def __init__(self, base: list[EarleySet], n: int, local: list[EarleySet]) -> None:
        self.base = base
        self.n = n
        self.local = local

    def __len__(self) -> int:
        return self.n + len(self.local)

    def __getitem__(self, i: int) -> EarleySet:
        if i < 0:
            i += self.n + len(self.local)
        return self.base[i] if i < self.n else self.local[i - self.n]


def _register() -> None:
    nat = _accel.native()
    if nat is not None:
        nat._set_earley(NeedsBytes, _rebuild_set)


_register()

__all__ = ["ChartState", "EarleyParser", "EarleySet", "NativeEarleyParser", "NeedsBytes"]
