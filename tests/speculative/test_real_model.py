"""Speculative decoding on the real model (SmolLM2-135M-Instruct): greedy output equals
non-speculative ``generate`` token for token with every drafter, sampled output conforms, and
the LogitsProcessor inside transformers' assisted generation (assistant model, prompt look-up)
gives greedy search's tokens."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import torch

import structgen as sg
from structgen.integrations.generate import vocabulary_for
from structgen.integrations.lm import CausalLM
from structgen.speculative import LayerSkipDrafter, ModelDrafter

pytestmark = pytest.mark.slow

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
    },
    "required": ["name", "age", "city"],
}
ITEMS = {
    "type": "object",
    "properties": {"tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
    "required": ["tags"],
}
ENUM = {
    "type": "object",
    "properties": {"status": {"enum": ["open", "closed"]}, "id": {"type": "integer"}},
    "required": ["status", "id"],
}
SOURCES = {
    "person": (PERSON, "Maria Gonzalez is a 34 year old architect who lives in Barcelona."),
    "items": (ITEMS, 'Tags on the post: "travel", "food" and "spain".'),
    "enum": (ENUM, "Ticket 4521 was closed yesterday."),
}


def _prompt(key: str) -> list[dict[str, str]]:
    schema, text = SOURCES[key]
    return [
        {
            "role": "user",
            "content": f"Extract as JSON matching {json.dumps(schema)}.\nText: {text}",
        }
    ]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One intra-op thread: on a shared 2-core machine two threads per forward pass contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lm(smollm2: tuple[Any, Any]) -> CausalLM:
    return CausalLM(smollm2[0])


@pytest.mark.parametrize("key", sorted(SOURCES))
def test_greedy_auto_equals_plain(smollm2: tuple[Any, Any], lm: CausalLM, key: str) -> None:
    _, tok = smollm2
    schema = SOURCES[key][0]
    plain = sg.generate(lm, tok, _prompt(key), schema=schema, max_new_tokens=32)
    spec = sg.generate(lm, tok, _prompt(key), schema=schema, max_new_tokens=32, speculative="auto")
    assert spec.tokens == plain.tokens
    assert (spec.reason, spec.complete, spec.value) == (plain.reason, plain.complete, plain.value)
    assert spec.stats.forward_passes <= plain.stats.forward_passes
    assert spec.stats.accepted_tokens <= spec.stats.proposed_tokens


def test_greedy_with_model_drafters_equals_plain(smollm2: tuple[Any, Any], lm: CausalLM) -> None:
    model, tok = smollm2
    plain = sg.generate(lm, tok, _prompt("enum"), schema=ENUM, max_new_tokens=16)
    # the target as its own draft model: every draft stands (up to float near ties)
    same = ModelDrafter(model, tokenizer=tok)
    spec = sg.generate(lm, tok, _prompt("enum"), schema=ENUM, max_new_tokens=16, speculative=same)
    assert spec.tokens == plain.tokens
    stats = spec.stats.speculative
    assert stats.proposed > 0 and stats.accepted >= stats.proposed - 1 - stats.near_ties
    early = LayerSkipDrafter(lm, num_layers=10)
    spec = sg.generate(lm, tok, _prompt("enum"), schema=ENUM, max_new_tokens=16, speculative=early)
    assert spec.tokens == plain.tokens


def test_draft_model_with_another_tokenizer_is_refused(smollm2: tuple[Any, Any]) -> None:
    model, tok = smollm2
    other = sg.Vocabulary.byte_level()

    class Tok:  # a tokenizer whose vocabulary differs
        pass

    drafter = ModelDrafter(model, tokenizer=tok)
    drafter.reset([1], vocabulary_for(tok, model))  # the right one passes
    with pytest.raises(sg.ConfigurationError, match="tokenizer"):
        drafter.reset([1], other)


def test_sampling_output_conforms(smollm2: tuple[Any, Any], lm: CausalLM) -> None:
    _, tok = smollm2
    for sampler in ("awrs", "masked"):
        out = sg.generate(
            lm,
            tok,
            _prompt("person"),
            schema=PERSON,
            max_new_tokens=20,
            temperature=1.0,
            seed=3,
            sampler=sampler,
            speculative="auto",
        )
        if out.complete:
            jsonschema.validate(out.value, PERSON)
        compiled = sg.compile(sg.Grammar.from_json_schema(PERSON), vocabulary_for(tok, lm))
        assert compiled.matcher().consume_tokens(out.tokens) == len(out.tokens)
        assert out.stats.proposed_tokens > 0


def _hf_generate(model: Any, tok: Any, compiled: sg.CompiledGrammar, **kwargs: Any) -> list[int]:
    enc = tok.apply_chat_template(
        _prompt("person"), add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    processor = sg.StructgenLogitsProcessor(compiled)
    out = model.generate(
        **enc,
        logits_processor=[processor],
        max_new_tokens=20,
        pad_token_id=tok.eos_token_id,
        **kwargs,
    )
    return list(out[0, enc["input_ids"].shape[1] :].tolist())


def test_processor_in_assisted_generation(smollm2: tuple[Any, Any]) -> None:
    model, tok = smollm2
    compiled = sg.compile(sg.Grammar.from_json_schema(PERSON), vocabulary_for(tok, model))
    greedy = _hf_generate(model, tok, compiled, do_sample=False)
    assert _hf_generate(model, tok, compiled, do_sample=False, prompt_lookup_num_tokens=8) == greedy
    assert _hf_generate(model, tok, compiled, do_sample=False, assistant_model=model) == greedy
    torch.manual_seed(0)
    sampled = _hf_generate(model, tok, compiled, do_sample=True, assistant_model=model, top_k=0)
    body = [t for t in sampled if t not in compiled.vocab.eos_token_ids]
    assert compiled.matcher().consume_tokens(body) == len(body)
