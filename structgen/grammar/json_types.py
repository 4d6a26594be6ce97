"""Per-type keyword groups of the JSON Schema front end, and the lowering's bookkeeping.

One job: lower the keywords that constrain one instance type (string, integer, number, boolean,
null, object, array) to IR, and provide the shared state the driver (``json_schema``) builds on:
the whitespace expressions, the keyword report, refusal/invalid/unsatisfiable handling and the
recursive "any JSON value" rules.

See ``json_schema`` for the documented simplifications (property order, spellings).
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NoReturn

from structgen.errors import InvalidSchema, LimitExceeded, UnsupportedFeature
from structgen.grammar.ir import (
    EMPTY,
    Alt,
    Check,
    Expr,
    KeywordStatus,
    Ref,
    Regex,
    Repeat,
    Seq,
    alt,
    lit,
    opt,
    seq,
)
from structgen.grammar.json_checks import (
    DistinctKeys,
    JsonSchemaCheck,
    UniqueLastItem,
    canonical,
)
from structgen.grammar.json_contradictions import object_contradiction
from structgen.grammar.json_early_arrays import (
    NoArray,
    contains_counts,
    early_contains,
    finite_values,
)
from structgen.grammar.json_early_objects import early_object, object_keys
from structgen.grammar.json_format_patterns import format_grammar, grammar_matches_checker
from structgen.grammar.json_formats import (
    ANY_DRAFT_FORMATS,
    FORMATS,
    dialect_formats,
    format_checker,
)
from structgen.grammar.json_numbers import (
    MAX_RANGE_DIGITS,
    NUMBER_PATTERN,
    integer_bounds,
    integer_pattern,
    integer_range_expr,
    numeric_interval_empty,
)
from structgen.grammar.json_ranges import Bounds, number_language
from structgen.grammar.json_refs import DocumentRefs
from structgen.grammar.json_strings import (
    COUNTED_CHAR,
    STRING_PATTERN,
    PatternError,
    pattern_string_body,
    string_excluding,
)

if TYPE_CHECKING:
    from structgen.grammar.json_schema import JsonSchemaOptions

SHARE_ABOVE = 48
"""Expressions larger than this many nodes get a rule of their own before they are copied."""
RULE_CHAIN_ABOVE = 8
"""Objects with more leading optional properties than this get their member chain as rules."""
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# references stay refused even with checks: a remote one cannot be resolved by the check either
_REFERENCE_KEYWORDS = frozenset({"$ref", "$dynamicRef", "$recursiveRef", "$id"})

MAX_UNROLLED_COUNT = 256
"""Larger minLength/maxLength/minItems/maxItems bounds are enforced by a check, not unrolled."""
EARLY_UNIQUE_ITEMS = 32
"""``uniqueItems`` is checked as each item completes up to this many items (one rule per
position; left recursion is not allowed in the rule table), then only by the array's check."""
_RANK = {"annotation": 0, "grammar": 1, "check": 2, "refused": 3}
NEVER: Expr = Alt(())
"""The empty language (only inside rule tables; removed before the grammar is returned)."""


def escape_token(token: str) -> str:
    """Escape one JSON pointer token (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return token.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class SchemaCtx:
    """Where the lowering is: the JSON pointer (``#/properties/a``) of the current subschema."""

    pointer: str

    def child(self, *tokens: str | int) -> SchemaCtx:
        return SchemaCtx(self.pointer + "".join("/" + escape_token(str(t)) for t in tokens))

    def at(self, keyword: str) -> str:
        return self.child(keyword).pointer


def is_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (``bool`` is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def has_type(value: Any, name: str, *, integral_floats: bool = True) -> bool:
    """Whether the JSON value ``value`` is of JSON Schema type ``name``.

    ``integral_floats``: whether ``1.0`` is an integer (draft 6 and later; not in drafts 3/4).
    """
    if name == "integer":
        if isinstance(value, float) and not integral_floats:
            return False
        if isinstance(value, int):
            return not isinstance(value, bool)
        return isinstance(value, float) and value.is_integer()
    checks = {"object": Mapping, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if name == "number":
        return is_number(value)
    return isinstance(value, checks[name])


def json_equal(a: Any, b: Any) -> bool:
    """JSON Schema equality: numbers by value (``1 == 1.0``), booleans distinct from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def tree_size(expr: Expr, limit: int) -> int:
    """The number of nodes of ``expr`` as a tree (counting stops a little above ``limit``)."""
    count, todo = 0, [expr]
    while todo and count <= limit:
        node = todo.pop()
        count += 1
        if isinstance(node, (Seq, Alt)):
            todo.extend(node.items)
        elif isinstance(node, (Repeat, Check)):
            todo.append(node.item)
    return count


class LoweringBase:
    """Shared state of one lowering: options, whitespace, report and the rule table."""

    def __init__(self, root: Mapping[str, Any] | bool, options: JsonSchemaOptions) -> None:
        self.root = root
        self.options = options
        pattern = options.whitespace_regex
        self.ws: Expr = Regex(pattern) if pattern else EMPTY
        self.sep = seq(self.ws, lit(","), self.ws)
        self.colon = seq(self.ws, lit(":"), self.ws)
        self.report: dict[str, KeywordStatus] = {}
        self.rules: dict[str, Expr] = {"start": NEVER}
        self.rule_names: dict[str, str] = {"#": "start"}
        self.rule_pointers: dict[str, str] = {"start": "#"}
        self.never_reason: tuple[str, str] | None = None
        self.need_any = False
        self.checked_keywords: dict[str, set[str]] = {}  # pointer -> keywords left to a check
        self._pending_refs: list[tuple[str, Any, str]] = []  # $ref rules left to lower
        seconds = options.max_seconds
        self._limit = (time.monotonic() + seconds, seconds) if seconds is not None else None
        self.root_text = canonical(root)
        # subschemas whose checks refuse every value are pruned (``json_contradictions``) unless
        # that leaves the document unsatisfiable (``SchemaLowering._keep_contradictions``)
        self.prune_contradictions = True
        self.contradictions: list[tuple[str, str]] = []
        self.unsatisfiable_notes: tuple[str, ...] = ()

    def lower(self, schema: Any, ctx: SchemaCtx) -> Expr | None:
        """The IR for the JSON texts valid under ``schema``; ``None`` if there are none."""
        raise NotImplementedError

    def tick(self) -> None:
        """Raise ``LimitExceeded`` once the lowering has run past ``limits.max_seconds``."""
        if self._limit is not None and time.monotonic() > self._limit[0]:
            raise LimitExceeded(
                f"lowering the schema took longer than its limit of {self._limit[1]:g} s",
                hint="simplify the schema, or raise CompileLimits.max_seconds (limits=)",
            )

    @functools.cached_property
    def refs(self) -> DocumentRefs:
        """``$ref`` resolution in this document."""
        return DocumentRefs(self.root)

    @functools.cached_property
    def dialect(self) -> Any:
        """The ``jsonschema`` validator class of the document (its ``$schema``, else 2020-12)."""
        import jsonschema

        default = jsonschema.Draft202012Validator
        root = self.root if isinstance(self.root, Mapping) else {}
        if not isinstance(root.get("$schema", ""), str):
            self._invalid(
                "#/$schema", "$schema", f"$schema must be a URI string, got {root['$schema']!r}"
            )
        if "$schema" not in root and self.refs.draft:  # a draft-7-shaped document: see refs
            root = {"$schema": self.refs.draft}
        return jsonschema.validators.validator_for(root, default=default)

    @functools.cached_property
    def integral_floats(self) -> bool:
        """Whether the dialect counts ``1.0`` as an integer (draft 6 and later; not 3 and 4)."""
        return bool(self.dialect.TYPE_CHECKER.is_type(1.0, "integer"))

    def _mark(
        self, ctx: SchemaCtx, keyword: str, status: str, note: str = "", force: bool = False
    ) -> None:
        pointer = ctx.at(keyword)
        old = self.report.get(pointer)
        if force or old is None or _RANK[status] > _RANK[old.status]:
            self.report[pointer] = KeywordStatus(pointer, keyword, status, note)  # type: ignore[arg-type]

    def _note(self, ctx: SchemaCtx, keyword: str, note: str) -> None:
        """Attach ``note`` to a keyword the grammar enforces (a generation restriction)."""
        old = self.report.get(ctx.at(keyword))
        if old is None or old.status == "grammar":
            self._mark(ctx, keyword, "grammar", note, force=True)

    def _refuse(self, ctx: SchemaCtx, keyword: str, message: str) -> None:
        if (
            self.options.semantic_checks
            and keyword not in _REFERENCE_KEYWORDS
            and (keyword != "format" or self._format_checkable(ctx))
        ):
            # the grammar skips the keyword (an over-approximation); a check on this subschema
            # restores exactness (see SchemaLowering.lower)
            self.checked_keywords.setdefault(ctx.pointer, set()).add(keyword)
            self._mark(ctx, keyword, "check", f"validated on completion: {message}")
            return
        if not self.options.best_effort:
            raise UnsupportedFeature(
                message,
                location=ctx.at(keyword),
                keyword=keyword,
                hint="pass best_effort=True to skip it (reported as refused)",
            )
        self._mark(ctx, keyword, "refused", message)

    def _format_checkable(self, ctx: SchemaCtx) -> bool:
        """Whether the checks can assert this ``format`` (otherwise it would pass silently):
        the checker they use (``json_formats.format_checker``) has it."""
        from structgen.grammar.json_refs import resolve_pointer

        schema = resolve_pointer(self.root, ctx.pointer)
        name = schema.get("format") if isinstance(schema, Mapping) else None
        return name in format_checker(self.dialect).checkers

    def _invalid(self, pointer: str, keyword: str | None, message: str) -> NoReturn:
        raise InvalidSchema(message, location=pointer, keyword=keyword)

    def _never(self, ctx: SchemaCtx, reason: str, *, generic: bool = False) -> None:
        """Record why a subschema accepts nothing; return ``None``.

        The latest specific reason is reported if the whole schema turns out unsatisfiable; a
        ``generic`` one (no branch left) only when there is no other.
        """
        if self.never_reason is None or not generic and self.never_reason[0] != ctx.pointer:
            self.never_reason = (ctx.pointer, reason)
        return None

    def new_rule(self, prefix: str, pointer: str, expr: Expr = NEVER) -> str:
        """Add a rule named after ``pointer`` (unique); return its name."""
        base = prefix + "_" + (re.sub(r"[^0-9A-Za-z_]+", "_", pointer[2:]).strip("_") or "root")
        name, n = base, 1
        while name in self.rules:
            n += 1
            name = f"{base}_{n}"
        self.rules[name], self.rule_pointers[name] = expr, pointer
        return name

    def _share(self, expr: Expr, ctx: SchemaCtx, prefix: str = "p") -> Expr:
        """``expr``, moved into a rule of its own if it is large (it is about to be copied)."""
        if isinstance(expr, Ref) or tree_size(expr, SHARE_ABOVE) <= SHARE_ABOVE:
            return expr
        return Ref(self.new_rule(prefix, ctx.pointer, expr))

    def _any_value(self) -> Expr:
        self.need_any = True
        return Ref("json_value")

    def _any_object(self) -> Expr:
        self.need_any = True
        return Ref("json_object")

    def _any_array(self) -> Expr:
        self.need_any = True
        return Ref("json_array")

    def _any_rules(self) -> dict[str, Expr]:
        """The rules ``json_value``, ``json_object`` and ``json_array``: any JSON value."""
        value, string = Ref("json_value"), Regex(STRING_PATTERN)
        rules: dict[str, Expr] = {}
        for name, (open_, close), element in (
            ("json_object", "{}", seq(string, self.colon, value)),
            ("json_array", "[]", value),
        ):
            more = Repeat(seq(self.sep, element))
            rules[name] = alt(
                seq(lit(open_), self.ws, lit(close)),
                seq(lit(open_), self.ws, element, more, self.ws, lit(close)),
            )
        scalars = [string, Regex(NUMBER_PATTERN), *(lit(w) for w in ("true", "false", "null"))]
        rules["json_value"] = alt(Ref("json_object"), Ref("json_array"), *scalars)
        return rules


class TypeLowering(LoweringBase):
    """One method per instance type, each lowering the keywords that constrain that type."""

    def _count(
        self, schema: Mapping[str, Any], ctx: SchemaCtx, key: str, active: list[str]
    ) -> int | None:
        if key not in active:
            return None
        value = schema[key]
        if not is_number(value) or value < 0 or not float(value).is_integer():
            self._invalid(ctx.at(key), key, f"{key} must be a non-negative integer, got {value!r}")
        return int(value)

    def _unrolled(
        self, ctx: SchemaCtx, low: int, high: int | None, keys: tuple[str, str]
    ) -> tuple[int, int | None]:
        """``(low, high)`` with any bound above ``MAX_UNROLLED_COUNT`` taken out of the grammar
        (a bounded repeat unrolls one copy per count) and handed to a check instead."""
        if high is not None and high > MAX_UNROLLED_COUNT:
            self._refuse(
                ctx,
                keys[1],
                f"{keys[1]} {high} is above the grammar's unrolling limit ({MAX_UNROLLED_COUNT})",
            )
            high = None
        if low > MAX_UNROLLED_COUNT:
            self._refuse(
                ctx,
                keys[0],
                f"{keys[0]} {low} is above the grammar's unrolling limit ({MAX_UNROLLED_COUNT})",
            )
            low = 0
        return low, high

    def _bounds(
        self, schema: Mapping[str, Any], ctx: SchemaCtx, active: list[str]
    ) -> dict[str, Any] | None:
        """The numeric bounds in ``active``, validated, by keyword; ``None`` (the reason
        recorded) where no number satisfies them."""
        found = {}
        for key in BOUNDS:
            if key in active:
                value = schema[key]
                if isinstance(value, bool) and key.startswith("exclusive"):
                    self._refuse(ctx, key, f"boolean {key} (draft 4) is not supported")
                    continue
                if not is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
                    self._invalid(ctx.at(key), key, f"{key} must be a number, got {value!r}")
                found[key] = value
        if numeric_interval_empty(*(found.get(k) for k in BOUNDS)):
            return self._never(ctx.child(next(iter(found))), f"no number satisfies {found}")
        return found

    def _lower_string(
        self, schema: Mapping[str, Any], ctx: SchemaCtx, active: list[str]
    ) -> Expr | None:
        low = self._count(schema, ctx, "minLength", active) or 0
        high = self._count(schema, ctx, "maxLength", active)
        if high is not None and low > high:  # no string: other types may remain
            return self._never(ctx.child("maxLength"), f"minLength {low} > maxLength {high}")
        body = None
        restricted = False  # a format grammar that leaves out some valid strings
        if "format" in active:
            name = schema["format"]
            if not isinstance(name, str):
                self._invalid(ctx.at("format"), "format", "format must be a string")
            checker = format_checker(self.dialect).checkers.get(name)
            grammar = format_grammar(name) if checker is not None else None
            if grammar is not None and grammar_matches_checker(name, checker[0]):  # type: ignore[index]
                body = (grammar.expr, grammar.min_length, grammar.max_length, True)
                restricted = grammar.subset
                if grammar.notes:
                    restriction = "; ".join(grammar.notes)
                    self._note(ctx, "format", f"generation restriction: {restriction}")
            elif name in FORMATS:
                fmt = FORMATS[name]
                body = (Regex(fmt.regex), fmt.min_length, fmt.max_length, True)
            elif name in format_checker(self.dialect).checkers:
                # asserted whatever the declared draft (json_formats): e.g. date in draft 4
                self._refuse(
                    ctx,
                    "format",
                    f"format {name!r} is asserted by jsonschema's checker (every format some "
                    "draft defines is asserted, whatever the document's draft)",
                )
            elif name in dialect_formats(self.dialect):
                self._refuse(
                    ctx, "format", f"format {name!r} cannot be asserted (no checker for it)"
                )
            else:
                where = "by JSON Schema" if name not in ANY_DRAFT_FORMATS else "by this draft"
                self._mark(
                    ctx,
                    "format",
                    "annotation",
                    f"format {name!r} is not defined {where} and no checker asserts it: "
                    "validators ignore it, so it has no effect here either",
                    force=True,
                )
        if "pattern" in active:
            if body is not None:
                self._refuse(ctx, "pattern", "pattern together with format is not supported yet")
            else:
                try:
                    pat = pattern_string_body(schema["pattern"])
                except PatternError as exc:
                    if not exc.unsupported:
                        self._invalid(ctx.at("pattern"), "pattern", str(exc))
                    self._refuse(ctx, "pattern", str(exc))
                else:
                    body = (Regex(pat.regex), pat.min_length, pat.max_length, pat.anchored)
        if body is not None:
            body_expr, body_low, body_high, exact = body
            if low or high is not None:
                implied = (
                    exact
                    and body_low >= low
                    and (high is None or (body_high is not None and body_high <= high))
                )
                disjoint = exact and (
                    (high is not None and body_low > high)
                    or (body_high is not None and body_high < low)
                )
                if disjoint and restricted:
                    # the restricted grammar has none of these lengths, valid strings may:
                    # the format goes back to a check, the lengths to the grammar
                    self._refuse(
                        ctx,
                        "format",
                        "the format's grammar (a subset) has no string of this length",
                    )
                    body = None
                elif disjoint:
                    return self._never(ctx, "pattern/format and length bounds are disjoint")
                elif not implied:
                    for key in ("minLength", "maxLength"):
                        if key in active:
                            self._refuse(
                                ctx, key, f"{key} together with pattern/format is not supported yet"
                            )
            if body is not None:
                return seq(lit('"'), self._share(body_expr, ctx, "fmt"), lit('"'))
        low, high = self._unrolled(ctx, low, high, ("minLength", "maxLength"))
        if low or high is not None:
            return seq(lit('"'), Repeat(Regex(COUNTED_CHAR), low, high), lit('"'))
        return Regex(STRING_PATTERN)

    def _lower_integer(
        self, schema: Mapping[str, Any], ctx: SchemaCtx, active: list[str]
    ) -> Expr | None:
        bounds = self._bounds(schema, ctx, active)
        if bounds is None:
            return None
        fraction = self.integral_floats
        if "multipleOf" in active:
            return self._lower_numeric(schema, ctx, active, bounds, integer=True)
        if not bounds:
            return Regex(integer_pattern(fraction))
        low, high = integer_bounds(*(bounds.get(k) for k in BOUNDS))
        if any(b is not None and len(str(abs(b))) > MAX_RANGE_DIGITS for b in (low, high)):
            for key in bounds:
                self._refuse(
                    ctx, key, f"{key} has more than {MAX_RANGE_DIGITS} digits (no range regex)"
                )
            return Regex(integer_pattern(fraction))
        expr = integer_range_expr(low, high, fraction)
        if expr is None:
            return self._never(ctx, f"no integer satisfies {bounds}")
        return self._share(expr, ctx, "int")

    def _lower_number(
        self, schema: Mapping[str, Any], ctx: SchemaCtx, active: list[str]
    ) -> Expr | None:
        bounds = self._bounds(schema, ctx, active)
        if bounds is None:
            return None
        if not bounds and "multipleOf" not in active:
            return Regex(NUMBER_PATTERN)
        return self._lower_numeric(schema, ctx, active, bounds, integer=False)

    def _lower_numeric(
        self,
        schema: Mapping[str, Any],
        ctx: SchemaCtx,
        active: list[str],
        bounds: dict[str, Any],
        *,
        integer: bool,
    ) -> Expr | None:
        """Bounds and ``multipleOf`` of a number (or integer) as grammar (``json_ranges``):
        exact where the language allows, else a prefix-safe superset and a check."""
        multiple = None
        if "multipleOf" in active:
            multiple = schema["multipleOf"]
            if not is_number(multiple) or not math.isfinite(multiple) or multiple <= 0:
                self._invalid(
                    ctx.at("multipleOf"),
                    "multipleOf",
                    f"multipleOf must be a number > 0, got {multiple!r}",
                )
        limits = Bounds.of(*(bounds.get(k) for k in BOUNDS))
        verdict = None
        if multiple is not None:
            kind = "integer" if integer else "number"
            sub = {"type": kind, "multipleOf": multiple, **bounds}
            validator = self.dialect(sub)

            def verdict(text: str) -> bool:
                return bool(validator.is_valid(json.loads(text)))

        lang = number_language(
            limits,
            multiple,
            integer=integer,
            integral_floats=self.integral_floats,
            verdict=verdict,
        )
        restriction = _NUMBER_NOTES.get(lang.notes[0], "") if lang.notes else ""
        if lang.exact and restriction:
            for key in (*bounds, *(["multipleOf"] if multiple is not None else [])):
                self._note(ctx, key, restriction)
        if lang.expr is None and lang.exact:
            return self._never(ctx, f"no number satisfies {bounds} and multipleOf {multiple}")
        expr = lang.expr
        if expr is None:
            # multipleOf by a check; the bounds stay in the grammar
            base = number_language(
                limits, None, integer=integer, integral_floats=self.integral_floats
            )
            expr = base.expr
            if expr is None:
                return self._never(ctx, f"no number satisfies {bounds}")
        if not lang.exact:
            why = (
                restriction
                if lang.expr is None
                else "the grammar allows the range, where more digits always reach a multiple"
            )
            self._refuse(ctx, "multipleOf", f"multipleOf {multiple!r}: {why}")
        return self._share(expr, ctx, "num")

    def _lower_boolean(self, schema: Mapping[str, Any], ctx: SchemaCtx, active: list[str]) -> Expr:
        return alt(lit("true"), lit("false"))

    def _lower_null(self, schema: Mapping[str, Any], ctx: SchemaCtx, active: list[str]) -> Expr:
        return lit("null")

    # -- containers ------------------------------------------------------------------------------

    def _lower_object(
        self, schema: Mapping[str, Any], ctx: SchemaCtx, active: list[str]
    ) -> Expr | None:
        props = schema.get("properties", {}) if "properties" in active else {}
        if not isinstance(props, Mapping):
            self._invalid(ctx.at("properties"), "properties", "properties must be an object")
        required = schema.get("required", []) if "required" in active else []
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
            self._invalid(ctx.at("required"), "required", "required must be a list of strings")
        if self.dialect.__name__ == "Draft3Validator":  # draft 3: required is per property
            required = [
                k
                for k, sub in props.items()
                if isinstance(sub, Mapping) and sub.get("required") is True
            ]
        required = list(dict.fromkeys(required))
        explicit = "additionalProperties" in active
        if explicit:
            extra = self.lower(schema["additionalProperties"], ctx.child("additionalProperties"))
        elif "properties" in active and self.options.additional_properties == "declared":
            extra = None
        else:
            extra = self._any_value()
        if "patternProperties" in self.checked_keywords.get(ctx.pointer, ()):
            # A check enforces patternProperties: keys matching a pattern are valid even where
            # additionalProperties forbids or constrains extras, so the grammar must allow any
            # extra member (the over-approximation the check then narrows).
            extra, explicit = self._any_value(), True
        names = self._names_check(ctx)
        if not props and not required and extra == Ref("json_value") and names is None:
            return self._any_object()
        entries: list[tuple[Expr, bool]] = []
        parts: list[tuple[str, Expr, bool]] = []  # (name, value, required) of each member
        for key, sub in props.items():
            if names is not None and not names(json.dumps(key).encode()):
                if key in required:  # propertyNames rejects a required key
                    return self._never(ctx.child("propertyNames"), f"required {key!r} is invalid")
                continue  # a declared key propertyNames rejects can never appear
            value = self.lower(sub, ctx.child("properties", key))
            if value is None and key in required:  # the reason found inside is reported
                return self._never(
                    ctx.child("properties", key), f"required {key!r} is impossible", generic=True
                )
            if value is not None:
                entries.append((seq(self._key(key), self.colon, value), key in required))
                parts.append((key, value, key in required))
        undeclared = [k for k in required if k not in props]
        for key in undeclared:
            if names is not None and not names(json.dumps(key).encode()):
                return self._never(ctx.child("propertyNames"), f"required {key!r} is invalid")
            value = extra if explicit or extra is not None else self._any_value()
            if value is None:
                return self._never(ctx.child("required"), f"required {key!r} is not allowed")
            entries.append((seq(self._key(key), self.colon, value), True))
            parts.append((key, value, True))
        extra_member = None
        if extra is not None:
            try:
                key_expr = string_excluding([*props, *undeclared])
            except ValueError as exc:
                self._refuse(ctx, "properties", f"extra keys next to {exc}")
                key_expr = Regex(STRING_PATTERN)
            if names is not None:  # each key checked as it completes, not the whole object
                key_expr = Check(key_expr, names)
            extra_member = self._share(seq(key_expr, self.colon, extra), ctx, "extra")
        found = object_contradiction(
            schema, self.checked_keywords.get(ctx.pointer, set()), parts, extra is not None
        )
        if found is not None and self.prune_contradictions:
            self.contradictions.append(found)
            return self._never(ctx.child(found[0]), found[1])
        early = self._early_object(
            schema, ctx, parts, (key_expr, extra) if extra is not None else None, required
        )
        if early is not None:
            return early
        if self.options.property_order == "any" and len(entries) + (extra_member is not None) > 1:
            return self._members_any_order(entries, extra_member, tuple(required), ctx)
        # Members after the first (``tail``) and member lists starting here (``first``). ``first``
        # copies each tail, so members before the first required one are copied: share them.
        leading = next((i for i, (_, req) in enumerate(entries) if req), len(entries))
        if leading > 1:
            entries = [(self._share(m, ctx), req) for m, req in entries]
        tail: Expr = Repeat(seq(self.sep, extra_member)) if extra_member is not None else EMPTY
        first = seq(extra_member, tail) if extra_member is not None else None
        for i, (member, is_required) in reversed(list(enumerate(entries))):
            if RULE_CHAIN_ABOVE < i < leading:
                tail = Ref(self.new_rule("rest", ctx.pointer, tail))
            with_member = seq(member, tail)
            first = with_member if is_required or first is None else alt(with_member, first)
            tail = (
                seq(self.sep, member, tail)
                if is_required
                else seq(opt(seq(self.sep, member)), tail)
            )
        options = []
        if first is not None:
            options.append(seq(lit("{"), self.ws, first, self.ws, lit("}")))
        if not any(is_required for _, is_required in entries):
            options.append(seq(lit("{"), self.ws, lit("}")))
        return alt(*options)

    def _early_object(
        self,
        schema: Mapping[str, Any],
        ctx: SchemaCtx,
        parts: list[tuple[str, Expr, bool]],
        extra: tuple[Expr, Expr] | None,
        required: list[str],
    ) -> Expr | None:
        """The object as a chain checked on each key (``json_early_objects``) where a check on it
        enforces a keyword a prefix can decide; None to lower it plainly."""
        if self.options.property_order == "any" or not self.options.early_objects:
            return None
        checked = self.checked_keywords.get(ctx.pointer, set())
        order = [name for name, _, _ in parts]
        check = object_keys(schema, checked, order, required, extra is not None)
        if check is None:
            return None
        members = [(name, self._key(name), self._share(v, ctx), req) for name, v, req in parts]
        if extra is not None:
            extra = (extra[0], self._share(extra[1], ctx, "extra"))
        return early_object(self, ctx, members, extra, check)

    def _names_check(self, ctx: SchemaCtx) -> JsonSchemaCheck | None:
        """Early ``propertyNames``: the check of one key against the ``propertyNames`` subschema,
        where a check on this object enforces the keyword (it still does: this one only fires
        sooner, on each key, and rejects nothing the object's check would accept)."""
        if "propertyNames" not in self.checked_keywords.get(ctx.pointer, ()):
            return None
        if self.refs.uncheckable(ctx.pointer) is not None:
            return None
        pointer = ctx.at("propertyNames")
        return JsonSchemaCheck(self.root_text, pointer, ("propertyNames",), draft=self.refs.draft)

    def _members_any_order(
        self,
        entries: list[tuple[Expr, bool]],
        extra_member: Expr | None,
        required: tuple[str, ...],
        ctx: SchemaCtx,
    ) -> Expr:
        """Members in any order: the grammar allows any sequence of declared or extra members,
        and a check keeps names distinct and the required ones present (exact)."""
        choices = [member for member, _ in entries]
        if extra_member is not None:
            choices.append(extra_member)
        member = self._share(alt(*choices), ctx, "member")
        body = seq(lit("{"), self.ws, member, Repeat(seq(self.sep, member)), self.ws, lit("}"))
        checked = Check(body, DistinctKeys(required))
        if required:
            return checked
        return alt(checked, seq(lit("{"), self.ws, lit("}")))

    def _key(self, key: str) -> Expr:
        spellings = [json.dumps(key), json.dumps(key, ensure_ascii=False)]
        return alt(*(lit(s) for s in spellings if encodable(s)))

    def _lower_array(
        self, schema: Mapping[str, Any], ctx: SchemaCtx, active: list[str]
    ) -> Expr | None:
        low = self._count(schema, ctx, "minItems", active) or 0
        high = self._count(schema, ctx, "maxItems", active)
        if high is not None and low > high:  # no array: other types may remain
            return self._never(ctx.child("maxItems"), f"minItems {low} > maxItems {high}")
        need = low  # the real minimum, for the satisfiability tests below
        low, high = self._unrolled(ctx, low, high, ("minItems", "maxItems"))
        unique = schema.get("uniqueItems") is True and "uniqueItems" in self.checked_keywords.get(
            ctx.pointer, ()
        )
        counts = self._contains_counts(schema, ctx)
        prefix: list[Expr] = []
        cap = high
        if "prefixItems" in active:
            subs = schema["prefixItems"]
            if not isinstance(subs, list) or not subs:
                self._invalid(ctx.at("prefixItems"), "prefixItems", "must be a non-empty list")
            for i, sub in enumerate(subs):
                expr = self.lower(sub, ctx.child("prefixItems", i))
                if expr is None:
                    cap = i if cap is None else min(cap, i)
                    break
                prefix.append(expr)
        item: Expr | None
        if "items" not in active:
            if not prefix and not low and high is None and cap is None and not unique:
                if counts is None:
                    return self._any_array()
            item = self._any_value()
        elif isinstance(schema["items"], list):
            self._refuse(
                ctx,
                "items",
                "the array form of items (draft 2019-09 and earlier) is "
                "not supported yet; use prefixItems",
            )
            item = self._any_value()
        else:
            item = self.lower(schema["items"], ctx.child("items"))
        if item is None:
            cap = len(prefix) if cap is None else min(cap, len(prefix))
        elif unique and "items" in active:
            distinct = self._distinct_values(schema["items"], ctx.child("items").pointer)
            if distinct is not None and (cap is None or len(prefix) + distinct < cap):
                # uniqueItems over a few values: no more items than distinct values, so the
                # separator after the last possible item is refused (not the item after it)
                cap = len(prefix) + distinct
                if need > cap:
                    return self._never(
                        ctx.child("uniqueItems"),
                        f"minItems {need}, but the items can take only {distinct} distinct "
                        f"values after {len(prefix)} prefixItems",
                    )
        if cap is not None and need > cap:
            return self._never(ctx, "no array length is possible")
        prefix = prefix[:cap] if cap is not None else prefix
        if counts is not None:
            early = early_contains(self, ctx, prefix, item, counts, (low, cap), unique)
            if isinstance(early, NoArray):
                if self.prune_contradictions:
                    self.contradictions.append(("contains", early.reason))
                    return self._never(ctx.child("contains"), early.reason)
            elif early is not None:
                return early
        empty = seq(lit("["), self.ws, lit("]"))
        if cap == 0:
            return empty
        count = len(prefix)
        if unique:
            nonempty = self._unique_items(prefix, item, low, cap, ctx)
            return alt(nonempty, empty) if low == 0 else nonempty
        # ``tail``: the elements after the first, built from the end
        if item is None or (cap is not None and cap <= count):
            tail: Expr = EMPTY
        else:
            first_rest = max(count, 1)  # index of the first element that ``item`` governs
            tail = Repeat(
                seq(self.sep, item),
                max(low - first_rest, 0),
                None if cap is None else cap - first_rest,
            )
        for i in range(count - 1, 0, -1):
            step = seq(self.sep, prefix[i], tail)
            tail = step if i < low else opt(step)
        head = prefix[0] if prefix else item
        assert head is not None
        nonempty = seq(lit("["), self.ws, head, tail, self.ws, lit("]"))
        return alt(nonempty, empty) if low == 0 else nonempty

    def _contains_counts(
        self, schema: Mapping[str, Any], ctx: SchemaCtx
    ) -> tuple[int, int | None] | None:
        """Early ``contains``: ``(minContains, maxContains)`` where a check on this array
        enforces ``contains`` and the counts can live in the grammar (``json_early_arrays``)."""
        if "contains" not in schema or "contains" not in self.checked_keywords.get(ctx.pointer, ()):
            return None
        if self.refs.uncheckable(ctx.pointer) is not None:
            return None
        return contains_counts(schema, self.dialect.__name__)

    def _distinct_values(self, schema: Any, pointer: str) -> int | None:
        """How many distinct (JSON-unequal) values the item schema at ``pointer`` allows, where
        it is a finite set of values (``json_early_arrays.finite_values``); else None."""
        values = finite_values(schema)
        if values is None:
            return None
        check = JsonSchemaCheck(self.root_text, pointer, draft=self.refs.draft)
        kept: list[Any] = []
        for value in values:
            text = json.dumps(value, separators=(",", ":")).encode()
            if check(text) and not any(json_equal(value, k) for k in kept):
                kept.append(value)
        return len(kept)

    def _unique_items(
        self, prefix: list[Expr], item: Expr | None, low: int, cap: int | None, ctx: SchemaCtx
    ) -> Expr:
        """A non-empty ``uniqueItems`` array whose item prefixes are checked as each item
        completes (``UniqueLastItem``): rule ``k`` is the first ``k`` items, ``k - 1`` items
        then a separator and one more item, checked; a prefix extends only after its check
        passed, so the token completing a duplicate item is rejected. Past
        ``EARLY_UNIQUE_ITEMS`` items the rest is a plain repeat (the array's own check still
        covers it). The language is unchanged: every prefix of a valid array passes."""
        check = UniqueLastItem()
        shared = self._share(item, ctx) if item is not None else None
        most = len(prefix) if shared is None else cap  # None: unbounded
        chain = EARLY_UNIQUE_ITEMS if most is None else most
        chain = max(min(chain, EARLY_UNIQUE_ITEMS), len(prefix), low, 1)
        ends: list[Expr] = []
        previous: str | None = None
        for k in range(1, chain + 1):
            element = prefix[k - 1] if k <= len(prefix) else shared
            assert element is not None
            body = (
                element if previous is None else Check(seq(Ref(previous), self.sep, element), check)
            )
            previous = self.new_rule("unique", ctx.pointer, body)
            if k >= max(low, 1):
                ends.append(Ref(previous))
        assert previous is not None
        if shared is not None and (most is None or most > chain):
            rest = Repeat(seq(self.sep, shared), 1, None if most is None else most - chain)
            ends.append(seq(Ref(previous), rest))
        return seq(lit("["), self.ws, alt(*ends), self.ws, lit("]"))


_NUMBER_NOTES = {
    "exponent": "exact; generation restriction: exponent spellings only with one leading "
    "digit (1.5e3, not 15e2)",
    "integer-multiples": "exact; generation restriction: integral multiples spelled as integers "
    "(and n.0 up to 15 digits), not 6e0",
    "float-multiple-range": "generation restriction: a float multipleOf (5.0) divides exactly "
    "only up to 2^52 in magnitude; larger values are not generated",
    "fraction-multiples": "exact for plain spellings: the multiples jsonschema's float "
    "division accepts (0.07 is not a multiple of 0.01 for it)",
    "fraction-multiples-check": "checked: jsonschema's float division decides; unbounded or "
    "too many multiples to spell out, so a value such as 0.07 (for 0.01) can still be a dead end",
}


def within(value: int | float, bounds: dict[str, Any]) -> bool:
    """Whether the number ``value`` satisfies ``bounds`` (keyword -> bound), exactly."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    v = Fraction(value)
    checks = {
        "minimum": lambda b: v >= b,
        "maximum": lambda b: v <= b,
        "exclusiveMinimum": lambda b: v > b,
        "exclusiveMaximum": lambda b: v < b,
    }
    return all(checks[k](Fraction(b)) for k, b in bounds.items())


def encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogates), so it can be a UTF-8 literal."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


__all__ = [
    "BOUNDS",
    "NEVER",
    "LoweringBase",
    "SchemaCtx",
    "TypeLowering",
    "encodable",
    "escape_token",
    "has_type",
    "is_number",
    "json_equal",
    "within",
]
