"""The real model on 20 JSONSchemaBench schemas (Glaiveai2K function-calling split, the first
20 that the grammar enforces without semantic checks) with both samplers: every completed output
validates with jsonschema, greedy AWRS and Masked agree token for token, and nearly all finish
within the budget (measured 19/20 at 160 tokens)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import structgen as sg
from structgen.integrations.generate import vocabulary_for

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "jsonschemabench" / "maskbench"


def _schemas(vocab: sg.Vocabulary, count: int = 20) -> list[tuple[str, dict]]:
    if not DATA.is_dir():
        pytest.skip(f"JSONSchemaBench data not found at {DATA}")
    picked = []
    for path in sorted(DATA.glob("Glaiveai2K---*.json")):
        schema = json.loads(path.read_text())["schema"]
        try:
            grammar = sg.Grammar.from_json_schema(schema)
            sg.compile(grammar, vocab)
        except sg.StructgenError:
            continue  # refused honestly; counted by the benchmark runners, not here
        if any(k.status == "check" for k in grammar.report):
            # Full masks under semantic checks take the exact per-node path (10 ms to 0.5 s each
            # on this vocabulary), too slow for the Masked sampler at every token in CI; checks
            # are covered by tests/runtime/test_json_checks.py.
            continue
        picked.append((path.name, schema))
        if len(picked) == count:
            break
    return picked


def test_twenty_data_schemas_both_samplers(smollm2) -> None:
    model, tokenizer = smollm2
    vocab = vocabulary_for(tokenizer, model)
    schemas = _schemas(vocab)
    assert len(schemas) == 20
    complete = 0
    for name, schema in schemas:
        messages = [
            {
                "role": "user",
                "content": "Reply with a JSON object for this JSON schema:\n" + json.dumps(schema),
            }
        ]
        results = [
            sg.generate(model, tokenizer, messages, schema=schema, sampler=s, max_new_tokens=160)
            for s in ("awrs", "masked")
        ]
        assert results[0].tokens == results[1].tokens, name
        for r in results:
            if r.complete:
                jsonschema.validate(r.value, schema)
            else:
                assert r.value is None and r.reason == "max_new_tokens", (name, r.reason)
        complete += results[0].complete
    assert complete >= 18, complete
