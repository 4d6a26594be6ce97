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
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """Earley recogniser for one ``Bnf``; stateless apart from immutable tables."""

    def __init__(self, bnf: Bnf) -> None:
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


__all__ = ["ChartState", "EarleyParser", "EarleySet", "NeedsBytes"]
