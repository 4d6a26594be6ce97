"""Token-level view of the Earley recogniser: next-token bitmasks and token steps for CFGs.

A token is allowed if some scan item of the current chart set can read all its bytes, possibly
ending its terminal part-way and continuing in the terminals the parser predicts next. The mask is
built from cached subtree walks of the vocabulary trie:

- ``walk(t, q, roots)``: run terminal ``t``'s DFA from state ``q`` over the trie below the nodes
  ``roots`` (all at once, level by level); gives the tokens that stay inside the terminal (as a
  bitmask) and the nodes where the terminal can end with more bytes still to come ("mid
  nodes"). It depends only on its arguments, so it is cached across sequences and states.
- At mid nodes the parser completes the terminal (the same parse state whatever bytes the
  terminal read, so once per scan item) and one walk continues below all those mid nodes.

Whole masks are cached too, for grammars without semantic checks, by parse configuration: a
canonical id of the chart set's kernel (see ``_configuration``). With AWRS most decoding steps
need no mask at all.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from structgen import _accel
from structgen.automata.cfg import Bnf
from structgen.automata.earley import (
    ChartState,
    EarleyParser,
    EarleySet,
    NativeEarleyParser,
    NeedsBytes,
)
from structgen.tokens.dfa_index import pack_bool_mask
from structgen.tokens.trie import TokenTrie, native_trie, trie_for
from structgen.tokens.vocabulary import Vocabulary

_MAX_WALKS = 8192  # per terminal DFA (shared across grammars): about 50 MB of masks at most
_MAX_MASKS = 4096
_MAX_CONFIGURATIONS = 200_000


class _TrieExtras:
    """Per-trie arrays the subtree walks need (children, has-children, node -> token ids)."""

    def __init__(self, trie: TokenTrie) -> None:
        n = trie.num_nodes
        has_children = np.zeros(n, dtype=bool)
        has_children[trie.parent[1:]] = True
        self.has_children = has_children
        # children of node n: nodes child_lo[n]:child_hi[n] (level order puts parents in
        # ascending order, so each node's children are contiguous)
        parents = trie.parent[1:].astype(np.int64)
        if parents.size and not np.all(parents[:-1] <= parents[1:]):
            raise AssertionError("trie nodes are not ordered by parent")
        self.child_lo = np.searchsorted(parents, np.arange(n), "left") + 1
        self.child_hi = np.searchsorted(parents, np.arange(n), "right") + 1
        tokens = np.flatnonzero(trie.normal)
        nodes = trie.token_node[tokens]
        order = np.argsort(nodes, kind="stable")
        self.tok_sorted = tokens[order].astype(np.int64)
        self.tok_nodes = nodes[order]
        # node -> a token ending there (-1: none); nodes where several ids end (same bytes)
        self.node_tok = np.full(n, -1, dtype=np.int64)
        self.node_tok[self.tok_nodes] = self.tok_sorted
        counts = np.bincount(self.tok_nodes, minlength=n)
        self.node_multi = counts > 1


def _keyed(s: EarleySet, owner: object) -> bool:
    return s.key is not None and s.key[0] is owner


_EXTRAS: dict[int, tuple[TokenTrie, _TrieExtras]] = {}


def _extras_for(trie: TokenTrie) -> _TrieExtras:
    """The (process-wide cached) extras of a trie (tries are shared per vocabulary)."""
    hit = _EXTRAS.get(id(trie))
    if hit is None or hit[0] is not trie:
        hit = (trie, _TrieExtras(trie))
        _EXTRAS[id(trie)] = hit
    return hit[1]


class CfgTokenIndex:
    """Masks and token steps of an Earley recogniser over one Vocabulary.

    States are ``ChartState`` handles; ``advance`` returns None for a rejected token.
    """

    def __init__(self, bnf: Bnf, vocab: Vocabulary) -> None:
        self.bnf = bnf
        self.vocab = vocab
        self.parser = EarleyParser(bnf)
        self._trie: TokenTrie | None = None
        self._extras: _TrieExtras | None = None
        # mask plans by (parse configuration, trie node); see _mask_below
        self._plans: dict[tuple[int, int], tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]] = {}
        self._interned: dict[tuple[Any, ...], int] = {}
        self._key_owner = object()  # tags EarleySet.key with this index
        nat = _accel.native()
        # native parsers key their (native) sets in C
        self._configs = (
            nat.Configs(_MAX_CONFIGURATIONS)
            if nat is not None and isinstance(self.parser, NativeEarleyParser)
            else None
        )
        self._lock = threading.Lock()
        self._initial = self.parser.initial_state()
        self._single_bytes = self._all_single_bytes(vocab)

    def __getstate__(self) -> dict[str, Any]:
        return {"bnf": self.bnf, "vocab": self.vocab}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["bnf"], state["vocab"])  # type: ignore[misc]

    @staticmethod
    def _all_single_bytes(vocab: Vocabulary) -> bool:
        return len(vocab.single_byte_values()) == 256

    @property
    def trie(self) -> TokenTrie:
        """The vocabulary trie (shared per process)."""
        if self._trie is None:
            self._trie = trie_for(self.vocab)
        return self._trie

    @property
    def _trie_id(self) -> int:
        return id(self.trie)  # tries live as long as the process (trie_for caches them)

    @property
    def trie_extras(self) -> _TrieExtras:
        """Per-trie arrays for subtree walks (children ranges, token nodes)."""
        if self._extras is None:
            self._extras = _extras_for(self.trie)
        return self._extras

    # -------------------------------------------------------------- state queries

    def initial_state(self) -> ChartState:
        """The start state (shared; never mutated in place)."""
        return ChartState(self._initial.sets[:1], 1)

    def is_accepting(self, state: ChartState) -> bool:
        """Whether the bytes so far form a complete sentence."""
        return state.last.accepting

    def advance(self, state: ChartState, token_id: int) -> ChartState | None:
        """The state after a normal token, or None if it is rejected."""
        data = self.vocab.token_bytes[token_id]
        if not data or token_id in self.vocab.special_token_ids:
            return None
        return self.parser.advance(state, data)

    def advance_bytes(self, state: ChartState, data: bytes) -> ChartState | None:
        """The state after raw bytes, or None."""
        return self.parser.advance(state, data)

    def forced_bytes(self, state: ChartState, limit: int = 256) -> bytes:
        """The bytes the grammar forces: followed while the sentence is incomplete and exactly
        one byte keeps some scan item alive."""
        out = bytearray()
        terms = self.bnf.terminals
        single = getattr(self.parser, "single_live_byte", None)  # native: one C call per byte
        while len(out) < limit and not state.last.accepting:
            if single is not None:
                byte = single(state.last)
            else:
                options = {terms[t].single_live_byte(q) for t, q, _ in state.last.scans}
                if len(options) != 1:
                    break
                byte = options.pop()
            if byte < 0:
                break
            nxt = self.parser.advance(state, bytes([byte]))
            if nxt is None:
                break
            out.append(byte)
            state = nxt
        return bytes(out)

    def can_continue(self, state: ChartState) -> bool:
        """Whether some non-EOS token is allowed next."""
        if not state.last.scans:
            return False
        if self._single_bytes and not self.bnf.predicates:  # any live byte is then a token
            # (with checks, a live byte may still be one they refuse: ``nul`` under enum [[]])
            return True
        return bool(self.token_bitmask(state).any())

    # -------------------------------------------------------------- masks

    def token_bitmask(self, state: ChartState) -> np.ndarray:
        """``int32[ceil(V/32)]`` of the normal tokens allowed (EOS not included).

        The returned array may be shared (cached): do not modify it.
        """
        return self._mask_below(state, 0)

    def reference_bitmask(self, state: ChartState) -> np.ndarray:
        """``token_bitmask`` without mask plans: the direct computation (the tests' oracle)."""
        acc = np.zeros((self.vocab.vocab_size + 31) // 32, dtype=np.int32)
        root = np.zeros(1, dtype=np.int64)
        if self.bnf.predicates:
            self._collect_checked(state, root, acc, (state, 0))
        else:
            self._collect(state, root, acc)
        return acc

    # Mask plans. What a chart set allows below a trie node splits in two: the tokens whose fate
    # the parse configuration decides (terminal walks, and completions that fire no semantic
    # check: the same whatever bytes the terminals read), and the few where a check fires inside
    # the token, whose verdict depends on the bytes since the checked value began. A plan,
    # cached by (configuration id, node), keeps the first part as a finished bitmask and lists
    # the second as trie nodes to settle exactly: "sinks" (tokens that end where a terminal
    # completes with nothing after it: kept iff the exact advance survives) and "exact mids"
    # (a terminal may end there and the token goes on: the subtree below is computed from the
    # exact state, with its own plan). Grammars without checks have plans with neither, so a
    # repeated configuration costs a dictionary lookup.

    def _mask_below(self, state: ChartState, node: int) -> np.ndarray:
        """The tokens allowed from ``state`` below trie node ``node`` (all tokens at the root),
        as a bitmask that may be shared."""
        key = self._configuration(state.sets, state.length - 1)
        if key is None:  # too many configurations interned: compute directly
            acc = np.zeros((self.vocab.vocab_size + 31) // 32, dtype=np.int32)
            roots = np.array([node], dtype=np.int64)
            if self.bnf.predicates:
                self._collect_checked(state, roots, acc, (state, node))
            else:
                self._collect(state, roots, acc)
            return acc
        plan = self._plans.get((key, node))
        if plan is None:
            plan = self._make_plan(state, node, (key, node))
        base, sinks, mids = plan
        if not sinks and not mids:
            return base
        acc = base.copy()
        for mid in mids:
            exact = self.parser.advance(state, self._node_bytes(node, mid))
            if exact is not None:
                np.bitwise_or(acc, self._mask_below(exact, mid), out=acc)
        if sinks:
            self._drop_failing_sinks(state, node, np.array(sinks, dtype=np.int64), acc)
        return acc

    def _make_plan(
        self, state: ChartState, node: int, key: tuple[int, int]
    ) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
        base = np.zeros((self.vocab.vocab_size + 31) // 32, dtype=np.int32)
        sinks: list[np.ndarray] = []
        mids: list[np.ndarray] = []
        self._plan_collect(state, np.array([node], dtype=np.int64), base, sinks, mids)
        base.setflags(write=False)
        plan = (
            base,
            tuple(np.unique(np.concatenate(sinks)).tolist()) if sinks else (),
            self._outermost(node, np.unique(np.concatenate(mids))) if mids else (),
        )
        with self._lock:
            if len(self._plans) >= _MAX_MASKS:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _plan_collect(
        self,
        state: ChartState,
        roots: np.ndarray,
        base: np.ndarray,
        sinks: list[np.ndarray],
        mids: list[np.ndarray],
    ) -> None:
        """``_collect_checked`` that records, instead of settling, what needs exact bytes."""
        for scan in state.last.scans:
            t, q, _ = scan
            mask, here_mids, here_sinks = self._walk(t, q, roots)
            np.bitwise_or(base, mask, out=base)
            if not (here_mids.size or here_sinks.size):
                continue
            try:
                after = self.parser.complete_terminal(state, scan)
            except NeedsBytes:
                if here_sinks.size:
                    sinks.append(here_sinks)
                if here_mids.size:
                    mids.append(here_mids)
                continue
            if after is None:
                if here_sinks.size:
                    sinks.append(here_sinks)
                continue
            if here_mids.size:
                self._plan_collect(after, here_mids, base, sinks, mids)

    def _outermost(self, node: int, mids: np.ndarray) -> tuple[int, ...]:
        """The ``mids`` (trie nodes below ``node``) with no other of them above: the exact mask
        below a mid covers every mid under it, so recomputing those too would double the work
        at each level (2**k walks below a token with k mids on its path, e.g. a newline and
        its indentation, where whitespace may end at every byte)."""
        if mids.size < 2:
            return tuple(mids.tolist())
        inside = set(mids.tolist())
        parent = self.trie.parent
        out = []
        for mid in mids.tolist():
            up = int(parent[mid])
            while up != node and up not in inside:
                up = int(parent[up])
            if up == node:
                out.append(mid)
        return tuple(out)

    def _configuration(self, sets: list[EarleySet], pos: int) -> int | None:
        """A canonical id of the parse configuration at ``pos``: equal ids accept the same
        continuations up to semantic checks, so they share mask plans (``_mask_below``).

        The id interns the set's kernel (rule items past their first symbol, and scans begun
        earlier), each with the id of the configuration where it began (-1: here); predicted
        items and scans follow from the kernel. Memoised on the (immutable) sets; computed
        oldest first, so no recursion.
        """
        if self._configs is not None:
            return self._configs.key(sets, pos)  # type: ignore[no-any-return]
        owner = self._key_owner  # ids are per index: a set keyed by another (a pickled or
        interned = self._interned  # copied state) is keyed again
        stack = [pos]
        while stack:
            at = stack[-1]
            s = sets[at]
            if _keyed(s, owner):
                stack.pop()
                continue
            origins = {o for p, d, o in s.items if d and o != at}
            origins.update(j for _, _, j in s.scans if j != at)
            missing = [o for o in origins if not _keyed(sets[o], owner)]
            if missing:
                stack.extend(missing)
                continue
            if len(interned) >= _MAX_CONFIGURATIONS:
                return None
            items = frozenset((p, d, -1 if o == at else sets[o].key[1]) for p, d, o in s.items if d)
            scans = frozenset((t, q, sets[j].key[1]) for t, q, j in s.scans if j != at)
            signature = (items, scans, s.accepting)
            with self._lock:
                s.key = (owner, interned.setdefault(signature, len(interned)))
            stack.pop()
        return sets[pos].key[1]

    def _collect(self, state: ChartState, roots: np.ndarray, acc: np.ndarray) -> None:
        """OR into ``acc`` the tokens allowed below trie nodes ``roots`` from ``state``. All roots
        share the parse state (a terminal completed there, whatever bytes it read), so their
        subtrees are walked together."""
        for scan in state.last.scans:
            t, q, _ = scan
            mask, mids, _ = self._walk(t, q, roots)
            np.bitwise_or(acc, mask, out=acc)
            if mids.size:
                after = self.parser.complete_terminal(state, scan)
                if after is not None:
                    self._collect(after, mids, acc)

    def _collect_checked(
        self, state: ChartState, roots: np.ndarray, acc: np.ndarray, base: tuple[ChartState, int]
    ) -> None:
        """``_collect`` when the grammar has semantic checks.

        ``state`` may be abstract (built by ``complete_terminal``, bytes unknown); ``base`` is the
        nearest exact state above, with its trie node (an ancestor of every root). A terminal
        completion that fires no check is the same whatever bytes the terminal read, so it is
        shared as in the unchecked case; only where a check fires (``NeedsBytes``) are the
        token's bytes replayed exactly from ``base``.
        """
        local = np.zeros_like(acc)
        verify: list[np.ndarray] = []
        replay: list[np.ndarray] = []
        base_state, base_node = base
        for scan in state.last.scans:
            t, q, _ = scan
            mask, mids, sinks = self._walk(t, q, roots)
            np.bitwise_or(local, mask, out=local)
            if not (mids.size or sinks.size):
                continue
            try:
                after = self.parser.complete_terminal(state, scan)
            except NeedsBytes:
                if sinks.size:
                    verify.append(sinks)
                if mids.size:
                    replay.append(mids)
                continue
            if after is None:
                if sinks.size:
                    verify.append(sinks)
                continue
            if mids.size:
                self._collect_checked(after, mids, local, base)
        if replay:
            for mid in self._outermost(base_node, np.unique(np.concatenate(replay))):
                exact = self.parser.advance(base_state, self._node_bytes(base_node, mid))
                if exact is not None:
                    here = np.array([mid], dtype=np.int64)
                    self._collect_checked(exact, here, local, (exact, mid))
        if verify:
            # A token that ends where a terminal ends with nothing after it survives only if the
            # completion passes the semantic checks: verify those tokens exactly.
            self._drop_failing_sinks(
                base_state, base_node, np.unique(np.concatenate(verify)), local
            )
        np.bitwise_or(acc, local, out=acc)

    def _drop_failing_sinks(
        self, state: ChartState, node: int, sinks: np.ndarray, local: np.ndarray
    ) -> None:
        if self._configs is not None:  # native parser: every sink settled in one C call
            ntrie = native_trie(self.trie)
            if ntrie is not None:
                self.parser.native_impl.drop_failing(
                    state.sets, state.length, ntrie, node, np.ascontiguousarray(sinks, np.int64),
                    local,
                )
                return
        ex = self.trie_extras
        unsigned = local.view(np.uint32)
        for sink in sinks.tolist():
            if self.parser.advance(state, self._node_bytes(node, sink)) is not None:
                continue
            lo = int(np.searchsorted(ex.tok_nodes, sink, "left"))
            hi = int(np.searchsorted(ex.tok_nodes, sink, "right"))
            for tid in ex.tok_sorted[lo:hi].tolist():
                unsigned[tid >> 5] &= np.uint32(~(1 << (tid & 31)) & 0xFFFFFFFF)

    def _node_bytes(self, ancestor: int, node: int) -> bytes:
        """The bytes on the trie path from ``ancestor`` down to ``node``."""
        ntrie = native_trie(self.trie) if self._configs is not None else None
        if ntrie is not None:
            return ntrie.path_bytes(ancestor, node)  # type: ignore[no-any-return]
        trie = self.trie
        out = bytearray()
        while node != ancestor:
            out.append(int(trie.byte[node]))
            node = int(trie.parent[node])
        return bytes(reversed(out))

    def _walk(self, t: int, q: int, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(allowed-token bitmask, mid nodes, sink nodes) of terminal ``t`` from state ``q``
        below the trie nodes ``roots``. Mid nodes: the terminal may end there and the token goes
        on; sink nodes: the token ends where the terminal accepts with no way to continue."""
        # cached on the terminal's DFA, which grammars with the same terminal share (cfg.py):
        # a walk depends only on the DFA state, the roots and the vocabulary's trie
        walks = self.bnf.terminals[t].walks
        key = (self._trie_id, q, int(roots[0]) if roots.size == 1 else roots.tobytes())
        hit = walks.get(key)
        if hit is not None:
            return hit
        result = self._walk_uncached(t, q, roots)
        with self._lock:
            if len(walks) > _MAX_WALKS:
                walks.clear()
            walks[key] = result
        return result

    def _walk_uncached(
        self, t: int, q: int, roots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        trie = self.trie
        impl = self.bnf.terminals[t].native_impl
        ntrie = native_trie(trie) if impl is not None else None
        if ntrie is not None:  # depth-first C walk below every root
            mask_b, mids_b, sinks_b = ntrie.cfg_walk(
                impl, q, np.ascontiguousarray(roots, dtype=np.int64)
            )
            return (
                np.frombuffer(mask_b, dtype=np.int32),
                np.frombuffer(mids_b, dtype=np.int64),
                np.frombuffer(sinks_b, dtype=np.int64),
            )
        if self._extras is None:
            self._extras = _extras_for(trie)
        ex = self._extras
        dfa = self.bnf.terminals[t]
        node_bytes = trie.byte
        frontier = roots
        states = np.full(roots.shape[0], q, dtype=np.int32)
        live_nodes: list[np.ndarray] = []
        mids: list[np.ndarray] = []
        sinks: list[np.ndarray] = []
        while frontier.size:
            lo = ex.child_lo[frontier]
            count = ex.child_hi[frontier] - lo
            if not count.any():
                break
            # the children of every frontier node, each with its parent's DFA state
            starts = np.repeat(lo - np.cumsum(count) + count, count)
            nodes = starts + np.arange(int(count.sum()))
            nxt = dfa.gather(np.repeat(states, count), node_bytes[nodes])
            live = nxt != 0  # 0: the dead state
            if not live.any():
                break
            nodes, nxt = nodes[live], nxt[live]
            live_nodes.append(nodes)
            accepting = dfa.accepting[nxt]
            if accepting.any():
                mid = accepting & ex.has_children[nodes]
                if mid.any():
                    mids.append(nodes[mid])
                sink = ~dfa.has_out(nxt[accepting])
                if sink.any():
                    sinks.append(nodes[accepting][sink])
            frontier, states = nodes, nxt
        allowed = np.zeros(self.vocab.vocab_size, dtype=bool)
        if live_nodes:
            alive = np.concatenate(live_nodes)
            toks = ex.node_tok[alive]
            allowed[toks[toks >= 0]] = True
            # several token ids with the same bytes are rare: look those up apart
            multi = alive[ex.node_multi[alive]]
            if multi.size:
                left = np.searchsorted(ex.tok_nodes, multi, "left")
                right = np.searchsorted(ex.tok_nodes, multi, "right")
                for lft, rgt in zip(left.tolist(), right.tolist(), strict=True):
                    allowed[ex.tok_sorted[lft:rgt]] = True
        mask = pack_bool_mask(allowed)
        mask.setflags(write=False)
        # unique and sorted: a root below another root reaches some nodes twice, and duplicate
        # roots would compound walk after walk; sorted, they are also a canonical cache key
        mid_nodes = np.unique(np.concatenate(mids)) if mids else np.zeros(0, dtype=np.int64)
        sink_nodes = np.unique(np.concatenate(sinks)) if sinks else np.zeros(0, dtype=np.int64)
        return mask, mid_nodes, sink_nodes


__all__ = ["CfgTokenIndex"]
