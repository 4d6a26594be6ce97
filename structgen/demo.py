"""``make demo``: the default model writes a JSON object under a schema; we print it, validated."""

from __future__ import annotations

import json
import logging
import sys

import jsonschema

PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "email": {"type": "string", "maxLength": 60},
        "languages": {
            "type": "array",
            "items": {"type": "string", "maxLength": 20},
            "minItems": 1,
            "maxItems": 4,
        },
        "employed": {"type": "boolean"},
    },
    "required": ["name", "age", "languages", "employed"],
}

PROMPT = (
    "Describe a fictional software engineer as a JSON object with the fields name, age, "
    "email, languages (programming languages) and employed."
)


def main() -> int:
    """Run the demo; returns the process exit status."""
    import structgen as sg
    from structgen.models import load_default_model

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model, tokenizer = load_default_model()
    messages = [{"role": "user", "content": PROMPT}]
    result = sg.generate(model, tokenizer, messages, schema=PERSON_SCHEMA, max_new_tokens=160)
    print("schema:", json.dumps(PERSON_SCHEMA))
    print("prompt:", PROMPT)
    print("output:", result.text)
    if not result.complete:
        print(f"incomplete output ({result.reason})", file=sys.stderr)
        return 1
    jsonschema.validate(result.value, PERSON_SCHEMA)
    print("valid:  yes (checked with jsonschema)")
    print(json.dumps(result.value, indent=2, ensure_ascii=False))
    s = result.stats
    print(
        f"stats:  {s.new_tokens} tokens, {s.ms_per_token:.1f} ms/token "
        f"(model {1000 * s.model_s / max(s.new_tokens, 1):.1f}, constraint "
        f"{1000 * s.constraint_s / max(s.new_tokens, 1):.2f}), "
        f"{s.constraint_checks} constraint checks, compile {1000 * s.compile_s:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
