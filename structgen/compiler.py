"""compile(grammar, vocabulary) -> CompiledGrammar: the one expensive, cacheable step.

Every user-input and vocabulary-compatibility error is raised here, never during decoding. The
artifact is immutable from the outside (its caches fill lazily and thread-safely), picklable, and
cached per process by content hash of the grammar, the vocabulary and the options.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from structgen.automata.cfg import Bnf, clear_shared_terminals, grammar_to_bnf
from structgen.automata.lazy_dfa import DEFAULT_MAX_DFA_STATES, LazyByteDFA
from structgen.automata.nfa import (
    DEFAULT_MAX_NFA_STATES,
    NfaBuilder,
    check_deadline,
    compile_deadline,
    grammar_to_nfa,
    is_recursive,
)
from structgen.errors import ConfigurationError, IncompatibleVocabulary, LimitExceeded
from structgen.grammar.ir import Grammar, KeywordStatus, Ref
from structgen.tokens.cfg_index import CfgTokenIndex
from structgen.tokens.dfa_index import DfaTokenIndex
from structgen.tokens.vocab_proof import check_cfg_vocabulary, structurally_covered
from structgen.tokens.vocabulary import Vocabulary

if TYPE_CHECKING:
    from structgen.runtime.matcher import Matcher


@dataclass(frozen=True)
class CompileLimits:
    """Bounds on compilation; exceeding one raises ``LimitExceeded``."""

    max_nfa_states: int = DEFAULT_MAX_NFA_STATES
    max_dfa_states: int = DEFAULT_MAX_DFA_STATES
    max_seconds: float | None = 60.0  # wall clock for building the automata


class CompiledGrammar:
    """A grammar compiled against a vocabulary. Create matchers with ``matcher()``.

    Attributes:
        grammar: the source grammar.
        vocab: the vocabulary.
        report: per-keyword enforcement report (from the front end).
        index: the token-level engine: ``DfaTokenIndex`` for regular grammars (one lazy DFA),
            ``CfgTokenIndex`` for recursive ones (Earley over DFA terminals).
    """

    def __init__(
        self, grammar: Grammar, vocab: Vocabulary, index: DfaTokenIndex | CfgTokenIndex
    ) -> None:
        self.grammar = grammar
        self.vocab = vocab
        self.index = index
        self._eos = np.array(sorted(vocab.eos_token_ids), dtype=np.int64)

    @property
    def report(self) -> tuple[KeywordStatus, ...]:
        """How each schema keyword / grammar construct is enforced."""
        return self.grammar.report

    @property
    def notes(self) -> tuple[str, ...]:
        """Facts about the lowering (e.g. the additionalProperties reading used)."""
        return self.grammar.notes

    @property
    def vocab_size(self) -> int:
        """Width of the masks (number of token ids)."""
        return self.vocab.vocab_size

    @property
    def eos_token_ids(self) -> np.ndarray:
        """The EOS ids as an int64 array."""
        return self._eos

    def matcher(self, *, max_rollback: int | None = None) -> Matcher:
        """A fresh per-sequence cursor at the start of the grammar."""
        from structgen.runtime.matcher import Matcher

        return Matcher(self, max_rollback=max_rollback)

    def __reduce__(self) -> tuple[Any, ...]:
        return (CompiledGrammar, (self.grammar, self.vocab, self.index))


_CACHE: OrderedDict[tuple[str, str, CompileLimits], CompiledGrammar] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def compile(  # noqa: A001 - the public name mirrors the design (sg.compile)
    grammar: Grammar,
    vocab: Vocabulary,
    *,
    limits: CompileLimits | None = None,
    use_cache: bool = True,
) -> CompiledGrammar:
    """Compile ``grammar`` against ``vocab``.

    Args:
        grammar: from ``Grammar.from_regex``, ``from_json_schema`` or ``from_lark``.
        vocab: from ``Vocabulary.from_tokenizer``.
        limits: compile-time bounds.
        use_cache: reuse an identical earlier compilation in this process.

    Raises:
        UnsupportedFeature: the grammar needs an engine feature not available.
        LimitExceeded: the automaton would exceed ``limits``.
        IncompatibleVocabulary: a live state has no token that can continue it.
    """
    if not isinstance(grammar, Grammar):
        raise ConfigurationError(
            f"Invalid grammar: expected structgen.Grammar, got {type(grammar).__name__}",
            hint="build one with Grammar.from_json_schema / from_regex / from_lark",
        )
    if not isinstance(vocab, Vocabulary):
        raise ConfigurationError(
            f"Invalid vocab: expected structgen.Vocabulary, got {type(vocab).__name__}",
            hint="build one with Vocabulary.from_tokenizer(tokenizer)",
        )
    limits = limits or CompileLimits()
    if use_cache:
        key = (grammar.fingerprint(), vocab.fingerprint(), limits)
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
                # same rules, maybe another report: share the engine, keep this grammar's report
                return hit if hit.grammar is grammar else CompiledGrammar(grammar, vocab, hit.index)
    compiled = _compile_uncached(grammar, vocab, limits)
    if use_cache:
        key = (grammar.fingerprint(), vocab.fingerprint(), limits)
        with _CACHE_LOCK:
            _CACHE[key] = compiled
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return compiled


def _compile_uncached(
    grammar: Grammar, vocab: Vocabulary, limits: CompileLimits
) -> CompiledGrammar:
    # The automata are many small long-lived objects: the cyclic GC's passes over them during a
    # build find nothing to free and cost up to 3x the build (restored afterwards).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    with compile_deadline(limits.max_seconds):
        try:
            return _build(grammar, vocab, limits)
        except RecursionError:
            raise LimitExceeded(
                "the grammar nests too deeply for the compiler (Python's recursion limit)",
                hint="flatten the grammar's nesting (deeply nested rules or sub-schemas)",
            ) from None
        finally:
            if gc_was_enabled:
                gc.enable()


def _build(grammar: Grammar, vocab: Vocabulary, limits: CompileLimits) -> CompiledGrammar:
    recursive = is_recursive(grammar)
    if recursive or _nfa_states(grammar) > limits.max_nfa_states:
        # recursion: Earley over DFA terminals (every maximal regular part is one terminal).
        # A regular grammar whose NFA would exceed the limit (shared sub-expressions inline
        # once per use: nested schemas grow exponentially) goes this way too: its parts over
        # _SPLIT_TERMINAL_STATES become nonterminals, each distinct part once.
        bnf = grammar_to_bnf(
            grammar,
            limits.max_nfa_states,
            limits.max_dfa_states,
            None if recursive else _SPLIT_TERMINAL_STATES,
        )
        cfg_index = CfgTokenIndex(bnf, vocab)
        _check_cfg_vocabulary(bnf, cfg_index, vocab)
        return CompiledGrammar(grammar, vocab, cfg_index)
    nfa, start = grammar_to_nfa(grammar, max_states=limits.max_nfa_states)
    dfa = LazyByteDFA(nfa, start, max_states=limits.max_dfa_states)
    index = DfaTokenIndex(dfa, vocab)
    _check_vocabulary(dfa, index, vocab)
    return CompiledGrammar(grammar, vocab, index)


_SPLIT_TERMINAL_STATES = 1 << 16


def _check_cfg_vocabulary(bnf: Bnf, index: CfgTokenIndex, vocab: Vocabulary) -> None:
    """Prove that no live Earley state has an empty mask (``structgen.tokens.vocab_proof``)."""
    if len(vocab.single_byte_values()) == 256:
        return  # every live byte is a token: the structural argument, nothing to walk
    check_cfg_vocabulary(bnf, vocab, index.trie, index.trie_extras)


def _nfa_states(grammar: Grammar) -> int:
    """States the regular engine's NFA would need (computed in linear time, nothing built)."""
    return NfaBuilder(grammar).states(Ref(grammar.start))


def _check_vocabulary(dfa: LazyByteDFA, index: DfaTokenIndex, vocab: Vocabulary) -> None:
    """Prove that every state reachable at a token boundary can be continued by some token.

    Fast path (exact, per NFA state, see below): true for byte-level BPE, SentencePiece with byte
    fallback and tiktoken vocabularies on text grammars. Otherwise, walk the token-level state
    graph exactly.
    """
    if dfa.initial == dfa.dead:
        raise IncompatibleVocabulary(
            "the grammar's language is empty", hint="check the grammar or schema"
        )
    # A live DFA state is a non-empty, epsilon-closed set of co-reachable NFA states, so it holds
    # an accepting state or a state with byte edges. If each NFA state with byte edges has one on
    # a byte that is itself a token, every live state is accepting or has a one-byte token.
    if structurally_covered(dfa, vocab.single_byte_values()):
        return
    seen = {dfa.initial}
    frontier = [dfa.initial]
    while frontier:
        check_deadline()
        state = frontier.pop()
        ends = index.token_end_states(state)
        live_ends = ends[ends != dfa.dead]
        if live_ends.size == 0 and not dfa.accepting[state]:
            missing = [b for b, t in enumerate(dfa.row(state)) if t != dfa.dead]
            raise IncompatibleVocabulary(
                f"after some token sequence the grammar can only continue with bytes "
                f"{bytes(missing[:16])!r}, and no token of {vocab.name} fits there",
                location=f"dfa state {state}",
                hint="use a tokenizer with byte fallback, or allow other spellings",
            )
        for nxt in np.unique(live_ends).tolist():
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)


def clear_cache() -> None:
    """Forget all cached compilations, and the terminal automata shared across grammars."""
    with _CACHE_LOCK:
        _CACHE.clear()
    clear_shared_terminals()


__all__ = ["CompileLimits", "CompiledGrammar", "clear_cache", "compile"]
