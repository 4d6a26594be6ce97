"""Lark front end: the lowered IR accepts exactly what lark itself accepts; errors and locations.

The oracle is ``lark.Lark(text, parser="earley", lexer="dynamic_complete")``; the IR side is the
test-only reference recognizer ``ir_recognizer.accepts``. Positive strings are random derivations
of the lowered IR (terminals sampled from interegular automata), negatives random one-character
mutations of them; lark judges both, and the IR must agree on every string.
"""

from __future__ import annotations

import random
import re
from functools import cache

import interegular
import lark
import pytest
from interegular.fsm import anything_else
from ir_recognizer import accepts
from support import tokenize_random, walk

import structgen as sg
from structgen.errors import ConfigurationError, InvalidGrammar, UnsupportedFeature
from structgen.grammar.ir import Alt, Expr, Grammar, Lit, Ref, Regex, Repeat, Seq
from structgen.grammar.lark import lark_grammar
from structgen.grammar.shipped import load_shipped, shipped_names

SHIPPED = ["arithmetic", "csv", "json", "python_expr", "sql_select"]

TRICKY = {
    "ambiguous": 'start: x+\nx: "a" | "ab" | "b" | A\nA: /b+a/\n',
    "left_recursive": 'start: start "+" item | item\nitem: "x" | "(" start ")" | b\n'
    'b: b "e" | start "f" | "g"\n',
    "nullable": 'start: a b a\na: "x"?\nb: (c | "y")*\nc: a a | [d] "z"\nd: \n',
    "unicode": 'start: WORD ("·" WORD)* ["é"]\nWORD: /[α-ω]+/\n',
    "case_insensitive": 'start: SELECT NAME ("," NAME)* [FROM NAME]\nSELECT: "select"i\n'
    'FROM: "from"i\nNAME: /[a-z_]+/i\n%ignore " "\n',
    "ignore": 'start: item+\nitem: "a" | "b" "c" | WORD | "{" item* "}"\nWORD: /[xyz]+/\n'
    'COMMENT: /#[^#\\n]*#/\n%ignore / +/\n%ignore COMMENT\n%ignore "\\n"\n',
    "templates": 'start: _list{NUM} | _list{pair}\n_list{item}: "[" [item ("," item)*] "]"\n'
    'pair: "(" NUM ":" NUM ")"\nNUM: /[0-9]+/\n',
    "repeats": 'start: "a"~2..4 ("b" "c")~2 x~1..3 "z"~3\nx: "d" | "e" | \n',
    "imports": "%import common.SIGNED_NUMBER\n%import common.ESCAPED_STRING\n"
    "%import common.CNAME\n%import common.WS\n%import common.C_COMMENT\n%ignore WS\n"
    '%ignore C_COMMENT\nstart: (SIGNED_NUMBER | ESCAPED_STRING | CNAME | "/" | "*" | "+")+ ";"\n',
    "flags": 'start: A B C D\nA: /a.b/s\nB: /x+/i\nC: /q(?m:r)/m\nD: "k" /[0-9]/i "z"i\n',
    "trees_only": '?start: a -> top\n!a.2: "x" b | _c\nb.1: "y"*\n_c: "z" | B\nB.5: "w"\n',
}

EXTRA_CHARS = ' a1(),"\\\n*/é'
# byte tokens plus multi-byte ones that cross terminal boundaries in the shipped grammars
ENGINE_VOCAB = sg.Vocabulary.byte_level(
    [b'", "', b'":', b"),", b"SELECT ", b" FROM", b"1.", b"(x", b"\r\n", b'""', b"ab", b" *", b"]}"]
)


# ---- random strings -------------------------------------------------------------------------


@cache
def _automaton(pattern: str, case_insensitive: bool) -> tuple[interegular.FSM, dict[int, int]]:
    """The interegular FSM of a Regex node and each live state's distance to acceptance."""
    fsm = interegular.parse_pattern(f"(?i:{pattern})" if case_insensitive else pattern).to_fsm()
    distance = {state: 0 for state in fsm.finals}
    changed = True
    while changed:
        changed = False
        for state, moves in fsm.map.items():
            best = min((distance[t] + 1 for t in moves.values() if t in distance), default=None)
            if best is not None and best < distance.get(state, best + 1):
                distance[state], changed = best, True
    return fsm, distance


def _sample_regex(node: Regex, rng: random.Random, limit: int = 4) -> str:
    fsm, distance = _automaton(node.pattern, node.case_insensitive)
    state, out = fsm.initial, []
    while True:
        moves = [(sym, nxt) for sym, nxt in fsm.map[state].items() if nxt in distance]
        if state in fsm.finals and (not moves or len(out) >= limit or rng.random() < 0.5):
            return "".join(out)
        if len(out) >= limit:
            moves = [(sym, nxt) for sym, nxt in moves if distance[nxt] < distance[state]]
        symbol, state = rng.choice(moves)
        chars = fsm.alphabet.by_transition[symbol]
        if anything_else in chars:
            known = set(fsm.alphabet.keys())
            chars = [c for c in "é☃q#~Z0 " if c not in known]
        out.append(rng.choice(chars))


class _Sampler:
    """Random derivations of an IR grammar, biased to short ones; past ``depth`` it takes the
    way out of least derivation height (which always terminates)."""

    def __init__(self, grammar: Grammar, rng: random.Random, depth: int = 5) -> None:
        self.grammar, self.rules, self.rng, self.depth = grammar, grammar.rule_map, rng, depth
        self.height = dict.fromkeys(self.rules, float("inf"))
        self.length = dict.fromkeys(self.rules, float("inf"))
        for table, measure in ((self.height, self._height), (self.length, self._length)):
            changed = True
            while changed:
                changed = False
                for name, body in self.rules.items():
                    value = measure(body)
                    if value < table[name]:
                        table[name], changed = value, True

    def _height(self, expr: Expr) -> float:
        if isinstance(expr, Seq):
            return max((self._height(item) for item in expr.items), default=0)
        if isinstance(expr, Alt):
            return min(self._height(item) for item in expr.items)
        if isinstance(expr, Repeat):
            return 0 if expr.min == 0 else self._height(expr.item)
        if isinstance(expr, Ref):
            return 1 + self.height[expr.name]
        return 0

    def _length(self, expr: Expr) -> float:
        if isinstance(expr, Seq):
            return sum(self._length(item) for item in expr.items)
        if isinstance(expr, Alt):
            return min(self._length(item) for item in expr.items)
        if isinstance(expr, Repeat):
            return expr.min * self._length(expr.item)
        if isinstance(expr, Ref):
            return self.length[expr.name]
        return len(expr.value) if isinstance(expr, Lit) else 1

    def sample(self) -> str:
        return self._gen(Ref(self.grammar.start), 0)

    def _gen(self, expr: Expr, depth: int) -> str:
        if isinstance(expr, Lit):
            return expr.value.decode("utf-8")
        if isinstance(expr, Regex):
            return _sample_regex(expr, self.rng)
        if isinstance(expr, Seq):
            return "".join(self._gen(item, depth) for item in expr.items)
        if isinstance(expr, Alt):
            if depth > self.depth:
                choice = min(expr.items, key=lambda e: (self._height(e), self._length(e)))
            else:  # the shorter of two random picks: keeps strings short but varied
                choice = min(self.rng.choices(expr.items, k=2), key=self._length)
            return self._gen(choice, depth)
        if isinstance(expr, Repeat):
            more = depth <= self.depth
            extra = more * ((self.rng.random() < 0.3) + (self.rng.random() < 0.1))
            count = expr.min + extra if expr.max is None else min(expr.min + extra, expr.max)
            return "".join(self._gen(expr.item, depth) for _ in range(count))
        assert isinstance(expr, Ref)
        return self._gen(self.rules[expr.name], depth + 1)


def _mutate(text: str, alphabet: str, rng: random.Random) -> str:
    i = rng.randint(0, len(text))
    op = rng.choice("idr") if text else "i"
    if op == "i":
        return text[:i] + rng.choice(alphabet) + text[i:]
    i = min(i, len(text) - 1)
    return text[:i] + (rng.choice(alphabet) if op == "r" else "") + text[i + 1 :]


def _lark_accepts(parser: lark.Lark, text: str) -> bool | None:
    """lark's verdict on ``text``; None where lark itself crashes (an internal Earley error)."""
    try:
        parser.parse(text)
    except lark.exceptions.LarkError:
        return False
    except RuntimeError:  # "Earley should not generate multiple start symbol items!"
        return None
    return True


def _check_against_lark(text: str, seed: int, positives: int = 60, negatives: int = 100) -> None:
    grammar = lark_grammar(text)
    parser = lark.Lark(text, parser="earley", lexer="dynamic_complete")
    rng = random.Random(seed)
    sampler = _Sampler(grammar, rng)
    good = list(dict.fromkeys(sampler.sample() for _ in range(positives)))
    alphabet = "".join(sorted(set("".join(good)) | set(EXTRA_CHARS)))
    bad = list(dict.fromkeys(_mutate(rng.choice(good), alphabet, rng) for _ in range(negatives)))
    mismatches, judged = [], {True: 0, False: 0, None: 0}
    compiled = sg.compile(grammar, ENGINE_VOCAB)  # the real engine, byte tokens plus merges
    engine_mismatches = []
    for i, s in enumerate(dict.fromkeys(good + bad)):
        expected = _lark_accepts(parser, s)
        judged[expected] += 1
        if expected is not None and accepts(grammar, s) != expected:
            mismatches.append((s, expected))
        if expected is not None:
            tokens = tokenize_random(s.encode("utf-8"), ENGINE_VOCAB, rng)
            if walk(compiled, tokens, check_masks=i % 8 == 0) != expected:
                engine_mismatches.append((s, expected))
    assert not mismatches, f"IR disagrees with lark (string, lark's verdict): {mismatches[:5]}"
    assert not engine_mismatches, f"engine disagrees with lark: {engine_mismatches[:5]}"
    assert judged[True] >= 5 and judged[False] >= 5 and judged[None] <= 5, judged


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_grammar_matches_lark(name: str) -> None:
    # lark's Earley takes ~50 ms per SQL string (31 case-insensitive keywords): fewer of those.
    sizes = {"sql_select": (40, 60)}.get(name, (60, 100))
    _check_against_lark(load_shipped(name), SHIPPED.index(name), *sizes)


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_grammar_matches_lark(name: str) -> None:
    _check_against_lark(TRICKY[name], seed=len(name))


# ---- lexer modes and the regular-set reading of terminals -------------------------------------


def test_dynamic_lexer_keeps_only_the_longest_match_dynamic_complete_and_ir_do_not() -> None:
    text = "start: WORD WORD\nWORD: /[a-z]+/\n"
    plain = lark.Lark(text, parser="earley", lexer="dynamic")
    complete = lark.Lark(text, parser="earley", lexer="dynamic_complete")
    assert not _lark_accepts(plain, "ab")
    assert _lark_accepts(complete, "ab")
    assert accepts(lark_grammar(text), "ab")


def test_ignored_line_comment_may_end_early_in_the_ir() -> None:
    # lark skips only the longest match of an ignored terminal; the IR reads it as a set, so a
    # line comment may stop before the end of its line and let tokens follow (over-approximation).
    text = 'start: "a"+ ";"\nCOMMENT: /#[^\\n]*/\n%ignore COMMENT\n%ignore "\\n"\n'
    parser, grammar = lark.Lark(text, lexer="dynamic_complete"), lark_grammar(text)
    assert _lark_accepts(parser, "a#x\n;") and accepts(grammar, "a#x\n;")
    assert not _lark_accepts(parser, "a#x;") and accepts(grammar, "a#x;")


def test_shipped_grammars_agree_under_dynamic_and_dynamic_complete() -> None:
    cases = {
        "arithmetic": ["12+3", "1.5e3*2"],
        "json": ['[1, 23, "ab"]', "[12 3]"],
        "python_expr": ["ab.cd(12)", "0x1f+1.5e-3"],
        "csv": ['ab,"c""d"\nef'],
        "sql_select": ["select ab from cd where ef > 12"],
    }
    for name, strings in cases.items():
        text = load_shipped(name)
        plain = lark.Lark(text, parser="earley", lexer="dynamic")
        complete = lark.Lark(text, parser="earley", lexer="dynamic_complete")
        for s in strings:
            assert _lark_accepts(plain, s) == _lark_accepts(complete, s), (name, s)


def test_terminal_is_a_regular_set_not_python_first_match() -> None:
    # re.match("a|ab", "ab") is "a": lark never lexes "ab" as A; the IR reads A as {a, ab}.
    text = "start: A\nA: /a|ab/\n"
    assert not _lark_accepts(lark.Lark(text, lexer="dynamic_complete"), "ab")
    assert accepts(lark_grammar(text), "ab")


def test_terminal_matching_the_empty_string_is_allowed() -> None:
    text = 'start: A "b"\nA: /a*/\n'
    with pytest.raises(lark.exceptions.GrammarError, match="zero-width"):
        lark.Lark(text, parser="earley", lexer="dynamic_complete")
    grammar = lark_grammar(text)
    assert [accepts(grammar, s) for s in ["b", "aab", "a", ""]] == [True, True, False, False]


def test_common_lazy_terminals_become_exact_greedy_regexes() -> None:
    grammar = lark_grammar("%import common.ESCAPED_STRING\nstart: ESCAPED_STRING\n")
    assert grammar.rule_map["start"] == Regex(r'"(?:[^"\\\n]|\\[^\n])*"')
    comment = lark_grammar('%import common.C_COMMENT\nstart: C_COMMENT "x"?\n')
    assert accepts(comment, "/* a * / **/") and not accepts(comment, "/* a */ b */")


# ---- lowering structure ------------------------------------------------------------------------


def test_lowering_structure_with_ignore() -> None:
    grammar = lark_grammar('start: "a" b\n  | \nb: "c"i /[0-9]+/s\n%ignore " "\n')
    gap = Repeat(Lit(b" "), 0, None)
    body = Alt((Seq((Lit(b"a"), gap, Ref("b"))), Lit(b"")))
    assert grammar.rules == (
        ("start", Seq((gap, body, gap))),
        ("b", Seq((Regex("c", case_insensitive=True), gap, Regex("(?s:[0-9]+)")))),
    )
    assert all(type(name) is str for name, _ in grammar.rules)
    assert any(status.keyword == "%ignore" for status in grammar.report)


def test_ebnf_expansion_priorities_and_aliases() -> None:
    grammar = lark_grammar('?start: a~2 -> pair\n!a.3: "x" [b]\nb: "y"+\n')
    assert grammar.start == "start" and {"start", "a", "b"} <= set(grammar.rule_map)
    assert [accepts(grammar, s) for s in ["xx", "xyyx", "x", "xyx y"]] == [True] * 2 + [False] * 2
    assert any(s.keyword == "priority" and s.status == "annotation" for s in grammar.report)


def test_from_lark_and_other_start_rules() -> None:
    text = 'start: item+\nitem: "i" | "j"\n'
    assert Grammar.from_lark(text) == lark_grammar(text)
    item = lark_grammar(text, start="item")
    assert item.start == "item" and accepts(item, "j") and not accepts(item, "ij")


def test_ascii_classes_are_noted() -> None:
    grammar = lark_grammar(r"start: /\d+/" + "\n")
    assert any("ASCII" in note for note in grammar.notes)


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regex", "fragment"),
    [
        (r"(?<=a)b", "look-around"),
        (r"a(?!b)", "look-around"),
        (r"(a)\1", "Group references"),
        (r"a\b", r"\\b"),
        (r"a$b", r"\$"),
        (r"a^", r"\^"),
        (r"a+?", "lazy quantifier"),
        (r"a{2,3}?", "lazy quantifier"),
        (r"a*+", "possessive quantifier"),
        (r"(?>a)", "atomic group"),
        (r"(?x:a b)", "verbose"),
    ],
)
def test_unsupported_regex_in_named_terminal(regex: str, fragment: str) -> None:
    with pytest.raises(UnsupportedFeature, match=fragment) as info:
        lark_grammar(f'start: "s" TOK\n\nTOK: /{regex}/\n')
    assert info.value.location == "3:1"
    assert "terminal TOK" in str(info.value) and "(at 3:1)" in str(info.value)


def test_unsupported_inline_regex_is_located_at_the_literal() -> None:
    with pytest.raises(UnsupportedFeature, match=r"terminal /a\(\?=b\)/ in rule item") as info:
        lark_grammar('start: item+\nitem: "x"\n    | /a(?=b)/\n')
    assert info.value.location == "3:7"


def test_verbose_flag_and_imported_lazy_terminal_are_refused() -> None:
    with pytest.raises(UnsupportedFeature, match="verbose") as info:
        lark_grammar("start: /a b/x\n")
    assert info.value.location == "1:8"
    with pytest.raises(UnsupportedFeature, match="_STRING_INNER.*lazy") as info:
        lark_grammar("%import common._STRING_INNER\nstart: _STRING_INNER\n")
    assert info.value.location == "1:9"


def test_declared_symbols_are_refused() -> None:
    with pytest.raises(UnsupportedFeature, match="%declare") as info:
        lark_grammar('start: "x" A\n%declare A\n')
    assert info.value.location == "2:10"
    with pytest.raises(UnsupportedFeature, match="rule b"):
        lark_grammar("start: b\n%declare b\n")


@pytest.mark.parametrize(
    ("text", "fragment", "location"),
    [
        ("start: (\n", "Unclosed parenthesis", "1:9"),
        ("start: 'a'\n", "Unexpected input", "1:8"),
        ('start: a b\na: "x"\n', "'b' used but not defined", "1:10"),
        ('start: a\na: "x"\na: "y"\n', "defined more than once", "3:1"),
        ('start: "ab".."z"\n', "invalid range", "1:8"),
        ("start: /a(/\n", "invalid regex", "1:8"),
        ('start: "a"\n%ignore B\n', "marked to ignore", "2:9"),
        ('start: ""\n', "Empty terminals", None),
        ("%import nothere.X\nstart: X\n", "%import failed", "1:9"),
    ],
)
def test_invalid_grammars(text: str, fragment: str, location: str | None) -> None:
    with pytest.raises(InvalidGrammar, match=re.escape(fragment)) as info:
        lark_grammar(text)
    assert info.value.location == location


def test_missing_or_template_start_rule() -> None:
    with pytest.raises(InvalidGrammar, match="'main' is not defined"):
        lark_grammar('start: "a"\n', start="main")
    with pytest.raises(InvalidGrammar, match="template"):
        lark_grammar('start: t{"a"}\nt{x}: x x\n', start="t")
    with pytest.raises(InvalidGrammar, match="string"):
        lark_grammar(b"start: 'a'")  # type: ignore[arg-type]


# ---- shipped grammar files ---------------------------------------------------------------------


def test_shipped_grammar_files() -> None:
    assert shipped_names() == SHIPPED
    for name in SHIPPED:
        text = load_shipped(name)
        assert text.startswith("// ") and text == load_shipped(f"{name}.lark")
    with pytest.raises(ConfigurationError, match="available: arithmetic"):
        load_shipped("yaml")
    with pytest.raises(ConfigurationError, match="invalid"):
        load_shipped("../structgen/errors")


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("json", ['{"a": [1, -2.5e+3, true, null, "\\u00e9\\n"]}', " 0 "], ["01", "[1,]", "'a'"]),
        ("arithmetic", ["1 + 2 * -(3 - .5) / 4", "2e10*1."], ["(1", "1 +", "+1"]),
        ("csv", ['a,b,"c""d"\r\n1,,3\n', "", '"x\ny",z'], ['a"b', '"a"b']),
        (
            "sql_select",
            [
                "SELECT a, COUNT(*) AS n FROM t LEFT JOIN u ON t.id = u.id WHERE x "
                "BETWEEN 1 AND 2 GROUP BY a ORDER BY n DESC LIMIT 10;",
                "select * from t",
            ],
            ["select from t", "select a from t limit x"],
        ),
        (
            "python_expr",
            [
                "f(x, *a, k=1)[1:2, ::3].y ** -2 if not a in b else lambda x: {**d}",
                "a is not None and [1, (2,), {3}]",
            ],
            ["01", "f(", "a if b"],
        ),
    ],
)
def test_shipped_grammar_examples(name: str, good: list[str], bad: list[str]) -> None:
    grammar = lark_grammar(load_shipped(name))
    parser = lark.Lark(load_shipped(name), parser="earley", lexer="dynamic_complete")
    for s in good:
        assert accepts(grammar, s) and _lark_accepts(parser, s), s
    for s in bad:
        assert not accepts(grammar, s) and not _lark_accepts(parser, s), s
