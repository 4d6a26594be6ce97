"""The regex front end parses without building automata; compile limits bound the regex
lowering and the IR (shared sub-expressions are handled once, not once per path); syntax errors
say what is wrong and where."""

from __future__ import annotations

import json
import random
import re
import tracemalloc

import interegular
import jsonschema
import pytest
from support import walk

import structgen as sg
from structgen.automata.lazy_dfa import LazyByteDFA
from structgen.automata.nfa import ByteNFA, NfaBuilder, grammar_to_nfa, is_recursive
from structgen.grammar.ir import Grammar, Lit, Ref, Regex, Seq, alt

VOCAB = sg.Vocabulary.byte_level([b"a" * 1000, b"0" * 100])


def _peak_mib(fn) -> float:  # noqa: ANN001 - a thunk
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- the lowering is interegular's

PATTERNS = [
    (r"[a-c]+x?", False),
    (r"(ab|a)*b", False),
    (r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"', False),
    (r"[α-ω]{2,4}é?", False),
    (r"(?:x|😀|中文)+", False),
    (r"a{3,5}|b{2,}|c{0}", False),
    (r"[^a]*a", False),
    (r".{0,3}", False),
    (r"(?s:.)+", False),
    (r"(?i)ab[^k]", False),
    (r"ab[^k]ß", True),
    (r"(?i:x)y(?-i:z)", False),
    (r"\W\S\D[\s\S]", False),
    (r"(a|)(|b)", False),
    ("[\ud800-\udfff]|q", False),
    (r"(?:\x41|\101|\n)+", False),
]


@pytest.mark.parametrize("pattern,ci", PATTERNS)
def test_lowering_accepts_what_interegular_fsm_accepts(pattern: str, ci: bool) -> None:
    """The automaton built from the parse tree has interegular's ``to_fsm`` language."""
    fsm = interegular.parse_pattern(f"(?i:{pattern})" if ci else pattern).to_fsm()
    nfa, start = grammar_to_nfa(Grammar.from_expr(Regex(pattern, case_insensitive=ci)))
    dfa = LazyByteDFA(nfa, start)
    chars = sorted(set(pattern) | set("abkKxyzABXYZß\n 0é😀\ud7ff\U0001f600"))
    rng = random.Random(len(pattern) * 7 + ci)
    for _ in range(400):
        text = "".join(rng.choice(chars) for _ in range(rng.randrange(6)))
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            continue
        assert dfa.matches(data) == fsm.accepts(text), text


# ------------------------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    "pattern,message",
    [
        ("(", r"missing \), unterminated subpattern at position 0"),
        ("(a|b", r"missing \), unterminated subpattern at position 0"),
        ("a)", "unbalanced parenthesis at position 1"),
        ("[a", "unterminated character set at position 0"),
        ("a{2,1}", "min repeat greater than max repeat at position 2"),
        ("*", "nothing to repeat at position 0"),
    ],
)
def test_regex_syntax_errors_say_what_and_where(pattern: str, message: str) -> None:
    with pytest.raises(sg.InvalidGrammar, match=message):
        Grammar.from_regex(pattern)
    with pytest.raises(sg.InvalidGrammar, match=message):
        Grammar.from_lark(f"start: /{pattern}/")


# --------------------------------------------------------------------------- huge repetitions


def test_front_end_builds_no_automaton(monkeypatch: pytest.MonkeyPatch) -> None:
    """``from_regex`` only parses: a huge counted repeat is not expanded there."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the regex front end built an interegular FSM")

    monkeypatch.setattr(interegular.fsm.FSM, "__init__", refuse)
    Grammar.from_regex("a{1000000}")
    Grammar.from_regex(r"[\s\S]{0,100000}")
    Grammar.from_lark("start: /[0-9]{1,2000}/ X\nX: /a{100000}/\n")


@pytest.mark.parametrize("pattern", ["a{1000000}", r"[\s\S]{0,100000}", r"(?:ab|c){0,70000}"])
def test_huge_repeats_raise_limit_exceeded_before_allocating(pattern: str) -> None:
    grammar = Grammar.from_regex(pattern)
    limits = sg.CompileLimits(max_nfa_states=100_000)

    def attempt() -> None:
        with pytest.raises(sg.LimitExceeded, match="would need"):
            sg.compile(grammar, VOCAB, limits=limits, use_cache=False)

    assert _peak_mib(attempt) < 20
    # the CFG engine's terminals are bounded the same way
    recursive = Grammar.from_rules(
        {"start": alt(Regex(pattern), Seq((Lit(b"("), Ref("start"), Lit(b")"))))}
    )
    assert is_recursive(recursive)
    with pytest.raises(sg.LimitExceeded, match="would need"):
        sg.compile(recursive, VOCAB, limits=limits, use_cache=False)


def test_large_repeats_compile_exactly_within_default_limits() -> None:
    m = sg.compile(Grammar.from_regex("a{100000}"), VOCAB, use_cache=False).matcher()
    thousand = VOCAB.vocab_size - 3  # the b"a" * 1000 token
    assert m.consume_tokens([thousand] * 99) == 99 and not m.is_accepting()
    assert m.allowed_token_ids().tolist() == [97, thousand]
    assert m.consume_tokens([97] * 999) == 999 and not m.is_accepting()
    assert m.consume_token(97) and m.is_accepting()
    assert m.allowed_token_ids().tolist() == [min(VOCAB.eos_token_ids)]


@pytest.mark.parametrize(
    "grammar",
    [Grammar.from_regex("^[0-9]{1,2000}$"), Grammar.from_lark("start: /[0-9]{1,2000}/")],
    ids=["regex", "lark"],
)
def test_long_digit_runs_need_no_recursion(grammar: Grammar) -> None:
    hundred = VOCAB.vocab_size - 2  # the b"0" * 100 token
    compiled = sg.compile(grammar, VOCAB, use_cache=False)
    assert walk(compiled, [hundred] * 20)
    assert walk(compiled, [hundred] * 19 + [ord("7")] * 100)
    assert not walk(compiled, [hundred] * 20 + [ord("1")], check_masks=False)
    assert not walk(compiled, [], check_masks=False)


# ------------------------------------------------------------------------ shared IR sub-trees


def _nested_arrays(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


def test_fingerprint_is_linear_in_shared_nodes() -> None:
    """20 nested arrays: each array rule mentions its items twice (first and later elements),
    so the expanded tree has ~2^20 copies; the fingerprint hashes each shared node once."""
    grammar = Grammar.from_json_schema(_nested_arrays(20))
    assert _peak_mib(grammar.fingerprint) < 10
    same = Grammar.from_json_schema(_nested_arrays(20))
    assert same.fingerprint() == grammar.fingerprint()
    assert Grammar.from_json_schema(_nested_arrays(19)).fingerprint() != grammar.fingerprint()


def _dag(depth: int, leaf: bytes) -> Grammar:
    expr = Lit(leaf)
    for _ in range(depth):
        expr = Seq((Lit(b"["), expr, Lit(b","), expr, Lit(b"]")))
    return Grammar.from_expr(expr)


def test_exponential_dag_ir_is_handled_in_linear_time_and_memory() -> None:
    grammar = _dag(60, b"x")  # 2^60 leaves when expanded
    assert grammar.fingerprint() == _dag(60, b"x").fingerprint()
    assert grammar.fingerprint() != _dag(60, b"y").fingerprint()
    assert not is_recursive(grammar)
    assert NfaBuilder(grammar, ByteNFA()).states(Ref("start")) > 2**60
    # no NFA can hold it: compiled as a CFG with one nonterminal per distinct node
    m = sg.compile(grammar, VOCAB, use_cache=False).matcher()
    assert m.consume_tokens(list(b"[" * 60 + b"x,x],")) == 65
    assert m.allowed_token_ids().tolist() == [ord("[")]
    assert not m.consume_token(ord("x"))
    small = _dag(3, b"x")
    assert walk(sg.compile(small, VOCAB), list(b"[[[x,x],[x,x]],[[x,x],[x,x]]]"))
    assert not walk(sg.compile(small, VOCAB), list(b"[[[x,x],[x,x]],[[x,x],[x,x]]"))


def test_twenty_nested_arrays_compile_and_match_the_validator() -> None:
    """Too big for one NFA (2^20 inlined copies): compiled with shared nonterminals instead."""
    schema = _nested_arrays(20)
    compiled = sg.compile(Grammar.from_json_schema(schema), VOCAB, use_cache=False)
    validator = jsonschema.Draft202012Validator(schema)
    rng = random.Random(0)

    def value(depth: int) -> object:
        if depth == 0:
            return rng.choice(["", "x", "x", 1])
        items = [value(depth - 1)]
        if rng.random() < 0.05:
            items.insert(rng.randrange(2), rng.choice([[], "y"]))
        return items

    seen = {True: 0, False: 0}
    for _ in range(40):
        instance = value(rng.choice([19, 20, 20, 21]))
        text = json.dumps(instance, separators=(",", ":")).encode()
        valid = validator.is_valid(instance)
        assert walk(compiled, list(text)) == valid, text
        seen[valid] += 1
    assert seen[True] >= 5 and seen[False] >= 5


def test_python_re_agrees_on_the_large_repeat_languages() -> None:
    for pattern, text, ok in [
        ("[0-9]{1,20}", "7" * 20, True),
        ("[0-9]{1,20}", "7" * 21, False),
        (r"[\s\S]{0,3}", "a\nb", True),
    ]:
        assert (re.fullmatch(pattern, text) is not None) == ok
        assert walk(sg.compile(Grammar.from_regex(pattern), VOCAB), list(text.encode())) == ok


def test_rule_chain_deeper_than_the_recursion_limit_compiles() -> None:
    """A rule chain deeper than Python's recursion limit compiles (the NFA, regularity and CFG
    lowering walks are iterative) and matches exactly: no RecursionError, no LimitExceeded."""
    n = 3000
    rules = {
        f"r{i}": alt(Seq((Lit(b"("), Ref(f"r{i + 1}"), Regex("[a-c]*"))), Lit(b"x"))
        for i in range(n)
    }
    rules[f"r{n}"] = alt(Seq((Lit(b"["), Ref("r0"))), Lit(b"y"))
    grammar = Grammar.from_rules(rules, start="r0")
    compiled = sg.compile(grammar, VOCAB, use_cache=False)
    for text, ok in [
        (b"x", True),
        (b"((x)a)", False),
        (b"((xa)bc", False),
        (b"((xab", True),
        (b"(((xa", True),
        (b"y", False),
        (b"(" * 5 + b"x" + b"c" * 3, True),
    ]:
        assert walk(compiled, list(text), check_masks=False) == ok, text
