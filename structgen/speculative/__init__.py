"""Speculative constrained decoding: drafters propose, the grammar cuts, the target verifies.

See ``loop`` for the decode loop, ``verify`` for the acceptance rules (greedy, Gumbel-coupled,
and the ``min(1, p~/q)`` rule on masked distributions), ``drafters`` and ``model_drafters`` for
the drafters, and ``adaptive`` for the draft-length policy.

    >>> result = structgen.generate(model, tok, prompt, schema=schema, speculative="auto")
    >>> result.stats.accepted_tokens, result.stats.forward_passes
"""

from __future__ import annotations

import threading
from typing import Any

from structgen.errors import ConfigurationError
from structgen.speculative.adaptive import AdaptiveDraftLength, DraftLength, FixedDraftLength
from structgen.speculative.base import Drafter, DraftRequest, Proposal
from structgen.speculative.drafters import CombinedDrafter, ForcedDrafter, PromptLookupDrafter
from structgen.speculative.loop import (
    SpeculativeOutcome,
    SpeculativeStats,
    decode_speculative,
)
from structgen.speculative.model_drafters import LayerSkipDrafter, ModelDrafter

__all__ = [
    "AdaptiveDraftLength",
    "CombinedDrafter",
    "DraftLength",
    "DraftRequest",
    "Drafter",
    "FixedDraftLength",
    "ForcedDrafter",
    "LayerSkipDrafter",
    "ModelDrafter",
    "PromptLookupDrafter",
    "Proposal",
    "SpeculativeOutcome",
    "SpeculativeStats",
    "decode_speculative",
    "default_drafter",
    "resolve_drafter",
]


def default_drafter() -> Drafter:
    """The ``speculative="auto"`` drafter: prompt look-up and grammar-forced text, per step
    the longer valid proposal (look-up on ties)."""
    return CombinedDrafter([PromptLookupDrafter(), ForcedDrafter()])


_AUTO = threading.local()


def resolve_drafter(spec: Any) -> Drafter:
    """A drafter from ``generate``'s ``speculative=`` argument.

    Parameters
    ----------
    spec : "auto", Drafter or model
        ``"auto"`` (a ``default_drafter()`` kept per thread, so its draft-length policy keeps
        what it learned between generations), a ``Drafter``, or a causal LM with the target's
        tokenizer (wrapped in a ``ModelDrafter``).

    Raises
    ------
    ConfigurationError
        ``spec`` is none of these.
    """
    if isinstance(spec, Drafter):
        return spec
    if isinstance(spec, str):
        if spec == "auto":
            drafter = getattr(_AUTO, "drafter", None)
            if drafter is None:
                drafter = _AUTO.drafter = default_drafter()
            return drafter
        raise ConfigurationError(
            f"Invalid speculative: expected 'auto', a Drafter or a draft model, got {spec!r}"
        )
    if callable(getattr(spec, "forward", None)):
        return ModelDrafter(spec)
    raise ConfigurationError(
        f"Invalid speculative: expected 'auto', a Drafter or a draft model, got "
        f"{type(spec).__name__}"
    )
