"""``generate(..., speculative=...)``: the speculative path of ``structgen.generate``.

Same arguments, same result type, same final validation as the plain loop; only the decode loop
differs (``structgen.speculative.loop``). ``sampler="awrs"`` verifies sampled drafts with the
Gumbel-coupled rule (no full masks), ``sampler="masked"`` with the ``min(1, p~/q)`` rule on full
masks; greedy decoding (temperature 0) gives the same tokens as the plain loop.
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch

from structgen.compiler import compile
from structgen.errors import ConfigurationError
from structgen.integrations.lm import CausalLM
from structgen.sampling.warp import SamplingParams
from structgen.speculative import resolve_drafter
from structgen.speculative.loop import decode_speculative

__all__ = ["generate_speculative"]


def generate_speculative(
    model: Any,
    tokenizer: Any,
    prompt: Any,
    *,
    speculative: Any,
    schema: Any = None,
    grammar: Any = None,
    regex: str | None = None,
    sampler: Any = "awrs",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    schema_options: dict[str, Any] | None = None,
    fast_forward: bool = True,
    token_healing: bool = False,
    draft_length: Any = None,
) -> Any:
    """``structgen.generate`` with speculative decoding (see its docstring for the arguments).

    Parameters
    ----------
    speculative : "auto", Drafter or model
        The drafter (``structgen.speculative.resolve_drafter``).
    draft_length : DraftLength, optional
        The draft-length policy (default: adaptive).

    Returns
    -------
    GenerationResult
        ``stats.forward_passes``, ``stats.proposed_tokens``, ``stats.accepted_tokens`` and
        ``stats.speculative`` (a ``SpeculativeStats``) describe the speculation.

    Raises
    ------
    ConfigurationError
        A sampler object other than the built-in ones with ``temperature > 0``.
    """
    from structgen.integrations.generate import (
        GenerationResult,
        GenerationStats,
        _jsonschema_problem,
        _prefixed,
        make_sampler,
        prompt_ids,
        resolve_constraint,
        schema_to_dict,
        vocabulary_for,
    )

    if max_new_tokens < 1:
        raise ConfigurationError(f"Invalid max_new_tokens: expected >= 1, got {max_new_tokens}")
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    if isinstance(sampler, str) and sampler not in ("awrs", "masked"):
        raise ConfigurationError(
            f"Invalid sampler for speculative decoding: expected 'awrs' or 'masked', got "
            f"{sampler!r}",
            hint="the grammar-aligned samplers have their own loop: pass speculative=None",
        )
    if not params.greedy and sampler not in ("awrs", "masked"):
        raise ConfigurationError(
            f"Invalid sampler for speculative sampling: expected 'awrs' or 'masked', got "
            f"{sampler!r}",
            hint="use temperature=0 with a custom sampler, or speculative=None",
        )
    drafter = resolve_drafter(speculative)
    stats = GenerationStats()
    t0 = time.perf_counter()
    vocab = vocabulary_for(tokenizer, model)
    compiled = resolve_constraint(
        vocab, schema=schema, grammar=grammar, regex=regex, schema_options=schema_options
    )
    ids = prompt_ids(tokenizer, prompt)
    healed = b""
    if token_healing and ids and ids[-1] not in vocab.special_token_ids:
        healed = vocab.token_bytes[ids[-1]]
        ids = ids[:-1]
        compiled = compile(_prefixed(compiled.grammar, healed), vocab)
    stats.compile_s = time.perf_counter() - t0
    stats.prompt_tokens = len(ids)
    chooser = make_sampler(sampler, params)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    lm = model if isinstance(model, CausalLM) else CausalLM(model)
    outcome = decode_speculative(
        lm,
        compiled,
        ids,
        drafter=drafter,
        params=params,
        max_new_tokens=max_new_tokens,
        fast_forward=fast_forward,
        verification="mask" if sampler == "masked" else "coupled",
        generator=generator,
        draft_length=draft_length,
        sampler=chooser,
    )
    spec = outcome.stats
    tokens, reason, matcher = outcome.tokens, outcome.reason, outcome.matcher
    stats.new_tokens = len(tokens)
    stats.forced_tokens = spec.forced
    stats.model_s = spec.model_s
    stats.constraint_s = spec.draft_s + spec.verify_s
    stats.forward_passes = spec.forward_passes
    stats.proposed_tokens = spec.proposed
    stats.accepted_tokens = spec.accepted
    stats.speculative = spec
    data = vocab.decode(tokens)[len(healed) :]
    text = data.decode("utf-8", errors="replace")
    complete = reason != "max_new_tokens" and matcher.is_accepting()
    value = None
    if schema is not None and complete:
        value = json.loads(data)
        problem = _jsonschema_problem(
            schema_to_dict(schema), value, registry=(schema_options or {}).get("registry")
        )
        if problem is not None:  # would be a structgen bug: report it, never pass it off
            complete, value = False, None
            reason = f"internal error: the output fails jsonschema validation: {problem}"
    return GenerationResult(
        text=text, tokens=tokens, complete=complete, value=value, reason=reason, stats=stats
    )
