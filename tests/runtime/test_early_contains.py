"""Early ``contains`` counts (``json_early_arrays``): an item that makes one match too many, ``]``
with too few matches and an item that leaves too few slots for the matches still needed are
refused as soon as a prefix decides them, so no prefix the engine accepts is a dead end.

Oracle: ``jsonschema`` on brute-force finite languages (``prefix_oracle``): arrays of up to four
short strings, compact layout. The engine's language must equal the valid arrays of that domain;
every prefix it accepts must extend to one of them (where the item is a finite set of values or
``contains`` is: the item is decided at its first byte that differs), or every prefix at an item
boundary must (elsewhere: the item's check fires as it completes)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefix_oracle import (
    VOCAB,
    arrays,
    assert_prefix_exact,
    assert_rejections_sound,
    assert_unsatisfiable,
    compact,
    explore,
)

import structgen as sg
from structgen.grammar import json_early_arrays
from structgen.integrations.generate import resolve_constraint

ABC = ["a", "b", "c"]
E = {"enum": ABC}
P = {"type": "string", "pattern": "^[abc]$"}  # not split by value: by its three texts
DRAFT7 = "http://json-schema.org/draft-07/schema#"


def _array(items: Any, contains: Any, **more: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, "contains": contains, **more}


# decided at the item's first byte: the item or contains is a finite set of values
EXACT: list[dict[str, Any]] = [
    _array(E, {"const": "b"}, maxItems=3),
    _array(E, {"const": "b"}, maxContains=1, maxItems=3),
    _array(E, {"const": "b"}, minContains=2, maxItems=3),
    _array(E, {"enum": ["a", "b"]}, minContains=2, maxContains=2, maxItems=4),
    _array(E, {"const": "b"}, minContains=0, maxContains=1, maxItems=3),
    _array(E, {"const": "b"}, minContains=2, minItems=3, maxItems=4),
    _array(E, {"not": {"const": "a"}}, minContains=3, maxItems=3),
    _array(P, {"const": "b"}, minContains=2, maxItems=3),
    _array(P, {"enum": ["a", "c"]}, minItems=2, maxItems=3),
    {
        "type": "array",
        "prefixItems": [{"const": "a"}, E],
        "items": E,
        "contains": {"const": "a"},
        "maxContains": 1,
        "maxItems": 3,
    },  # fmt: skip
    {
        "type": "array",
        "prefixItems": [E, E],
        "items": False,
        "contains": {"const": "c"},
        "minContains": 2,
    },  # fmt: skip
]


@pytest.mark.parametrize("schema", EXACT, ids=lambda s: json.dumps(s)[30:110])
def test_every_accepted_prefix_completes_to_a_valid_array(schema: dict[str, Any]) -> None:
    assert_prefix_exact(schema, arrays(ABC, 4))


# a check per item: the item is decided as it completes
AT_COMPLETION: list[dict[str, Any]] = [
    _array(P, {"const": "b"}, maxContains=1, maxItems=3),
    _array(P, {"pattern": "[ab]"}, minContains=2, maxContains=2, maxItems=3),
    _array(
        {"type": "string", "pattern": "^[abc]{1,2}$"}, {"maxLength": 1}, minContains=2, maxItems=3
    ),  # fmt: skip
    _array(E, {"const": "b"}, maxContains=1, maxItems=3, uniqueItems=True),  # duplicates
]


@pytest.mark.parametrize("schema", AT_COMPLETION, ids=lambda s: json.dumps(s)[30:110])
def test_every_accepted_prefix_at_an_item_boundary_completes(
    schema: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_early_arrays, "MAX_FINITE_VALUES", 1)  # items not split by text
    grammar = sg.Grammar.from_json_schema(schema, whitespace="compact")
    compiled = sg.compile(grammar, VOCAB)
    validator = jsonschema.Draft202012Validator(schema)
    prefixes, complete = explore(compiled)
    for text in complete:
        assert validator.is_valid(json.loads(text)), text
    domain = arrays(ABC, 3) + arrays(["ab", "c"], 3)
    missing = {compact(v) for v in domain if validator.is_valid(v)} - complete
    assert not missing, sorted(missing)[:5]
    for prefix in prefixes:
        if prefix.endswith((b"[", b",")) or prefix in complete:
            assert any(t.startswith(prefix) for t in complete), f"dead end after {prefix!r}"


UNBOUNDED: list[dict[str, Any]] = [
    _array({"type": "integer"}, {"minimum": 5}, minContains=2, maxContains=3),
    _array({"type": "integer"}, {"minimum": 5}),
    _array({}, {"type": "string"}, maxContains=1, minItems=2),
    _array({"enum": [1, 7, "x"]}, {"const": 7}, minContains=2),
    {
        "type": "array",
        "prefixItems": [{"type": "integer"}],
        "contains": {"const": 1},
        "maxContains": 1,
    },  # fmt: skip
]


@pytest.mark.parametrize("schema", UNBOUNDED, ids=lambda s: json.dumps(s)[30:110])
def test_unbounded_arrays_keep_their_language_and_refuse_only_dead_prefixes(
    schema: dict[str, Any],
) -> None:
    compiled = sg.compile(sg.Grammar.from_json_schema(schema), VOCAB)
    validator = jsonschema.Draft202012Validator(schema)
    corpus = [list(t) for n in range(7) for t in itertools.product([1, 7, "x"], repeat=n)]
    texts = {json.dumps(v).encode(): validator.is_valid(v) for v in corpus}
    rejected = assert_rejections_sound(compiled, texts)
    if "maxContains" in schema:
        early = sum(cut < len(data) - 1 for data, cut in rejected)
        assert early, "nothing was refused before the closing bracket"


def test_a_match_too_many_is_refused_at_its_first_byte_and_too_few_at_the_bracket() -> None:
    schema = _array(E, {"const": "b"}, minContains=2, maxContains=2)
    compiled = sg.compile(sg.Grammar.from_json_schema(schema, whitespace="compact"), VOCAB)
    m = compiled.matcher()
    assert m.consume_bytes(b'["b","a","b"')
    assert not m.copy().consume_bytes(b',"b')  # a third match
    assert m.copy().consume_bytes(b',"c"]')
    m2 = compiled.matcher()
    assert m2.consume_bytes(b'["b","a"')
    assert not m2.copy().consume_bytes(b"]")  # one match of two
    assert m2.consume_bytes(b',"b"]') and m2.is_accepting()


def test_the_last_slot_must_match() -> None:
    schema = _array(E, {"const": "b"}, minContains=1, maxItems=2)
    compiled = sg.compile(sg.Grammar.from_json_schema(schema, whitespace="compact"), VOCAB)
    m = compiled.matcher()
    assert m.consume_bytes(b'["a",')
    assert not m.copy().consume_bytes(b'"a')
    assert not m.copy().consume_bytes(b'"c')
    assert m.consume_bytes(b'"b"]') and m.is_accepting()


def test_a_mismatching_item_is_refused_as_it_completes_where_it_is_checked() -> None:
    schema = _array({"type": "string"}, {"maxLength": 1}, maxContains=1)
    compiled = sg.compile(sg.Grammar.from_json_schema(schema, whitespace="compact"), VOCAB)
    m = compiled.matcher()
    assert m.consume_bytes(b'["a","b')
    assert not m.copy().consume_bytes(b'"')  # the second one-letter string
    assert m.consume_bytes(b'c","d"]') is False  # "bc" passes, "d" is refused as it completes
    m2 = compiled.matcher()
    assert m2.consume_bytes(b'["a","bc","de"]') and m2.is_accepting()


def test_impossible_counts_are_found_at_compile_time() -> None:
    domain = arrays(ABC, 3)
    for schema in [
        _array({"enum": ["a", "c"]}, {"const": "b"}),
        _array(E, {"const": "b"}, minContains=3, maxItems=2),
        _array(E, {"const": "b"}, minContains=2, maxContains=1),
        _array({"const": "b"}, {"const": "b"}, maxContains=1, minItems=2),
    ]:
        assert_unsatisfiable(schema, "#/contains", domain)


def test_draft_7_reads_contains_alone() -> None:
    schema = {"$schema": DRAFT7, **_array(E, {"const": "b"}, maxItems=3), "maxContains": 1}
    assert_prefix_exact(schema, arrays(ABC, 3), draft=jsonschema.Draft7Validator)


def test_an_optional_impossible_array_is_left_out() -> None:
    schema = {"type": "object", "properties": {"t": _array({"enum": ["a"]}, {"const": "b"})},
              "additionalProperties": False}  # fmt: skip
    grammar = sg.Grammar.from_json_schema(schema, whitespace="compact")
    m = sg.compile(grammar, VOCAB).matcher()
    assert not m.copy().consume_bytes(b'{"t"')
    assert m.consume_bytes(b"{}") and m.is_accepting()


ITEM_SCHEMAS = [E, {"enum": ["a", "b"]}, {"const": "b"}, P, {"type": "string", "pattern": "^[ab]$"}]
CONTAINS = [{"const": "b"}, {"enum": ["a", "b"]}, {"not": {"const": "a"}}, {"pattern": "c"},
            {"type": "string"}, {"maxLength": 0}, {"type": "boolean"}]  # fmt: skip
COUNT = st.one_of(st.none(), st.integers(0, 3))


@st.composite
def _contains_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = _array(
        draw(st.sampled_from(ITEM_SCHEMAS)),
        draw(st.sampled_from(CONTAINS)),
        maxItems=draw(st.integers(0, 4)),
    )
    if draw(st.booleans()):
        schema["prefixItems"] = draw(
            st.lists(st.sampled_from(ITEM_SCHEMAS), min_size=1, max_size=2)
        )
    for key in ("minContains", "maxContains", "minItems"):
        if (value := draw(COUNT)) is not None:
            schema[key] = value
    return schema


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_contains_schemas())
def test_random_count_schemas_are_prefix_exact(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    domain = arrays(ABC, schema["maxItems"])
    if not any(validator.is_valid(v) for v in domain):  # unsatisfiable: refused up front
        with pytest.raises(sg.InvalidSchema):
            resolve_constraint(VOCAB, schema=schema)
        return
    assert_prefix_exact(schema, domain)
