"""``sample()``: n grammar-constrained samples with their weights, by any sampler, and the
single-result entry point that ``generate(sampler=...)`` dispatches to.

``sample_tokens`` is the core (model adapter + compiled grammar + prompt ids, no tokenizer), so
tests can run it on a toy model; ``sample`` resolves a tokenizer, prompt and constraint first.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from structgen.aligned.asap import ASAp, CheckMode
from structgen.aligned.base import (
    AlignedStats,
    Draw,
    LanguageModel,
    PathDecoder,
    as_language_model,
    check_params,
)
from structgen.aligned.cars import CARS
from structgen.aligned.imh import WeightMode, imh
from structgen.aligned.resampling import ResamplingScheme, log_mean_exp, normalized
from structgen.aligned.smc import MaskedRows, run_particles
from structgen.aligned.store import DEFAULT_STORE, TrieStore
from structgen.aligned.trie import PrefixTrie
from structgen.compiler import CompiledGrammar
from structgen.errors import ConfigurationError
from structgen.sampling.warp import SamplingParams

__all__ = [
    "ALIGNED_SAMPLERS",
    "SampleSet",
    "SamplerName",
    "TokenSamples",
    "generate_aligned",
    "sample",
    "sample_tokens",
]

SamplerName = Literal["smc", "asap", "cars", "imh", "masked", "awrs"]
ALIGNED_SAMPLERS = ("smc", "asap", "cars", "imh")
_ALL = (*ALIGNED_SAMPLERS, "masked", "awrs")


@dataclass
class TokenSamples:
    """What ``sample_tokens`` returns.

    Attributes:
        draws: the samples, each with its log-weight (see ``Draw``).
        log_ml: log of the estimate of the model's probability of the target (SMC, and the
            importance samplers ``masked``/``awrs``), else None.
        stats: counters.
        trie: the trie used (ASAp, CARS), else None.
    """

    draws: list[Draw]
    log_ml: float | None
    stats: AlignedStats
    trie: PrefixTrie | None = None


def sample_tokens(  # noqa: PLR0913
    lm: LanguageModel,
    compiled: CompiledGrammar,
    prompt: Sequence[int],
    n: int = 1,
    *,
    sampler: SamplerName = "smc",
    params: SamplingParams | None = None,
    max_new_tokens: int = 64,
    generator: torch.Generator | None = None,
    particles: int | None = None,
    ess_threshold: float = 0.5,
    resampling: ResamplingScheme = "systematic",
    check: CheckMode = "mask",
    trie: PrefixTrie | None = None,
    store: TrieStore | None = None,
    burn_in: int = 0,
    thin: int = 1,
    weights: WeightMode = "exact",
    batch_size: int = 32,
    max_attempts: int = 100_000,
) -> TokenSamples:
    """``n`` samples from ``compiled`` after ``prompt`` with ``sampler``.

    Args:
        lm: the model (``CausalLM``, or anything with its interface).
        compiled: the grammar.
        prompt: prompt token ids (non-empty).
        n: number of samples.
        sampler: ``"smc"``, ``"asap"``, ``"cars"``, ``"imh"``, or the locally masked baselines
            ``"masked"``/``"awrs"`` (returned with importance weights Π Z_t, exact or estimated).
        params: the warps (temperature > 0).
        max_new_tokens: the length cap T.
        generator: random source.
        particles: SMC particles per run (default: ``min(n, 64)``); ``n`` samples take
            ⌈n/particles⌉ independent runs (the last one smaller), whose weights share a scale.
        ess_threshold: SMC resampling threshold (fraction of the particle count).
        resampling: SMC resampling scheme.
        check: ASAp/CARS learning mode, ``"mask"`` or ``"awrs"``.
        trie: the trie for ASAp/CARS (default: from ``store``, keyed by the whole setting).
        store: where tries persist (default: the process-wide store).
        burn_in: IMH steps discarded first.
        thin: IMH keeps every ``thin``-th state.
        weights: IMH weights, ``"exact"`` (full masks) or ``"awrs"`` (estimated).
        batch_size: rows per forward pass for IMH proposals and the baselines.
        max_attempts: CARS attempts per sample before giving up.

    Raises:
        ConfigurationError: bad arguments.
    """
    t0 = time.perf_counter()
    params = params or SamplingParams()
    check_params(params, max_new_tokens)
    if sampler not in _ALL:
        raise ConfigurationError(
            f"Invalid sampler: expected one of {', '.join(map(repr, _ALL))}, got {sampler!r}"
        )
    if n < 1:
        raise ConfigurationError(f"Invalid n: expected >= 1, got {n}")
    if batch_size < 1:
        raise ConfigurationError(f"Invalid batch_size: expected >= 1, got {batch_size}")
    stats = AlignedStats()
    prompt = [int(t) for t in prompt]
    common = {"params": params, "max_tokens": max_new_tokens, "generator": generator}
    log_ml: float | None = None
    used_trie: PrefixTrie | None = None
    if sampler in ("smc", "masked", "awrs"):
        if sampler == "smc":
            size = particles if particles is not None else min(n, 64)
            threshold = ess_threshold
        else:
            size, threshold = batch_size, 0.0
        if size < 1:
            raise ConfigurationError(f"Invalid particles: expected >= 1, got {size}")
        draws: list[Draw] = []
        while len(draws) < n:
            proposal = MaskedRows() if sampler == "masked" else None
            run = run_particles(
                lm,
                compiled,
                prompt,
                min(size, n - len(draws)),
                proposal=proposal,
                ess_threshold=threshold,
                resampling=resampling,
                stats=stats,
                **common,  # type: ignore[arg-type]
            )
            draws.extend(run.draws)
        log_ml = log_mean_exp(np.array([_lw(d) for d in draws]))
    elif sampler == "imh":
        draws = imh(
            lm,
            compiled,
            prompt,
            n,
            burn_in=burn_in,
            thin=thin,
            batch_size=batch_size,
            weights=weights,
            stats=stats,
            **common,  # type: ignore[arg-type]
        )
    else:
        used_trie = (
            trie
            if trie is not None
            else _trie_for(lm, compiled, prompt, params, max_new_tokens, store)
        )
        method: ASAp | CARS
        if sampler == "asap":
            method = ASAp(used_trie, check=check)
        else:
            method = CARS(used_trie, check=check, max_attempts=max_attempts)
        decoder = PathDecoder(lm, prompt, params, stats)
        draws = [method.draw(decoder, compiled, max_new_tokens, generator, stats) for _ in range(n)]
    stats.wall_s = time.perf_counter() - t0
    return TokenSamples(draws, log_ml, stats, used_trie)


def _lw(draw: Draw) -> float:
    return draw.log_weight if draw.log_weight is not None else -math.inf


def _trie_for(
    lm: LanguageModel,
    compiled: CompiledGrammar,
    prompt: list[int],
    params: SamplingParams,
    max_new_tokens: int,
    store: TrieStore | None,
) -> PrefixTrie:
    store = store if store is not None else DEFAULT_STORE
    model = getattr(lm, "model", lm)
    key = (
        compiled.grammar.fingerprint(),
        compiled.vocab.fingerprint(),
        tuple(prompt),
        params,
        max_new_tokens,
    )
    return store.get(model, key, compiled.eos_token_ids)


# ---------------------------------------------------------------------- tokenizer-level API


@dataclass
class SampleSet:
    """``sample``'s result.

    Attributes:
        results: one ``GenerationResult`` per sample, with ``log_weight``.
        log_ml: log of the estimated probability of the target under the model (SMC and the
            importance-weighted baselines), else None.
        stats: counters and timings of the whole call.
    """

    results: list[Any]
    log_ml: float | None
    stats: AlignedStats

    def posterior(self) -> dict[str, float]:
        """Probability of each text, from the weights (equal weights where there are none);
        incomplete samples are left out."""
        done = [r for r in self.results if r.complete]
        if not done:
            return {}
        log_w = np.array(
            [0.0 if r.log_weight is None else r.log_weight for r in done], dtype=np.float64
        )
        out: dict[str, float] = {}
        for r, w in zip(done, normalized(log_w).tolist(), strict=True):
            out[r.text] = out.get(r.text, 0.0) + w
        return out


def sample(
    model: Any,
    tokenizer: Any,
    prompt: str | list[dict[str, str]],
    *,
    n: int = 1,
    sampler: SamplerName = "smc",
    schema: Any = None,
    grammar: Any = None,
    regex: str | None = None,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    schema_options: dict[str, Any] | None = None,
    **options: Any,
) -> SampleSet:
    """``n`` samples of the model's distribution conditioned on the constraint.

    Args:
        model: a transformers causal LM (or a ``CausalLM``).
        tokenizer: its tokenizer.
        prompt: a string, or chat messages rendered with the chat template.
        n: number of samples.
        sampler: ``"smc"`` (default), ``"asap"``, ``"cars"``, ``"imh"``, ``"masked"``, ``"awrs"``
            (docs/sampling.md says what each samples from).
        schema: a JSON schema; or ``grammar`` (Lark text or Grammar) or ``regex``.
        max_new_tokens: the length cap: strings that need more tokens are outside the target.
        temperature: > 0; the target is the conditional of the warped model.
        top_k: top-k warp (0: off).
        top_p: top-p warp (1.0: off).
        seed: seed of the random generator.
        schema_options: options for ``Grammar.from_json_schema``.
        **options: sampler options of ``sample_tokens`` (``particles``, ``ess_threshold``,
            ``check``, ``burn_in``, ``thin``, ``weights``, ``store``, ...).

    Returns:
        A ``SampleSet``: ``results`` (``GenerationResult`` with ``log_weight``), ``log_ml``,
        ``posterior()``.
    """
    from structgen.integrations.generate import (
        GenerationResult,
        GenerationStats,
        prompt_ids,
        resolve_constraint,
        vocabulary_for,
    )

    t0 = time.perf_counter()
    lm = as_language_model(model)
    vocab = vocabulary_for(tokenizer, getattr(lm, "model", None))
    compiled = resolve_constraint(
        vocab, schema=schema, grammar=grammar, regex=regex, schema_options=schema_options
    )
    compile_s = time.perf_counter() - t0
    ids = prompt_ids(tokenizer, prompt)
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    out = sample_tokens(
        lm,
        compiled,
        ids,
        n,
        sampler=sampler,
        params=params,
        max_new_tokens=max_new_tokens,
        generator=generator,
        **options,
    )
    results = []
    for draw in out.draws:
        data = vocab.decode(draw.tokens)
        value = None
        if schema is not None and draw.complete:
            value = json.loads(data)
        results.append(
            GenerationResult(
                text=data.decode("utf-8", errors="replace"),
                tokens=list(draw.tokens),
                complete=draw.complete,
                value=value,
                reason="eos" if draw.complete else "no_completion",
                stats=GenerationStats(
                    prompt_tokens=len(ids), new_tokens=len(draw.tokens), compile_s=compile_s
                ),
                log_weight=draw.log_weight,
            )
        )
    return SampleSet(results, out.log_ml, out.stats)


def generate_aligned(
    model: Any,
    tokenizer: Any,
    prompt: str | list[dict[str, str]],
    *,
    sampler: SamplerName,
    sampler_options: dict[str, Any] | None = None,
    seed: int | None = None,
    **kwargs: Any,
) -> Any:
    """One ``GenerationResult`` by a grammar-aligned sampler (``generate(sampler=...)``).

    For SMC, one particle is drawn in proportion to the final weights and its ``log_weight`` is
    the run's ``log_ml`` (a properly weighted single sample); for the other samplers it is the
    sample's own weight.
    """
    options = dict(sampler_options or {})
    if sampler == "smc":
        options.setdefault("particles", 8)
        n = int(options["particles"])
    else:
        n = 1
    result = sample(model, tokenizer, prompt, n=n, sampler=sampler, seed=seed, **kwargs, **options)
    if sampler != "smc":
        return result.results[0]
    log_w = np.array([-math.inf if r.log_weight is None else r.log_weight for r in result.results])
    if not np.isfinite(log_w).any():
        chosen = result.results[0]
    else:
        generator = torch.Generator().manual_seed(seed + 1) if seed is not None else None
        probs = torch.from_numpy(normalized(log_w))
        chosen = result.results[int(torch.multinomial(probs, 1, generator=generator))]
    chosen.log_weight = result.log_ml
    return chosen
