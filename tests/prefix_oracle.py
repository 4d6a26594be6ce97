"""Brute-force oracle for prefix exactness on small, finite JSON languages.

``explore`` walks every byte sequence the matcher accepts (a byte vocabulary, compact layout, a
schema whose language is finite: enum values, bounded counts) and returns each live prefix and
each complete text. ``assert_prefix_exact`` then judges them with ``jsonschema`` alone:

* every complete text the engine accepts is valid, and every valid document of the given domain
  (spelled compactly) is accepted: the language is exact on the domain;
* every prefix the engine accepts extends to a complete text that is valid: no dead ends.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

import jsonschema
import pytest

import structgen as sg
from structgen.grammar.json_contradictions import unsatisfiable_note
from structgen.integrations.generate import resolve_constraint

VOCAB = sg.Vocabulary.byte_level([])


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def explore(compiled: sg.CompiledGrammar, limit: int = 60_000) -> tuple[list[bytes], set[bytes]]:
    """``(live prefixes, complete texts)`` of the engine's language (a finite one)."""
    eos = set(compiled.vocab.eos_token_ids)
    token_bytes = compiled.vocab.token_bytes
    prefixes: list[bytes] = []
    complete: set[bytes] = set()
    stack: list[tuple[bytes, list[int]]] = [(b"", [])]
    while stack:
        text, path = stack.pop()
        assert len(prefixes) < limit, "the language is too large to explore"
        m = compiled.matcher()
        assert m.consume_tokens(path) == len(path)
        prefixes.append(text)
        if m.is_accepting():
            complete.add(text)
        for tid in m.allowed_token_ids().tolist():
            if tid not in eos:
                stack.append((text + token_bytes[tid], [*path, tid]))
    return prefixes, complete


def assert_prefix_exact(
    schema: Any,
    domain: Iterable[Any],
    *,
    draft: Any = jsonschema.Draft202012Validator,
    dead_ends: bool = False,
    **options: Any,
) -> sg.CompiledGrammar:
    """Compile ``schema`` (compact layout) and check it against ``jsonschema`` (see above);
    ``dead_ends=True`` skips the prefix part (the language alone is compared)."""
    compiled = sg.compile(
        sg.Grammar.from_json_schema(
            schema, whitespace="compact", **{"early_objects": True, **options}
        ),
        VOCAB,
    )
    validator = draft(schema, format_checker=draft.FORMAT_CHECKER)
    prefixes, complete = explore(compiled)
    for text in complete:
        assert validator.is_valid(json.loads(text)), f"accepted but invalid: {text!r}"
    valid_domain = {compact(v) for v in domain if validator.is_valid(v)}
    missing = valid_domain - complete
    assert not missing, f"valid but rejected: {sorted(missing)[:5]}"
    for prefix in [] if dead_ends else prefixes:
        assert any(t.startswith(prefix) for t in complete), f"dead end after {prefix!r}"
    return compiled


def rejected_at(compiled: sg.CompiledGrammar, data: bytes) -> int | None:
    """Index of the first byte the engine rejects in ``data``, or None if it takes every byte."""
    m = compiled.matcher()
    for i in range(len(data)):
        if not m.consume_bytes(data[i : i + 1]):
            return i
    return None


def assert_rejections_sound(
    compiled: sg.CompiledGrammar, texts: dict[bytes, bool]
) -> list[tuple[bytes, int]]:
    """Feed each text of a corpus (text -> valid under the schema) byte by byte. A text the
    engine takes whole must be complete exactly when it is valid; where it rejects a byte, the
    text must be invalid and so must every text of the corpus with that prefix (a rejected
    prefix has no valid completion among them). Returns ``(text, index of the rejected byte)``
    for each rejected text, for the caller to judge how early the rejections came."""
    rejected: list[tuple[bytes, int]] = []
    for data, valid in texts.items():
        cut = rejected_at(compiled, data)
        if cut is None:
            m = compiled.matcher()
            m.consume_bytes(data)
            assert m.is_accepting() == valid, data
            continue
        assert not valid, data  # a valid document is never rejected
        prefix = data[: cut + 1]
        completions = [d for d in texts if d.startswith(prefix)]
        assert not any(texts[d] for d in completions), (prefix, completions)
        rejected.append((data, cut))
    return rejected


def objects(keys: list[str], values: list[Any], *, any_order: bool) -> list[dict[str, Any]]:
    """Every object over ``keys`` (a subset, in key order or every order) and ``values``."""
    out: list[dict[str, Any]] = []
    for n in range(len(keys) + 1):
        groups = itertools.permutations(keys, n) if any_order else itertools.combinations(keys, n)
        for names in groups:
            for vals in itertools.product(values, repeat=n):
                out.append(dict(zip(names, vals, strict=True)))
    return out


def arrays(values: list[Any], most: int) -> list[list[Any]]:
    """Every array of up to ``most`` items from ``values``."""
    return [list(t) for n in range(most + 1) for t in itertools.product(values, repeat=n)]


def assert_unsatisfiable(schema: Any, where: str, domain: Iterable[Any] = ()) -> None:
    """``schema`` is unsatisfiable through its checks, found at ``where``: it still compiles for
    validation (its checks refuse every document of ``domain``: jsonschema's verdict too) with a
    note naming ``where``, and ``generate`` refuses it up front with ``InvalidSchema`` there."""
    grammar = sg.Grammar.from_json_schema(schema, whitespace="compact")
    found = unsatisfiable_note(grammar.notes)
    assert found is not None and found[0] == where, grammar.notes
    with pytest.raises(sg.InvalidSchema, match="unsatisfiable") as info:
        resolve_constraint(VOCAB, schema=schema)
    assert info.value.location == where
    compiled = sg.compile(grammar, VOCAB)
    validator = jsonschema.validators.validator_for(schema)(schema)
    for value in domain:
        assert not validator.is_valid(value), value
        m = compiled.matcher()
        assert not (m.consume_bytes(compact(value)) and m.is_accepting()), value
