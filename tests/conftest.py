"""Shared fixtures: the default model (SmolLM2-135M-Instruct) and its tokenizer.

Tests never reach the network: the Hugging Face libraries are forced offline here, before any
test module imports them (huggingface_hub reads these variables once, at import).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from tokenizers

from typing import Any  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smollm2() -> tuple[Any, Any]:
    """``(model, tokenizer)`` of SmolLM2-135M-Instruct, float32, from the structgen model cache.

    ``make test`` provisions the cache first (``make model``); without it, the first use converts
    the GGUF file (~20 s). Tests using this fixture must be marked ``@pytest.mark.slow``.
    """
    from structgen.models import load_default_model

    return load_default_model()


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> Any:
    """The SmolLM2 tokenizer alone: from the model cache if there is one (~0.2 s), else read from
    the GGUF file (~7 s). Needs no slow mark."""
    from structgen.models import load_default_tokenizer

    return load_default_tokenizer()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test that loads the real model through ``smollm2`` without the ``slow`` mark, so
    ``-m "not slow"`` really skips every model load. (A module that defines its own fixture named
    ``smollm2`` is not affected.)"""
    fixture_info = getattr(item, "_fixtureinfo", None)
    definitions = fixture_info.name2fixturedefs.get("smollm2", ()) if fixture_info else ()
    if (
        definitions
        and definitions[-1].func.__module__ == __name__
        and item.get_closest_marker("slow") is None
    ):
        pytest.fail(
            f"{item.nodeid} uses the `smollm2` fixture (loads the real model) but is not marked "
            "@pytest.mark.slow",
            pytrace=False,
        )
