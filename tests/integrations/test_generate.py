"""The real model (SmolLM2-135M-Instruct) under constraints: generate(), both samplers, the
LogitsProcessor inside model.generate (greedy, sampling, beam search, batches), and the CLI."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch

import structgen as sg
from structgen.integrations.generate import vocabulary_for

pytestmark = pytest.mark.slow

SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer", "minimum": 0},
        },
        "required": ["city", "population"],
    },
    {
        "type": "object",
        "properties": {
            "colors": {
                "type": "array",
                "items": {"enum": ["red", "green", "blue"]},
                "minItems": 1,
                "maxItems": 3,
            }
        },
        "required": ["colors"],
    },
    {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 30},
            "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
            "rating": {"type": "number"},
            "seen": {"type": "boolean"},
        },
        "required": ["title", "year", "seen"],
    },
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 9},
        "minItems": 2,
        "maxItems": 5,
    },
    {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 15}, "extra": {"type": "object"}},
        "required": ["name", "extra"],
    },  # recursive part: any JSON object (CFG engine)
]
PROMPT = "Reply with a JSON value for this request: {}"


def _messages(schema) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT.format(json.dumps(schema))}]


@pytest.mark.parametrize("index", range(len(SCHEMAS)))
@pytest.mark.parametrize("sampler", ["awrs", "masked"])
def test_generate_returns_valid_json(smollm2, index, sampler) -> None:
    model, tokenizer = smollm2
    schema = SCHEMAS[index]
    result = sg.generate(
        model, tokenizer, _messages(schema), schema=schema, sampler=sampler, max_new_tokens=96
    )
    assert result.complete, (result.reason, result.text)
    jsonschema.validate(result.value, schema)
    assert json.loads(result.text) == result.value


def test_greedy_awrs_and_masked_agree_token_for_token(smollm2) -> None:
    model, tokenizer = smollm2
    schema = SCHEMAS[2]
    a = sg.generate(
        model, tokenizer, _messages(schema), schema=schema, sampler="awrs", max_new_tokens=64
    )
    b = sg.generate(
        model, tokenizer, _messages(schema), schema=schema, sampler="masked", max_new_tokens=64
    )
    assert a.tokens == b.tokens
    assert a.stats.constraint_checks < a.stats.new_tokens * 50  # AWRS checks few tokens per step
    sampled = b.stats.new_tokens - b.stats.forced_tokens + (1 if b.reason == "eos" else 0)
    assert b.stats.full_masks == sampled
    assert a.stats.forced_tokens > 0  # '{"title' is forced by the schema


def test_sampling_with_seed_is_reproducible_and_valid(smollm2) -> None:
    model, tokenizer = smollm2
    schema = SCHEMAS[0]
    runs = [
        sg.generate(
            model,
            tokenizer,
            _messages(schema),
            schema=schema,
            temperature=1.0,
            seed=s,
            max_new_tokens=96,
        )
        for s in (1, 1, 2)
    ]
    assert runs[0].tokens == runs[1].tokens
    for r in runs:
        if r.complete:
            jsonschema.validate(r.value, schema)
        else:
            assert r.value is None and r.reason == "max_new_tokens"


def test_budget_exhaustion_is_reported_incomplete(smollm2) -> None:
    model, tokenizer = smollm2
    result = sg.generate(
        model, tokenizer, _messages(SCHEMAS[2]), schema=SCHEMAS[2], max_new_tokens=3
    )
    assert not result.complete and result.value is None and result.reason == "max_new_tokens"
    with pytest.raises(sg.ConstraintViolation, match="max_new_tokens"):
        sg.generate_json(model, tokenizer, _messages(SCHEMAS[2]), SCHEMAS[2], max_new_tokens=3)


def test_regex_constraint(smollm2) -> None:
    model, tokenizer = smollm2
    pattern = r"\d{3}-\d{4}"
    result = sg.generate(
        model,
        tokenizer,
        [{"role": "user", "content": "Give a phone number."}],
        regex=pattern,
        max_new_tokens=20,
    )
    assert result.complete
    import re

    assert re.fullmatch(pattern, result.text)


def _processor_run(model, tokenizer, compiled, **gen_kwargs):
    processor = sg.StructgenLogitsProcessor(compiled, tokenizer=tokenizer)
    prompts = gen_kwargs.pop("prompts")
    texts = [
        tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    out = model.generate(
        **enc, logits_processor=[processor], pad_token_id=tokenizer.eos_token_id, **gen_kwargs
    )
    return out[:, enc["input_ids"].shape[1] :]


@pytest.mark.parametrize(
    "mode",
    [
        dict(do_sample=False),
        dict(do_sample=True, temperature=1.0, top_k=0),
        dict(do_sample=False, num_beams=3),
        dict(do_sample=True, num_return_sequences=2, top_k=0),
    ],
)
def test_processor_inside_model_generate(smollm2, mode) -> None:
    model, tokenizer = smollm2
    vocab = vocabulary_for(tokenizer, model)
    schema = SCHEMAS[0]
    compiled = sg.compile(sg.Grammar.from_json_schema(schema), vocab)
    torch.manual_seed(0)
    rows = _processor_run(
        model, tokenizer, compiled, prompts=[_messages(schema)], max_new_tokens=60, **mode
    )
    for row in rows.tolist():
        m = compiled.matcher()
        body = [t for t in row if t not in vocab.eos_token_ids]
        assert m.consume_tokens(body) == len(body), tokenizer.decode(row)
        if m.is_accepting():  # finished within the budget
            jsonschema.validate(json.loads(vocab.decode(body)), schema)


def test_processor_batch_of_three_schemas(smollm2) -> None:
    model, tokenizer = smollm2
    vocab = vocabulary_for(tokenizer, model)
    compiled = [sg.compile(sg.Grammar.from_json_schema(s), vocab) for s in SCHEMAS[:3]]
    rows = _processor_run(
        model,
        tokenizer,
        compiled,
        prompts=[_messages(s) for s in SCHEMAS[:3]],
        max_new_tokens=80,
        do_sample=False,
    )
    done = 0
    for schema, comp, row in zip(SCHEMAS[:3], compiled, rows.tolist(), strict=True):
        body = [t for t in row if t not in vocab.eos_token_ids]
        m = comp.matcher()
        assert m.consume_tokens(body) == len(body)
        if m.is_accepting():
            jsonschema.validate(json.loads(vocab.decode(body)), schema)
            done += 1
    assert done >= 2


def test_processor_contract(smollm2) -> None:
    model, tokenizer = smollm2
    vocab = vocabulary_for(tokenizer, model)
    compiled = sg.compile(sg.Grammar.from_regex("[0-9]+"), vocab)
    proc = sg.StructgenLogitsProcessor(compiled)
    ids = torch.tensor([[1, 2, 3]])
    scores = torch.randn(1, vocab.vocab_size)
    before = scores.clone()
    out = proc(ids, scores)
    assert torch.equal(scores, before)  # not in place by default
    assert out.shape == scores.shape
    digit = tokenizer.convert_tokens_to_ids("5")
    bad = tokenizer.convert_tokens_to_ids("a")
    assert torch.isfinite(out[0, digit]) and torch.isinf(out[0, bad])
    with pytest.raises(sg.ConstraintViolation, match="rejects"):
        proc(torch.tensor([[1, 2, 3, bad]]), scores)
    proc.reset()
    proc(ids, scores)  # fresh start after reset


def test_cli_generate_and_check(tmp_path, capsys) -> None:
    from structgen.cli import main

    schema_file = tmp_path / "s.json"
    schema_file.write_text(json.dumps(SCHEMAS[0]))
    assert (
        main(
            [
                "generate",
                "--schema",
                str(schema_file),
                "--prompt",
                "A city as JSON.",
                "--max-new-tokens",
                "60",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    jsonschema.validate(json.loads(out), SCHEMAS[0])
    assert main(["check", "--schema", str(schema_file)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"type": "object", "properties": {"x": {"$ref": "https://example.com/x.json"}}})
    )
    assert main(["check", "--schema", str(bad)]) != 0  # a remote $ref, nothing fetched: refused
    assert main(["generate", "--schema", str(tmp_path / "missing.json"), "--prompt", "x"]) == 2
    assert "error:" in capsys.readouterr().err


def test_token_healing_recovers_the_prompt_boundary(smollm2) -> None:
    model, tokenizer = smollm2
    vocab = vocabulary_for(tokenizer, model)
    prompt = 'A JSON object with a name: {"name": "'  # ends mid-structure, on a quote token
    pattern = r'[A-Z][a-z]{1,10}"\}'
    plain = sg.generate(model, tokenizer, prompt, regex=pattern, max_new_tokens=16)
    healed = sg.generate(
        model, tokenizer, prompt, regex=pattern, max_new_tokens=16, token_healing=True
    )
    import re

    for result in (plain, healed):
        assert result.complete and re.fullmatch(pattern, result.text), result.text
    last = tokenizer(prompt)["input_ids"][-1]
    removed = vocab.token_bytes[last]
    assert vocab.decode(healed.tokens).startswith(removed)
    assert healed.stats.prompt_tokens == plain.stats.prompt_tokens - 1


def test_schema_options_registry_reaches_the_final_validation(smollm2, monkeypatch) -> None:
    """A ``$ref`` into ``schema_options["registry"]``: the output is validated against the same
    documents (nothing fetched), not reported as an internal error or crashing."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    model, tokenizer = smollm2
    uri = "https://example.com/city.json"
    registry = {uri: SCHEMAS[0]}
    schema = {"type": "object", "properties": {"city": {"$ref": uri}}, "required": ["city"]}
    result = sg.generate(
        model,
        tokenizer,
        _messages(schema),
        schema=schema,
        schema_options={"registry": registry},
        max_new_tokens=80,
    )
    assert result.complete, (result.reason, result.text)
    jsonschema.validate(result.value["city"], SCHEMAS[0])
