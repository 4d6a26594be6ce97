"""Tests of the JSON Schema front end, with jsonschema (Draft 2020-12) as the oracle.

Each schema is lowered, and the grammar's acceptance of an instance's JSON text (decided by the
IR oracles in ``ir_oracle``) must equal ``jsonschema``'s verdict, for ``json.dumps`` output with
default separators, ``indent=2`` and compact separators. The documented spelling restrictions are
handled explicitly: instances are first put in canonical form (object keys in declared order,
enum/const values replaced by the schema's own spelling, integral floats written as integers),
and in ``"declared"`` mode the oracle schema gets ``additionalProperties: false`` wherever the
lowering assumes it. ``pattern`` follows ECMA-262 (ASCII ``\\d``, ``$`` only at the very end) and
``format: uuid`` is asserted, so the oracle validator is extended accordingly.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import interegular
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from structgen.errors import ConfigurationError, InvalidSchema, UnsupportedFeature
from structgen.grammar.ir import Alt, Grammar, KeyExclusion, Regex, Repeat, Seq
from structgen.grammar.json_format_patterns import CHECKER_FUNCTIONS
from structgen.grammar.json_numbers import integer_bounds, integer_range_pattern
from structgen.grammar.json_schema import json_schema_grammar as _lower
from structgen.grammar.json_strings import not_key_ir
from structgen.grammar.json_types import json_equal

# These tests pin the grammar-only lowering (semantic_checks=False): the IR oracle here has no
# notion of checks. Check mode is tested on the real engine in tests/runtime/test_json_checks.py.
json_schema_grammar = functools.partial(_lower, semantic_checks=False)

try:
    from .ir_oracle import Recognizer, RecursiveGrammar, RegexOracle
except ImportError:  # rootdir-style import: tests/grammar is on sys.path
    from ir_oracle import Recognizer, RecursiveGrammar, RegexOracle  # type: ignore[no-redef]

# -- the oracle validator ----------------------------------------------------------------------

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string"):
        if pattern.endswith("$") and not pattern.endswith("\\$"):
            pattern = pattern[:-1] + r"\Z"  # ECMA '$' does not match before a final newline
        if not re.search(pattern, instance, re.ASCII):
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_GRAMMAR_FORMATS = frozenset(CHECKER_FUNCTIONS) - {"uuid"}
"""Formats the grammar enforces (``json_format_patterns``), checked here as jsonschema does."""


def _format(validator: Any, fmt: str, instance: Any, schema: Any) -> Any:
    if fmt == "uuid" and isinstance(instance, str) and not _UUID.fullmatch(instance):
        yield jsonschema.ValidationError(f"{instance!r} is not a uuid")
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    if fmt in _GRAMMAR_FORMATS and not checker.conforms(instance, fmt):
        yield jsonschema.ValidationError(f"{instance!r} is not a {fmt}")


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern, "format": _format}
)

_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SCHEMA_LISTS = ("prefixItems", "anyOf")
_SCHEMA_ONE = ("additionalProperties", "items")


def _map_subschemas(schema: Any, fn: Any) -> Any:
    """``schema`` with ``fn`` applied to every (sub)schema object, bottom-up."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            out[key] = {k: _map_subschemas(v, fn) for k, v in schema[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            out[key] = [_map_subschemas(v, fn) for v in schema[key]]
    for key in _SCHEMA_ONE:
        if key in schema:
            out[key] = _map_subschemas(schema[key], fn)
    return fn(out)


def _declared(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        schema["properties"] = {
            **schema["properties"],
            **{k: True for k in schema.get("required", []) if k not in schema["properties"]},
        }
        schema["additionalProperties"] = False
    return schema


def oracle_schema(schema: Any, mode: str) -> Any:
    """The schema jsonschema checks against: ``$schema`` dropped from subschemas (jsonschema would
    switch dialect there; the lowering reads everything as 2020-12); in ``"declared"`` mode,
    ``additionalProperties: false`` wherever the lowering assumes it."""

    def fix(sub: dict[str, Any]) -> dict[str, Any]:
        sub.pop("$schema", None)
        return _declared(sub) if mode == "declared" else sub

    return _map_subschemas(schema, fix)


def _resolve(schema: Any, root: Any) -> Any:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 50:
        target = root
        for token in schema["$ref"][1:].split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            target = target[int(token)] if isinstance(target, list) else target[token]
        schema, seen = target, seen + 1
    return schema


def canonical(value: Any, schema: Any, validator: Any) -> Any:
    """``value`` in the spelling the grammar accepts, where one exists (see module docstring)."""
    integral = isinstance(value, float) and value.is_integer()
    if integral and ("e" in repr(value) or abs(value) > 2**53):
        value = int(value)  # past 2**53 integral floats are spelled as integers (json_numbers)
    schema = _resolve(schema, validator.schema)
    if not isinstance(schema, dict):
        return value
    for option in schema.get("enum", []) + ([schema["const"]] if "const" in schema else []):
        if json_equal(option, value):
            return option
    for branch in schema.get("anyOf", []):
        if validator.evolve(schema=branch).is_valid(value):
            return canonical(value, branch, validator)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        order = [*props, *(k for k in schema.get("required", []) if k not in props)]
        keys = [k for k in order if k in value] + [k for k in value if k not in order]
        extra = schema.get("additionalProperties", True)
        return {k: canonical(value[k], props.get(k, extra), validator) for k in keys}
    if isinstance(value, list):
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", True)
        return [canonical(v, prefix[i] if i < len(prefix) else items, validator) for i, v in
                enumerate(value)]  # fmt: skip
    return value


def spellings(value: Any) -> list[str]:
    """``json.dumps`` output: default separators, compact, and ``indent=2`` where the default
    whitespace bound allows it (a line break plus at most 20 spaces: 10 levels)."""
    texts = [json.dumps(value), json.dumps(value, separators=(",", ":"))]
    pretty = json.dumps(value, indent=2)
    if max(len(line) - len(line.lstrip(" ")) for line in pretty.splitlines()) <= 20:
        texts.append(pretty)
    return texts


_RECOGNIZERS: dict[int, tuple[Grammar, Recognizer]] = {}


def accepts(grammar: Grammar, text: str) -> bool:
    if id(grammar) not in _RECOGNIZERS:
        _RECOGNIZERS[id(grammar)] = (grammar, Recognizer(grammar))
    return _RECOGNIZERS[id(grammar)][1].accepts(text)


class Checker:
    """The grammars of one schema in both readings, and the matching oracle validators."""

    def __init__(self, schema: Any) -> None:
        self.modes = []
        for mode in ("declared", "spec"):
            grammar = json_schema_grammar(schema, additional_properties=mode)
            self.modes.append((mode, grammar, Validator(oracle_schema(schema, mode))))

    def check(self, value: Any) -> None:
        """Assert the grammar and jsonschema agree on ``value`` in every spelling."""
        for mode, grammar, validator in self.modes:
            expected = validator.is_valid(value)
            fixed = canonical(value, validator.schema, validator)
            assert validator.is_valid(fixed) == expected
            for text in spellings(fixed):
                assert accepts(grammar, text) == expected, (mode, text, expected)


# -- value strategies --------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


def values_for(schema: Any, root: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Mostly-valid, boundary-probing values shaped like ``schema`` (plus arbitrary JSON)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > 3:
        return json_values
    options = [json_values]
    if "anyOf" in schema:
        options += [values_for(b, root, depth + 1) for b in schema["anyOf"]]
    if "enum" in schema or "const" in schema:
        options.append(st.sampled_from(schema.get("enum", []) + [schema.get("const")]))
    types = schema.get("type", ["object", "array", "string", "integer", "number", "boolean"])
    types = [types] if isinstance(types, str) else types
    if "string" in types:
        low, high = schema.get("minLength", 0), schema.get("maxLength", 6)
        options.append(st.text(min_size=max(low - 1, 0), max_size=high + 1))
        if "pattern" in schema:
            core = schema["pattern"].lstrip("^").rstrip("$")
            options.append(st.from_regex(re.compile(core, re.ASCII), fullmatch=True))
        if schema.get("format") == "uuid":
            options.append(st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()))
    if "integer" in types or "number" in types:
        low = schema.get("minimum", schema.get("exclusiveMinimum", -50))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 50))
        options.append(st.integers(math.floor(low) - 3, math.ceil(high) + 3))
        options.append(st.integers(math.floor(low) - 3, math.ceil(high) + 3).map(float))
    if "object" in types:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        members = [
            st.tuples(
                st.just(k), st.sampled_from([True, k in required]), values_for(v, root, depth + 1)
            )
            for k, v in [*props.items(), *((k, True) for k in required if k not in props)]
        ]
        extras = st.dictionaries(st.sampled_from(["zz", "a", "é"]), json_scalars, max_size=1)
        options.append(
            st.tuples(st.tuples(*members), extras).map(
                lambda t: {**{k: v for k, keep, v in t[0] if keep}, **t[1]}
            )
        )
    if "array" in types:
        prefix = [values_for(s, root, depth + 1) for s in schema.get("prefixItems", [])]
        item = values_for(schema.get("items", True), root, depth + 1)
        high = schema.get("maxItems", 3) + 1
        options.append(
            st.tuples(st.tuples(*prefix), st.lists(item, max_size=high)).map(
                lambda t: list(t[0]) + t[1]
            )
        )
    return st.one_of(options)


# -- hand-written schemas ----------------------------------------------------------------------

SCHEMAS: dict[str, Any] = {
    "string": {"type": "string"},
    "string_len": {"type": "string", "minLength": 2, "maxLength": 5},
    "string_min": {"type": "string", "minLength": 3},
    "string_empty": {"type": "string", "maxLength": 0},
    "pattern_anchored": {"type": "string", "pattern": "^[a-z]{2,4}-[0-9]+$"},
    "pattern_search": {"type": "string", "pattern": "ab+c"},
    "pattern_prefix": {"type": "string", "pattern": "^x[0-9]"},
    "pattern_implied_len": {"type": "string", "pattern": "^[A-F]{3}$", "maxLength": 3},
    "uuid": {"type": "string", "format": "uuid"},
    "integer": {"type": "integer"},
    "int_range": {"type": "integer", "minimum": -15, "maximum": 120},
    "int_exclusive": {"type": "integer", "exclusiveMinimum": -3.5, "exclusiveMaximum": 7},
    "int_lower": {"type": "integer", "minimum": 18},
    "int_upper": {"type": "integer", "maximum": -7},
    "number": {"type": "number"},
    "bool_null": {"type": ["boolean", "null"]},
    "multi_type": {"type": ["string", "integer", "null"], "maxLength": 2, "minimum": 0},
    "enum_mixed": {"enum": ["red", 1, 2.5, None, True, [1, "a"], {"k": "v", "n": []}, "é"]},
    "const_object": {"const": {"a": [1, 2], "b": None}},
    "enum_typed": {"type": "string", "enum": ["a", "bb", "ccc", 1], "maxLength": 2},
    "object": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name"],
    },
    "object_optional": {
        "type": "object",
        "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}, "c": {"type": "integer"}},
    },
    "object_extra_schema": {
        "type": "object",
        "properties": {"id": {"type": "integer"}},
        "additionalProperties": {"type": "string"},
    },
    "object_extra_true": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "ab": {"type": "string"}},
        "additionalProperties": True,
        "required": ["ab"],
    },
    "object_required_only": {
        "type": "object", "properties": {"x": {"type": "number"}}, "required": ["y"]
    },
    "object_any": {"type": "object"},
    "object_false_property": {
        "type": "object", "properties": {"a": False, "b": {"type": "integer"}}
    },
    "array": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    "array_tuple": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False,
        "minItems": 1,
    },
    "array_tuple_rest": {
        "type": "array", "prefixItems": [{"type": "boolean"}], "items": {"type": "null"},
        "maxItems": 3,
    },
    "array_any": {"type": "array", "minItems": 2},
    "any_of": {
        "anyOf": [
            {"type": "string", "maxLength": 1},
            {"type": "integer", "minimum": 5},
            {"type": "array", "items": {"$ref": "#/anyOf/0"}},
        ]
    },
    "refs": {
        "$defs": {"pos": {"type": "integer", "minimum": 1}},
        "type": "object",
        "properties": {"p": {"$ref": "#/$defs/pos"}, "q": {"$ref": "#/$defs/pos"}},
    },
    "recursive_tree": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["value"],
            }
        },
        "$ref": "#/$defs/node",
    },
    "recursive_root": {"type": ["object", "null"], "properties": {"next": {"$ref": "#"}}},
    "pointer_escapes": {
        "definitions": {"a/b": {"type": "string"}, "c~d": {"type": "integer"}},
        "type": "array",
        "prefixItems": [{"$ref": "#/definitions/a~1b"}, {"$ref": "#/definitions/c~0d"}],
    },
    "untyped": {
        "properties": {"a": {"type": "integer"}}, "minLength": 2, "items": {"type": "null"}
    },
    "true": True,
    "empty": {},
    "annotations": {"title": "t", "description": "d", "type": "string", "x-vendor": 1},
    "nested": {
        "type": "object",
        "properties": {
            "user": {
                "type": "object",
                "properties": {
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 3},
                             "maxItems": 2},
                    "id": {"type": "integer"},
                },
                "required": ["id"],
            }
        },
    },
}  # fmt: skip

EDGE_VALUES = [
    0, -0.0, 1.0, 7, 1e16, -15, 121, 2.5, "", "ab", "é", "😀", "a\nb", 'q"\\', None, True, False,
    [], {}, [1, 2, 3, 4], {"name": "x"}, {"name": "x", "age": 3, "zz": 1}, {"a": 1}, ["s", 1],
    [True, None, None], {"value": 1, "children": [{"value": 2}]}, {"user": {"id": 1}},
    "12345678-1234-1234-1234-1234567890ab", "ab-12", "xxabbbcyy", "x1", {"y": 1},
    {"ab": "s", "a": 1, "b": 2}, {"ab": "s", "a": "t"}, {"id": 1, "zz": "s"}, {"id": "s"},
]  # fmt: skip


@pytest.fixture(scope="module")
def checkers() -> dict[str, Checker]:
    return {}


def _checker(checkers: dict[str, Checker], name: str) -> Checker:
    if name not in checkers:
        checkers[name] = Checker(SCHEMAS[name])
    return checkers[name]


@pytest.mark.parametrize("name", SCHEMAS)
def test_edge_values_match_jsonschema(name: str, checkers: dict[str, Checker]) -> None:
    checker = _checker(checkers, name)
    for value in EDGE_VALUES:
        checker.check(value)


@pytest.mark.parametrize("name", SCHEMAS)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_generated_values_match_jsonschema(
    name: str, checkers: dict[str, Checker], data: st.DataObject
) -> None:
    checker = _checker(checkers, name)
    schema = SCHEMAS[name]
    checker.check(data.draw(values_for(schema, schema)))


def test_regex_oracle_agrees_with_recognizer() -> None:
    """The two IR oracles (Python ``re`` vs interegular FSMs + memoized parsing) agree."""
    for name, schema in SCHEMAS.items():
        grammar = json_schema_grammar(schema, additional_properties="spec")
        try:
            fast = RegexOracle(grammar)
        except RecursiveGrammar:
            continue
        slow = Recognizer(grammar)
        for value in EDGE_VALUES:
            for text in [*spellings(value), json.dumps(value, ensure_ascii=False)]:
                assert fast.accepts(text) == slow.accepts(text), (name, text)


# -- MaskBench schemas that use only the supported subset ----------------------------------------

_MASKBENCH_DIRS = [
    os.environ.get("STRUCTGEN_MASKBENCH", ""),
    str(Path(__file__).resolve().parents[2] / "shared/jsonschemabench/maskbench"),
    "/work/shared/jsonschemabench/maskbench",
]


def _maskbench_sample(stride: int = 45) -> list[Path]:
    folder = next((Path(d) for d in _MASKBENCH_DIRS if d and Path(d).is_dir()), None)
    if folder is None:
        return []
    sample = []
    for path in sorted(folder.glob("*.json"))[::stride]:
        data = json.loads(path.read_text())
        if not data.get("tests"):
            continue
        try:
            json_schema_grammar(data["schema"])
        except UnsupportedFeature:
            continue
        sample.append(path)
    return sample


MASKBENCH = _maskbench_sample()


@pytest.mark.skipif(not MASKBENCH, reason="the MaskBench corpus is not available")
@pytest.mark.parametrize("path", MASKBENCH, ids=[p.stem for p in MASKBENCH])
def test_maskbench_instances_match_jsonschema(path: Path) -> None:
    data = json.loads(path.read_text())
    checker = Checker(data["schema"])
    for case in data["tests"]:
        if len(json.dumps(case["data"])) <= 2000:
            checker.check(case["data"])


# -- every emitted regex is one interegular can compile, quickly ----------------------------------


def _regexes(grammar: Grammar) -> set[str]:
    found: set[str] = set()
    todo = [expr for _, expr in grammar.rules]
    while todo:
        expr = todo.pop()
        if isinstance(expr, Regex):
            found.add(expr.pattern)
        elif isinstance(expr, KeyExclusion):  # built from the regexes of its reference IR
            todo.append(not_key_ir(expr.keys))
        elif isinstance(expr, (Seq, Alt)):
            todo.extend(expr.items)
        elif isinstance(expr, Repeat):
            todo.append(expr.item)
    return found


def test_every_regex_compiles_with_interegular() -> None:
    patterns: set[str] = set()
    schemas = [*SCHEMAS.values(), *(json.loads(p.read_text())["schema"] for p in MASKBENCH)]
    for schema in schemas:
        for mode in ("declared", "spec"):
            patterns |= _regexes(json_schema_grammar(schema, additional_properties=mode))
    for ws in ({"whitespace": "compact"}, {"whitespace_pattern": "[ ]?"}):
        patterns |= _regexes(json_schema_grammar(SCHEMAS["nested"], **ws))
    for pattern in patterns:  # (compile speed is measured by the benchmarks, not here)
        assert interegular.parse_pattern(pattern).to_fsm().finals, pattern


# -- documented spelling rules --------------------------------------------------------------------


def _accepts(schema: Any, text: str, **options: Any) -> bool:
    return Recognizer(json_schema_grammar(schema, **options)).accepts(text)


def test_string_length_counts_code_points() -> None:
    schema = {"type": "string", "maxLength": 1}
    for text in ['"a"', '"😀"', '"\\ud83d\\ude00"', '"\\u00e9"', '"\\n"', '"\\/"', '""']:
        assert _accepts(schema, text), text
    for text in ['"ab"', '"\\ud83d\\ude00x"', '"\\u00e9\\u00e9"', '"\\ud83d"']:  # lone: refused
        assert not _accepts(schema, text), text


def test_extra_keys_exclude_declared_keys_in_every_spelling() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert _accepts(schema, '{"a": 1, "b": "x"}', additional_properties="spec")
    assert _accepts(schema, '{"\\u0062": "x"}', additional_properties="spec")
    assert not _accepts(schema, '{"\\u0061": "x"}', additional_properties="spec")
    assert not _accepts(schema, '{"a": 1, "a": "x"}', additional_properties="spec")
    # the declared key itself is accepted only as json.dumps (or raw UTF-8) spells it
    assert not _accepts(schema, '{"\\u0061": 1}', additional_properties="spec")
    assert not _accepts(schema, '{"b": "x"}')  # "declared": no extras


def test_declared_order_and_enum_spelling() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    assert _accepts(schema, '{"a": 1, "b": 2}')
    assert not _accepts(schema, '{"b": 2, "a": 1}')  # valid, but not in declared order
    enum = {"enum": [{"a": 1, "b": 2}, 1.0, "é"]}
    assert _accepts(enum, '{"a": 1, "b": 2}') and _accepts(enum, '{\n  "a": 1,\n  "b": 2\n}')
    assert _accepts(enum, '{"b": 2, "a": 1}')  # enum/const objects: members in any order
    assert _accepts(enum, "1.0") and _accepts(enum, "1") and _accepts(enum, "1.000")
    assert _accepts(enum, '"\\u00e9"') and _accepts(enum, '"é"')
    big = {"const": {k: i for i, k in enumerate("abcde")}}  # beyond 4 members: order as written
    assert _accepts(big, json.dumps(big["const"]))
    assert not _accepts(big, json.dumps(dict(reversed(big["const"].items()))))


@pytest.mark.parametrize("value", [0, -0.0, 1, 1.0, -2, -2.0, 2.5, -0.125, 0.1, 1e-7, 1e20, 2**53])
def test_numeric_const_accepts_every_plain_spelling_of_its_value(value: Any) -> None:
    texts = [
        "0",
        "-0",
        "0.0",
        "-0.000",
        "1",
        "1.0",
        "1.00",
        "01",
        "-2",
        "-2.0",
        "2",
        "2.5",
        "2.50",
        "-0.125",
        "-0.1250",
        "0.125",
        "0.1",
        "0.10",
        "0.100000",
        "0.0000001",
        "0.00000010",
        "100000000000000000000",
        "100000000000000000000.0",
        "9007199254740992",
        "9007199254740992.00",
        "9007199254740993",
        "1.",
        ".5",
        "+1",
    ]
    for schema in ({"const": value}, {"enum": ["x", value, None]}):
        validator = jsonschema.Draft202012Validator(schema)
        for text in texts:
            try:
                expected = validator.is_valid(json.loads(text))
            except ValueError:
                expected = False  # not JSON
            assert _accepts(schema, text) == expected, (schema, text)


def test_integer_and_number_spellings() -> None:
    for text in ["0", "-0", "12", "-7", "3.0", "-0.00", "120"]:
        assert _accepts({"type": "integer"}, text), text
    for text in ["01", "1.5", "1e2", "+1", "1.", ".5", "- 1"]:
        assert not _accepts({"type": "integer"}, text), text
    for text in ["0", "-0.5", "1e5", "1E+5", "2.5e-3", "1.0"]:
        assert _accepts({"type": "number"}, text), text
    for text in ["01", "1.", ".5", "1e", "NaN", "Infinity", "0x1"]:
        assert not _accepts({"type": "number"}, text), text


def test_pattern_follows_ecma_262() -> None:
    assert _accepts({"type": "string", "pattern": "^\\d+$"}, '"123"')
    assert not _accepts({"type": "string", "pattern": "^\\d+$"}, '"\\u0661"')  # ASCII \d
    assert not _accepts({"type": "string", "pattern": "^abc$"}, '"abc\\n"')  # '$' is the end
    assert _accepts({"type": "string", "pattern": "b"}, '"\\"ab\\\\"')  # a search


# -- whitespace -----------------------------------------------------------------------------------


def _nest(depth: int) -> Any:
    """A value whose deepest line, pretty-printed, is indented by ``depth`` levels."""
    value: Any = [1, "x"]
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value, None]
    return value


def test_bounded_whitespace() -> None:
    ok = Recognizer(json_schema_grammar({})).accepts
    assert ok(json.dumps(_nest(10), indent=2)) and ok(json.dumps(_nest(5), indent=4))
    assert ok(json.dumps(_nest(5), indent="\t")) and ok(
        json.dumps(_nest(5), indent=4).replace("\n", "\r\n")
    )
    assert not ok(json.dumps(_nest(11), indent=2))  # 22 spaces after a line break
    assert not ok(json.dumps(_nest(6), indent="\t"))  # 6 tabs
    assert ok("[1, 2]") and not ok("[1,  2]") and not ok("[1,\n \t2]")
    assert not ok("[1,\n\n2]") and not ok(" [1]") and not ok("[1]\n")


def test_compact_and_custom_whitespace() -> None:
    value = {"a": [1, {"b": None}]}
    compact = Recognizer(json_schema_grammar({}, whitespace="compact")).accepts
    assert compact(json.dumps(value, separators=(",", ":"))) and not compact(json.dumps(value))
    custom = Recognizer(json_schema_grammar({}, whitespace_pattern="[ ]?")).accepts
    assert custom(json.dumps(value)) and not custom(json.dumps(value, indent=2))


# -- integer ranges -------------------------------------------------------------------------------

_BOUNDS = [None, -1000, -101, -100, -99, -10, -1, 0, 1, 9, 10, 99, 100, 101, 987, 1000]


@pytest.mark.parametrize("low", _BOUNDS)
def test_integer_range_regex_is_exact(low: int | None) -> None:
    for high in _BOUNDS:
        pattern = integer_range_pattern(low, high)
        if low is not None and high is not None and low > high:
            assert pattern is None
            continue
        assert pattern is not None
        compiled = re.compile(pattern)
        for n in range(-1300, 1300):
            inside = (low is None or n >= low) and (high is None or n <= high)
            assert (compiled.fullmatch(str(n)) is not None) == inside, (low, high, n)
        zero_inside = (low is None or low <= 0) and (high is None or high >= 0)
        assert (compiled.fullmatch("-0") is not None) == zero_inside
        for junk in ["00", "01", "-01", "+1", "", "1.0", "--1"]:
            assert compiled.fullmatch(junk) is None


@pytest.mark.parametrize(
    "bounds, low, high",
    [
        ((1.5, None, None, None), 2, None),
        ((None, 7.9, None, None), None, 7),
        ((None, None, 3, None), 4, None),
        ((None, None, 2.5, None), 3, None),
        ((None, None, None, -4), None, -5),
        ((None, None, None, -4.5), None, -5),
        ((0, 10, 0, 10), 1, 9),
        ((-(10**20), None, None, 10**20 + 0.5), -(10**20), 10**20 - 1),  # the float is 1e20
    ],
)
def test_integer_bounds(bounds: tuple[Any, ...], low: int | None, high: int | None) -> None:
    assert integer_bounds(*bounds) == (low, high)


def test_huge_integer_bounds_are_exact() -> None:
    schema = {"type": "integer", "minimum": -(10**30), "exclusiveMaximum": 10**25}
    ok = Recognizer(json_schema_grammar(schema)).accepts
    assert ok(str(-(10**30))) and not ok(str(-(10**30) - 1))
    assert ok(str(10**25 - 1)) and not ok(str(10**25)) and ok("0")


# -- errors, report, options ----------------------------------------------------------------------


REF_SCHEMAS = {
    "anchor": {"$defs": {"a": {"$anchor": "num", "type": "integer"}}, "$ref": "#num"},
    "nested_id": {
        "$id": "http://example.com/root.json",
        "$defs": {
            "b": {"$id": "b.json", "$defs": {"c": {"type": "string"}}, "$ref": "#/$defs/c"},
        },
        "type": "object",
        "properties": {"x": {"$ref": "b.json"}, "y": {"$ref": "http://example.com/b.json"}},
        "additionalProperties": False,
    },
    "urn": {
        "$id": "urn:uuid:deadbeef-1234-0000-0000-4321feebdaed",
        "properties": {"foo": {"$ref": "urn:uuid:deadbeef-1234-0000-0000-4321feebdaed#/$defs/bar"}},
        "$defs": {"bar": {"type": "string"}},
        "additionalProperties": False,
    },
    "relative_in_defs": {
        "$id": "http://example.com/tree",
        "$defs": {"node": {"$id": "node", "type": "array", "items": {"$ref": "tree"}}},
        "anyOf": [{"type": "integer"}, {"$ref": "node"}],
    },
}


REMOTES = {
    "http://example.com/int.json": {"type": "integer"},
    "http://example.com/defs.json": {
        "$defs": {"s": {"type": "string"}, "arr": {"type": "array", "items": {"$ref": "#/$defs/s"}}}
    },
}


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "http://example.com/int.json"},
        {
            "type": "object",
            "properties": {"x": {"$ref": "http://example.com/defs.json#/$defs/arr"}},
            "additionalProperties": False,
        },
    ],
)
def test_registry_documents_resolve_as_in_jsonschema(schema: Any) -> None:
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    resources = [(uri, DRAFT202012.create_resource(doc)) for uri, doc in REMOTES.items()]
    validator = jsonschema.Draft202012Validator(
        schema, registry=Registry().with_resources(resources)
    )
    with pytest.raises(UnsupportedFeature, match="registry"):
        json_schema_grammar(schema)
    for value in [1, "a", {"x": ["a", "b"]}, {"x": [1]}, {"x": "a"}, {}, {"y": 1}]:
        expected = validator.is_valid(value)
        got = _accepts(schema, json.dumps(value), registry=REMOTES, additional_properties="spec")
        assert got == expected, value


@pytest.mark.parametrize("name", sorted(REF_SCHEMAS))
def test_refs_resolve_as_jsonschema_does(name: str) -> None:
    schema = REF_SCHEMAS[name]
    validator = jsonschema.Draft202012Validator(schema)
    values = [1, -3, "a", 1.5, None, [], [1, [2, []]], ["a"], {"x": "s"}, {"x": 1}, {"y": "s"},
              {"x": "s", "y": "t"}, {"foo": "z"}, {"foo": 2}, {"z": 1}]  # fmt: skip
    seen = set()
    for value in values:
        expected = validator.is_valid(value)
        seen.add(expected)
        assert _accepts(schema, json.dumps(value), additional_properties="spec") == expected, value
    assert seen == {True, False}


@pytest.mark.parametrize(
    "schema, pointer, keyword",
    [
        ({"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}},
         "#/properties/tags/uniqueItems", "uniqueItems"),
        ({"oneOf": [{"type": "string"}]}, "#/oneOf", "oneOf"),
        ({"type": "number", "multipleOf": 0.01}, "#/multipleOf", "multipleOf"),
        ({"type": "string", "format": "iri"}, "#/format", "format"),
        ({"type": "string", "pattern": "^\\s+$"}, "#/pattern", "pattern"),
        ({"type": "string", "pattern": "^.+$"}, "#/pattern", "pattern"),
        ({"type": "string", "pattern": "(?=a)b"}, "#/pattern", "pattern"),
        ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}, "#/maxLength", "maxLength"),
        ({"$defs": {"a": {}}, "$ref": "#/$defs/a", "type": "object"}, "#/type", "type"),
        ({"anyOf": [{"type": "string"}], "required": ["a"]}, "#/required", "required"),
        ({"$ref": "other.json#/a"}, "#/$ref", "$ref"),
        ({"$ref": "https://json-schema.org/draft/2020-12/schema"}, "#/$ref", "$ref"),
        ({"$id": "http://x.org/a", "$ref": "b.json"}, "#/$ref", "$ref"),
        ({"type": "array", "items": [{"type": "string"}]}, "#/items", "items"),
        ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer", "minimum": 0,
          "exclusiveMinimum": True}, "#/exclusiveMinimum", "exclusiveMinimum"),
        ({"enum": ["a"], "pattern": "^a$"}, "#/pattern", "pattern"),
        ({"properties": {"a~b/c": {"not": {}}}}, "#/properties/a~0b~1c/not", "not"),
    ],
)  # fmt: skip
def test_unsupported_keywords_raise_with_pointer(schema: Any, pointer: str, keyword: str) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        json_schema_grammar(schema)
    assert info.value.location == pointer and info.value.keyword == keyword
    json_schema_grammar(schema, best_effort=True)  # the same schema, refusing instead


@pytest.mark.parametrize(
    "schema, pointer",
    [
        ({"required": 3}, "#/required"),
        ({"type": "strnig"}, "#/type"),
        ({"type": []}, "#/type"),
        ({"$ref": "#/$defs/missing"}, "#/$ref"),
        ({"$ref": "#anchor"}, "#/$ref"),
        ({"properties": {"a": 3}}, "#/properties/a"),
        ({"type": "string", "minLength": -1}, "#/minLength"),
        ({"type": "array", "maxItems": 1.5}, "#/maxItems"),
        ({"type": "integer", "minimum": "0"}, "#/minimum"),
        ({"anyOf": []}, "#/anyOf"),
        ({"type": "string", "pattern": "(ab"}, "#/pattern"),
        ({"type": "array", "minItems": 3, "maxItems": 1}, "#/maxItems"),
        ({"type": "string", "minLength": 3, "maxLength": 1}, "#/maxLength"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "#/minimum"),
        (False, "#"),
        ({"enum": []}, "#"),
        ({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2}, "#"),
        ({"type": "object", "properties": {"a": False}, "required": ["a"]}, "#/properties/a"),
        ({"type": "object", "additionalProperties": False, "required": ["a"]}, "#/required"),
        ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "#/$defs/a"),
        ({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}},
          "$ref": "#/$defs/a"}, "#/$defs/a"),
    ],
)  # fmt: skip
def test_invalid_and_unsatisfiable_schemas(schema: Any, pointer: str) -> None:
    with pytest.raises(InvalidSchema) as info:
        json_schema_grammar(schema)
    assert info.value.location == pointer


def test_unsatisfiable_counts_above_the_unrolling_limit_are_still_detected() -> None:
    for schema in (
        {"type": "array", "items": False, "minItems": 300},
        {"type": "array", "prefixItems": [{}], "items": False, "minItems": 257},
    ):
        with pytest.raises(InvalidSchema, match="no array length"):
            _lower(schema)  # with semantic checks: the bound itself would be a check


def test_schema_as_json_text_and_entry_point() -> None:
    grammar = Grammar.from_json_schema('{"type": "array", "items": {"const": 1}}')
    assert Recognizer(grammar).accepts("[1, 1]") and not Recognizer(grammar).accepts("[2]")
    with pytest.raises(InvalidSchema):
        json_schema_grammar("{not json")
    with pytest.raises(InvalidSchema):
        json_schema_grammar(3)  # type: ignore[arg-type]


def test_best_effort_reports_refused_keywords() -> None:
    schema = {
        "type": "array",
        "items": {"type": "string", "format": "iri", "description": "an address"},
        "uniqueItems": True,
    }
    grammar = json_schema_grammar(schema, best_effort=True)
    status = {s.pointer: (s.keyword, s.status) for s in grammar.report}
    assert status["#/uniqueItems"] == ("uniqueItems", "refused")
    assert status["#/items/format"] == ("format", "refused")
    assert status["#/items/description"] == ("description", "annotation")
    assert status["#/items/type"] == ("type", "grammar")
    assert Recognizer(grammar).accepts('["x", "x"]')  # not enforced, as reported


def test_report_and_notes() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "t",
        "type": "string",
        "minItems": 2,
        "uniqueItems": True,
        "x-vendor": {"anything": 1},
        "maxLength": 4,
    }
    grammar = json_schema_grammar(schema)
    status = {s.pointer: s for s in grammar.report}
    assert {p: s.status for p, s in status.items()} == {
        "#/$schema": "annotation", "#/title": "annotation", "#/type": "grammar",
        "#/minItems": "grammar", "#/uniqueItems": "grammar", "#/x-vendor": "annotation",
        "#/maxLength": "grammar",
    }  # fmt: skip
    assert "no effect" in status["#/uniqueItems"].note
    assert "unknown keyword" in status["#/x-vendor"].note
    notes = " ".join(grammar.notes)
    assert "additionalProperties" in notes and "declared" in notes and "whitespace" in notes
    assert "spec" in " ".join(json_schema_grammar(schema, additional_properties="spec").notes)


@pytest.mark.parametrize(
    "options",
    [
        {"additional_properties": "strict"},
        {"whitespace": "indented"},
        {"whitespace_pattern": "[ a]*"},
        {"whitespace_pattern": "("},
        {"whitespace_pattern": 3},
        {"whitespace": "compact", "whitespace_pattern": " ?"},
        {"best_effort": "yes"},
        {"max_depth": 3},
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        json_schema_grammar({}, **options)


DYNAMIC_TREE = {
    "$id": "https://example.com/tree",
    "$dynamicAnchor": "node",
    "type": "object",
    "properties": {
        "data": {"type": "integer"},
        "children": {"type": "array", "items": {"$dynamicRef": "#node"}},
    },
    "additionalProperties": False,
}


def test_dynamic_ref_with_one_anchor_is_a_ref() -> None:
    validator = jsonschema.Draft202012Validator(DYNAMIC_TREE)
    values = [
        {},
        {"data": 1},
        {"children": [{"data": 2, "children": [{}]}]},
        {"children": [{"data": "x"}]},
        {"children": [1]},
        {"other": 1},
    ]
    seen = set()
    for value in values:
        expected = validator.is_valid(value)
        seen.add(expected)
        assert _accepts(DYNAMIC_TREE, json.dumps(value), additional_properties="spec") == expected
    assert seen == {True, False}


def test_dynamic_ref_whose_target_depends_on_the_scope_is_refused() -> None:
    schema = {
        "$id": "https://example.com/strict",
        "$dynamicAnchor": "node",
        "$ref": "https://example.com/tree",
        "$defs": {"tree": DYNAMIC_TREE},
    }
    with pytest.raises(UnsupportedFeature) as info:
        json_schema_grammar(schema)
    assert info.value.keyword == "$dynamicRef"
