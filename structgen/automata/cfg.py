"""IR grammar -> BNF whose terminals are byte DFAs (the input of the Earley recogniser).

Terminal DFAs are lazy (``LazyByteDFA``): compiling a terminal builds its NFA only; rows are
determinised when parsing or a mask walk first reaches them.

Every maximal regular sub-expression (one that reaches no recursive rule) becomes a single
terminal, compiled to one minimal byte DFA; only genuine recursion is left to the parser. So a
schema whose only recursion is an unconstrained JSON value keeps its whole fixed skeleton in a
few DFAs, and the parser works at the few points where nesting happens.

Symbols are ints: ``s >= 0`` is a nonterminal, ``s < 0`` is terminal ``~s``. Unproductive
productions are removed, so every item the parser keeps can still be completed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from structgen import _accel
from structgen.automata.lazy_dfa import DEFAULT_MAX_DFA_STATES, LazyByteDFA
from structgen.automata.nfa import (
    DEFAULT_MAX_NFA_STATES,
    ByteNFA,
    NfaBuilder,
    _check_node,
    check_deadline,
)
from structgen.errors import IncompatibleVocabulary, InvalidGrammar, LimitExceeded
from structgen.grammar.ir import (
    EMPTY,
    Alt,
    Check,
    Expr,
    ExprDigester,
    Grammar,
    KeyExclusion,
    Lit,
    Ref,
    Regex,
    Repeat,
    Seq,
    distinct_nodes,
)


@dataclass
class Bnf:
    """A BNF grammar over DFA terminals.

    Attributes:
        productions: ``(lhs, rhs)`` pairs; production 0 is ``S' -> start``.
        names: nonterminal names (for messages).
        terminals: the terminal DFAs.
        nullable: nonterminals that derive the empty string.
        by_lhs: production ids per nonterminal.
    """

    productions: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    terminals: list[LazyByteDFA] = field(default_factory=list)
    nullable: frozenset[int] = frozenset()
    by_lhs: list[tuple[int, ...]] = field(default_factory=list)
    predicates: dict[int, Any] = field(default_factory=dict)  # nonterminal -> semantic check
    terminal_names: list[str] = field(default_factory=lambda: _Names())  # for messages

    @property
    def start_production(self) -> int:
        """The augmented start production ``S' -> start``."""
        return 0


def recursive_rules(grammar: Grammar) -> set[str]:
    """Names of rules that lie on a reference cycle (Tarjan's SCCs, iteratively)."""
    rules = grammar.rule_map
    edges: dict[str, list[str]] = {}
    for name, expr in rules.items():
        out: list[str] = []
        for e in distinct_nodes(expr):
            if isinstance(e, Ref):
                if e.name not in rules:
                    raise InvalidGrammar(f"undefined rule {e.name!r}", keyword=e.name)
                out.append(e.name)
        edges[name] = out
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: set[str] = set()
    counter = 0
    for root in rules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = edges[node]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in edges[node]:
                    result.update(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


# Terminal DFAs shared across grammars, by content digest of the terminal's expression: the same
# terminal in another schema (a JSON value, a string with its key, a number) reuses the automaton
# with the states it has discovered, and the token walks cached on it (cfg_index), so such work is
# paid once per process, not once per schema. Bounded (least recently used dropped).
_SHARED_TERMINALS: OrderedDict[tuple[Any, ...], LazyByteDFA] = OrderedDict()
_SHARED_LOCK = threading.Lock()
_MAX_SHARED_TERMINALS = 1024
# rows cost 1 KB per discovered state: beyond this many states in all, the least recently used
# shared terminals are dropped (grammars that hold them keep them)
_MAX_SHARED_STATES = 200_000


def _shared_terminal(key: tuple[Any, ...]) -> LazyByteDFA | None:
    with _SHARED_LOCK:
        dfa = _SHARED_TERMINALS.get(key)
        if dfa is not None:
            _SHARED_TERMINALS.move_to_end(key)
        return dfa


# the states of all shared terminals are summed every this many insertions, not at each one
# (a sum over up to _MAX_SHARED_TERMINALS automata per new terminal was a fifth of compile time)
_STATES_CHECK_EVERY = 32
_inserts_since_check = 0


def _share_terminal(key: tuple[Any, ...], dfa: LazyByteDFA) -> None:
    global _inserts_since_check
    with _SHARED_LOCK:
        _SHARED_TERMINALS[key] = dfa
        while len(_SHARED_TERMINALS) > _MAX_SHARED_TERMINALS:
            _SHARED_TERMINALS.popitem(last=False)
        _inserts_since_check += 1
        if _inserts_since_check < _STATES_CHECK_EVERY:
            return
        _inserts_since_check = 0
        states = sum(d.num_states for d in _SHARED_TERMINALS.values())
        while states > _MAX_SHARED_STATES and len(_SHARED_TERMINALS) > 1:
            states -= _SHARED_TERMINALS.popitem(last=False)[1].num_states


class _ResolvedDigester:
    """Content digests of regular expressions with every ``Ref`` replaced by its rule's content
    (``ExprDigester`` digests a ``Ref`` by name, which means different things in different
    grammars). Iterative; memoised by node identity and by rule."""

    def __init__(self, rules: dict[str, Expr]) -> None:
        self.rules = rules
        self._memo: dict[int, tuple[Expr, bytes]] = {}
        self._rule_memo: dict[str, bytes] = {}

    def digest(self, expr: Expr) -> bytes:
        memo = self._memo
        hit = memo.get(id(expr))
        if hit is not None:
            return hit[1]
        rules, rule_memo = self.rules, self._rule_memo
        stack: list[Expr] = [expr]
        while stack:
            node = stack[-1]
            nid = id(node)
            if nid in memo:
                stack.pop()
                continue
            kind = type(node)
            if kind is Ref:
                name = node.name  # type: ignore[union-attr]
                value = rule_memo.get(name)
                if value is None:
                    body = rules[name]
                    known = memo.get(id(body))
                    if known is None:
                        stack.append(body)
                        continue
                    value = known[1]
                    rule_memo[name] = value
            elif kind is Seq or kind is Alt:
                missing = [c for c in node.items if id(c) not in memo]  # type: ignore[union-attr]
                if missing:
                    stack.extend(missing)
                    continue
                value = self.node_digest(node)
            elif kind is Repeat:
                item = node.item  # type: ignore[union-attr]
                if id(item) not in memo:
                    stack.append(item)
                    continue
                value = self.node_digest(node)
            else:
                value = self.node_digest(node)
            memo[nid] = (node, value)
            stack.pop()
        return memo[id(expr)][1]

    def node_digest(self, node: Expr) -> bytes:
        """The digest of a node that is not a ``Ref``, from its children's (in the memo)."""
        memo, sha = self._memo, hashlib.sha256
        kind = type(node)
        if kind is Lit:
            return sha(b"L" + node.value).digest()  # type: ignore[union-attr]
        if kind is Regex:
            return sha(
                b"R"
                + bytes([node.case_insensitive])  # type: ignore[union-attr]
                + node.pattern.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
            ).digest()
        if kind is KeyExclusion:
            return sha(b"K" + repr(node.keys).encode("utf-8")).digest()  # type: ignore[union-attr]
        if kind is Seq or kind is Alt:
            h = sha(b"S" if kind is Seq else b"A")
            for c in node.items:  # type: ignore[union-attr]
                h.update(memo[id(c)][1])
            return h.digest()
        if kind is Repeat:
            h = sha(b"P")
            h.update(memo[id(node.item)][1])  # type: ignore[union-attr]
            h.update(repr((node.min, node.max)).encode())  # type: ignore[union-attr]
            return h.digest()
        raise TypeError(f"Invalid IR node in a terminal: {kind.__name__}")


def clear_shared_terminals() -> None:
    """Forget the terminal DFAs shared across grammars (and the walks cached on them)."""
    with _SHARED_LOCK:
        _SHARED_TERMINALS.clear()


class _Lowering:
    def __init__(
        self, grammar: Grammar, max_nfa: int, max_dfa: int, max_terminal: int | None = None
    ) -> None:
        self.grammar = grammar
        self.rules = grammar.rule_map
        self.recursive = recursive_rules(grammar)
        self.max_nfa = max_nfa
        self.max_dfa = max_dfa
        self.bnf = Bnf()
        self.nt_of_rule: dict[str, int] = {}
        # memos keyed by content digest (hashing a shared IR DAG node by node is exponential)
        self.digester = ExprDigester()
        self.resolved = _ResolvedDigester(self.rules)  # content with rules inlined (sharing)
        self.symbol_nt: dict[bytes, int] = {}
        self.term_of_expr: dict[bytes, int] = {}
        self.prods: list[tuple[int, tuple[int, ...]]] = [(0, ())]  # patched below
        self.pending_rules: list[tuple[str, int]] = []  # rules whose productions are not made
        self.names: list[str] = ["<start>"]
        self._regular_rule: dict[str, bool] = {}
        self._regular: dict[int, tuple[Expr, bool]] = {}  # id -> (node kept alive, verdict)
        self.sizer = NfaBuilder(grammar)  # NFA sizes of regular parts (nothing is built)
        self.max_terminal = max_nfa if max_terminal is None else min(max_terminal, max_nfa)

    def is_regular(self, expr: Expr) -> bool:
        """Whether ``expr`` reaches no recursive rule and no check (so one DFA recognises it).

        One iterative post-order (a long chain of rules needs no Python stack) that also fills,
        for every regular node it reaches, the sizer's NFA size and the resolved content digest
        (``fits`` and ``terminal`` read them; three walks before). A rule's results are
        memoised by name, a node's by identity."""
        memo, rule_memo, rules = self._regular, self._regular_rule, self.rules
        if isinstance(expr, Ref):
            known = rule_memo.get(expr.name)
            if known is not None:
                return known
        else:
            hit = memo.get(id(expr))
            if hit is not None:
                return hit[1]
        sizer = self.sizer
        sizes, rule_sizes, node_size = sizer._sizes, sizer._rule_sizes, sizer.node_size
        digests, rule_digests = self.resolved._memo, self.resolved._rule_memo
        node_digest, sha256 = self.resolved.node_digest, hashlib.sha256

        def verdict(x: Expr) -> bool:
            if isinstance(x, Ref):
                return rule_memo[x.name]
            return memo[id(x)][1]

        stack: list[tuple[Expr, bool]] = [(expr, False)]
        while stack:
            node, expanded = stack.pop()
            if isinstance(node, Ref):
                name = node.name
                if name in rule_memo:
                    continue
                if name in self.recursive:  # on a cycle itself
                    rule_memo[name] = False
                    continue
                body = rules[name]
                done = body.name in rule_memo if isinstance(body, Ref) else id(body) in memo
                if not expanded and not done:
                    stack.append((node, True))
                    stack.append((body, False))
                    continue
                rule_memo[name] = regular = verdict(body)
                if regular and isinstance(body, Ref):  # a rule that only names another
                    rule_sizes[name] = rule_sizes[body.name]
                    rule_digests[name] = rule_digests[body.name]
                elif regular:
                    rule_sizes[name] = sizes[id(body)][1]
                    rule_digests[name] = digests[id(body)][1]
                continue
            nid = id(node)
            if nid in memo:
                continue
            kind = type(node)
            if kind is Lit or kind is Regex or kind is KeyExclusion:  # leaves are regular
                memo[nid] = (node, True)
                sizes[nid] = (node, node_size(node))
                digests[nid] = (node, node_digest(node))
                continue
            if kind is Seq or kind is Alt:
                children: tuple[Expr, ...] = node.items  # type: ignore[union-attr]
            elif kind is Repeat or kind is Check:
                children = (node.item,)  # type: ignore[union-attr]
            else:
                children = ()
            if not expanded:
                pending = [
                    c
                    for c in children
                    if (c.name not in rule_memo if type(c) is Ref else id(c) not in memo)
                ]
                if pending:
                    stack.append((node, True))
                    stack.extend((c, False) for c in pending)
                    continue
            regular = kind is not Check
            size = 0
            parts = [b"S"]
            for c in children if regular else ():
                if type(c) is Ref:
                    if not rule_memo[c.name]:
                        regular = False
                        break
                    if id(c) not in sizes:  # a rule's values, per use
                        sizes[id(c)] = (c, rule_sizes[c.name])
                        digests[id(c)] = (c, rule_digests[c.name])
                elif not memo[id(c)][1]:
                    regular = False
                    break
                if kind is Seq:
                    size += sizes[id(c)][1]
                    parts.append(digests[id(c)][1])
            memo[nid] = (node, regular)
            if not regular:
                continue
            if kind is Seq and children:  # the bulk of the nodes: sized and digested inline
                sizes[nid] = (node, size)
                digests[nid] = (node, sha256(b"".join(parts)).digest())
                continue
            if kind is not Seq and kind is not Alt:
                _check_node(node)
            sizes[nid] = (node, node_size(node))
            digests[nid] = (node, node_digest(node))
        return verdict(expr)

    def fits(self, expr: Expr) -> bool:
        """Whether ``expr`` becomes one terminal: regular, and its NFA within the state limit
        (a larger regular part is lowered structurally, like a recursive one)."""
        if not self.is_regular(expr):
            return False
        if isinstance(expr, (Lit, Regex, KeyExclusion)):
            return True  # a leaf cannot be split (its build raises LimitExceeded if too big)
        return self.sizer.states(expr) <= self.max_terminal

    def new_nt(self, name: str) -> int:
        self.names.append(name)
        if len(self.names) > self.max_nfa:
            raise LimitExceeded(
                f"the grammar needs more than {self.max_nfa} nonterminals (the state limit, "
                "CompileLimits.max_nfa_states, bounds them too)",
                hint="simplify the grammar (large bounded repeats unroll), or raise the limit",
            )
        if not len(self.names) & 0xFFF:
            check_deadline()
        return len(self.names) - 1

    def _check_length(self, n: int) -> None:
        if n > self.max_nfa:
            raise LimitExceeded(
                f"a grammar rule would need {n} symbols, more than the state limit "
                f"{self.max_nfa} (CompileLimits.max_nfa_states)",
                hint="simplify the grammar (large bounded repeats unroll), or raise the limit",
            )

    def terminal(self, expr: Expr) -> int:
        key = self.resolved.digest(expr)  # content, rules inlined: equal keys, equal languages
        tid = self.term_of_expr.get(key)
        if tid is None:
            shared_key = (key, self.max_nfa, self.max_dfa, _accel.native() is not None)
            dfa = _shared_terminal(shared_key)
            if dfa is None:
                # fragments are shared by every terminal's builder: each distinct node built once
                builder = NfaBuilder(
                    self.grammar, ByteNFA(max_states=self.max_nfa), sharing=self.sizer
                )
                start, end = builder.build_checked(expr)
                builder.nfa.accept[end] = 0
                dfa = LazyByteDFA(builder.nfa, start, max_states=self.max_dfa)
                _share_terminal(shared_key, dfa)
            tid = len(self.bnf.terminals)
            self.bnf.terminals.append(dfa)
            names = self.bnf.terminal_names
            if isinstance(names, _Names):
                names.add_lazy(expr, self.grammar.start)  # described when a message needs it
            else:
                names.append(_describe(expr, self.grammar.start))
            self.term_of_expr[key] = tid
        return ~tid

    def rule_nt(self, name: str) -> int:
        """The nonterminal of a rule; its productions are made later, from a worklist (a long
        chain of rules needs no Python stack)."""
        nt = self.nt_of_rule.get(name)
        if nt is None:
            nt = self.new_nt(name)
            self.nt_of_rule[name] = nt
            self.pending_rules.append((name, nt))
        return nt

    def alternatives(self, expr: Expr, ctx: str) -> list[tuple[int, ...]]:
        """Right-hand sides whose union is ``expr``."""
        if isinstance(expr, Alt) and not self.fits(expr):
            return [self.sequence(item, ctx) for item in expr.items]
        return [self.sequence(expr, ctx)]

    def sequence(self, expr: Expr, ctx: str) -> tuple[int, ...]:
        """A symbol sequence for ``expr``; consecutive regular items merge into one terminal."""
        if self.fits(expr):
            return () if expr == EMPTY else (self.terminal(expr),)
        if isinstance(expr, Seq):
            out: list[int] = []
            run: list[Expr] = []
            run_states = 0
            for item in expr.items:
                if self.fits(item):
                    size = self.sizer.states(item)
                    if run and run_states + size > self.max_terminal:
                        out.append(self.terminal(Seq(tuple(run)) if len(run) > 1 else run[0]))
                        run, run_states = [], 0
                    run.append(item)
                    run_states += size
                    continue
                if run:
                    out.append(self.terminal(Seq(tuple(run)) if len(run) > 1 else run[0]))
                    run, run_states = [], 0
                if isinstance(item, Seq):  # nested (shared) sequences: one nonterminal each
                    out.append(self.symbol(item, ctx))
                else:
                    out.extend(self.sequence(item, ctx))
            if run:
                out.append(self.terminal(Seq(tuple(run)) if len(run) > 1 else run[0]))
            self._check_length(len(out))
            return tuple(out)
        return (self.symbol(expr, ctx),)

    def symbol(self, expr: Expr, ctx: str) -> int:
        """One symbol standing for a non-regular ``expr`` (one per distinct ``expr``)."""
        if isinstance(expr, Ref):
            return self.rule_nt(expr.name)
        key = self.digester.digest(expr)
        nt = self.symbol_nt.get(key)
        if nt is None:
            nt = self._new_symbol(expr, ctx)
            self.symbol_nt[key] = nt
        return nt

    def _new_symbol(self, expr: Expr, ctx: str) -> int:
        if isinstance(expr, Check):
            nt = self.new_nt(f"{ctx}/check")
            self.bnf.predicates[nt] = expr.predicate
            for rhs in self.alternatives(expr.item, ctx):
                self.prods.append((nt, rhs))
            return nt
        if isinstance(expr, Seq):
            nt = self.new_nt(f"{ctx}/seq")
            self.prods.append((nt, self.sequence(expr, ctx)))
            return nt
        if isinstance(expr, Alt):
            nt = self.new_nt(f"{ctx}/alt")
            for item in expr.items:
                self.prods.append((nt, self.sequence(item, ctx)))
            return nt
        if isinstance(expr, Repeat):
            item = self.sequence(expr.item, ctx)
            self._check_length(len(item) * expr.min + 1)
            if expr.max is not None:
                self._check_length(expr.max - expr.min)
            # R* as left recursion: R -> ε | R item (Earley handles it in linear time)
            if expr.max is None:
                star = self.new_nt(f"{ctx}/star")
                self.prods.append((star, ()))
                self.prods.append((star, (star, *item)))
                nt = self.new_nt(f"{ctx}/repeat")
                self.prods.append((nt, item * expr.min + (star,)))
                return nt
            # bounded: R_k -> ε | item R_{k-1}, after the mandatory copies
            tail: tuple[int, ...] = ()
            for k in range(expr.max - expr.min):
                opt = self.new_nt(f"{ctx}/opt{k}")
                self.prods.append((opt, ()))
                self.prods.append((opt, item + tail))
                tail = (opt,)
            nt = self.new_nt(f"{ctx}/repeat")
            self.prods.append((nt, item * expr.min + tail))
            return nt
        raise TypeError(f"Invalid IR node in non-regular position: {type(expr).__name__}")

    def run(self) -> Bnf:
        start_nt = self.rule_nt(self.grammar.start)
        while self.pending_rules:
            name, nt = self.pending_rules.pop()
            for rhs in self.alternatives(self.rules[name], name):
                self.prods.append((nt, rhs))
        self.prods[0] = (len(self.names), (start_nt,))  # S' gets the last nonterminal id
        self.names.append("<S'>")
        return _finish(self.bnf, self.prods, self.names)


class _Names(list):  # type: ignore[type-arg]
    """Terminal descriptions, computed on first read (only error messages read them)."""

    def add_lazy(self, expr: Expr, start: str) -> None:
        self.append((expr, start))

    def __getitem__(self, i: Any) -> Any:
        item = super().__getitem__(i)
        if isinstance(item, tuple):
            item = _describe(*item)
            self[i] = item
        return item

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))


def _describe(expr: Expr, start: str, limit: int = 48) -> str:
    """A short human-readable description of a terminal's expression."""

    def text(e: Expr) -> str:
        if isinstance(e, Lit):
            return repr(e.value)[1:]
        if isinstance(e, Regex):
            return f"/{e.pattern}/" + ("i" if e.case_insensitive else "")
        if isinstance(e, Ref):
            return e.name
        if isinstance(e, KeyExclusion):
            return f"<not {', '.join(map(repr, e.keys[:3]))}{' ...' if len(e.keys) > 3 else ''}>"
        if isinstance(e, Seq):
            return " ".join(text(i) for i in e.items[:4]) + (" ..." if len(e.items) > 4 else "")
        if isinstance(e, Alt):
            return "(" + " | ".join(text(i) for i in e.items[:3]) + " ...)"
        if isinstance(e, Repeat):
            return f"({text(e.item)}){{{e.min},{'' if e.max is None else e.max}}}"
        return type(e).__name__

    out = text(expr)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _finish(bnf: Bnf, prods: list[tuple[int, tuple[int, ...]]], names: list[str]) -> Bnf:
    """Drop unproductive productions, compute nullables and indexes."""
    term_empty = [t.initial == t.dead for t in bnf.terminals]
    term_nullable = [t.accept_list[t.initial] for t in bnf.terminals]
    productive: set[int] = set()
    changed = True
    while changed:
        changed = False
        for lhs, rhs in prods:
            if lhs in productive:
                continue
            if all((s >= 0 and s in productive) or (s < 0 and not term_empty[~s]) for s in rhs):
                productive.add(lhs)
                changed = True
    start_lhs = prods[0][0]
    if start_lhs not in productive:
        raise IncompatibleVocabulary("the grammar's language is empty", hint="check the grammar")
    kept = [
        (lhs, rhs)
        for lhs, rhs in prods
        if lhs in productive
        and all((s >= 0 and s in productive) or (s < 0 and not term_empty[~s]) for s in rhs)
    ]
    nullable: set[int] = set()
    changed = True
    while changed:
        changed = False
        for lhs, rhs in kept:
            if lhs not in nullable and all(
                (s >= 0 and s in nullable) or (s < 0 and term_nullable[~s]) for s in rhs
            ):
                if lhs in bnf.predicates and not bnf.predicates[lhs](b""):
                    continue  # a check rejecting the empty string keeps its symbol non-nullable
                nullable.add(lhs)
                changed = True
    by_lhs: list[list[int]] = [[] for _ in names]
    for pid, (lhs, _) in enumerate(kept):
        by_lhs[lhs].append(pid)
    bnf.productions = kept
    bnf.names = names
    bnf.nullable = frozenset(nullable)
    bnf.by_lhs = [tuple(p) for p in by_lhs]
    return bnf


def grammar_to_bnf(
    grammar: Grammar,
    max_nfa_states: int = DEFAULT_MAX_NFA_STATES,
    max_dfa_states: int = DEFAULT_MAX_DFA_STATES,
    max_terminal_states: int | None = None,
) -> Bnf:
    """Lower ``grammar`` to BNF over DFA terminals.

    A regular sub-expression becomes one terminal if its NFA needs at most
    ``max_terminal_states`` states (default: ``max_nfa_states``); a larger one is lowered
    structurally (Seq, Alt, Repeat and rules become nonterminals, one per distinct node).
    """
    return _Lowering(grammar, max_nfa_states, max_dfa_states, max_terminal_states).run()


__all__ = ["Bnf", "clear_shared_terminals", "grammar_to_bnf", "recursive_rules"]
