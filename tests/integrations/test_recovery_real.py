"""The dead ends of issue 11 on the real model: SmolLM2-135M-Instruct, greedy, a 60-token budget.
Each case used to run to the budget (``8.5000...``, a date that never closes, a duplicate tag
repeated); it must now complete, valid, within the budget."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

import structgen as sg

pytestmark = pytest.mark.slow

CASES = [
    (
        {
            "type": "object",
            "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}},
            "required": ["score"],
        },
        "rate from 0 to 10",
    ),
    (
        {
            "type": "object",
            "properties": {"day": {"type": "string", "format": "date"}},
            "required": ["day"],
        },
        "When did World War II end? Answer in JSON.",
    ),
    (
        {
            "type": "object",
            "properties": {
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "uniqueItems": True,
                    "minItems": 3,
                }
            },
            "required": ["tags"],
        },
        "Give tags for a cat picture as JSON.",
    ),
]


@pytest.mark.parametrize("schema, prompt", CASES, ids=["bounded-number", "date", "unique-tags"])
def test_issue_cases_complete_valid_within_60_tokens(
    smollm2: Any, schema: Any, prompt: str
) -> None:
    model, tokenizer = smollm2
    messages = [{"role": "user", "content": prompt}]
    result = sg.generate(model, tokenizer, messages, schema=schema, max_new_tokens=60)
    assert result.complete, (result.reason, result.text)
    assert len(result.tokens) <= 60
    jsonschema.validate(result.value, schema, format_checker=jsonschema.FormatChecker())
    assert result.stats.backtracks <= 8
