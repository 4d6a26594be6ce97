"""JSON Schema front end: lower a JSON Schema (a dict, a bool or JSON text) to the grammar IR.

One job: walk the schema, one method per keyword group, and build IR rules that accept exactly the
JSON texts the schema validates (under the document's draft: ``$schema``, 2020-12 by default), in
a fixed spelling discipline; keywords that cannot be enforced exactly are refused, never dropped
(unless ``best_effort=True``). Values are judged as ``json.loads`` reads them (the parser the
checks and ``result.value`` use).

Before lowering, the document is validated against its draft's metaschema (``InvalidSchema`` with
the JSON pointer of the bad keyword) and its nesting is bounded (``MAX_SCHEMA_DEPTH``,
``LimitExceeded``); the lowering itself stops with ``LimitExceeded`` past ``limits.max_seconds``.
Every step is linear or near-linear in the schema: enums become a trie of spellings, integer
ranges flat alternatives, patterns are measured on their parse tree.

Supported keywords: ``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``prefixItems``, ``minItems``, ``maxItems``, ``$ref``
(within the document, resolved by ``json_refs``; recursion allowed), ``anyOf``, ``minLength``,
``maxLength``, ``pattern`` (subset, see ``json_strings``), ``format: uuid``, and ``minimum``/
``maximum``/``exclusiveMinimum``/``exclusiveMaximum`` on integers; the others by semantic checks
(``json_checks``) or refused. Keywords that do not apply to the allowed types have no effect and
are reported as such. Unknown keywords (not in any JSON Schema vocabulary) and annotations are
reported as ``annotation``: they never affect validity.

Deliberate simplifications (each is a rejection of some valid spellings, never an acceptance of an
invalid instance):
    * Objects: properties appear in schema order (``properties`` order, then keys that are only in
      ``required``); optional ones may be skipped. Extra properties, where allowed, come after
      them; an extra key is any string whose decoded value is not a declared key (exact, in any
      spelling). ``{"b":1,"a":2}`` is rejected when ``a`` is declared before ``b``.
    * ``additionalProperties`` unspecified next to ``properties``: option ``additional_properties``
      ``"declared"`` (default) allows only declared (and required) keys; ``"spec"`` allows extras.
    * ``enum``/``const`` values: strings in the ``json.dumps`` and raw-UTF-8 spellings; numbers in
      the plain decimal spellings ``json.loads`` reads as the value (``1``, ``1.0`` where that
      float is exact, ``-0``; see ``json_numbers.number_spellings``), not in exponent spellings;
      object members in any order up to ``_MAX_PERMUTED_MEMBERS`` members (at most
      ``_MAX_PERMUTATIONS`` orders per enum), in the value's order beyond; the whitespace policy
      applies between tokens.
    * ``format``: every format some draft defines is asserted (by a check), whatever draft the
      document declares (``date`` in draft 4): generation should produce well-formed values.
    * Drafts 3 and 4: ``1.0`` is not an integer there, so ``integer`` has no ``.0`` spellings.
    * Declared keys are accepted in those two spellings too; numbers: see ``json_numbers``;
      ``pattern``/length: see ``json_strings``.
    * ``$ref`` and ``anyOf`` are refused next to other assertion keywords (that needs intersection).
    * Whitespace: ``"flexible"`` (default, ``json_strings.BOUNDED_WHITESPACE``; old name
      ``"bounded"``) between tokens, none before or after the top-level value; ``"compact"``: none;
      ``"pretty"``: the ``json.dumps(indent=2)`` layout (``json_layout``); or a custom
      ``whitespace_pattern``.
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from structgen.errors import ConfigurationError, InvalidSchema, LimitExceeded, UnsupportedFeature
from structgen.grammar.ir import EMPTY, Alt, Check, Expr, Grammar, Ref, Regex, alt, lit, seq
from structgen.grammar.json_checks import JsonSchemaCheck
from structgen.grammar.json_contradictions import UNSATISFIABLE_NOTE, checked_contradiction
from structgen.grammar.json_decided import NoText, decided
from structgen.grammar.json_layout import (
    MAX_PRETTY_DEPTH,
    PRETTY_MARK,
    WHITESPACE_MODES,
    pretty_layout,
)
from structgen.grammar.json_metaschema import surely_valid
from structgen.grammar.json_numbers import number_spellings
from structgen.grammar.json_refs import RemoteRef, bundle
from structgen.grammar.json_rules import finish_rules
from structgen.grammar.json_strings import BOUNDED_WHITESPACE, check_whitespace_pattern
from structgen.grammar.json_types import (
    BOUNDS,
    NEVER,
    SchemaCtx,
    TypeLowering,
    encodable,
    escape_token,
    has_type,
    is_number,
    json_equal,
    within,
)

_COMPANION = {
    "then": "if",
    "else": "if",
    "minContains": "contains",
    "maxContains": "contains",
    "exclusiveMaximum": "maximum",
    "exclusiveMinimum": "minimum",
}
"""Keywords a validator evaluates inside another one's implementation."""

_MAX_PERMUTED_MEMBERS = 4
"""An enum/const object with up to this many members is accepted in any member order."""

_MAX_PERMUTATIONS = 4096
"""Across one enum, at most this many member orders are spelled out (objects beyond the budget
are accepted in the value's own order only: a large object enum would otherwise multiply)."""

_MAX_TRIE_DEPTH = 64
"""Branch points of an enum's trie of spellings nested at most this deep (then listed flat)."""

MAX_SCHEMA_DEPTH = 100
"""The deepest nesting of objects and arrays a schema document may have. The lowering, the
``jsonschema`` validators behind the checks (and its metaschema validation) and the automata
recurse on the nesting; past this depth they would exhaust Python's recursion limit."""

DEFAULT_MAX_SECONDS = 60.0
"""The lowering's time bound without ``limits=`` (``CompileLimits().max_seconds``)."""

DEFAULT_WHITESPACE = "flexible"
"""The whitespace layout when none is given (measured: docs/json_schema.md, "Whitespace")."""

_LEGACY_REF_DIALECTS = frozenset(
    "Draft3Validator Draft4Validator Draft6Validator Draft7Validator".split()
)
"""Dialects in which ``$ref`` overrides its siblings (validators ignore them)."""

ANNOTATIONS = frozenset(
    "title description default examples $schema $comment deprecated readOnly writeOnly $defs "
    "definitions $anchor $dynamicAnchor contentEncoding contentMediaType contentSchema "
    "$vocabulary".split()
)
"""Keywords that never affect validity (``$defs``: only a container for ``$ref`` targets)."""

SUPPORTED = frozenset(
    "type enum const properties required additionalProperties items prefixItems minItems "
    "maxItems $ref $dynamicRef anyOf minLength maxLength pattern format minimum maximum "
    "exclusiveMinimum exclusiveMaximum multipleOf".split()
)
"""Keywords this pass lowers (some only in part: the rest of their forms are refused)."""

UNSUPPORTED = frozenset(
    "allOf oneOf not if then else dependentSchemas dependentRequired dependencies "
    "patternProperties propertyNames minProperties maxProperties unevaluatedProperties "
    "unevaluatedItems contains minContains maxContains uniqueItems additionalItems "
    "$recursiveRef $recursiveAnchor".split()
)
"""Assertion keywords of some draft that this pass does not enforce yet."""

_KEYWORDS_BY_TYPE = {
    "object": "properties required additionalProperties patternProperties propertyNames "
    "minProperties maxProperties dependentRequired dependentSchemas dependencies "
    "unevaluatedProperties",
    "array": "items prefixItems minItems maxItems uniqueItems contains minContains maxContains "
    "unevaluatedItems additionalItems",
    "string": "minLength maxLength pattern format",
    "integer number": "minimum maximum exclusiveMinimum exclusiveMaximum multipleOf",
}
APPLIES_TO: dict[str, frozenset[str]] = {
    keyword: frozenset(types.split())
    for types, keywords in _KEYWORDS_BY_TYPE.items()
    for keyword in keywords.split()
}
"""The instance types a type-specific keyword constrains; it has no effect on other types."""

TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_ENUM_SIBLINGS = frozenset({"type", "enum", "const", "minLength", "maxLength", *BOUNDS})


@dataclass(frozen=True)
class JsonSchemaOptions:
    """Options of ``Grammar.from_json_schema``.

    Args:
        additional_properties: ``"declared"`` (default): where ``properties`` is given and
            ``additionalProperties`` is not, only declared keys are allowed; ``"spec"``: any extra
            key with any value (the JSON Schema reading). An explicit value always wins.
        whitespace: the layout between tokens (none before or after the document):
            ``"flexible"`` (default; ``"bounded"`` is its old name): at most one space, or one
            line break and up to 20 spaces or 5 tabs (``json_strings.BOUNDED_WHITESPACE``), so
            the model keeps its own layout within a bound; ``"compact"``: none, the layout of
            ``json.dumps(value, separators=(",", ":"))``; ``"pretty"``: exactly the layout of
            ``json.dumps(value, indent=2)`` (``json_layout``; flexible below
            ``MAX_PRETTY_DEPTH`` nested containers).
        whitespace_pattern: a custom regex for the whitespace between tokens (exclusive with
            ``whitespace``); it may only match spaces, tabs, CR and LF.
        semantic_checks: (default True) enforce a keyword the grammar cannot express by a check:
            the enclosing subschema's grammar skips the keyword, and the completed value is
            validated with ``jsonschema`` against the subschema (status ``check`` in the report).
            With False, such keywords are refused (or skipped with ``best_effort``).
        early_objects: (default True) objects whose check enforces ``maxProperties``,
            ``minProperties``, ``dependentRequired``, array-form ``dependencies``, ``oneOf``
            over ``required`` groups or ``not: {required}`` become a chain of members checked
            at each separator and key (``json_early_objects``): no accepted prefix is a dead
            end. With False, those keywords are checked when the object completes (a smaller
            grammar, a few ms less to compile; a model can then write members it can never
            close the object after). Exact either way.
        best_effort: record unsupported keywords as ``refused`` and skip them, instead of raising
            ``UnsupportedFeature``.
        property_order: ``"schema"`` (default): declared properties in schema order (optional
            ones may be skipped), extra ones after them; ``"any"``: members in any order, names
            distinct and required ones present (a check on each object with two or more possible
            members: exact, but the grammar then needs the CFG engine).
        registry: other schema documents by URI (``{"https://example.com/a.json": {...}}``):
            ``$ref``s to them resolve (they are embedded in the document as resources, see
            ``json_refs.bundle``); nothing is ever fetched.
        limits: a ``structgen.CompileLimits``: its ``max_seconds`` bounds the lowering too
            (``LimitExceeded`` past it); without one, the lowering stops after
            ``DEFAULT_MAX_SECONDS`` (``CompileLimits``' default).
    """

    additional_properties: str = "declared"
    whitespace: str | None = None
    whitespace_pattern: str | None = None
    best_effort: bool = False
    semantic_checks: bool = True
    early_objects: bool = True
    property_order: str = "schema"
    registry: Mapping[str, Any] | None = None
    limits: Any = None

    def __post_init__(self) -> None:
        for name in ("semantic_checks", "best_effort", "early_objects"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigurationError(
                    f"{name} must be True or False, got {value!r}", keyword=name
                )
        if self.registry is not None and not isinstance(self.registry, Mapping):
            raise ConfigurationError(
                f"registry must be a mapping of URIs to schemas (or None), got "
                f"{type(self.registry).__name__}",
                keyword="registry",
            )
        seconds = getattr(self.limits, "max_seconds", None)
        if self.limits is not None and not (
            hasattr(self.limits, "max_seconds")
            and (seconds is None or (is_number(seconds) and seconds > 0))
        ):
            raise ConfigurationError(
                f"limits must be a structgen.CompileLimits (max_seconds a positive number or "
                f"None), got {self.limits!r}",
                keyword="limits",
            )
        if self.property_order not in ("schema", "any"):
            raise ConfigurationError(
                f"property_order must be 'schema' or 'any', got {self.property_order!r}",
                keyword="property_order",
            )
        if self.additional_properties not in ("declared", "spec"):
            raise ConfigurationError(
                f"additional_properties must be 'declared' or 'spec', got "
                f"{self.additional_properties!r}",
                keyword="additional_properties",
            )
        if self.whitespace not in (None, "bounded", *WHITESPACE_MODES):
            raise ConfigurationError(
                "whitespace must be one of "
                f"{', '.join(repr(m) for m in WHITESPACE_MODES)}, got {self.whitespace!r}",
                keyword="whitespace",
                hint="use whitespace_pattern for a custom regex",
            )
        if self.whitespace_pattern is not None:
            if self.whitespace is not None:
                raise ConfigurationError(
                    "give whitespace or whitespace_pattern, not both", keyword="whitespace_pattern"
                )
            if not isinstance(self.whitespace_pattern, str):
                raise ConfigurationError(
                    "whitespace_pattern must be a string", keyword="whitespace_pattern"
                )
            try:
                check_whitespace_pattern(self.whitespace_pattern)
            except ValueError as exc:
                raise ConfigurationError(str(exc), keyword="whitespace_pattern") from exc

    @property
    def max_seconds(self) -> float | None:
        """The wall-clock bound on the lowering (``None``: unbounded)."""
        if self.limits is None:
            return DEFAULT_MAX_SECONDS
        return self.limits.max_seconds  # type: ignore[no-any-return]

    @property
    def whitespace_mode(self) -> str:
        """``"compact"``, ``"flexible"``, ``"pretty"`` or ``"custom"`` (``whitespace_pattern``)."""
        if self.whitespace_pattern is not None:
            return "custom"
        if self.whitespace in (None, "bounded"):
            return DEFAULT_WHITESPACE
        return self.whitespace

    @property
    def whitespace_regex(self) -> str | None:
        """The regex between tokens (``None``: no whitespace; for ``pretty`` the placeholder
        ``json_layout.PRETTY_MARK`` rewritten per depth after the lowering)."""
        mode = self.whitespace_mode
        if mode == "custom":
            return self.whitespace_pattern
        if mode == "pretty":
            return PRETTY_MARK.pattern
        return None if mode == "compact" else BOUNDED_WHITESPACE


class SchemaLowering(TypeLowering):
    """Lowers one schema document. Use ``json_schema_grammar``; one instance per document."""

    # -- driver ---------------------------------------------------------------------------------

    def _in_dialect(self, keyword: str) -> bool:
        """Whether the document's dialect defines ``keyword`` (``then`` goes with ``if``...)."""
        known = self.dialect.VALIDATORS
        return keyword in known or _COMPANION.get(keyword) in known

    def run(self, *, validate: bool = True) -> Grammar:
        """Lower the document; return the grammar (start rule ``start``).

        Args:
            validate: check the document against its metaschema first (``InvalidSchema``).
        """
        # Lowering makes many small objects and no garbage cycles: the cyclic GC's passes over
        # everything the process holds find nothing to free (paused, as compile does; on the
        # largest MaskBench schemas a third of the front end's time).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(validate)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _run(self, validate: bool) -> Grammar:
        _check_depth(self.root)
        if validate:
            self.check_metaschema()
        expr = self.lower(self.root, SchemaCtx("#"))
        while self._pending_refs:
            name, target, pointer = self._pending_refs.pop()
            lowered = self.lower(target, SchemaCtx(pointer))
            self.rules[name] = NEVER if lowered is None else lowered
        self.rules["start"] = NEVER if expr is None else expr
        if self.need_any:
            self.rules.update(self._any_rules())
        where, why = self.never_reason or ("#", "the schema accepts nothing")
        try:
            rules = finish_rules(self.rules, self.rule_pointers, unsatisfiable=(where, why))
        except InvalidSchema as exc:
            if not self.contradictions:
                raise
            return self._keep_contradictions(exc)
        if self.options.whitespace_mode == "pretty":
            rules = pretty_layout(rules)
        notes = self._notes() + self.unsatisfiable_notes
        return Grammar.from_rules(rules, report=tuple(self.report.values()), notes=notes)

    def _keep_contradictions(self, exc: InvalidSchema) -> Grammar:
        """The grammar of the document with its contradictory checks kept, not pruned.

        Pruning a subschema whose check refuses every value (``json_contradictions``) removes
        dead ends where something else remains (an optional member, another branch). When
        nothing remains, the document is unsatisfiable only through keywords a check enforces:
        the grammar keeps those checks, which refuse every value at completion (the verdict a
        validator gives every instance), and its notes say it is unsatisfiable, where and why
        (``generate`` refuses such a grammar up front: ``unsatisfiable_note``)."""
        again = type(self)(self.root, self.options)
        again.prune_contradictions = False
        again.unsatisfiable_notes = (f"{UNSATISFIABLE_NOTE} {exc.location} {exc.message}",)
        return again._run(validate=False)

    def check_metaschema(self) -> None:
        """Raise ``InvalidSchema`` (with the pointer of the offending keyword) unless the
        document is valid under its dialect's metaschema, as ``check_schema`` decides it; formats
        in the metaschema (``regex``) are not asserted: the lowering judges patterns itself."""
        import jsonschema

        if isinstance(self.root, bool):
            return
        cls = self.dialect
        meta = _metaschema_validator(cls)
        if surely_valid(meta, self.root):  # json_metaschema: the same verdict, 5-10x faster
            return
        try:
            error = jsonschema.exceptions.best_match(meta.iter_errors(self.root))
        except RecursionError:  # pragma: no cover - _check_depth keeps the nesting smaller
            raise LimitExceeded("the schema nests too deeply to validate", location="#") from None
        if error is None:
            return
        path = list(error.absolute_path)
        pointer = "#" + "".join("/" + escape_token(str(token)) for token in path)
        keyword = next((str(t) for t in reversed(path) if isinstance(t, str)), None)
        message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
        raise InvalidSchema(
            f"not a valid {cls.__name__.removesuffix('Validator')} schema: {message}",
            location=pointer,
            keyword=keyword,
        )

    def lower(self, schema: Any, ctx: SchemaCtx) -> Expr | None:
        """The IR for the JSON texts valid under ``schema``; ``None`` if there are none.

        Keywords the grammar skipped (see ``semantic_checks``) are enforced by wrapping the
        result in a check that validates the completed value against this subschema.
        """
        self.tick()
        expr = self._lower_unchecked(schema, ctx)
        keywords = self.checked_keywords.get(ctx.pointer)
        if expr is None or not keywords:
            return expr
        if isinstance(schema, Mapping) and self.prune_contradictions:
            found = checked_contradiction(schema, keywords, self._types(schema, ctx))
            if found is not None:  # the check would refuse every value: a dead end
                self.contradictions.append(found)
                return self._never(ctx.child(found[0]), found[1])
        why = self.refs.uncheckable(ctx.pointer)
        if why is not None:
            message = f"a semantic check here ({', '.join(sorted(keywords))}) would need {why}"
            if not self.options.best_effort:
                raise UnsupportedFeature(
                    message,
                    location=ctx.pointer,
                    keyword=min(keywords),
                    hint="pass best_effort=True to skip these keywords",
                )
            for keyword in keywords:
                self._mark(ctx, keyword, "refused", message)
            return expr
        predicate = JsonSchemaCheck(
            self.root_text, ctx.pointer, tuple(sorted(keywords)), draft=self.refs.draft
        )
        checked = Check(expr, predicate)
        texts = decided(self, checked)  # a few texts: the check runs now (json_decided)
        if isinstance(texts, NoText):
            keyword = min(keywords)
            reason = f"no value the grammar allows passes {', '.join(sorted(keywords))}"
            if self.prune_contradictions:
                self.contradictions.append((keyword, reason))
                return self._never(ctx.child(keyword), reason)
            return checked
        return checked if texts is None else texts

    def _lower_unchecked(self, schema: Any, ctx: SchemaCtx) -> Expr | None:
        if schema is True:
            return self._any_value()
        if schema is False:
            return self._never(ctx, "the schema is false")
        if not isinstance(schema, Mapping):
            self._invalid(
                ctx.pointer, None, f"a schema must be an object or a bool, got {schema!r}"
            )
        if "$ref" in schema and self.dialect.__name__ in _LEGACY_REF_DIALECTS:
            for key in schema:
                if key != "$ref":
                    self._mark(
                        ctx,
                        key,
                        "annotation",
                        f"ignored next to $ref in {self.dialect.__name__}'s dialect",
                        force=True,
                    )
            self._mark(ctx, "$ref", "grammar")
            return self._lower_ref(schema["$ref"], ctx)
        types = self._types(schema, ctx)
        active = self._classify(schema, ctx, types)
        for combinator in ("$ref", "$dynamicRef", "anyOf"):
            if combinator in active:
                for other in active:
                    if other != combinator:
                        self._refuse(
                            ctx,
                            other,
                            f"{other!r} next to {combinator!r} needs an "
                            "intersection, which is not supported yet",
                        )
                self._mark(ctx, combinator, "grammar")
                if combinator == "$ref":
                    return self._lower_ref(schema["$ref"], ctx)
                if combinator == "$dynamicRef":
                    return self._lower_dynamic_ref(schema["$dynamicRef"], ctx)
                return self._lower_any_of(schema["anyOf"], ctx)
        if not active:
            return self._any_value()
        for keyword in active:
            self._mark(ctx, keyword, "grammar")
        if "enum" in active or "const" in active:
            return self._lower_enum(schema, ctx, types, active)
        branches = []
        for name in types:
            expr = getattr(self, f"_lower_{name}")(schema, ctx, active)
            if expr is not None:
                branches.append(expr)
        return (
            alt(*branches) if branches else self._never(ctx, "no type is satisfiable", generic=True)
        )

    # -- bookkeeping -----------------------------------------------------------------------------

    def _notes(self) -> tuple[str, ...]:
        ws = self.options
        if ws.whitespace_pattern is not None:
            ws_note = f"whitespace: custom pattern {ws.whitespace_pattern!r} between tokens"
        elif ws.whitespace_mode == "compact":
            ws_note = "whitespace: compact (none anywhere)"
        elif ws.whitespace_mode == "pretty":
            ws_note = (
                "whitespace: pretty (the layout of json.dumps(indent=2); flexible below "
                f"{MAX_PRETTY_DEPTH} nested containers)"
            )
        else:
            ws_note = (
                f"whitespace: flexible {BOUNDED_WHITESPACE!r} between tokens (see "
                "json_strings.BOUNDED_WHITESPACE); none around the document"
            )
        reading = (
            "declared: objects with 'properties' and no 'additionalProperties' accept only "
            "declared and required keys"
            if ws.additional_properties == "declared"
            else "spec: unspecified 'additionalProperties' allows any extra key and value"
        )
        return (
            f"additionalProperties: {reading}; an explicit value always wins",
            ws_note,
            "object properties in schema order (optional ones may be skipped); extras after them"
            if ws.property_order == "schema"
            else "object members in any order (a check keeps names distinct, required present)",
            "enum/const: strings as json.dumps spells them (and raw UTF-8); numbers in plain "
            "decimal spellings json.loads reads as the value (1 = 1.0 = 1.00 where the float is "
            "exact and the type admits 1.0), no exponent spellings; object members in any order "
            f"up to {_MAX_PERMUTED_MEMBERS} members (within a budget of {_MAX_PERMUTATIONS} "
            "orders per enum), in the value's order beyond",
            "integer: -?(0|[1-9][0-9]*), and with .0+ (1.0 is an integer in this draft) up to "
            "2**53 in magnitude, where json.loads keeps the value; no exponent spellings"
            if self.integral_floats
            else "integer: -?(0|[1-9][0-9]*); 1.0 is not an integer in this draft (3 or 4)",
            "format: every format some JSON Schema draft defines is asserted (by jsonschema's "
            "checkers, the document's draft's first), whatever draft the document declares",
        )

    # -- keyword classification ------------------------------------------------------------------

    def _types(self, schema: Mapping[str, Any], ctx: SchemaCtx) -> list[str]:
        declared = schema.get("type")
        every = ["object", "array", "string", "number", "boolean", "null"]
        if declared is None:
            return every
        names = [declared] if isinstance(declared, str) else declared
        if self.dialect.__name__ == "Draft3Validator" and isinstance(names, list):
            if "any" in names:
                return every
            if any(isinstance(n, Mapping) for n in names):  # draft 3: a schema as a type
                self._refuse(ctx, "type", "a schema inside type (draft 3) is not supported yet")
                return every
        if not isinstance(names, list) or not names or not all(n in TYPES for n in names):
            self._invalid(
                ctx.at("type"),
                "type",
                f"type must be one of {TYPES} or a non-empty list of them, got {declared!r}",
            )
        unique = list(dict.fromkeys(names))
        return [n for n in unique if not (n == "integer" and "number" in unique)]

    def _classify(self, schema: Mapping[str, Any], ctx: SchemaCtx, types: list[str]) -> list[str]:
        """Record annotations, no-effect and refused keywords; return the ones to lower."""
        active = []
        for key in schema:
            if key in ANNOTATIONS:
                self._mark(ctx, key, "annotation")
            elif key == "$id":
                self._mark(ctx, key, "annotation", "base URI of the $refs below it")
            elif (key in SUPPORTED or key in UNSUPPORTED) and not self._in_dialect(key):
                self._mark(
                    ctx,
                    key,
                    "annotation",
                    f"not a keyword of {self.dialect.__name__}'s dialect: validators ignore it",
                )
            elif key in SUPPORTED or key in UNSUPPORTED:
                applies = APPLIES_TO.get(key)
                if applies is not None and applies.isdisjoint(types):
                    self._mark(ctx, key, "grammar", f"no effect: applies only to {sorted(applies)}")
                elif key in UNSUPPORTED:
                    self._refuse(ctx, key, f"keyword {key!r} is not supported yet")
                else:
                    active.append(key)
            elif key in self.dialect.VALIDATORS:  # e.g. draft 3's extends, disallow, divisibleBy
                self._refuse(ctx, key, f"keyword {key!r} of {self.dialect.__name__}'s dialect")
            else:
                self._mark(ctx, key, "annotation", "unknown keyword: no effect on validity")
        return active

    # -- $ref, anyOf, enum/const -----------------------------------------------------------------

    def _lower_dynamic_ref(self, ref: Any, ctx: SchemaCtx) -> Expr | None:
        """``$dynamicRef``, where its target cannot depend on the dynamic scope: the fragment is
        a JSON pointer, the static target declares no matching ``$dynamicAnchor``, or only one
        schema in the document declares that anchor. Otherwise refused."""
        if not isinstance(ref, str):
            self._invalid(ctx.at("$dynamicRef"), "$dynamicRef", f"must be a string, got {ref!r}")
        name = ref.partition("#")[2]
        if name and not name.startswith("/"):
            try:
                _, target = self.refs.target(ref, ctx.pointer)
            except LookupError:
                target = None  # reported by _lower_ref
            declared = self.refs.dynamic_anchors(name)
            if (
                isinstance(target, Mapping)
                and target.get("$dynamicAnchor") == name
                and declared > 1
            ):
                self._refuse(
                    ctx,
                    "$dynamicRef",
                    f"$dynamicRef {ref!r}: {declared} schemas declare $dynamicAnchor {name!r}, "
                    "so the target depends on the dynamic scope, which is not supported yet",
                )
                return self._any_value()
        return self._lower_ref(ref, ctx, keyword="$dynamicRef")

    def _lower_ref(self, ref: Any, ctx: SchemaCtx, keyword: str = "$ref") -> Expr | None:
        where = ctx.at(keyword)
        if not isinstance(ref, str):
            self._invalid(where, keyword, f"{keyword} must be a string, got {ref!r}")
        try:
            pointer, target = self.refs.target(ref, ctx.pointer)
        except RemoteRef as exc:
            self._refuse(
                ctx,
                keyword,
                f"{keyword} {ref!r} points outside this schema document ({exc}); nothing is "
                "fetched: pass registry={uri: schema} to provide it",
            )
            return self._any_value()
        except LookupError as exc:
            self._invalid(where, keyword, f"dangling {keyword} {ref!r}: {exc}")
        name = self.rule_names.get(pointer)
        if name is None:
            name = self.rule_names[pointer] = self.new_rule("def", pointer)
            # lowered later, from run(): a chain of $refs is a loop there, not a recursion
            self._pending_refs.append((name, target, pointer))
        return Ref(name)

    def _lower_any_of(self, branches: Any, ctx: SchemaCtx) -> Expr | None:
        if not isinstance(branches, list) or not branches:
            self._invalid(ctx.at("anyOf"), "anyOf", "anyOf must be a non-empty list of schemas")
        exprs = [self.lower(b, ctx.child("anyOf", i)) for i, b in enumerate(branches)]
        exprs = [e for e in exprs if e is not None]
        return (
            alt(*exprs)
            if exprs
            else self._never(ctx, "no anyOf branch is satisfiable", generic=True)
        )

    def _lower_enum(
        self, schema: Mapping[str, Any], ctx: SchemaCtx, types: list[str], active: list[str]
    ) -> Expr | None:
        for keyword in active:
            if keyword not in _ENUM_SIBLINGS:
                self._refuse(ctx, keyword, f"{keyword!r} next to enum/const is not supported yet")
        values: list[Any] | None = None
        if "enum" in active:
            if not isinstance(schema["enum"], list):
                self._invalid(ctx.at("enum"), "enum", "enum must be a list")
            values = list(schema["enum"])
        if "const" in active:
            const = schema["const"]
            values = [const] if values is None else [v for v in values if json_equal(v, const)]
        assert values is not None
        low = self._count(schema, ctx, "minLength", active) or 0
        high = self._count(schema, ctx, "maxLength", active)
        bounds = self._bounds(schema, ctx, active)
        floats = self.integral_floats
        # a number needs an integer spelling only where the type admits integers, not numbers,
        # and the dialect does not count 1.0 as an integer (drafts 3 and 4)
        number_fraction = floats or "number" in types
        scalars: list[tuple[str, Expr]] = []  # (literal text, suffix regex) for the trie
        containers: list[Expr] = []
        self._permutations = _MAX_PERMUTATIONS
        for i, value in enumerate(values):
            if not i & 1023:
                self.tick()
            if not any(has_type(value, t) for t in types):  # 1.0 admits the integer 1
                continue
            if isinstance(value, str) and not (
                low <= len(value) and (high is None or len(value) <= high)
            ):
                continue
            if is_number(value) and (bounds is None or not within(value, bounds)):
                continue
            if isinstance(value, (list, Mapping)):
                containers.append(self._literal(value, ctx))
            else:
                scalars.extend(self._scalar_spellings(value, ctx, number_fraction))
        kept = ([_trie(scalars)] if scalars else []) + containers
        if not kept:
            return self._never(ctx, "no enum/const value is valid")
        return _union(kept)

    def _scalar_spellings(
        self, value: Any, ctx: SchemaCtx, fraction: bool = True
    ) -> list[tuple[str, Expr]]:
        """The spellings of a scalar as ``(text, suffix)``: a literal, then a regex (or EMPTY)."""
        if isinstance(value, float) and not math.isfinite(value):
            self._invalid(ctx.pointer, None, f"{value!r} is not a JSON value")
        if isinstance(value, str):
            spellings = dict.fromkeys([json.dumps(value), json.dumps(value, ensure_ascii=False)])
            return [(s, EMPTY) for s in spellings if encodable(s)]
        if value is None or isinstance(value, bool):
            return [(json.dumps(value), EMPTY)]
        if not isinstance(value, (int, float)):
            self._invalid(ctx.pointer, None, f"{value!r} is not a JSON value")
        return [
            (text, Regex(suffix) if suffix else EMPTY)
            for text, suffix in number_spellings(value, fraction)
        ]

    def _literal(self, value: Any, ctx: SchemaCtx) -> Expr:
        """The IR for one JSON value, spelled as json.dumps writes it (whitespace per policy)."""
        if isinstance(value, list):
            return self._bracketed("[", [self._literal(v, ctx) for v in value], "]")
        if isinstance(value, Mapping):
            if not all(isinstance(k, str) for k in value):
                self._invalid(ctx.pointer, None, f"{value!r} is not a JSON value")
            members = [
                seq(self._literal(k, ctx), self.colon, self._literal(v, ctx))
                for k, v in value.items()
            ]
            orders = math.factorial(len(members))
            if len(members) > _MAX_PERMUTED_MEMBERS or orders > self._permutations:
                return self._bracketed("{", members, "}")  # key order as written (see notes)
            self._permutations -= orders
            return _union(
                [
                    self._bracketed("{", list(order), "}")
                    for order in itertools.permutations(members)
                ]
            )
        return _trie(self._scalar_spellings(value, ctx))

    def _bracketed(self, open_: str, items: list[Expr], close: str) -> Expr:
        inner = [items[0]] + [seq(self.sep, item) for item in items[1:]] if items else []
        return seq(lit(open_), self.ws, *inner, *([self.ws] if inner else []), lit(close))


def _union(items: list[Expr]) -> Expr:
    """``alt(*items)`` in linear time (``alt`` compares each item with every earlier one)."""
    flat: dict[Expr, None] = {}
    for item in items:
        for sub in item.items if isinstance(item, Alt) else (item,):
            flat.setdefault(sub, None)
    return next(iter(flat)) if len(flat) == 1 else Alt(tuple(flat))


def _trie(entries: list[tuple[str, Expr]], depth: int = 0) -> Expr:
    """The union of ``lit(text) suffix`` over ``entries``, as a trie on the text: shared
    prefixes are spelled once, so an enum of 100,000 strings stays linear in its characters and
    its automaton branches one character at a time. Single-child chains are merged into one
    literal; below ``_MAX_TRIE_DEPTH`` branch points the rest is listed flat."""
    if depth == 0:
        entries = list(dict.fromkeys(entries))
    if depth >= _MAX_TRIE_DEPTH or len(entries) == 1:
        return _union([seq(lit(text), suffix) for text, suffix in entries])
    ends = [suffix for text, suffix in entries if not text]
    groups: dict[str, list[tuple[str, Expr]]] = {}
    for text, suffix in entries:
        if text:
            groups.setdefault(text[0], []).append((text, suffix))
    branches: list[Expr] = list(ends)
    for group in groups.values():
        if len(group) == 1:
            branches.append(seq(lit(group[0][0]), group[0][1]))
            continue
        shared = os.path.commonprefix([text for text, _ in group])  # the group's longest
        rest = [(text[len(shared) :], suffix) for text, suffix in group]
        branches.append(seq(lit(shared), _trie(rest, depth + 1)))
    return _union(branches)


_META_2020 = "https://json-schema.org/draft/2020-12/schema"


@functools.cache
def _metaschema_validator(cls: Any) -> Any:
    """A validator of ``cls``'s metaschema. For 2020-12, the metaschema flattened into one schema
    (its seven vocabulary metaschemas merged, ``$dynamicRef: "#meta"`` as ``$ref: "#"``, which
    is what it resolves to when the metaschema itself is the entry point): the same verdicts and
    error locations, about seven times faster on large schemas than the linked original."""
    import jsonschema

    if cls is not jsonschema.Draft202012Validator:
        meta = jsonschema.validators.validator_for(cls.META_SCHEMA, default=cls)
        return meta(cls.META_SCHEMA)
    from jsonschema_specifications import REGISTRY

    root = REGISTRY.contents(_META_2020)
    properties, defs = dict(root["properties"]), {}
    for part in root["allOf"]:
        vocabulary = REGISTRY.contents(_META_2020.rsplit("/", 1)[0] + "/" + part["$ref"])
        properties.update(vocabulary["properties"])
        defs.update(vocabulary.get("$defs", {}))

    def static(node: Any) -> Any:
        if isinstance(node, list):
            return [static(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        if node.get("$dynamicRef") == "#meta":
            return {"$ref": "#"}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("meta/"):  # a sibling vocabulary: merged
            node = {**node, "$ref": "#" + ref.partition("#")[2]}
        return {key: static(value) for key, value in node.items()}

    flat = {"type": ["object", "boolean"], "properties": properties, "$defs": defs}
    return jsonschema.Draft202012Validator(static(flat))


def _check_depth(root: Any) -> None:
    """Raise ``LimitExceeded`` if ``root`` nests objects and arrays deeper than
    ``MAX_SCHEMA_DEPTH`` (iteratively: any depth is measured without recursion)."""
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(root, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            shown = "".join("/" + escape_token(t) for t in path[:8])
            raise LimitExceeded(
                f"the schema nests objects and arrays {MAX_SCHEMA_DEPTH + 1} or more levels "
                f"deep (under #{shown}/...); at most {MAX_SCHEMA_DEPTH} are supported",
                location="#" + shown,
                hint="flatten the schema with $defs and $ref (recursion through $ref is fine)",
            )
        if isinstance(node, Mapping):
            items: Any = ((str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            items = ((str(i), v) for i, v in enumerate(node))
        else:
            continue
        stack.extend((v, depth + 1, (*path, k)) for k, v in items if isinstance(v, (Mapping, list)))


def json_schema_grammar(schema: Mapping[str, Any] | bool | str, **options: Any) -> Grammar:
    """A grammar for the JSON texts valid under ``schema`` (see the module docstring).

    Args:
        schema: a schema as a dict, a bool, or JSON text.
        **options: the fields of ``JsonSchemaOptions``.

    Raises:
        ConfigurationError: an unknown option or a bad option value.
        InvalidSchema: the schema is malformed or unsatisfiable (``location`` is a JSON pointer).
        UnsupportedFeature: the schema uses a keyword this version does not enforce exactly.
    """
    names = set(JsonSchemaOptions.__dataclass_fields__)
    for name in options:
        if name not in names:
            raise ConfigurationError(
                f"unknown option {name!r}", keyword=name, hint=f"valid options: {sorted(names)}"
            )
    opts = JsonSchemaOptions(**options)
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise InvalidSchema(f"schema is not valid JSON: {exc}", location="#") from exc
        except RecursionError:
            raise LimitExceeded(
                f"the schema text nests deeper than json.loads can read (more than "
                f"{MAX_SCHEMA_DEPTH} levels are not supported)",
                location="#",
            ) from None
    if not isinstance(schema, (Mapping, bool)):
        raise InvalidSchema(f"a schema must be an object or a bool, got {schema!r}", location="#")
    if opts.registry is None:
        return SchemaLowering(schema, opts).run()
    # the user's document is validated as written (its registry documents may be of other
    # drafts: the bundle is not one dialect's document)
    _check_depth(schema)
    SchemaLowering(schema, opts).check_metaschema()
    try:
        schema = bundle(schema, opts.registry)
    except TypeError as exc:
        raise ConfigurationError(str(exc), keyword="registry") from exc
    return SchemaLowering(schema, opts).run(validate=False)


__all__ = ["JsonSchemaOptions", "SchemaLowering", "json_schema_grammar"]
