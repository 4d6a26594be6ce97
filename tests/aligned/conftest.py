"""Fixtures of the grammar-aligned sampler tests: the toy world and its exact distributions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from toy_world import GRAMMAR, MAX_TOKENS, PROMPT, text_of, toy_lm

from structgen.aligned import ExactDistribution, enumerate_language


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """These tests run thousands of tiny tensor ops; intra-op threads only add sync overhead
    (10x slower on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world() -> tuple[object, ExactDistribution, dict[bytes, float], dict[bytes, float]]:
    """``(lm, exact, target, lcd)``: target and locally masked distributions over strings."""
    lm = toy_lm()
    exact = enumerate_language(lm, GRAMMAR, PROMPT, max_tokens=MAX_TOKENS)
    target = exact.by_key(exact.target(), text_of)
    lcd = exact.by_key(exact.lcd(), text_of)
    return lm, exact, target, lcd  # type: ignore[return-value]
