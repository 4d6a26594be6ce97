"""The CFG engine (Earley over DFA terminals) against lark as the oracle, and its masks against
brute force. Grammars are written twice: as IR (what structgen runs) and as Lark text (the
oracle, parsed with Earley and a complete dynamic lexer, i.e. the CFG's exact language)."""

from __future__ import annotations

import random

import lark
import pytest
from support import mask_bit, tokenize_random, walk

import structgen as sg
from structgen.grammar.ir import Grammar, Ref, Regex, Repeat, alt, lit, opt, seq

EXTRA = [
    b'{"',
    b'":',
    b'","',
    b'"}',
    b"12",
    b"},",
    b"[1",
    b"],",
    b'["',
    b"+1",
    b"*(",
    b"))",
    b"ab",
    b"ba",
    b"aab",
    b"()",
    b"((",
]
VOCAB = sg.Vocabulary.byte_level(EXTRA)

CASES = {
    "json": (
        Grammar.from_rules(
            {
                "start": Ref("value"),
                "value": alt(Ref("obj"), Ref("arr"), Regex(r'"[a-z]*"'), Regex(r"-?[0-9]+")),
                "obj": seq(
                    lit("{"),
                    opt(
                        seq(
                            Regex(r'"[a-z]*"'),
                            lit(":"),
                            Ref("value"),
                            Repeat(seq(lit(","), Regex(r'"[a-z]*"'), lit(":"), Ref("value"))),
                        )
                    ),
                    lit("}"),
                ),
                "arr": seq(
                    lit("["), opt(seq(Ref("value"), Repeat(seq(lit(","), Ref("value"))))), lit("]")
                ),
            }
        ),
        r"""
        start: value
        value: obj | arr | /"[a-z]*"/ | /-?[0-9]+/
        obj: "{" (/"[a-z]*"/ ":" value ("," /"[a-z]*"/ ":" value)*)? "}"
        arr: "[" (value ("," value)*)? "]"
        """,
        '{}[]",:abz019-',
    ),
    "left_recursive_arith": (
        Grammar.from_rules(
            {
                "start": Ref("expr"),
                "expr": alt(seq(Ref("expr"), Regex("[+-]"), Ref("term")), Ref("term")),
                "term": alt(seq(Ref("term"), lit("*"), Ref("atom")), Ref("atom")),
                "atom": alt(Regex("[0-9]+"), seq(lit("("), Ref("expr"), lit(")"))),
            }
        ),
        r"""
        start: expr
        expr: expr /[+-]/ term | term
        term: term "*" atom | atom
        atom: /[0-9]+/ | "(" expr ")"
        """,
        "0123+-*()",
    ),
    "ambiguous_nullable": (
        Grammar.from_rules(
            {
                "start": Ref("s"),
                "s": alt(seq(Ref("s"), Ref("s")), seq(lit("a"), Ref("s"), lit("b")), lit("")),
            }
        ),
        """
        start: s
        s: s s | "a" s "b" |
        """,
        "ab",
    ),
    "adjacent_terminals": (  # lexeme boundaries are ambiguous: a+ a+ b
        Grammar.from_rules(
            {
                "start": Ref("x"),
                "x": alt(
                    seq(Regex("a+"), Regex("a+"), lit("b")), seq(lit("("), Ref("x"), lit(")"))
                ),
            }
        ),
        """
        start: x
        x: /a+/ /a+/ "b" | "(" x ")"
        """,
        "ab()",
    ),
}


def _oracle(text: str):
    return lark.Lark(text, parser="earley", lexer="dynamic_complete")


def _lark_accepts(parser, text: str) -> bool:
    try:
        parser.parse(text)
        return True
    except lark.exceptions.LarkError:
        return False


@pytest.mark.parametrize("name", sorted(CASES))
def test_agrees_with_lark(name: str) -> None:
    grammar, lark_text, alphabet = CASES[name]
    compiled = sg.compile(grammar, VOCAB)
    assert type(compiled.index).__name__ == "CfgTokenIndex"
    oracle = _oracle(lark_text)
    rng = random.Random(hash(name) & 0xFFFF)
    positives = 0
    for _ in range(250):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        expected = _lark_accepts(oracle, text)
        positives += expected
        tokens = tokenize_random(text.encode(), VOCAB, rng)
        assert walk(compiled, tokens, check_masks=False) == expected, text
    for text in _positives(name):
        assert _lark_accepts(oracle, text), text
        for _ in range(3):
            assert walk(compiled, tokenize_random(text.encode(), VOCAB, rng)), text


def _positives(name: str) -> list[str]:
    return {
        "json": ['{"a":[1,2,{"b":"c"}],"d":{}}', '[[],[[1]],"x"]', "-12", '{"":[]}'],
        "left_recursive_arith": ["1+2*3", "((1))", "1*(2+3)-4", "12-3-4"],
        "ambiguous_nullable": ["", "ab", "aabb", "abab", "aabbab"],
        "adjacent_terminals": ["aab", "aaaab", "((aab))"],
    }[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_mask_equals_brute_force(name: str) -> None:
    grammar, _, _ = CASES[name]
    compiled = sg.compile(grammar, VOCAB)
    rng = random.Random(5)
    for text in _positives(name):
        tokens = tokenize_random(text.encode(), VOCAB, rng)
        m = compiled.matcher()
        for tid in [*tokens, None]:
            words = m.next_token_bitmask_np()
            for cand in range(VOCAB.vocab_size):
                assert mask_bit(words, cand) == m.copy().consume_token(cand), (text, cand)
            if tid is not None:
                assert m.consume_token(tid)


@pytest.mark.parametrize("name", sorted(CASES))
def test_masks_cached_by_parse_configuration_equal_brute_force(name: str) -> None:
    """Masks are cached by parse configuration: over many accepted strings (so configurations
    recur at different positions and depths), every mask still equals brute force."""
    grammar, lark_text, alphabet = CASES[name]
    compiled = sg.compile(grammar, VOCAB, use_cache=False)
    oracle = _oracle(lark_text)
    rng = random.Random(11)
    texts = [*_positives(name)]
    while len(texts) < 40:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        if _lark_accepts(oracle, text):
            texts.append(text)
    calls = 0
    for text in texts:
        m = compiled.matcher()
        for tid in [*tokenize_random(text.encode(), VOCAB, rng), None]:
            words = m.next_token_bitmask_np()
            calls += 1
            for cand in range(VOCAB.vocab_size):
                assert mask_bit(words, cand) == m.copy().consume_token(cand), (text, cand)
            if tid is not None:
                assert m.consume_token(tid)
    assert 0 < len(compiled.index._plans) < calls / 2  # configurations recurred: plan hits


def test_copy_rollback_share_nothing_visible() -> None:
    compiled = sg.compile(CASES["json"][0], VOCAB)
    m = compiled.matcher()
    toks = tokenize_random(b'{"a":[1,', VOCAB, random.Random(1))
    assert m.consume_tokens(toks) == len(toks)
    fork = m.copy()
    assert fork.consume_tokens([ord("2"), ord("]")]) == 2
    assert m.consume_tokens([ord("["), ord("]"), ord("]")]) == 3  # the original diverges
    m.rollback(3)
    assert m.consume_tokens([ord("3"), ord("]"), ord("}")]) == 3 and m.is_accepting()
    assert fork.consume_token(ord("}")) and fork.is_accepting()


def test_pickle_cfg() -> None:
    import pickle

    compiled = sg.compile(CASES["left_recursive_arith"][0], VOCAB)
    back = pickle.loads(pickle.dumps(compiled))
    m = back.matcher()
    assert m.consume_tokens([ord(c) for c in "1+(2)"]) == 5 and m.is_accepting()


def test_masks_after_pickling_a_matcher_with_cached_configurations() -> None:
    """Configuration ids belong to one index: an unpickled matcher (a new index) must not reuse
    the ids its chart sets carry from the old one."""
    import pickle

    grammar = Grammar.from_rules(
        {
            "start": alt(
                seq(lit("("), Ref("start"), lit(")")),
                seq(lit("["), Ref("start"), lit("]")),
                lit("x"),
            )
        }
    )
    compiled = sg.compile(grammar, VOCAB, use_cache=False)
    m = compiled.matcher()
    assert m.consume_tokens(list(b"((")) == 2
    m.next_token_bitmask_np()  # keys the chart sets
    m2 = pickle.loads(pickle.dumps(m))
    other = m2._compiled.matcher()
    assert other.consume_tokens(list(b"[x")) == 2
    other.next_token_bitmask_np()  # the new index interns its own configurations first
    for matcher in (m2, other):
        words = matcher.next_token_bitmask_np()
        for cand in range(VOCAB.vocab_size):
            assert mask_bit(words, cand) == matcher.copy().consume_token(cand), cand
