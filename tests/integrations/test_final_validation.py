"""The final validation of ``generate`` (``_jsonschema_problem``), without the model: it resolves
``$ref``s through ``schema_options["registry"]``, never fetches, and asserts every format."""

from __future__ import annotations

import urllib.request

import pytest

from structgen.integrations.generate import _jsonschema_problem

CITY_URI = "https://example.com/city.json"
REGISTRY = {
    CITY_URI: {
        "type": "object",
        "properties": {"name": {"$ref": "#/$defs/name"}},
        "required": ["name"],
        "$defs": {"name": {"type": "string", "maxLength": 10}},
    }
}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_refs_resolve_through_the_registry() -> None:
    schema = {"type": "object", "properties": {"city": {"$ref": CITY_URI}}}
    assert _jsonschema_problem(schema, {"city": {"name": "Oslo"}}, registry=REGISTRY) is None
    problem = _jsonschema_problem(schema, {"city": {"name": "x" * 11}}, registry=REGISTRY)
    assert problem is not None and "too long" in problem
    assert _jsonschema_problem(schema, {"city": {}}, registry=REGISTRY) is not None


def test_registry_documents_take_the_roots_draft_and_may_be_booleans() -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "$ref": "urn:no"}
    assert _jsonschema_problem(schema, 1, registry={"urn:no": False}) is not None
    assert _jsonschema_problem({"$ref": "urn:yes"}, 1, registry={"urn:yes": True}) is None


def test_an_unknown_reference_is_a_problem_not_a_fetch() -> None:
    problem = _jsonschema_problem({"$ref": "https://example.com/missing.json"}, 1)
    assert problem is not None and "missing.json" in problem
    problem = _jsonschema_problem({"$ref": "https://example.com/missing.json"}, 1, registry={})
    assert problem is not None


@pytest.mark.parametrize(
    ("schema", "bad", "good"),
    [
        ({"format": "email"}, "nobody", "a@example.com"),
        ({"format": "date"}, "2024-13-45", "2024-02-29"),
        # "duration" is defined from 2019-09 on; the grammar asserts it under any draft
        (
            {"$schema": "http://json-schema.org/draft-07/schema#", "format": "duration"},
            "soon",
            "P3D",
        ),
        (
            {"$schema": "http://json-schema.org/draft-04/schema#", "format": "uuid"},
            "x",
            "0" * 8 + "-0000-4000-8000-" + "0" * 12,
        ),
    ],
)
def test_every_known_format_is_asserted(schema, bad, good) -> None:
    assert _jsonschema_problem(schema, bad) is not None
    assert _jsonschema_problem(schema, good) is None
