"""Terminal automata are shared across grammars by content (rules resolved), never by name."""

from __future__ import annotations

from support import walk

import structgen as sg
from structgen.grammar.ir import Grammar, Lit, Ref, Regex, Seq, alt

VOCAB = sg.Vocabulary.byte_level([b"((", b"))", b"ab"])


def _nested(word: str) -> Grammar:
    return Grammar.from_rules(
        {"start": alt(Seq((Lit(b"("), Ref("start"), Lit(b")"))), Ref("word")), "word": Regex(word)}
    )


def test_same_rule_name_other_content_is_not_shared() -> None:
    a = sg.compile(_nested("a+"), VOCAB, use_cache=False)
    b = sg.compile(_nested("b+"), VOCAB, use_cache=False)
    assert walk(a, list(b"((aa))")) and not walk(a, list(b"((bb))"))
    assert walk(b, list(b"((bb))")) and not walk(b, list(b"((aa))"))
    shared = set(map(id, a.index.bnf.terminals)) & set(map(id, b.index.bnf.terminals))
    assert len(shared) == 2  # "(" and ")" are the same terminals; the two "word"s are not


def test_same_content_shares_automata_and_walks() -> None:
    sg.compiler.clear_cache()
    first = sg.compile(_nested("a+"), VOCAB, use_cache=False)
    m = first.matcher()
    assert m.consume_bytes(b"((a")
    mask = m.next_token_bitmask_np()
    second = sg.compile(_nested("a+"), VOCAB, use_cache=False)
    assert first.index is not second.index
    assert [id(t) for t in first.index.bnf.terminals] == [id(t) for t in second.index.bnf.terminals]
    walks = sum(len(t.walks) for t in second.index.bnf.terminals)
    other = second.matcher()
    assert other.consume_bytes(b"((a")
    assert (other.next_token_bitmask_np() == mask).all()
    assert sum(len(t.walks) for t in second.index.bnf.terminals) == walks  # reused, not redone
    sg.compiler.clear_cache()
    third = sg.compile(_nested("a+"), VOCAB, use_cache=False)
    assert not set(map(id, third.index.bnf.terminals)) & set(map(id, first.index.bnf.terminals))
