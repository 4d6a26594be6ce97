"""Compile-time proof that no live state has an empty mask, for the CFG (Earley) engine.

The claim to prove: every parse state reachable at a token boundary that is not accepting allows
some token. (An accepting state allows EOS, so its mask is never empty.)

**Structural argument (cheap, the common case).** A non-accepting reachable chart state always
holds a scan ``(t, q)`` with ``q`` a non-accepting state of terminal ``t``'s DFA: either a token
ended inside ``t`` short of acceptance, or a terminal just completed and the parser predicted the
next ones at their initial states (a non-nullable terminal starts non-accepting; every kept
production is productive, so prediction reaches one unless the sentence may end here, which makes
the state accepting). A live non-accepting DFA state is a set of NFA states, one of which has a
byte edge to a live state; if every such NFA state has an edge on a byte that is itself a token,
that one-byte token is accepted (it keeps ``t`` alive, or completes it, which again leaves a
state with scans or an accepting one). Vocabularies with all 256 single bytes (byte-level BPE,
SentencePiece with byte fallback, tiktoken) pass at once.

**Exploration (vocabularies missing one-byte tokens the grammar needs).** For each terminal that
fails the structural test, compute an over-approximation ``R`` of its DFA states reachable at a
token end: the states whole tokens reach from its initial state or from a state in ``R`` without
leaving the terminal, and the states reached by the rest of a token that crosses into it from a
terminal that may precede it (FOLLOW sets of the BNF; crossings out of terminals that pass the
structural test are over-approximated by "after any proper prefix of any token"). Then require:

1. for each non-accepting state in ``R``: a token that stays inside the terminal, or one that
   completes it and goes on inside a terminal the parser surely predicts next, in every context
   (``_Contexts``);
2. wherever the parser predicts terminals at a token boundary (the start, and after each
   terminal that can complete at a token end without being able to go on itself): some terminal
   surely predicted there continues from its initial state in that way (or the sentence may end
   there, so EOS is allowed).

This is sound, not complete: it reasons per scan, so a grammar whose continuation at some point
exists only in another parse of the same bytes (an ambiguous prefix) may be refused although its
masks are never empty; the error names the terminal, the bytes read in it and the bytes no token
supplies. Semantic checks are not part of the argument (a check rejects only at completion, see
``Check``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from structgen.automata.cfg import Bnf
from structgen.automata.lazy_dfa import LazyByteDFA
from structgen.automata.nfa import check_deadline
from structgen.errors import IncompatibleVocabulary
from structgen.tokens.trie import TokenTrie
from structgen.tokens.vocabulary import Vocabulary


def structurally_covered(dfa: LazyByteDFA, single: frozenset[int]) -> bool:
    """Whether every live NFA state of ``dfa`` with a live byte edge has one on a byte that is a
    one-byte token (then every live non-accepting DFA state has a one-byte token)."""
    if len(single) == 256:
        return True
    if dfa.native_impl is not None:
        return dfa.structurally_covered(single)  # type: ignore[attr-defined]
    avail = np.zeros(257, dtype=np.int64)
    avail[1:] = np.cumsum([b in single for b in range(256)])
    nfa, live = dfa.nfa, dfa.live_nfa_states
    for s, edges in enumerate(nfa.edges):
        if not s & 0xFFFF:
            check_deadline()
        if not edges or s not in live:
            continue
        targets = [(lo, hi) for lo, hi, t in edges if t in live]
        if targets and not any(avail[hi + 1] - avail[lo] > 0 for lo, hi in targets):
            return False
    return True


def reachable_terminals(bnf: Bnf) -> set[int]:
    """Terminals occurring in productions reachable from the start production."""
    start = bnf.productions[0][0]
    seen_nt = {start}
    stack = [start]
    terms: set[int] = set()
    while stack:
        nt = stack.pop()
        for p in bnf.by_lhs[nt]:
            for sym in bnf.productions[p][1]:
                if sym < 0:
                    terms.add(~sym)
                elif sym not in seen_nt:
                    seen_nt.add(sym)
                    stack.append(sym)
    return terms


def terminal_follow(bnf: Bnf) -> dict[int, set[int]]:
    """FOLLOW sets at terminal level: the terminals that may start right after each terminal
    (nullable symbols skipped, as the parser's prediction skips them)."""
    term_nullable = [t.accept_list[t.initial] for t in bnf.terminals]
    nullable = bnf.nullable

    def sym_nullable(sym: int) -> bool:
        return term_nullable[~sym] if sym < 0 else sym in nullable

    first: dict[int, set[int]] = {lhs: set() for lhs, _ in bnf.productions}
    changed = True
    while changed:
        changed = False
        for lhs, rhs in bnf.productions:
            acc = first[lhs]
            before = len(acc)
            for sym in rhs:
                if sym < 0:
                    acc.add(~sym)
                else:
                    acc |= first.get(sym, set())
                if not sym_nullable(sym):
                    break
            changed |= len(acc) != before
    follow_nt: dict[int, set[int]] = {lhs: set() for lhs, _ in bnf.productions}
    follow_t: dict[int, set[int]] = {t: set() for t in range(len(bnf.terminals))}
    changed = True
    while changed:
        changed = False
        for lhs, rhs in bnf.productions:
            trailer = set(follow_nt[lhs])
            for sym in reversed(rhs):
                target = follow_t[~sym] if sym < 0 else follow_nt.setdefault(sym, set())
                before = len(target)
                target |= trailer
                changed |= len(target) != before
                here = {~sym} if sym < 0 else first.get(sym, set())
                trailer = trailer | here if sym_nullable(sym) else set(here)
    return follow_t


class _Walker:
    """Vectorised walks of one terminal DFA below a set of trie nodes (as in cfg_index)."""

    def __init__(self, trie: TokenTrie, extras: Any) -> None:
        self.trie = trie
        self.ex = extras
        is_token = np.zeros(trie.num_nodes, dtype=bool)
        is_token[extras.tok_nodes] = True
        self.is_token = is_token

    def walk(
        self, dfa: LazyByteDFA, roots: np.ndarray, states: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(token-end nodes, their DFA states, mid nodes) of walks from ``states`` at
        ``roots``: a token-end node ends a token that stayed inside the terminal; a mid node is
        a proper token prefix after which the terminal may end (the token goes on)."""
        ex, byte = self.ex, self.trie.byte
        frontier = roots
        end_nodes: list[np.ndarray] = []
        end_states: list[np.ndarray] = []
        mids: list[np.ndarray] = []
        while frontier.size:
            lo = ex.child_lo[frontier]
            count = ex.child_hi[frontier] - lo
            if not count.any():
                break
            starts = np.repeat(lo - np.cumsum(count) + count, count)
            nodes = starts + np.arange(int(count.sum()))
            nxt = dfa.gather(np.repeat(states, count), byte[nodes])
            live = nxt != 0
            nodes, nxt = nodes[live], nxt[live]
            if not nodes.size:
                break
            tok = self.is_token[nodes]
            end_nodes.append(nodes[tok])
            end_states.append(nxt[tok])
            mid = dfa.accepting[nxt] & ex.has_children[nodes]
            mids.append(nodes[mid])
            frontier, states = nodes, nxt
        empty = np.zeros(0, dtype=np.int64)
        return (
            np.concatenate(end_nodes) if end_nodes else empty,
            np.concatenate(end_states) if end_states else empty,
            np.unique(np.concatenate(mids)) if mids else empty,
        )


END = -1  # in a context set: the sentence may end there


class _Contexts:
    """What the parser surely predicts where a terminal completes, and tokens that end a
    terminal and go on into the next one whatever the context.

    Where terminal ``t`` completes, the parser predicts at least ``FIRST(rest)`` for some
    occurrence of ``t`` in a production (``A -> ... t rest``), joined, when ``rest`` is
    nullable, with what it predicts after ``A`` completes (and so on up). A token whose part
    after ``t`` stays inside some terminal of each such set is accepted in every context; one
    that reaches the end of the sentence may have nowhere to go.
    """

    _MAX_SETS = 64
    _MAX_STEPS = 20_000

    def __init__(self, bnf: Bnf, walker: _Walker) -> None:
        self.bnf = bnf
        self.walker = walker
        self.term_nullable = [t.accept_list[t.initial] for t in bnf.terminals]
        start = bnf.productions[0][0]
        self.occurrences: dict[int, list[tuple[int, int]]] = {}
        seen = {start}
        stack = [start]
        while stack:
            nt = stack.pop()
            for p in bnf.by_lhs[nt]:
                for i, sym in enumerate(bnf.productions[p][1]):
                    self.occurrences.setdefault(sym, []).append((p, i))
                    if sym >= 0 and sym not in seen:
                        seen.add(sym)
                        stack.append(sym)
        self.start = start
        self._always_memo: dict[int, frozenset[int]] = {}
        first: dict[int, set[int]] = {lhs: set() for lhs, _ in bnf.productions}
        self.first = first
        changed = True
        while changed:
            changed = False
            for lhs, rhs in bnf.productions:
                acc = first[lhs]
                before = len(acc)
                acc |= self._first_of(rhs)
                changed |= len(acc) != before

    def _first_of(self, seq: tuple[int, ...]) -> set[int]:
        out: set[int] = set()
        for sym in seq:
            if sym < 0:
                out.add(~sym)
                if not self.term_nullable[~sym]:
                    break
            else:
                out |= self.first.get(sym, set())
                if sym not in self.bnf.nullable:
                    break
        return out

    def _always(self, sym: int) -> frozenset[int]:
        """Terminals predicted wherever nonterminal ``sym`` completes, whatever the context.

        ``sym`` completing from origin ``o`` was predicted at ``o``, and with it every
        nonterminal ``L`` it left-derives; an item ``L -> . sym rest`` (left recursion, as in
        ``star -> star item``) then waits at ``o`` too and predicts ``FIRST(rest)``.
        """
        if sym < 0:
            return frozenset()
        hit = self._always_memo.get(sym)
        if hit is not None:
            return hit
        bnf = self.bnf
        corner = {sym}
        stack = [sym]
        while stack:
            nt = stack.pop()
            for p in bnf.by_lhs[nt]:
                for x in bnf.productions[p][1]:
                    if x >= 0 and x not in corner:
                        corner.add(x)
                        stack.append(x)
                    if not (x < 0 and self.term_nullable[~x]) and not (
                        x >= 0 and x in bnf.nullable
                    ):
                        break
        out: set[int] = set()
        for lhs in corner:
            for p in bnf.by_lhs[lhs]:
                rhs = bnf.productions[p][1]
                if rhs and rhs[0] == sym and not self._nullable_seq(rhs[1:]):
                    out |= self._first_of(rhs[1:])
        result = frozenset(out)
        self._always_memo[sym] = result
        return result

    def _nullable_seq(self, seq: tuple[int, ...]) -> bool:
        return all(self.term_nullable[~s] if s < 0 else s in self.bnf.nullable for s in seq)

    def contexts(self, sym: int) -> list[frozenset[int]] | None:
        """The terminal sets surely predicted right after ``sym`` completes, one per context
        (``END`` in a set: the sentence may also end there, so the chart is accepting). None if
        there are too many to check.

        A chain through a cycle is skipped: the chain without the loop is also a context, and
        its set is a subset, so requiring it is stricter.
        """
        steps = 0

        def of(cur: int, path: frozenset[int]) -> set[frozenset[int]] | None:
            nonlocal steps
            out: set[frozenset[int]] = set()
            always = self._always(cur)
            for p, i in self.occurrences.get(cur, ()):
                steps += 1
                if steps > self._MAX_STEPS:
                    return None
                lhs, rhs = self.bnf.productions[p]
                rest = rhs[i + 1 :]
                found = frozenset(self._first_of(rest)) | always
                if not self._nullable_seq(rest):
                    out.add(found)
                elif lhs == self.start:
                    out.add(found | {END})
                elif lhs not in path:
                    above = of(lhs, path | {lhs})
                    if above is None:
                        return None
                    out.update(found | ctx for ctx in above)
                if len(out) > self._MAX_SETS:
                    return None
            return out

        found = of(sym, frozenset([sym]))
        return None if found is None else sorted(found, key=sorted)

    def prediction_groups(self, completing: set[int]) -> list[frozenset[int]] | None:
        """Sets of terminals that are all predicted together somewhere (``END``: the chart is
        accepting there): at the start, and in each context where a terminal of
        ``completing`` completes. None if there are too many."""
        start_rhs = self.bnf.productions[0][1]
        first = frozenset(self._first_of(start_rhs))
        groups = {first | {END} if self._nullable_seq(start_rhs) else first}
        for t in sorted(completing):
            found = self.contexts(~t)
            if found is None:
                return None
            groups.update(found)
        return sorted(groups, key=sorted)

    def crossing_ok(self, t: int, mids: np.ndarray) -> bool:
        """Whether some token ends ``t`` at one of ``mids`` and is accepted in every context."""
        if not mids.size:
            return False
        sets = self.contexts(~t)
        if not sets:
            return False
        terms = self.bnf.terminals
        ends: dict[int, np.ndarray] = {}
        common: np.ndarray | None = None
        for followers in sets:
            union: list[np.ndarray] = []
            for f in followers - {END}:
                if f not in ends:
                    dfa = terms[f]
                    states = np.full(mids.shape[0], dfa.initial, dtype=np.int32)
                    ends[f] = np.unique(self.walker.walk(dfa, mids, states)[0])
                union.append(ends[f])
            here = np.unique(np.concatenate(union)) if union else np.zeros(0, dtype=np.int64)
            common = here if common is None else np.intersect1d(common, here)
            if not common.size:
                return False
        return common is not None and bool(common.size)


def check_cfg_vocabulary(bnf: Bnf, vocab: Vocabulary, trie: TokenTrie, extras: Any) -> None:
    """Raise IncompatibleVocabulary unless every live state of the CFG engine over ``vocab`` is
    proven to have a non-empty mask (see the module docstring)."""
    single = vocab.single_byte_values()
    if len(single) == 256:
        return
    reachable = reachable_terminals(bnf)
    terms = bnf.terminals
    uncovered = {t for t in reachable if not structurally_covered(terms[t], single)}
    if not uncovered:
        return
    follow = terminal_follow(bnf)
    walker = _Walker(trie, extras)
    contexts = _Contexts(bnf, walker)
    all_prefixes = np.flatnonzero(extras.has_children).astype(np.int64)
    # witness[(t, q)]: (previous state in t or None, bytes read from there; None if unknown)
    witness: dict[tuple[int, int], tuple[int | None, bytes | None]] = {}
    by_token: set[tuple[int, int]] = set()  # reached at a token end (not only by prediction)
    walked: dict[tuple[int, int], tuple[bool, np.ndarray]] = {}  # (a token stays inside, mids)
    queue: list[tuple[int, int]] = []
    entered = {t: np.zeros(trie.num_nodes, dtype=bool) for t in uncovered}
    pending: dict[int, list[np.ndarray]] = {t: [] for t in uncovered}

    def reach(t: int, q: int, prev: int | None, data: bytes | None, token: bool) -> None:
        if token:
            by_token.add((t, q))
        if (t, q) not in witness:
            witness[(t, q)] = (prev, data)
            queue.append((t, q))

    def cross(t: int, mids: np.ndarray) -> None:
        if mids.size:
            for f in follow.get(t, ()):
                if f in uncovered:
                    pending[f].append(mids)

    for t in uncovered:
        reach(t, terms[t].initial, None, b"", token=False)
    for p in reachable - uncovered:  # crossings out of terminals not explored: any prefix
        cross(p, all_prefixes)
    root = np.zeros(1, dtype=np.int64)
    while queue or any(pending.values()):
        check_deadline()
        if queue:
            t, q = queue.pop()
            nodes, ends, mids = walker.walk(terms[t], root, np.array([q], dtype=np.int32))
            walked[(t, q)] = (bool(nodes.size), mids)
            order = np.unique(ends, return_index=True)
            for state, at in zip(order[0].tolist(), order[1].tolist(), strict=True):
                reach(t, state, q, _path_bytes(trie, int(nodes[at])), token=True)
            cross(t, mids)
            continue
        for t in list(pending):
            if not pending[t]:
                continue
            roots = np.unique(np.concatenate(pending[t]))
            pending[t] = []
            roots = roots[~entered[t][roots]]
            if not roots.size:
                continue
            entered[t][roots] = True
            dfa = terms[t]
            states = np.full(roots.shape[0], dfa.initial, dtype=np.int32)
            _, ends, mids = walker.walk(dfa, roots, states)
            for state in np.unique(ends).tolist():
                reach(t, state, None, None, token=True)
            cross(t, mids)

    def continues(t: int, q: int) -> bool:
        within, mids = walked[(t, q)]
        return within or contexts.crossing_ok(t, mids)

    # 1. a token ended inside a terminal, short of acceptance: that scan must continue
    for t, q in sorted(by_token):
        check_deadline()
        if not terms[t].accept_list[q] and not continues(t, q):
            _refuse(bnf, vocab, t, q, witness)
    # 2. where the parser predicts terminals (the start; after a terminal completes at a token
    # boundary), one of the terminals surely predicted must continue from its initial state.
    # A terminal completes at a boundary only where a token ends in one of its accepting
    # states; if each such state can itself go on, its scan continues and nothing is needed.
    completing = set(reachable - uncovered)
    for t in uncovered:
        ends = [q for u, q in by_token if u == t and terms[t].accept_list[q]]
        if any(not continues(t, q) for q in ends):
            completing.add(t)
    groups = contexts.prediction_groups(completing)
    if groups is None:
        raise IncompatibleVocabulary(
            f"cannot prove that every state of this grammar can be continued by a token of "
            f"{vocab.name} (too many parse contexts to check; the vocabulary lacks one-byte "
            "tokens the grammar needs)",
            hint="use a tokenizer with byte fallback, or simplify the grammar",
        )
    for group in groups:
        check_deadline()
        if not group or END in group or group & (reachable - uncovered):
            continue  # accepting there, or a covered terminal starts: a one-byte token does
        if not any(continues(f, terms[f].initial) for f in group):
            f = min(group)
            _refuse(bnf, vocab, f, terms[f].initial, witness, group=group)


def _path_bytes(trie: TokenTrie, node: int) -> bytes:
    out = bytearray()
    while node:
        out.append(int(trie.byte[node]))
        node = int(trie.parent[node])
    return bytes(reversed(out))


def _refuse(
    bnf: Bnf,
    vocab: Vocabulary,
    t: int,
    q: int,
    witness: dict[tuple[int, int], tuple[int | None, bytes | None]],
    group: frozenset[int] | None = None,
) -> None:
    dfa = bnf.terminals[t]
    pieces: list[bytes] = []
    state: int | None = q
    known = True
    while state is not None:
        prev, data = witness[(t, state)]
        if data is None:
            known = False
            break
        pieces.append(data)
        state = prev
    read = b"".join(reversed(pieces))
    row = dfa.row(q)
    needed = bytes(b for b in range(256) if row[b] != dfa.dead)
    names = getattr(bnf, "terminal_names", None) or []
    name = names[t] if t < len(names) else f"#{t}"
    where = f"after {read!r}" if known else "after a token that crosses into it"
    if group is not None and len(group) > 1:
        others = ", ".join(names[f] if f < len(names) else f"#{f}" for f in sorted(group) if f != t)
        where += f"; nor can the terminals predicted with it: {others}"
    raise IncompatibleVocabulary(
        f"the grammar can reach a point inside terminal {name} ({where}) where it can only "
        f"continue with one of the bytes {needed[:24]!r}, and no token of {vocab.name} "
        "continues the terminal there: the mask would be empty",
        location=f"terminal {t} ({name}), DFA state {q}",
        hint="use a tokenizer whose vocabulary holds those bytes as tokens (byte fallback), "
        "or change the grammar",
    )


__all__ = [
    "check_cfg_vocabulary",
    "reachable_terminals",
    "structurally_covered",
    "terminal_follow",
]
