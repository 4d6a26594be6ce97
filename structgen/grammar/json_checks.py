"""Semantic checks for JSON Schema keywords a context-free grammar cannot express.

``JsonSchemaCheck(root, pointer)`` is a ``Check`` predicate: it parses the completed JSON value and
validates it with ``jsonschema`` against the subschema at ``pointer`` (``$ref`` resolved against
the root; formats asserted: every format any draft defines, whatever the document's draft). It is
exact by construction: the grammar over-approximates the value's language, and the check removes
exactly the values the validator rejects. Used for ``uniqueItems``, ``multipleOf`` on numbers,
``not``, ``if``/``then``/``else``, ``dependentRequired``/``dependentSchemas``, ``oneOf``
exclusivity, ``contains`` counts (also counted in the grammar: ``json_early_arrays``), unanchored
``pattern`` and ``format`` validity.

Deliberate simplification: the whole subschema is re-validated at completion (not only the
keywords the grammar missed); values are small, so this costs microseconds to a millisecond.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from typing import Any

import jsonschema
from referencing.jsonschema import DRAFT202012, specification_with

from structgen.errors import InternalError
from structgen.grammar.json_formats import format_checker
from structgen.grammar.json_refs import resolve_pointer, scoped_resolver

_VALIDATORS: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class JsonSchemaCheck:
    """Accept a JSON text iff it is valid under the subschema at ``pointer`` of ``root``.

    Args:
        root: the root schema as canonical JSON text (hashable, picklable).
        pointer: JSON pointer of the subschema, e.g. ``#/properties/tags``.
        keywords: the keywords this check enforces (for reports).
        draft: ``$schema`` URI to pick the validator when the root has none.
    """

    root: str
    pointer: str
    keywords: tuple[str, ...] = ()
    draft: str = ""

    def _validator(self) -> Any:
        key = (self.root, self.pointer, self.draft)
        validator = _VALIDATORS.get(key)
        if validator is None:
            root = json.loads(self.root)
            default = jsonschema.Draft202012Validator
            if self.draft:
                default = jsonschema.validators.validator_for({"$schema": self.draft}, default)
            cls = jsonschema.validators.validator_for(root, default=default)
            # every format any draft defines is asserted (see json_formats.format_checker)
            base = cls(root, format_checker=format_checker(cls))
            # the subschema validates in the base-URI scope of its place in the document (nested
            # $id), as jsonschema's own descent would give it
            # (jsonschema's descend passes ``_resolver`` the same way)
            spec = specification_with(cls.META_SCHEMA.get("$schema", ""), default=DRAFT202012)
            resolver = scoped_resolver(base._resolver, spec, root, self.pointer)
            validator = base.evolve(schema=resolve_pointer(root, self.pointer), _resolver=resolver)
            with _LOCK:
                _VALIDATORS[key] = validator
        return validator

    def __call__(self, data: bytes) -> bool:
        return _verdict(self, data)

    def describe(self) -> str:
        """Which keywords at which pointer this check enforces."""
        return f"{', '.join(self.keywords) or 'schema'} at {self.pointer}"


@dataclass(frozen=True)
class DistinctKeys:
    """Accept a JSON object text iff its member names are distinct (compared decoded) and every
    name in ``required`` is present: what members in any order need beyond the grammar."""

    required: tuple[str, ...] = ()

    def __call__(self, data: bytes) -> bool:
        return _distinct_keys(self, data)

    def describe(self) -> str:
        """What this check enforces."""
        return f"members in any order: distinct names, required {list(self.required)}"


@dataclass(frozen=True)
class UniqueLastItem:
    """Early ``uniqueItems``: accept the items of an array, written without their brackets
    (``1, "a", [2]``), iff the last item differs from every earlier one (JSON equality:
    ``1 == 1.0``, ``true != 1``, objects regardless of member order).

    The lowering puts it on each non-empty prefix of a ``uniqueItems`` array, left-recursively,
    so a prefix extends only after its own check passed: the earlier items are then distinct
    already and comparing the last one suffices. A prefix with a duplicate has no valid
    completion, so this rejects nothing the array's own check would accept (sound), and it
    rejects the token that completes a duplicate item instead of the closing bracket.
    """

    def __call__(self, data: bytes) -> bool:
        return _unique_last(data)

    def describe(self) -> str:
        """What this check enforces."""
        return "uniqueItems, on each item's completion"


@functools.lru_cache(maxsize=1 << 16)
def _unique_last(data: bytes) -> bool:
    try:
        items = json.loads(b"[" + data + b"]")
    except (ValueError, RecursionError):
        return False
    if not isinstance(items, list) or not items:
        return False
    last = items[-1]
    return not any(_json_equal(last, other) for other in items[:-1])


def _json_equal(a: Any, b: Any) -> bool:
    """JSON Schema equality (as jsonschema's ``uniqueItems`` and ``enum`` compare)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@functools.lru_cache(maxsize=1 << 16)
def _distinct_keys(check: DistinctKeys, data: bytes) -> bool:
    objects: list[list[tuple[str, Any]]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append(pairs)  # innermost objects first: the top-level one comes last
        return dict(pairs)

    try:
        json.loads(data, object_pairs_hook=hook)
    except (ValueError, RecursionError):  # not a value json.loads (result.value) can read
        return False
    if not objects:
        return False
    names = [name for name, _ in objects[-1]]
    return len(set(names)) == len(names) and set(check.required) <= set(names)


@functools.lru_cache(maxsize=1 << 16)
def _verdict(check: JsonSchemaCheck, data: bytes) -> bool:
    """Memoised: masks re-run the same completions often (the check itself is pure)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # not a value json.loads (result.value) can read
        return False
    try:
        return bool(check._validator().is_valid(value))
    except RecursionError:
        return False  # nested too deeply to validate: rejected (never accepted unchecked)
    except Exception as exc:  # noqa: BLE001 - compile time refuses what jsonschema cannot do
        raise InternalError(
            f"the check on {check.describe()} could not be evaluated: {type(exc).__name__}: {exc}",
            hint="please report the schema; compile time should have refused it",
        ) from exc


def canonical(schema: Any) -> str:
    """Canonical JSON text of a schema (stable key order) for ``JsonSchemaCheck.root``."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


__all__ = ["DistinctKeys", "JsonSchemaCheck", "UniqueLastItem", "canonical", "resolve_pointer"]
