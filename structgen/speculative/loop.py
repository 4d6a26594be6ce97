"""The speculative decode loop: draft, cut at the grammar, verify in one pass, commit, crop.

One step:

1. **Draft.** Ask the drafter for tokens after the sequence so far; ``Matcher.validate_tokens``
   cuts the proposal at its first token the grammar refuses (the model never sees it). With
   ``fast_forward`` on, the tokens the grammar forces after each proposed token are appended
   (exactly as ``generate`` appends them after each chosen token) and count apart from the
   proposed ones. The draft ends where the grammar ends (EOS, or nothing but EOS allowed), at
   the token budget, or when the draft-length policy stops it.
2. **Verify.** One forward pass over the pending tokens and the whole draft gives the target's
   logits at every draft position. Walking the draft with the matcher (committed state, so each
   position sees the grammar state after the tokens before it), the target chooses its token at
   each position (``structgen.speculative.verify``); a draft token stands iff it is that choice.
   The first refused position emits the target's own token instead; if every draft token stands,
   the last position yields a bonus token.
3. **Commit and crop.** The matcher holds exactly the emitted tokens; the KV cache is cropped to
   the positions whose tokens stood.

Greedy identity. The target's choices come from a multi-position pass whose logits differ from
``generate``'s one-position passes in the last float bits. Where the best allowed token leads
the runner-up by at least ``tie_tolerance`` (default 1e-3, about 20x the largest difference
measured on SmolLM2), both pick the same token. Below that margin (a *near tie*) the loop crops
the cache back to where ``generate``'s pass for that position begins, re-runs that very pass
(same tokens, same positions), and lets the same sampler decide; ``stats.near_ties`` counts
them. What this cannot reproduce is the float noise in the KV cache of earlier positions, which
were computed in differently sized passes; that residual is far below the tolerance (measured:
see BENCHMARKS.md, greedy identity on every benchmark item).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from structgen.compiler import CompiledGrammar
from structgen.errors import ConfigurationError, InternalError
from structgen.runtime.matcher import Matcher
from structgen.sampling.awrs import AWRS
from structgen.sampling.warp import NoAllowedToken, SamplingParams
from structgen.speculative.adaptive import AdaptiveDraftLength, DraftLength
from structgen.speculative.base import Drafter, DraftRequest
from structgen.speculative.verify import (
    DEFAULT_TIE_TOLERANCE,
    GumbelNoise,
    coupled_choice,
    greedy_choice,
    mask_rule,
    masked_distribution,
)

__all__ = ["SpeculativeOutcome", "SpeculativeStats", "Verification", "decode_speculative"]

Verification = Literal["coupled", "mask"]


@dataclass
class SpeculativeStats:
    """Counters of one speculative generation.

    Attributes
    ----------
    forward_passes : int
        Target forward passes (verification passes plus near-tie re-runs).
    drafts : int
        Passes that carried at least one proposed token.
    proposed : int
        Proposed tokens the target saw (after the grammar's cut).
    accepted : int
        Proposed tokens that stood.
    trimmed : int
        Proposed tokens the grammar refused before verification.
    forced : int
        Tokens the grammar forced (fast-forward), committed without a choice.
    positions : int
        Positions fed to the target after the prompt (a pass costs about ``a + b * n``).
    near_ties : int
        Greedy positions re-decided the way non-speculative decoding computes them.
    by_source : dict
        ``source -> [proposed, accepted]``.
    by_feature : dict
        ``source/label -> [verified, accepted]``: tokens the target judged, per feature.
    draft_s, model_s, verify_s : float
        Seconds spent drafting, in target forward passes, and walking the draft.
    """

    forward_passes: int = 0
    drafts: int = 0
    proposed: int = 0
    accepted: int = 0
    trimmed: int = 0
    forced: int = 0
    positions: int = 0
    near_ties: int = 0
    by_source: dict[str, list[int]] = field(default_factory=dict)
    by_feature: dict[str, list[int]] = field(default_factory=dict)
    draft_s: float = 0.0
    model_s: float = 0.0
    verify_s: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        """Accepted / proposed (0.0 when nothing was proposed)."""
        return self.accepted / self.proposed if self.proposed else 0.0


@dataclass
class SpeculativeOutcome:
    """What ``decode_speculative`` returns.

    Attributes
    ----------
    tokens : list of int
        The output ids (without EOS), forced tokens included.
    reason : str
        ``eos``, ``grammar_complete`` or ``max_new_tokens``, as in ``generate``.
    matcher : Matcher
        The grammar state after the output.
    stats : SpeculativeStats
    """

    tokens: list[int]
    reason: str
    matcher: Matcher
    stats: SpeculativeStats


@dataclass
class _Unit:
    """One proposed draft token and the forced tokens that follow it."""

    token: int
    source: str
    feature: str
    confidence: float | None
    q: torch.Tensor | None
    forced: list[int]


class _Finished(Exception):
    """Internal: generation stopped (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Run:
    """State of one speculative generation (see ``decode_speculative``)."""

    def __init__(
        self,
        lm: Any,
        compiled: CompiledGrammar,
        prompt: Sequence[int],
        drafter: Drafter,
        params: SamplingParams,
        max_new_tokens: int,
        fast_forward: bool,
        verification: Verification,
        generator: torch.Generator | None,
        policy: DraftLength,
        tie_tolerance: float,
        chooser: Any,
    ) -> None:
        self.lm = lm
        self.vocab = compiled.vocab
        self.eos = compiled.vocab.eos_token_ids
        self.matcher = compiled.matcher()
        self.drafter = drafter
        self.params = params
        self.greedy = params.greedy
        self.max_new = max_new_tokens
        self.fast_forward = fast_forward
        self.verification = verification
        self.generator = generator
        self.policy = policy
        self.tolerance = tie_tolerance
        self.chooser = chooser
        self.stats = SpeculativeStats()
        self.prompt_len = len(prompt)
        self.seq: list[int] = list(prompt)
        self.tokens: list[int] = []
        self.cache = lm.new_cache()
        self.in_cache = 0  # positions of ``seq`` held by the cache
        self.chunk_start = 0  # where generate()'s pass for the next choice begins
        width = int(getattr(lm, "vocab_width", self.vocab.vocab_size))
        self.noise = None if self.greedy else GumbelNoise(width, generator)

    # ------------------------------------------------------------------ helpers

    def _forced_after(self) -> list[int]:
        """Commit the tokens the grammar forces now (as ``generate`` does after a choice)."""
        if not self.fast_forward:
            return []
        ff = self.matcher.compute_ff_tokens()[: self.max_new - len(self.tokens)]
        if ff and self.matcher.consume_tokens(ff) != len(ff):
            raise InternalError("the matcher refused its own fast-forward tokens")
        self.seq += ff
        self.tokens += ff
        self.stats.forced += len(ff)
        return ff

    def _emit(self, token: int, forced: list[int] | None) -> None:
        """Commit a chosen token; then its forced tokens (``forced``, or computed afresh)."""
        if not self.matcher.consume_token(token):
            raise InternalError(
                f"verification chose token {token}, which the grammar refuses "
                f"({self.matcher.last_error})"
            )
        if self.matcher.is_terminated():
            raise _Finished("eos")
        self.seq.append(token)
        self.tokens.append(token)
        self.chunk_start = len(self.seq) - 1
        if forced is None:
            self._forced_after()
        elif forced:
            if self.matcher.consume_tokens(forced) != len(forced):
                raise InternalError("the matcher refused forced tokens it produced")
            self.seq += forced
            self.tokens += forced
            self.stats.forced += len(forced)
        if self.matcher.is_accepting() and not self.matcher.can_continue():
            raise _Finished("grammar_complete")

    def _forward(
        self, ids: list[int], *, last_only: bool = False, rows: list[int] | None = None
    ) -> torch.Tensor:
        t = time.perf_counter()
        if rows is None:
            step = self.lm.forward([ids], self.cache, last_only=last_only)
        else:
            step = self.lm.forward([ids], self.cache, rows=rows)
        logits = step.logits[0]
        dt = time.perf_counter() - t
        self.stats.model_s += dt
        self.stats.forward_passes += 1
        self.stats.positions += len(ids) - max(0, self.prompt_len - self.in_cache)
        self.policy.record_pass(len(ids), dt)
        return logits

    # ------------------------------------------------------------------ drafting

    def _draft(self) -> list[_Unit]:
        budget = self.max_new - len(self.tokens)
        policy = self.policy
        policy.begin(len(self.seq) - self.in_cache)
        matcher = self.matcher
        units: list[_Unit] = []
        context = list(self.seq)
        n = 0
        consumed = 0
        want_q = self.verification == "mask" and not self.greedy
        try:
            while n < budget and policy.remaining() > 0:
                request = DraftRequest(
                    context=list(context),
                    prompt_len=self.prompt_len,
                    matcher=matcher,
                    max_tokens=min(policy.remaining(), budget - n),
                    params=self.params,
                    noise=self.noise,
                    want_q=want_q,
                    admit=lambda src, label, conf: policy.admit(f"{src}/{label}", conf),
                )
                t = time.perf_counter()
                proposal = self.drafter.propose(request)
                policy.record_draft(
                    proposal.source or self.drafter.name,
                    len(proposal.tokens),
                    time.perf_counter() - t,
                )
                tokens = list(proposal.tokens[: request.max_tokens])
                if not tokens:
                    break
                valid = matcher.validate_tokens(tokens)
                self.stats.trimmed += len(tokens) - valid
                if valid == 0:
                    break
                source = proposal.source or self.drafter.name
                j = 0
                while j < valid:
                    confidence = proposal.confidence[j] if proposal.confidence else None
                    label = proposal.features[j] if proposal.features else str(min(j, 3))
                    feature = f"{source}/{label}"
                    if not proposal.admitted and not policy.admit(feature, confidence):
                        return units
                    token = tokens[j]
                    q = proposal.q[j] if proposal.q is not None else None
                    matcher.consume_token(token)
                    consumed += 1
                    context.append(token)
                    n += 1
                    unit = _Unit(token, source, feature, confidence, q, [])
                    units.append(unit)
                    if matcher.is_terminated():
                        return units
                    if self.fast_forward:
                        ff = matcher.compute_ff_tokens()[: budget - n]
                        if ff:
                            consumed += matcher.consume_tokens(ff)
                            context += ff
                            n += len(ff)
                            unit.forced = ff
                            policy.add_forced(len(ff))
                    if (matcher.is_accepting() and not matcher.can_continue()) or n >= budget:
                        return units
                    j += 1
                    if unit.forced:
                        if tokens[j : j + len(unit.forced)] != unit.forced:
                            break  # the rest was drafted for another context: ask again
                        j += len(unit.forced)  # the proposal agrees with the grammar
                # used up, cut by the grammar or by forced tokens: ask again from here (a
                # drafter with nothing valid to add ends the draft above)
            return units
        finally:
            matcher.rollback(consumed)

    # ------------------------------------------------------------------ verification

    def _choose(self, logits: torch.Tensor, draft: int | None, q: torch.Tensor | None) -> int:
        """The target's token at the position after ``seq`` (None: a near tie, greedy only)."""
        matcher = self.matcher
        if self.greedy:
            choice = greedy_choice(logits, matcher, self.tolerance)
            return -1 if choice.near_tie else choice.token
        if self.verification == "coupled":
            assert self.noise is not None
            return coupled_choice(logits, matcher, self.params, self.noise(len(self.seq))).token
        token, _ = mask_rule(
            masked_distribution(logits, matcher, self.params), draft, q, self.generator
        )
        return token

    def _redo_as_generate(self) -> int:
        """Re-run ``generate``'s own pass for the next position and let its sampler decide."""
        self.stats.near_ties += 1
        self.lm.crop(self.cache, self.chunk_start)
        self.in_cache = self.chunk_start
        logits = self._forward(self.seq[self.chunk_start :], last_only=True)[-1]
        self.in_cache = len(self.seq)
        token, _ = self.chooser.sample(logits, self.matcher, self.generator)
        return int(token)

    def step(self) -> None:
        """One draft-verify-commit step (raises ``_Finished`` when generation ends)."""
        t0 = time.perf_counter()
        units = self._draft()
        t1 = time.perf_counter()
        self.stats.draft_s += t1 - t0
        feed = self.seq[self.in_cache :]
        for u in units:
            feed.append(u.token)
            feed += u.forced
        base = len(self.seq)
        drafted = len(feed) - (base - self.in_cache)
        # The rows whose logits decide something: the one that predicts position ``base``, then
        # the one after each unit's token and forced tokens (the last is the bonus position).
        rows = [len(feed) - drafted - 1]
        for u in units:
            rows.append(rows[-1] + 1 + len(u.forced))
        logits = self._forward(feed, rows=rows)  # logits[k]: row rows[k]
        t2 = time.perf_counter()
        self.in_cache = base + drafted
        kept = base  # cache positions whose tokens stand
        if units:
            self.stats.drafts += 1
        self.stats.proposed += len(units)
        tally: dict[str, list[int]] = {}
        verdicts: list[tuple[_Unit, bool]] = []
        k = 0
        try:
            for u in units:
                token = self._choose(logits[k], u.token, u.q)
                counts = tally.setdefault(u.source, [0, 0])
                counts[0] += 1
                if token == -1:  # near tie: decide exactly as generate would
                    self.in_cache = kept
                    token = self._redo_as_generate()
                    verdicts.append((u, token == u.token))
                    if token == u.token:
                        counts[1] += 1
                        self.stats.accepted += 1
                    self._emit(token, None)
                    return
                verdicts.append((u, token == u.token))
                if token != u.token:
                    self.lm.crop(self.cache, kept)
                    self.in_cache = kept
                    self._emit(token, None)
                    return
                counts[1] += 1
                self.stats.accepted += 1
                kept += 1 + len(u.forced)
                k += 1
                self._emit(token, u.forced)
            if len(self.tokens) >= self.max_new:
                return
            token = self._choose(logits[k], None, None)
            if token == -1:
                self.in_cache = kept
                token = self._redo_as_generate()
            self._emit(token, None)
        finally:
            if self.in_cache > kept and self.lm.cache_len(self.cache) > kept:
                self.lm.crop(self.cache, kept)
                self.in_cache = kept
            for unit, stood in verdicts:
                self.policy.observe(unit.feature, stood, unit.confidence)
                entry = self.stats.by_feature.setdefault(unit.feature, [0, 0])
                entry[0] += 1
                entry[1] += stood
            for source, (proposed, accepted) in tally.items():
                self.drafter.observe(source, proposed, accepted)
                entry = self.stats.by_source.setdefault(source, [0, 0])
                entry[0] += proposed
                entry[1] += accepted
            if self.noise is not None:
                self.noise.clear()
            self.stats.verify_s += time.perf_counter() - t2


def decode_speculative(
    lm: Any,
    compiled: CompiledGrammar,
    prompt: Sequence[int],
    *,
    drafter: Drafter,
    params: SamplingParams,
    max_new_tokens: int,
    fast_forward: bool = True,
    verification: Verification = "coupled",
    generator: torch.Generator | None = None,
    draft_length: DraftLength | None = None,
    tie_tolerance: float = DEFAULT_TIE_TOLERANCE,
    sampler: Any = None,
) -> SpeculativeOutcome:
    """Speculative constrained decoding of one sequence.

    Parameters
    ----------
    lm : CausalLM
        The target model's adapter (``new_cache``, ``forward``, ``crop``, ``cache_len``).
    compiled : CompiledGrammar
        The constraint.
    prompt : sequence of int
        Prompt token ids.
    drafter : Drafter
        Proposes tokens (``structgen.speculative.drafters``).
    params : SamplingParams
        Temperature and warps (temperature 0: greedy).
    max_new_tokens : int
        Token budget, forced tokens included (as in ``generate``).
    fast_forward : bool
        Commit the tokens the grammar forces without a choice, as ``generate`` does. With False,
        forced text is only proposed (by a ``ForcedDrafter``) and verified like any draft.
    verification : {"coupled", "mask"}
        For sampling: the Gumbel-coupled rule without full masks, or the
        ``min(1, p~/q)``/residual rule on full masks (``structgen.speculative.verify``).
    generator : torch.Generator or None
        Randomness for sampling.
    draft_length : DraftLength or None
        Draft-length policy (default: the drafter's ``draft_length``, an
        ``AdaptiveDraftLength`` created on first use).
    tie_tolerance : float
        Greedy near-tie margin (see the module docstring).
    sampler : object or None
        The non-speculative sampler whose choice a greedy near tie re-runs (``AWRS`` or
        ``Masked``; default ``AWRS``), so ties break exactly as in ``generate``.

    Returns
    -------
    SpeculativeOutcome

    Raises
    ------
    ConfigurationError
        Invalid arguments.
    NoAllowedToken
        The warps left no allowed token. (Where nothing is allowed at all, a dead end, the
        outcome's reason is ``"dead_end"`` instead.)
    """
    if max_new_tokens < 1:
        raise ConfigurationError(f"Invalid max_new_tokens: expected >= 1, got {max_new_tokens}")
    if verification not in ("coupled", "mask"):
        raise ConfigurationError(
            f"Invalid verification: expected 'coupled' or 'mask', got {verification!r}"
        )
    if not tie_tolerance >= 0:
        raise ConfigurationError(f"Invalid tie_tolerance: expected >= 0, got {tie_tolerance}")
    if not isinstance(drafter, Drafter):
        raise ConfigurationError(
            f"Invalid drafter: expected a structgen.speculative Drafter, got "
            f"{type(drafter).__name__}"
        )
    policy = draft_length if draft_length is not None else drafter.draft_length
    if policy is None:
        policy = drafter.draft_length = AdaptiveDraftLength()
    chooser = sampler if sampler is not None else AWRS(params)
    drafter.reset(list(prompt), compiled.vocab)
    run = _Run(
        lm,
        compiled,
        prompt,
        drafter,
        params,
        max_new_tokens,
        fast_forward,
        verification,
        generator,
        policy,
        tie_tolerance,
        chooser,
    )
    reason = "max_new_tokens"
    try:
        run._forced_after()
        while len(run.tokens) < max_new_tokens:
            run.step()
    except _Finished as done:
        reason = done.reason
    except NoAllowedToken:
        if not run.matcher.is_dead_end():
            raise  # the warps excluded every allowed token
        reason = "dead_end"  # a check refuses every continuation (see errors.DeadEnd)
    return SpeculativeOutcome(run.tokens, reason, run.matcher, run.stats)
