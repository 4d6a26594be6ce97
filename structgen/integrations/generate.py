"""generate(): constrained decoding with a transformers causal LM, our own loop and KV cache.

The loop: one forward pass per token (the prompt once, then one token at a time with the KV
cache), the chosen sampler picks a token the matcher accepts, the matcher commits it. It stops at
EOS, when the grammar allows nothing but EOS, or at ``max_new_tokens``; in the last case the
result is marked incomplete and carries no value.
"""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from structgen.compiler import CompiledGrammar, compile
from structgen.decoding.recovery import with_recovery
from structgen.errors import ConfigurationError, InvalidSchema
from structgen.grammar.ir import Grammar
from structgen.grammar.json_contradictions import unsatisfiable_note
from structgen.grammar.json_layout import GENERATION_WHITESPACE
from structgen.integrations.lm import CausalLM
from structgen.sampling.awrs import AWRS
from structgen.sampling.masked import Masked
from structgen.sampling.warp import NoAllowedToken, SamplingParams
from structgen.tokens.vocabulary import Vocabulary

SamplerName = Literal["awrs", "masked", "smc", "asap", "cars", "imh"]
_ALIGNED = ("smc", "asap", "cars", "imh")  # structgen.aligned: grammar-aligned samplers

_VOCABS: weakref.WeakKeyDictionary[Any, Vocabulary] = weakref.WeakKeyDictionary()


@dataclass
class GenerationStats:
    """Where the time went."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    forced_tokens: int = 0
    constraint_checks: int = 0
    full_masks: int = 0
    compile_s: float = 0.0
    model_s: float = 0.0
    constraint_s: float = 0.0
    forward_passes: int = 0  # target-model forward passes
    proposed_tokens: int = 0  # speculative: drafted tokens the model verified
    accepted_tokens: int = 0  # speculative: drafted tokens that stood
    speculative: Any = None  # speculative: the loop's SpeculativeStats
    backtracks: int = 0  # dead-end recovery: back-ups (structgen.decoding.recovery)
    discarded_tokens: int = 0  # dead-end recovery: tokens the back-ups discarded

    @property
    def ms_per_token(self) -> float:
        """Model plus constraint time per generated token, in milliseconds."""
        return 1000 * (self.model_s + self.constraint_s) / max(self.new_tokens, 1)


@dataclass
class GenerationResult:
    """The outcome of one ``generate`` call.

    Attributes:
        text: the generated text (without EOS).
        tokens: generated token ids (without EOS); with token healing, the first ones re-cover
            the bytes of the removed prompt token.
        complete: True iff the output is a complete string of the grammar.
        value: the parsed JSON value (schemas only, and only when complete), else None.
        reason: why generation stopped (``eos``, ``grammar_complete``, ``max_new_tokens``, or
            ``dead_end``: a semantic check refused every continuation, see ``DeadEnd``).
        stats: timings and counters.
        log_weight: log importance weight of the sample towards the model's distribution
            conditioned on the grammar (docs/sampling.md): Σ log Z_t for ``masked``/``awrs``
            (estimated for AWRS; None with fast-forward, which skips the forced tokens' factors;
            0.0 when greedy), the run's log-evidence for ``smc``, 0.0 for the exact samplers,
            None for ``asap``.
    """

    text: str
    tokens: list[int]
    complete: bool
    value: Any = None
    reason: str = ""
    stats: GenerationStats = field(default_factory=GenerationStats)
    log_weight: float | None = None


def vocabulary_for(tokenizer: Any, model: Any = None) -> Vocabulary:
    """The Vocabulary of ``tokenizer`` sized to ``model``'s logits (cached per tokenizer)."""
    width = None
    if isinstance(model, CausalLM):
        model = model.model
    if model is not None:
        emb = model.get_output_embeddings()
        if emb is not None:
            width = int(emb.weight.shape[0])
    try:
        vocab = _VOCABS.get(tokenizer)
    except TypeError:
        vocab = None
    if vocab is None or (width is not None and vocab.vocab_size != width):
        vocab = Vocabulary.from_tokenizer(tokenizer, vocab_size=width)
        try:
            _VOCABS[tokenizer] = vocab
        except TypeError:
            pass
    return vocab


def schema_to_dict(schema: Any) -> Any:
    """Accept a dict, a bool, JSON text or a pydantic model class."""
    if hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    if isinstance(schema, str):
        try:
            return json.loads(schema)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"Invalid schema: not JSON text ({exc})") from exc
    return schema


def resolve_constraint(
    vocab: Vocabulary,
    *,
    schema: Any = None,
    grammar: Grammar | CompiledGrammar | str | None = None,
    regex: str | None = None,
    schema_options: dict[str, Any] | None = None,
) -> CompiledGrammar:
    """Compile exactly one of ``schema``, ``grammar`` (Grammar or Lark text) or ``regex``."""
    given = [
        name
        for name, v in (("schema", schema), ("grammar", grammar), ("regex", regex))
        if v is not None
    ]
    if len(given) != 1:
        raise ConfigurationError(
            "Invalid constraint: expected exactly one of schema, grammar, regex; "
            f"got {given or 'none'}"
        )
    if isinstance(grammar, CompiledGrammar):
        if grammar.vocab.fingerprint() != vocab.fingerprint():
            raise ConfigurationError(
                "Invalid grammar: it was compiled for another vocabulary than this tokenizer's"
            )
        return grammar
    if schema is not None:
        options = dict(schema_options or {})
        if "whitespace" not in options and "whitespace_pattern" not in options:
            options["whitespace"] = GENERATION_WHITESPACE  # measured: json_layout
        g = Grammar.from_json_schema(schema_to_dict(schema), **options)
        unsatisfiable = unsatisfiable_note(g.notes)
        if unsatisfiable is not None:  # a validator's grammar; nothing could be generated
            where, why = unsatisfiable
            raise InvalidSchema(why, location=where, hint="no JSON document is valid under "
                                "this schema, so none can be generated")  # fmt: skip
    elif regex is not None:
        g = Grammar.from_regex(regex)
    elif isinstance(grammar, str):
        g = Grammar.from_lark(grammar)
    else:
        assert isinstance(grammar, Grammar)
        g = grammar
    return compile(g, vocab)


def make_sampler(name: SamplerName | Any, params: SamplingParams) -> Any:
    """A sampler by name, or pass an object with ``sample`` through."""
    if hasattr(name, "sample"):
        return name
    if name == "awrs":
        return AWRS(params)
    if name == "masked":
        return Masked(params)
    raise ConfigurationError(
        f"Invalid sampler: expected 'awrs', 'masked', 'smc', 'asap', 'cars' or 'imh', got {name!r}"
    )


def prompt_ids(tokenizer: Any, prompt: str | list[dict[str, str]]) -> list[int]:
    """Token ids of a prompt; a list of chat messages goes through the chat template."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    if isinstance(prompt, list):
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    raise ConfigurationError(
        f"Invalid prompt: expected a string or a list of chat messages, got {type(prompt).__name__}"
    )


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompt: str | list[dict[str, str]],
    *,
    schema: Any = None,
    grammar: Grammar | CompiledGrammar | str | None = None,
    regex: str | None = None,
    sampler: SamplerName | Any = "awrs",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    schema_options: dict[str, Any] | None = None,
    fast_forward: bool = True,
    token_healing: bool = False,
    sampler_options: dict[str, Any] | None = None,
    speculative: Any = None,
    recovery: Any = "auto",
) -> GenerationResult:
    """Generate text that conforms to a schema, grammar or regex.

    Args:
        model: a transformers causal LM.
        tokenizer: its tokenizer.
        prompt: a string (used as is) or chat messages (``[{"role": ..., "content": ...}]``,
            rendered with the tokenizer's chat template).
        schema: a JSON schema (dict, bool, JSON text, or a pydantic model class).
        grammar: a ``Grammar``, a ``CompiledGrammar`` or Lark text.
        regex: a regex the whole output must match.
        sampler: ``"awrs"`` (default), ``"masked"``, a sampler object, or a grammar-aligned
            sampler of ``structgen.aligned`` (``"smc"``, ``"asap"``, ``"cars"``, ``"imh"``: these
            need ``temperature > 0``, sample every token, so ``fast_forward`` does not apply, and
            do not support ``token_healing``).
        max_new_tokens: token budget; running out gives ``complete=False``.
        temperature: 0 for greedy decoding (default), else the sampling temperature.
        top_k: top-k filter on the unconstrained distribution (0: off).
        top_p: nucleus filter on the unconstrained distribution (1.0: off).
        seed: seed for the sampler's random generator.
        schema_options: options for ``Grammar.from_json_schema``; ``whitespace`` defaults to
            ``json_layout.GENERATION_WHITESPACE`` (``"flexible"``; why: its docstring).
        fast_forward: append the tokens the grammar forces (``Matcher.compute_ff_tokens``)
            without sampling; they join the next forward pass.
        token_healing: remove the prompt's last token (unless it is special) and require the
            output to start with its bytes, so the model may pick a token that crosses the prompt
            boundary (e.g. ``' "'`` after a prompt ending in a space). The healed bytes are not
            part of ``.text``.
        sampler_options: options of a grammar-aligned sampler (``particles``, ``check``, ...;
            see ``structgen.aligned.sample_tokens``).
        speculative: ``None`` (one forward pass per token), ``"auto"`` (grammar-forced text and
            prompt look-up drafts), a ``structgen.speculative`` Drafter, or a draft model with
            the same tokenizer. Greedy output is the same token for token; sampled output has
            the same distribution (``sampler="awrs"``: Gumbel-coupled verification,
            ``"masked"``: the ``min(1, p/q)`` rule on full masks). See structgen.speculative.
        recovery: dead-end recovery where a semantic check refuses the value the model wanted
            to complete, or a bound the model overshoots (``structgen.decoding.recovery``):
            ``"auto"`` (default; on for JSON Schema constraints), ``"off"``/``False``, ``True``,
            or a ``RecoveryOptions`` (or a dict of its
            fields: ``max_backtracks``, ``patience``, ``max_discarded``,
            ``grammar_refusals``). The loop backs up to the start of that value and resamples
            with the refused continuation excluded; the count is in ``stats.backtracks``. The
            default loop only (not the grammar-aligned or speculative ones).

    Returns:
        A ``GenerationResult``; ``.value`` holds the parsed JSON for schemas.
    """
    if max_new_tokens < 1:
        raise ConfigurationError(f"Invalid max_new_tokens: expected >= 1, got {max_new_tokens}")
    if speculative is not None:
        from structgen.speculative.api import generate_speculative

        return generate_speculative(  # type: ignore[no-any-return]
            model, tokenizer, prompt, speculative=speculative, schema=schema, grammar=grammar,
            regex=regex, sampler=sampler, max_new_tokens=max_new_tokens,
            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
            schema_options=schema_options, fast_forward=fast_forward,
            token_healing=token_healing,
        )
    if isinstance(sampler, str) and sampler in _ALIGNED:
        if token_healing:
            raise ConfigurationError(
                f"Invalid token_healing: not supported with sampler={sampler!r}"
            )
        from structgen.aligned.api import generate_aligned

        return generate_aligned(  # type: ignore[no-any-return]
            model,
            tokenizer,
            prompt,
            sampler=sampler,
            sampler_options=sampler_options,
            seed=seed,
            schema=schema,
            grammar=grammar,
            regex=regex,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            schema_options=schema_options,
        )
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
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    chooser = make_sampler(sampler, params)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    matcher = compiled.matcher()
    stats.prompt_tokens = len(ids)
    lm = model if isinstance(model, CausalLM) else CausalLM(model)
    base_passes = lm.forward_passes
    cache = lm.new_cache()
    tokens: list[int] = []
    reason = "max_new_tokens"
    log_weight = 0.0
    # dead-end recovery: the sampler backs up over a value a check refused (its own module)
    plain = chooser
    chooser = with_recovery(
        recovery, chooser, compiled, lm, cache, ids, tokens, max_new_tokens, stats
    )
    # with recovery, forced text never takes the last token of the budget: the sampler then
    # sees it (a forced run of 0s in a dead end is backed over, not the end of the output)
    reserve = int(chooser is not plain)
    base_checks = getattr(getattr(chooser, "stats", None), "checks", 0)
    base_masks = getattr(getattr(chooser, "stats", None), "full_masks", 0)

    def forced() -> list[int]:
        if not fast_forward:
            return []
        ff = matcher.compute_ff_tokens()[: max(max_new_tokens - len(tokens) - reserve, 0)]
        matcher.consume_tokens(ff)
        tokens.extend(ff)
        stats.forced_tokens += len(ff)
        return ff

    t_ff = time.perf_counter()
    pending = ids + forced()
    stats.constraint_s += time.perf_counter() - t_ff
    while len(tokens) < max_new_tokens:
        t1 = time.perf_counter()
        logits = lm.forward([pending], cache, last_only=True).logits[0, -1]
        t2 = time.perf_counter()
        try:
            token, step_log_weight = chooser.sample(logits, matcher, generator)
        except NoAllowedToken:
            if not matcher.is_dead_end():
                raise  # the warps excluded every allowed token: the user's settings
            reason = "dead_end"  # nothing is allowed at all (recovery, if on, gave up)
            break
        log_weight += step_log_weight
        accepted = matcher.consume_token(token)
        stats.model_s += t2 - t1
        if not accepted:  # a sampler bug: never let it pass silently
            raise ConfigurationError(
                f"Invalid sampler: it returned token {token} that the grammar rejects "
                f"({matcher.last_error})"
            )
        if matcher.is_terminated():
            stats.constraint_s += time.perf_counter() - t2
            reason = "eos"
            break
        tokens.append(token)
        pending = [token, *forced()]
        done = matcher.is_accepting() and not matcher.can_continue()
        stats.constraint_s += time.perf_counter() - t2
        if done:
            reason = "grammar_complete"
            break
    stats.new_tokens = len(tokens)
    stats.forward_passes = lm.forward_passes - base_passes
    if hasattr(chooser, "stats"):
        stats.constraint_checks = chooser.stats.checks - base_checks
        stats.full_masks = chooser.stats.full_masks - base_masks
    data = vocab.decode(tokens)[len(healed) :]
    text = data.decode("utf-8", errors="replace")
    complete = reason not in ("max_new_tokens", "dead_end") and matcher.is_accepting()
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
        text=text,
        tokens=tokens,
        complete=complete,
        value=value,
        reason=reason,
        stats=stats,
        log_weight=log_weight if stats.forced_tokens == 0 and not stats.backtracks else None,
    )


def _prefixed(grammar: Grammar, prefix: bytes) -> Grammar:
    """``grammar`` with every sentence preceded by ``prefix`` (for token healing)."""
    from structgen.grammar.ir import Lit, Ref, seq

    name = "__healed_start__"
    rules = (*grammar.rules, (name, seq(Lit(prefix), Ref(grammar.start))))
    return Grammar(start=name, rules=rules, report=grammar.report, notes=grammar.notes)


def _jsonschema_problem(schema: Any, value: Any, registry: Any = None) -> str | None:
    """Why ``value`` fails ``schema`` (``None`` if it is valid): the final check of ``generate``.

    It validates as the grammar was compiled: ``$ref``s to the documents of ``registry``
    (``schema_options["registry"]``, URI -> schema) resolve, nothing is ever fetched (a
    reference to anything else is reported as a problem), and every format any draft defines is
    asserted (``jsonschema.FormatChecker()``), whatever the schema's draft.
    """
    import jsonschema
    import referencing
    import referencing.exceptions

    from structgen.grammar.json_refs import dialect_spec

    validator_cls = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    spec = dialect_spec(schema)
    resources = [
        (uri, referencing.Resource.from_contents(doc, default_specification=spec))
        for uri, doc in (registry or {}).items()
    ]
    # an explicit Registry (even an empty one) replaces jsonschema's default, which fetches
    # unknown URIs over the network
    refs: referencing.Registry[Any] = referencing.Registry().with_resources(resources)
    validator = validator_cls(
        schema, registry=refs, format_checker=jsonschema.FormatChecker()
    )
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except referencing.exceptions.Unresolvable as exc:
        return f"cannot resolve {exc.ref!r} (nothing is fetched)"
    return None if error is None else error.message


def generate_json(model: Any, tokenizer: Any, prompt: Any, schema: Any, **kwargs: Any) -> Any:
    """Generate and return only the parsed JSON value.

    Raises:
        ConstraintViolation: the output did not complete within ``max_new_tokens``.
        DeadEnd: the output reached a dead end (``reason == "dead_end"``).
    """
    from structgen.errors import ConstraintViolation, DeadEnd

    result = generate(model, tokenizer, prompt, schema=schema, **kwargs)
    if result.reason == "dead_end":
        raise DeadEnd.at(result.text)
    if not result.complete:
        raise ConstraintViolation(
            f"generation stopped before the JSON value was complete ({result.reason}): "
            f"{result.text[:200]!r}",
            hint="raise max_new_tokens",
        )
    return result.value


__all__ = [
    "GenerationResult",
    "GenerationStats",
    "generate",
    "generate_json",
    "make_sampler",
    "prompt_ids",
    "resolve_constraint",
    "vocabulary_for",
]
