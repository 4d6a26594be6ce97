"""``$ref`` resolution inside one schema document, with the ``referencing`` library (jsonschema's).

One job: map a ``$ref`` written at some JSON pointer of the document to the JSON pointer of its
target in the same document. Resolution follows the spec (base URIs from ``$id``/``id``, anchors,
relative references, ``urn:`` ids), because ``referencing`` implements it; the lowering keeps
working in JSON pointers, so rules and semantic checks stay keyed by a place in the document.

A reference whose target lies outside the document (another file, a metaschema) raises
``RemoteRef``: nothing is fetched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import referencing
import referencing.exceptions
from referencing.jsonschema import DRAFT7, DRAFT201909, DRAFT202012, specification_with

_DEFAULT_BASE = "urn:structgen:document"


BUNDLED = "structgen:bundled"
"""The ``$defs`` member under which ``bundle`` embeds the registry's documents."""


def bundle(root: Any, registry: Mapping[str, Any]) -> Any:
    """``root`` with the documents of ``registry`` (URI -> schema) embedded as resources, so that
    ``$ref``s to those URIs resolve inside one compound document (JSON Schema 2020-12, 9.3).

    Each document is embedded with ``$id`` set to its URI (where it has none of its own) under
    ``$defs/structgen:bundled/<i>`` (``definitions`` for drafts before 2019-09).

    Raises:
        TypeError: ``registry`` is not a mapping of URI strings to schemas.
    """
    if not isinstance(registry, Mapping) or not all(isinstance(k, str) for k in registry):
        raise TypeError("registry must map URI strings to schemas")
    if not registry or not isinstance(root, Mapping):
        return root
    embedded = {}
    for i, (uri, schema) in enumerate(sorted(registry.items())):
        if isinstance(schema, Mapping) and not isinstance(schema.get("$id"), str):
            schema = {"$id": uri, **schema}
        elif not isinstance(schema, Mapping):
            schema = {"$id": uri, "allOf": [schema]}
        embedded[str(i)] = schema
    legacy = dialect_spec(root) not in (DRAFT202012, DRAFT201909)
    container = "definitions" if legacy else "$defs"
    defs = dict(root.get(container) or {})
    defs[BUNDLED] = {container: embedded} if legacy else {"$defs": embedded}
    return {**root, container: defs}


_ONE_SUBSCHEMA = frozenset(
    "additionalProperties additionalItems items contains propertyNames not if then else "
    "unevaluatedItems unevaluatedProperties contentSchema".split()
)
_SUBSCHEMA_MAPS = frozenset("properties patternProperties dependentSchemas dependencies".split())
_SUBSCHEMA_LISTS = frozenset("allOf anyOf oneOf prefixItems items".split())
"""Keywords whose values validation enters (``$defs`` only through a ``$ref``)."""


class RemoteRef(LookupError):
    """The reference points outside the document."""


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _tokens(pointer: str) -> list[str]:
    body = pointer.lstrip("#")
    if not body:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in body.lstrip("/").split("/")]


def resolve_pointer(root: Any, pointer: str) -> Any:
    """The node of ``root`` at JSON pointer ``pointer`` (``#/a/0/b~1c``)."""
    node = root
    for token in _tokens(pointer):
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def dialect_spec(root: Any) -> Any:
    """The ``referencing`` specification of the document's ``$schema`` (2020-12 by default)."""
    dialect = root.get("$schema") if isinstance(root, Mapping) else None
    if not isinstance(dialect, str):
        return DRAFT202012
    return specification_with(dialect, default=DRAFT202012)


def scoped_resolver(resolver: Any, spec: Any, root: Any, pointer: str) -> Any:
    """``resolver`` moved into the base-URI scope of ``pointer`` (each ``$id`` on the way)."""
    node = root
    for token in _tokens(pointer):
        node = node[int(token)] if isinstance(node, list) else node[token]
        if isinstance(node, Mapping) and _has_id(spec, node):
            resolver = resolver.in_subresource(spec.create_resource(node))
    return resolver


def _has_id(spec: Any, node: Mapping[str, Any]) -> bool:
    """Whether ``node`` declares a base URI (a container such as ``properties`` may have a member
    named ``$id`` or ``id`` whose value is a schema, not a URI)."""
    value = node.get("$id", node.get("id"))
    if not isinstance(value, str):
        return False
    try:
        return isinstance(spec.id_of(node), str)
    except (AttributeError, TypeError):
        return False


class DocumentRefs:
    """The resources, anchors and pointers of one schema document."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.spec = dialect_spec(root)
        self.draft = ""  # the dialect URI when guessed (the document names none), else ""
        try:
            self._crawl()
        except (AttributeError, TypeError):
            # no $schema and a draft-7 shape (array-form items...): read it as draft 7
            try:
                self.spec = DRAFT7
                self._crawl()
                self.draft = "http://json-schema.org/draft-07/schema#"
            except (AttributeError, TypeError):  # malformed somewhere: the lowering says where
                self.spec = dialect_spec(root)
                self._crawl(crawl=False)
        self._pointers: dict[int, str] = {}
        stack: list[tuple[Any, str]] = [(root, "#")]
        while stack:
            node, pointer = stack.pop()
            if isinstance(node, Mapping):
                self._pointers.setdefault(id(node), pointer)
                stack.extend((v, f"{pointer}/{_escape(str(k))}") for k, v in node.items())
            elif isinstance(node, list):
                self._pointers.setdefault(id(node), pointer)
                stack.extend((v, f"{pointer}/{i}") for i, v in enumerate(node))

    def _crawl(self, crawl: bool = True) -> None:
        resource = self.spec.create_resource(self.root)
        try:
            self.base = resource.id() or _DEFAULT_BASE
        except (AttributeError, TypeError):  # a malformed $id: the metaschema check says where
            if crawl:
                raise
            self.base = _DEFAULT_BASE
        self.registry = referencing.Registry().with_resource(self.base, resource)
        if crawl:
            self.registry = self.registry.crawl()

    def resolver_at(self, pointer: str) -> Any:
        """The ``referencing`` resolver in scope at ``pointer`` (nested ``$id``s applied)."""
        return scoped_resolver(
            self.registry.resolver(base_uri=self.base), self.spec, self.root, pointer
        )

    def dynamic_anchors(self, name: str) -> int:
        """How many objects in the document declare ``$dynamicAnchor: name`` (an upper bound on
        the schemas that do: values that merely look like schemas count too)."""
        count = 0
        stack: list[Any] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Mapping):
                count += node.get("$dynamicAnchor") == name
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        return count

    def uncheckable(self, pointer: str) -> str | None:
        """Why ``jsonschema`` could not evaluate the subschema at ``pointer`` (None if it can):
        a ``$ref``/``$dynamicRef`` whose target is not in this document, or a ``pattern`` /
        ``patternProperties`` regex Python's ``re`` cannot compile, anywhere validation can
        reach (subschema keywords and ``$ref`` targets, not ``$defs`` or values)."""
        node = resolve_pointer(self.root, pointer)
        seen = {pointer}
        stack: list[tuple[Any, str]] = [(node, pointer)]
        while stack:
            node, where = stack.pop()
            if not isinstance(node, Mapping):
                continue
            for key in ("$ref", "$dynamicRef"):
                ref = node.get(key)
                if isinstance(ref, str):
                    try:
                        found, target = self.target(ref, where)
                    except LookupError:
                        return (
                            f"$ref {ref!r}, which points outside this document (nothing is fetched)"
                        )
                    if found not in seen:
                        seen.add(found)
                        stack.append((target, found))
            patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
            if isinstance(node.get("patternProperties"), Mapping):
                patterns += list(node["patternProperties"])
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error:
                    return (
                        f"the regex {pattern!r}, which Python's re (used by checks) cannot compile"
                    )
            for key, value in node.items():
                at = f"{where}/{_escape(str(key))}"
                if key in _ONE_SUBSCHEMA:
                    stack.append((value, at))
                elif key in _SUBSCHEMA_MAPS and isinstance(value, Mapping):
                    stack.extend((v, f"{at}/{_escape(str(k))}") for k, v in value.items())
                elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
                    stack.extend((v, f"{at}/{i}") for i, v in enumerate(value))
        return None

    def target(self, ref: str, pointer: str) -> tuple[str, Any]:
        """``(pointer, subschema)`` of the target of ``ref`` written at ``pointer``.

        Raises:
            RemoteRef: the target is outside this document.
            LookupError: the reference cannot be resolved (dangling).
        """
        try:
            resolved = self.resolver_at(pointer).lookup(ref)
        except referencing.exceptions.Unresolvable as exc:
            if isinstance(exc, referencing.exceptions.NoSuchResource) or (
                not ref.startswith("#")
                and not isinstance(exc, referencing.exceptions.PointerToNowhere)
            ):
                raise RemoteRef(str(exc)) from exc
            raise LookupError(str(exc)) from exc
        contents = resolved.contents
        if isinstance(contents, bool):  # no identity to look up: name it after the reference
            return (ref if ref.startswith("#") else f"#{ref}"), contents
        found = self._pointers.get(id(contents))
        if found is None:
            raise RemoteRef(f"{ref!r} resolves outside this document")
        return found, contents


__all__ = [
    "BUNDLED",
    "DocumentRefs",
    "bundle",
    "resolve_pointer",
    "RemoteRef",
    "dialect_spec",
    "scoped_resolver",
]
