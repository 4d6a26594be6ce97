"""Dead-end recovery (structgen.decoding.recovery) through ``generate``, on a scripted fake model
over a byte-level vocabulary with the real grammar, matcher and samplers; plus its parts: the JSON
scanner, the refuted-prefix store and the token prefix index."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch

import structgen as sg
from structgen.decoding.recovery import JsonScanner, RecoveryOptions
from structgen.decoding.refuted import RefutedPrefixes, TokenPrefixIndex
from structgen.errors import ConfigurationError, DeadEnd
from structgen.integrations import generate as gen_module
from structgen.integrations.lm import CausalLM, Step

EXTRA = [b'"a"', b'"b"', b", ", b'"]', b"8.5", b"0.5"]
VOCAB = sg.Vocabulary.byte_level(EXTRA)
TOKEN = {data: i for i, data in enumerate(VOCAB.token_bytes) if data}


class _Inner:
    def get_output_embeddings(self) -> None:
        return None


class ScriptedLM(CausalLM):
    """A fake causal LM whose favourite next tokens are a function of the text so far
    (``policy(text) -> [bytes, ...]`` in order of preference; every other token scores lower)."""

    def __init__(self, policy: Any) -> None:  # no super().__init__: there is no real model
        self.model = _Inner()
        self.policy = policy
        self.forward_passes = 0

    def new_cache(self) -> list[int]:
        return []

    @staticmethod
    def cache_len(cache: list[int]) -> int:
        return len(cache)

    @staticmethod
    def crop(cache: list[int], length: int) -> None:
        del cache[length:]

    def forward(
        self, ids: Any, cache: list[int], *, last_only: bool = False, rows: Any = None
    ) -> Step:
        if rows is not None and list(rows) != [len(ids[0]) - 1]:
            raise NotImplementedError("the scripted model knows the last position's logits only")
        cache.extend(int(t) for t in ids[0])
        self.forward_passes += 1
        text = b"".join(VOCAB.token_bytes[t] for t in cache[1:])  # cache[0]: the prompt token
        logits = torch.full((VOCAB.vocab_size,), -5.0)
        for rank, data in enumerate(self.policy(text)):
            logits[TOKEN[data]] = 20.0 - rank
        return Step(logits=logits[None, None])


class FakeTokenizer:
    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [TOKEN[b"\n"]]}


def _tokenizer() -> FakeTokenizer:
    tok = FakeTokenizer()
    gen_module._VOCABS[tok] = VOCAB  # the vocabulary of this fake tokenizer
    return tok


def _run(policy: Any, schema: Any, **kwargs: Any) -> sg.GenerationResult:
    # the scripted policies write ``", "``: the flexible layout (generate asks for compact)
    kwargs.setdefault("schema_options", {"whitespace": "flexible"})
    return sg.generate(ScriptedLM(policy), _tokenizer(), "x", schema=schema, **kwargs)


def _inside_string(text: bytes) -> bool:
    stack, start, kind, _ = JsonScanner.step(JsonScanner.INITIAL, text, 0)
    return kind == 1


def _items(text: bytes) -> int:
    return text.count(b",") + 1


def duplicating_policy(text: bytes) -> list[bytes]:
    """Wants ``"a"`` as every item (a duplicate after the first), then ``]`` after 3 items."""
    if _inside_string(text):
        if text.endswith(b'"'):
            return [b"a", b"b", b"c"]
        return [b'"', b"a", b"b", b"c"]
    if text.endswith((b"[", b", ")):
        return [b'"a"', b'"', b"a"]
    return [b", ", b"]"] if _items(text) < 3 else [b"]", b", "]


UNIQUE = {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 2}


def test_recovery_backs_up_over_a_duplicate_item_and_completes_valid() -> None:
    result = _run(duplicating_policy, UNIQUE, max_new_tokens=40)
    assert result.complete, result.text
    jsonschema.validate(result.value, UNIQUE)
    # item 2: "a" refuted, "b" written; item 3: "a" again, a second dead end in this array:
    # the separator before it is refuted where the array may close, so it closes
    assert result.value == ["a", "b"]
    assert result.stats.backtracks == 2
    assert result.stats.discarded_tokens >= result.stats.backtracks
    assert result.log_weight is None  # the distribution changed: no weight


def test_where_the_array_cannot_close_the_items_are_resampled() -> None:
    schema = {**UNIQUE, "minItems": 3}
    result = _run(duplicating_policy, schema, max_new_tokens=40)
    assert result.complete, result.text
    assert result.value == ["a", "b", "c"]
    assert result.stats.backtracks >= 2


ENUM_ITEMS = {
    "type": "array",
    "items": {"enum": ["a", "b", "c"]},
    "uniqueItems": True,
    "minItems": 2,
}


def test_a_prefix_with_no_completion_is_a_dead_end_without_recovery() -> None:
    """``["a", "a`` is a prefix of the grammar (the check fires only when the item completes)
    whose one completion the check refuses: masked decoding has nowhere to go."""
    stuck = _run(duplicating_policy, ENUM_ITEMS, max_new_tokens=40, recovery="off")
    assert stuck.reason == "dead_end" and not stuck.complete and stuck.text == '["a", "a'
    result = _run(duplicating_policy, ENUM_ITEMS, max_new_tokens=40)
    assert result.complete, result.text
    jsonschema.validate(result.value, ENUM_ITEMS)
    assert result.stats.backtracks >= 1


def test_without_recovery_the_model_writes_what_it_is_forced_to() -> None:
    result = _run(duplicating_policy, UNIQUE, max_new_tokens=40, recovery="off")
    assert result.value == ["a", "aa", "aaa"] and result.stats.backtracks == 0


def test_recovery_is_bounded() -> None:
    def stubborn(text: bytes) -> list[bytes]:  # only ever wants "a", in every position
        if _inside_string(text):
            return [b'"', b"a"] if not text.endswith(b'"') else [b"a"]
        return [b'"a"', b", ", b'"', b"]"]

    opts = RecoveryOptions(max_backtracks=3)
    result = _run(stubborn, UNIQUE, max_new_tokens=30, recovery=opts, temperature=0.0)
    assert result.stats.backtracks <= 3
    assert result.stats.discarded_tokens <= 30
    assert result.stats.new_tokens <= 30
    if result.complete:
        jsonschema.validate(result.value, UNIQUE)


def test_number_refused_by_a_check_is_resampled() -> None:
    """``multipleOf: 0.25`` on a bounded number stays partly a check here; the model wants 8.5
    (over the maximum), is refused when it closes the number, and gets a value that passes."""
    schema = {
        "type": "object",
        "properties": {"s": {"type": "number", "minimum": 0, "maximum": 1}},
        "required": ["s"],
        "not": {"properties": {"s": {"const": 0.5}}},  # a check on the object
    }

    def policy(text: bytes) -> list[bytes]:
        if text.endswith(b": "):
            return [b"8.5", b"0.5", b"1"]
        if text.endswith((b"8.5", b"0.5", b"1")):
            return [b"}", b"0"]
        if text == b"{":
            return [b'"', b"s"]
        return [b'"', b"s", b":", b" ", b"}", b"0"]

    result = _run(policy, schema, max_new_tokens=40)
    assert result.complete, result.text
    jsonschema.validate(result.value, schema)
    assert result.value == {"s": 1}
    assert result.stats.backtracks >= 1


def test_recovery_option_values_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="recovery"):
        _run(duplicating_policy, UNIQUE, max_new_tokens=5, recovery="sometimes")
    with pytest.raises(ConfigurationError, match="max_backtracks"):
        RecoveryOptions(max_backtracks=-1)
    with pytest.raises(ConfigurationError, match="patience"):
        _run(duplicating_policy, UNIQUE, max_new_tokens=5, recovery={"patience": "x"})


def test_grammars_without_checks_run_unchanged() -> None:
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3}
    on = _run(duplicating_policy, schema, max_new_tokens=30)
    off = _run(duplicating_policy, schema, max_new_tokens=30, recovery="off")
    assert on.tokens == off.tokens and on.complete
    assert on.value == ["a", "a", "a"] and on.stats.backtracks == 0


# -- parts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, innermost",
    [
        (b"", -1),
        (b"[", 0),
        (b'{"k', 1),
        (b'{"k": ', 0),
        (b'{"k": [1, 2', 10),
        (b'{"k": [1, 2]', 0),
        (b'["a\\"b', 1),
        (b'["a\\"b"', 0),
        (b"[tru", 1),
        (b"[true, -1.5e", 7),
        (b"[[]", 0),
        (b'[1, "]"', 0),
    ],
)
def test_scanner_finds_the_innermost_open_value(text: bytes, innermost: int) -> None:
    whole = JsonScanner.step(JsonScanner.INITIAL, text, 0)
    assert JsonScanner.innermost(whole) == innermost
    state = JsonScanner.INITIAL  # byte by byte gives the same state
    for i in range(len(text)):
        state = JsonScanner.step(state, text[i : i + 1], i)
    assert state == whole


def test_scanner_tracks_what_closes() -> None:
    state = JsonScanner.step(JsonScanner.INITIAL, b'{"a": [1, 22', 0)
    assert JsonScanner.is_open(state, 10) and JsonScanner.is_open(state, 6)
    closed = JsonScanner.step(state, b"]", 12)
    assert not JsonScanner.is_open(closed, 10) and not JsonScanner.is_open(closed, 6)
    assert JsonScanner.is_open(closed, 0)


def test_refuted_prefixes() -> None:
    store = RefutedPrefixes()
    assert store.add(b'["a", "fel')
    assert not store.add(b'["a", "feline')  # already covered by a shorter refuted prefix
    assert store.add(b'["a", "do')
    assert not store.is_refuted(b'["a", "fox')
    assert store.is_refuted(b'["a", "fel"')
    assert not store.is_refuted(b'["b", "fel"')
    assert sorted(store.pending(b'["a", "')) == [b"do", b"fel"]
    assert store.pending(b'["a", "f') == [b"el"]
    assert store.pending(b'["a", "x') == []
    assert store.pending(b"[") == [b'"a", "do', b'"a", "fel'] or sorted(store.pending(b"[")) == [
        b'"a", "do',
        b'"a", "fel',
    ]
    assert store.add(b'["a", "f')  # a shorter one replaces the longer
    assert set(store) == {b'["a", "f', b'["a", "do'} and len(store) == 2
    store.clear()
    assert not len(store)
    with pytest.raises(ValueError):
        store.add(b"")


def test_token_prefix_index_matches_a_scan_of_the_vocabulary() -> None:
    tokens = [b"a", b"ab", b"abc", b"b", b"\xff", b"\xff\xff", b"\xff\x00", b"", b"ac", b"a\xff"]
    index = TokenPrefixIndex(tokens)
    for prefix in [b"a", b"ab", b"b", b"\xff", b"\xff\xff", b"c", b"a\xff", b"abcd"]:
        expected = sorted(i for i, t in enumerate(tokens) if t.startswith(prefix))
        assert sorted(index.starting_with(prefix).tolist()) == expected, prefix
    assert TokenPrefixIndex.for_vocab(VOCAB) is TokenPrefixIndex.for_vocab(VOCAB)
    ids = TokenPrefixIndex.for_vocab(VOCAB).starting_with(b'"a')
    assert set(np.asarray(ids).tolist()) == {TOKEN[b'"a"']}


def test_result_text_is_json() -> None:
    result = _run(duplicating_policy, UNIQUE, max_new_tokens=40)
    assert json.loads(result.text) == result.value


@pytest.mark.parametrize("pure", [False, True], ids=["native-or-default", "pure-python"])
def test_check_refusals_are_told_from_grammar_refusals(pure: bool) -> None:
    """The check-free parser runs on the matcher's own chart (C or Python sets alike)."""
    from contextlib import nullcontext

    from structgen import _accel
    from structgen.decoding.recovery import Recovery

    with _accel.pure_python() if pure else nullcontext():
        compiled = sg.compile(sg.Grammar.from_json_schema(UNIQUE), VOCAB, use_cache=False)
        m = compiled.matcher()
        assert m.consume_bytes(b'["a", "a')
        rec = Recovery(compiled, None, None, [0], [], RecoveryOptions(), 10, None)
        assert rec._check_refused(m, TOKEN[b'"'])  # closing the duplicate: the check refuses
        assert not rec._check_refused(m, TOKEN[b"\x01"])  # the grammar refuses this itself
        assert rec._check_refused(m, TOKEN[b"b"])  # allowed anyway: accepted without checks


def test_a_prefix_with_no_allowed_token_at_all_is_backed_over() -> None:
    """``nul`` under ``enum: [[]]`` (a check on any JSON value): its one completion is refused
    and nothing else is allowed; the loop backs up instead of failing."""
    schema = {"allOf": [{"enum": [[]]}, {"not": {"type": "string"}}]}

    def policy(text: bytes) -> list[bytes]:  # wants null; its second choice is []
        if text.startswith(b"["):
            return [b"]"]
        nxt = b"null"[len(text) : len(text) + 1] if b"null".startswith(text) else b""
        return [nxt, b"["] if nxt else [b"["]

    stuck = _run(policy, schema, max_new_tokens=20, recovery="off")
    assert (stuck.reason, stuck.text, stuck.complete) == ("dead_end", "nul", False)
    with pytest.raises(DeadEnd, match="dead end.*'nul'") as info:
        sg.generate_json(ScriptedLM(policy), _tokenizer(), "x", schema, recovery="off")
    assert info.value.text == "nul"
    result = _run(policy, schema, max_new_tokens=20)
    assert result.complete and result.value == []
    assert result.stats.backtracks >= 1


def test_a_value_that_repeats_itself_is_backed_over() -> None:
    """``7.0000000...``: no refusal at all, the model never tries to close; the repetition is
    the signal (and a number's integer part is what gets refuted)."""
    schema = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}

    def policy(text: bytes) -> list[bytes]:
        if text.endswith(b": "):
            return [b"7", b"1"]
        if text.endswith(b": 1"):
            return [b"}"]
        if text.endswith((b"7", b".", b"0")):
            return [b"." if text.endswith(b"7") else b"0"]
        return [b'"', b"x", b":", b" "]

    off = _run(policy, schema, max_new_tokens=40, recovery="off")
    assert not off.complete
    result = _run(policy, schema, max_new_tokens=40)
    assert result.complete and result.value == {"x": 1}
    assert result.stats.backtracks == 1
    assert result.stats.discarded_tokens <= 14  # caught after ten zeros, not at the budget


def test_long_integers_and_ordinary_values_are_not_runaways() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    digits = b"1400000000000"

    def policy(text: bytes) -> list[bytes]:
        if b": " in text:
            written = text.split(b": ", 1)[1]
            return [digits[len(written) : len(written) + 1] or b"}"]
        return [b'"', b"x", b":", b" "]

    result = _run(policy, schema, max_new_tokens=40)
    assert result.complete and result.value == {"x": 1400000000000}
    assert result.stats.backtracks == 0


NUL_SCHEMA = {"allOf": [{"enum": [[]]}, {"not": {"type": "string"}}]}


def _wants_null(text: bytes) -> list[bytes]:
    nxt = b"null"[len(text) : len(text) + 1] if b"null".startswith(text) else b""
    return [nxt] if nxt else [b"]"]


def test_a_dead_end_is_a_reason_in_the_speculative_loop_too() -> None:
    """``nul`` under ``enum: [[]]``: the speculative loop (no recovery) stops with reason
    ``dead_end`` and the text so far, not ``NoAllowedToken`` about logits."""
    from structgen.speculative.drafters import ForcedDrafter

    result = sg.generate(
        ScriptedLM(_wants_null), _tokenizer(), "x", schema=NUL_SCHEMA, max_new_tokens=20,
        speculative=ForcedDrafter(),
    )  # fmt: skip
    assert (result.reason, result.text, result.complete) == ("dead_end", "nul", False)


@pytest.mark.parametrize("mode", ["mask", "fast"])
def test_the_logits_processor_raises_dead_end_at_the_empty_mask(mode: str) -> None:
    """At ``nul`` nothing is allowed (EOS neither): the processor raises ``DeadEnd`` with the
    text so far at that step, instead of handing the model a row of ``-inf`` to pick from."""
    compiled = sg.compile(sg.Grammar.from_json_schema(NUL_SCHEMA), VOCAB)
    processor = sg.StructgenLogitsProcessor(compiled, mode=mode)  # type: ignore[arg-type]
    prompt = [TOKEN[b"\n"]]
    for n in range(4):
        ids = torch.tensor([prompt + list(b"nul"[:n])])
        scores = torch.zeros((1, VOCAB.vocab_size))
        scores[0, list(b"null")[n]] = 1.0  # the model wants null
        if n < 3:
            out = processor(ids, scores)
            assert torch.isfinite(out[0, ord(b"null"[n : n + 1])])
            continue
        with pytest.raises(DeadEnd, match="row 0: dead end") as info:
            processor(ids, scores)
        assert info.value.text == "nul"
