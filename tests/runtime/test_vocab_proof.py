"""The compile-time vocabulary proof covers the Earley engine: a recursive grammar compiled
against a vocabulary that cannot continue some live state is refused with a typed error naming
the terminal and the missing bytes; a compiled one never shows an empty mask in a live state
(checked by brute force over toy vocabularies); real tokenizers are not refused."""

from __future__ import annotations

import random
from collections import deque

import pytest

import structgen as sg
from structgen.automata.cfg import grammar_to_bnf
from structgen.tokens.vocab_proof import reachable_terminals, structurally_covered

ISSUE = 'start: "a" "b" | "(" start ")"'


def _vocab(tokens: list[bytes]) -> sg.Vocabulary:
    return sg.Vocabulary.from_token_bytes([*tokens, b""], eos_token_ids=[len(tokens)])


def _empty_live_mask(compiled: sg.CompiledGrammar, max_nodes: int = 400) -> bytes | None:
    """Brute force: breadth-first over token sequences (states keyed by their bytes); the bytes
    of a reachable non-accepting state whose mask is empty, or None."""
    vocab = compiled.vocab
    start = compiled.matcher()
    queue = deque([(b"", start)])
    seen = {b""}
    while queue and len(seen) < max_nodes:
        text, m = queue.popleft()
        allowed = [t for t in m.allowed_token_ids().tolist() if t not in vocab.eos_token_ids]
        if not allowed and not m.is_accepting():
            return text
        for tid in allowed:
            nxt = text + vocab.token_bytes[tid]
            if nxt in seen:
                continue
            seen.add(nxt)
            child = m.copy()
            assert child.consume_token(tid)
            queue.append((nxt, child))
    return None


def test_issue_example_is_refused_naming_the_missing_byte() -> None:
    grammar = sg.Grammar.from_lark(ISSUE)
    vocab = _vocab([b"a", b"(", b")"])
    with pytest.raises(sg.IncompatibleVocabulary, match=r"after b'a'.*bytes b'b'") as info:
        sg.compile(grammar, vocab, use_cache=False)
    assert "terminal" in (info.value.location or "")
    # the oracle agrees: without the proof, "a" leads to an empty mask in a live state
    from structgen.compiler import CompiledGrammar
    from structgen.tokens.cfg_index import CfgTokenIndex

    unchecked = CompiledGrammar(grammar, vocab, CfgTokenIndex(grammar_to_bnf(grammar), vocab))
    assert _empty_live_mask(unchecked) == b"a"


@pytest.mark.parametrize(
    "tokens,ok",
    [
        ([b"a", b"b", b"(", b")"], True),
        ([b"ab", b"(", b")"], True),
        ([b"(a", b"b", b")"], True),  # "(" only inside "(a": crossing into the next terminal
        ([b"(", b"a", b"b)"], False),  # top-level "a" has no continuation ("b)" is too long)
        ([b"a", b"b)", b"(", b")"], False),
    ],
)
def test_issue_grammar_against_hand_built_vocabularies(tokens: list[bytes], ok: bool) -> None:
    grammar = sg.Grammar.from_lark(ISSUE)
    if ok:
        compiled = sg.compile(grammar, _vocab(tokens), use_cache=False)
        assert _empty_live_mask(compiled) is None
    else:
        with pytest.raises(sg.IncompatibleVocabulary, match="mask would be empty"):
            sg.compile(grammar, _vocab(tokens), use_cache=False)


GRAMMARS = [
    ISSUE,
    'start: "[" [start ("," start)*] "]" | NUM\nNUM: /[0-9]+/\n',
    'start: item+\nitem: "x" | "{" start "}"\n',
    'start: "[" (start | STR) "]" | STR\nSTR: /"[ab]*"/\n',
    'start: "(" start ")" start |\n',
    'start: "<" NAME ">" start* "</" NAME ">" | "t"\nNAME: /[ab]+/\n',
]


@pytest.mark.parametrize("index", range(len(GRAMMARS)))
def test_compiled_grammars_never_show_an_empty_live_mask(index: int) -> None:
    """Soundness against brute force: random toy vocabularies (some missing bytes the grammar
    needs); whenever compile succeeds, no reachable live state has an empty mask."""
    grammar = sg.Grammar.from_lark(GRAMMARS[index])
    alphabet = sorted({c for c in GRAMMARS[index] if c in '[](){}<>/,"abtx019'})
    rng = random.Random(index)
    pool = [a for a in alphabet] + [a + b for a in alphabet for b in alphabet]
    outcomes = {True: 0, False: 0}
    for _ in range(40):
        tokens = sorted(set(rng.sample(pool, rng.randrange(3, min(12, len(pool))))))
        vocab = _vocab([t.encode() for t in tokens])
        try:
            compiled = sg.compile(grammar, vocab, use_cache=False)
        except sg.IncompatibleVocabulary:
            outcomes[False] += 1
            continue
        outcomes[True] += 1
        assert _empty_live_mask(compiled, max_nodes=150) is None, tokens
    assert outcomes[True] and outcomes[False], outcomes


def test_byte_complete_vocabularies_take_the_structural_path() -> None:
    vocab = sg.Vocabulary.byte_level([b"ab"])
    for text in GRAMMARS:
        bnf = grammar_to_bnf(sg.Grammar.from_lark(text))
        single = vocab.single_byte_values()
        assert all(structurally_covered(bnf.terminals[t], single) for t in reachable_terminals(bnf))
        sg.compile(sg.Grammar.from_lark(text), vocab, use_cache=False)


def test_real_vocabulary_missing_bytes_is_not_refused_on_shipped_grammars(
    smollm2_tokenizer,
) -> None:
    """SmolLM2 has no one-byte tokens for a few bytes (control characters, some UTF-8 lead
    bytes): the structural argument must still cover the shipped grammars and a recursive
    schema, without exploring the 49k-token vocabulary."""
    from structgen.grammar.shipped import load_shipped, shipped_names

    vocab = sg.Vocabulary.from_tokenizer(smollm2_tokenizer)
    single = vocab.single_byte_values()
    assert len(single) < 256
    recursive = {
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}},
    }
    grammars = [sg.Grammar.from_lark(load_shipped(n)) for n in shipped_names()]
    grammars.append(sg.Grammar.from_json_schema(recursive))
    for grammar in grammars:
        bnf = grammar_to_bnf(grammar)
        assert all(structurally_covered(bnf.terminals[t], single) for t in reachable_terminals(bnf))
        sg.compile(grammar, vocab)
