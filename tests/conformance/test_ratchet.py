"""Ratchets: per-category conformance on the JSON Schema Test Suite and a MaskBench sample.

Each category's count of right answers is pinned in ``ratchet.json`` beside this file; a test fails
when a category falls below its pinned count (a regression), and says which. An improvement
passes; pin it with ``STRUCTGEN_UPDATE_RATCHET=1 pytest tests/conformance``.

Judging is acceptance only, over a byte-level vocabulary (every byte a token; the languages are
the same for any vocabulary, and the token-level masks are tested elsewhere), with the spec
reading the benchmark runners use: ``additional_properties="spec"``, ``property_order="any"``.
The suite's remote documents are given as ``registry=``. A valid instance is right when its text
is accepted and complete; an invalid one when it is
rejected. A schema that does not compile counts all its cases wrong. Oracle: the suite's own
verdicts, and ``jsonschema`` (with formats) for MaskBench instances, as MaskBench labels them.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import structgen as sg
from benchmarks.maskbench import split_of  # the runners' own definitions
from benchmarks.test_suite import load_remotes

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SUITE = SHARED / "json-schema-test-suite" / "tests"
MASKBENCH = SHARED / "jsonschemabench" / "maskbench"
RATCHET = Path(__file__).with_name("ratchet.json")
VOCAB = sg.Vocabulary.byte_level([])
OPTIONS = {"additional_properties": "spec", "property_order": "any"}
MASKBENCH_SAMPLE = 120
DIALECTS = {"draft7": "http://json-schema.org/draft-07/schema#"}


def _accepts(compiled: sg.CompiledGrammar, text: str) -> bool:
    data = text.encode()
    m = compiled.matcher()
    return m.consume_tokens(list(data)) == len(data) and m.is_accepting()


def _right_answers(
    schema: Any, cases: list[tuple[str, bool]], registry: dict[str, Any] | None = None
) -> int:
    try:
        grammar = sg.Grammar.from_json_schema(schema, registry=registry, **OPTIONS)
        compiled = sg.compile(grammar, VOCAB)
    except sg.StructgenError:
        return 0
    return sum(_accepts(compiled, text) == valid for text, valid in cases)


def _suite_counts(draft: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    remotes = load_remotes(SUITE.parent / "remotes")
    for path in sorted((SUITE / draft).glob("*.json")):
        for group in json.loads(path.read_text()):
            cases = [(json.dumps(t["data"]), bool(t["valid"])) for t in group["tests"]]
            schema = group["schema"]
            if draft in DIALECTS and isinstance(schema, dict) and "$schema" not in schema:
                schema = {"$schema": DIALECTS[draft], **schema}  # as the benchmark runner does
            counts[path.stem] += _right_answers(schema, cases, remotes)
    return counts


def _maskbench_counts() -> Counter[str]:
    files = sorted(MASKBENCH.glob("*.json"))
    counts: Counter[str] = Counter()
    for path in random.Random(0).sample(files, MASKBENCH_SAMPLE):
        data = json.loads(path.read_text())
        cases = [(json.dumps(t["data"]), bool(t["valid"])) for t in data.get("tests", [])]
        if _right_answers(data["schema"], cases) == len(cases):
            counts[split_of(path.name)] += 1  # files whose every test is judged right
    return counts


def _compare(section: str, counts: Counter[str]) -> None:
    pinned: dict[str, dict[str, int]] = json.loads(RATCHET.read_text()) if RATCHET.exists() else {}
    if os.environ.get("STRUCTGEN_UPDATE_RATCHET"):
        pinned[section] = dict(sorted(counts.items()))
        RATCHET.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
        return
    assert section in pinned, f"no ratchet for {section}: run with STRUCTGEN_UPDATE_RATCHET=1"
    worse = {
        key: f"{counts.get(key, 0)} < {floor}"
        for key, floor in pinned[section].items()
        if counts.get(key, 0) < floor
    }
    assert not worse, f"{section}: categories below their ratchet: {worse}"


@pytest.mark.slow
@pytest.mark.skipif(not SUITE.is_dir(), reason="the JSON Schema Test Suite is not at ../shared")
@pytest.mark.parametrize("draft", ["draft2020-12", "draft7"])
def test_json_schema_test_suite_ratchet(draft: str) -> None:
    _compare(f"test-suite/{draft}", _suite_counts(draft))


@pytest.mark.slow
@pytest.mark.skipif(not MASKBENCH.is_dir(), reason="MaskBench is not at ../shared")
def test_maskbench_sample_ratchet() -> None:
    _compare("maskbench-sample", _maskbench_counts())
