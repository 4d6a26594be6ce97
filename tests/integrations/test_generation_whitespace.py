"""``generate`` asks for ``GENERATION_WHITESPACE`` unless the caller names a layout, and the
caller's layout wins; ``Grammar.from_json_schema`` itself defaults to flexible."""

from __future__ import annotations

import json

import structgen as sg
from structgen.grammar.json_layout import GENERATION_WHITESPACE
from structgen.integrations.generate import resolve_constraint

VOCAB = sg.Vocabulary.byte_level([])
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
VALUE = {"a": 1}


def _accepts(compiled: sg.CompiledGrammar, text: str) -> bool:
    m = compiled.matcher()
    for b in text.encode():
        if not m.consume_token(b):
            return False
    return m.is_accepting()


def test_generate_uses_the_generation_layout_unless_told() -> None:
    assert GENERATION_WHITESPACE == "flexible"
    compiled = resolve_constraint(VOCAB, schema=SCHEMA)
    assert _accepts(compiled, json.dumps(VALUE))
    assert _accepts(compiled, json.dumps(VALUE, indent=2))
    compact = resolve_constraint(VOCAB, schema=SCHEMA, schema_options={"whitespace": "compact"})
    assert _accepts(compact, json.dumps(VALUE, separators=(",", ":")))
    assert not _accepts(compact, json.dumps(VALUE))  # '{"a": 1}' has a space after ':'


def test_caller_layout_wins_and_lowering_default_stays_flexible() -> None:
    for options in ({"whitespace": "flexible"}, {"whitespace_pattern": "[ ]?"}):
        compiled = resolve_constraint(VOCAB, schema=SCHEMA, schema_options=options)
        assert _accepts(compiled, json.dumps(VALUE))
    plain = sg.compile(sg.Grammar.from_json_schema(SCHEMA), VOCAB)
    assert _accepts(plain, json.dumps(VALUE, indent=2))
