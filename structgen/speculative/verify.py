"""Verification: the target's choice at one draft position, and whether the draft token stands.

Three rules, one per decoding mode. All of them emit, at every position, a token with exactly the
law of non-speculative masked decoding given the tokens before it (docs/algorithms.md §3.3):

Greedy
    The target's choice is the argmax of its logits over the allowed tokens, found by checking
    candidates in logit order (the unmasked argmax, when allowed, is the masked one); the draft
    token stands iff it equals that choice. ``greedy_choice`` also reports a *near tie*: another
    allowed token within ``tolerance`` of the best. Logits of a multi-position pass differ from a
    one-position pass in the last float bits, so only a near tie can make the two choose
    differently; the loop re-computes those positions the way non-speculative decoding does.

Coupled (sampling, no full masks)
    Drafter and target share one Gumbel vector ``g`` per position. The target's token is
    ``argmax(log p~ + g)`` over the allowed tokens (found AWRS-style, one candidate check at a
    time), which is an exact draw from the masked distribution ``p~`` whatever the draft; the
    draft token stands iff it equals it. A deterministic drafter is the special case of a point
    mass (accepted with probability ``p~(x)``, the rule ``min(1, p~(x) / q(x))`` with
    ``q(x) = 1``; on rejection the token is a draw from ``p~`` without ``x``, i.e.
    ``norm(max(0, p~ - q))``). A sampling drafter that draws ``argmax(log q + g)`` with the same
    ``g`` agrees with the target more often the closer ``q`` is to ``p~``.

Mask (sampling, full masks; Leviathan et al. / Chen et al.)
    ``p~`` is the masked, renormalised, warped target distribution. Accept the draft token ``x``
    with probability ``min(1, p~(x) / q(x))``; otherwise draw from ``norm(max(0, p~ - q))``
    (``residual``). With every draft token accepted, the bonus token is a draw from ``p~``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from structgen.errors import InternalError
from structgen.runtime.matcher import Matcher
from structgen.sampling.base import allowed_mask
from structgen.sampling.warp import NoAllowedToken, SamplingParams, warp_logits

__all__ = [
    "DEFAULT_TIE_TOLERANCE",
    "GumbelNoise",
    "acceptance_probability",
    "coupled_choice",
    "greedy_choice",
    "masked_distribution",
    "mask_rule",
    "residual",
]

DEFAULT_TIE_TOLERANCE = 1e-3
"""Logit margin below which a greedy choice counts as a near tie (SmolLM2 on CPU: a 1-position and
an 8-position pass differ by at most ~6e-5 in any logit)."""

_CHUNKS = (8, 128, 2048)
_MAX_CHECKS = 64  # single-token checks before a position falls back to its full mask


def _descending(keys: torch.Tensor) -> Iterator[tuple[int, float]]:
    """``(index, key)`` in descending key order, pulling small ``topk`` chunks first."""
    n = keys.numel()
    start = 0
    for k in (*_CHUNKS, n):
        k = min(k, n)
        if k <= start:
            continue
        top = torch.topk(keys, k, sorted=True)
        yield from zip(top.indices[start:k].tolist(), top.values[start:k].tolist(), strict=True)
        start = k
        if k == n:
            return


@dataclass
class Choice:
    """The target's token at one position.

    Attributes
    ----------
    token : int
        The chosen token id (allowed by the matcher).
    near_tie : bool
        Greedy only: another allowed token scores within the tolerance of ``token``.
    checks : int
        Single-token grammar checks spent.
    full_mask : bool
        Whether the full next-token mask had to be computed.
    """

    token: int
    near_tie: bool = False
    checks: int = 0
    full_mask: bool = False


def _first_allowed(keys: torch.Tensor, matcher: Matcher, tolerance: float | None) -> Choice:
    """The highest-key allowed token; with ``tolerance``, also whether a runner-up is near."""
    checks = 0
    best: int | None = None
    best_key = float("-inf")
    for token, key in _descending(keys):
        if key == float("-inf"):
            break
        if best is not None and key < best_key - tolerance:  # type: ignore[operator]
            break
        if checks >= _MAX_CHECKS:
            best = None  # undecided: settle it on the full mask
            break
        checks += 1
        if matcher.validate_tokens([token]) == 1:
            if best is not None:
                return Choice(best, True, checks)
            best, best_key = token, key
            if tolerance is None:
                return Choice(best, False, checks)
    if best is not None:
        return Choice(best, False, checks)
    # many rejections (or none allowed among finite keys): decide on the full mask
    mask = allowed_mask(matcher, keys.numel())
    masked = keys.masked_fill(~mask, float("-inf"))
    top = torch.topk(masked, min(2, masked.numel()))
    if top.values[0] == float("-inf"):
        raise NoAllowedToken("no allowed token has a finite score", hint="raise top_k or top_p")
    near = (
        tolerance is not None
        and top.values.numel() > 1
        and float(top.values[0] - top.values[1]) < tolerance
    )
    return Choice(int(top.indices[0]), near, checks, True)


def greedy_choice(
    logits: torch.Tensor, matcher: Matcher, tolerance: float | None = DEFAULT_TIE_TOLERANCE
) -> Choice:
    """The allowed token with the highest logit.

    Parameters
    ----------
    logits : torch.Tensor
        ``float[vocab]`` logits of one position.
    matcher : Matcher
        The grammar state at that position (not changed).
    tolerance : float or None
        Report ``near_tie`` when another allowed token is within this margin (None: don't look).

    Returns
    -------
    Choice
    """
    return _first_allowed(logits.detach().to(torch.float32).reshape(-1), matcher, tolerance)


def coupled_choice(
    logits: torch.Tensor, matcher: Matcher, params: SamplingParams, noise: torch.Tensor
) -> Choice:
    """``argmax(log p~ + noise)`` over the allowed tokens: an exact draw from the masked, warped
    distribution when ``noise`` is fresh standard Gumbel noise.

    Raises
    ------
    NoAllowedToken
        The warps exclude every allowed token.
    """
    scores = warp_logits(logits, params)
    return _first_allowed(scores + noise[: scores.numel()], matcher, None)


def masked_distribution(
    logits: torch.Tensor, matcher: Matcher, params: SamplingParams
) -> torch.Tensor:
    """``p~``: the warped distribution restricted to the allowed tokens, renormalised.

    Raises
    ------
    NoAllowedToken
        The warps exclude every allowed token.
    """
    scores = warp_logits(logits, params)
    mask = allowed_mask(matcher, scores.numel())
    masked = scores.masked_fill(~mask, float("-inf"))
    if not bool(torch.isfinite(masked).any()):
        raise NoAllowedToken(
            "the warps (top_k / top_p) excluded every token the grammar allows",
            hint="raise top_k or top_p",
        )
    return torch.softmax(masked, dim=-1)


def acceptance_probability(p_x: float, q_x: float) -> float:
    """``min(1, p~(x) / q(x))``: the chance that draft token ``x`` stands."""
    if q_x <= 0.0:
        raise InternalError(f"a drafted token has draft probability {q_x} (expected > 0)")
    return min(1.0, p_x / q_x)


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``norm(max(0, p~ - q))``: where the target's token comes from after a rejection."""
    r = torch.clamp(p - q, min=0.0)
    total = float(r.sum())
    if total <= 0.0:  # p~ == q up to rounding: a rejection had probability ~0; p~ is exact
        return p
    return r / total


def mask_rule(
    p: torch.Tensor,
    draft: int | None,
    q: torch.Tensor | None,
    generator: torch.Generator | None,
) -> tuple[int, bool]:
    """Apply the speculative acceptance rule at one position.

    Parameters
    ----------
    p : torch.Tensor
        ``p~``, the target's masked distribution (``masked_distribution``).
    draft : int or None
        The draft token, or None for the bonus position (a plain draw from ``p~``).
    q : torch.Tensor or None
        The drafter's distribution; None for a deterministic draft (a point mass on ``draft``).
    generator : torch.Generator or None
        Source of randomness.

    Returns
    -------
    (token, accepted)
        The emitted token, and whether it is the draft token standing.
    """
    if draft is None:
        return int(torch.multinomial(p, 1, generator=generator)), False
    if q is None:
        q = torch.zeros_like(p)
        q[draft] = 1.0
    q = q[: p.numel()]
    u = float(torch.rand((), generator=generator))
    if u < acceptance_probability(float(p[draft]), float(q[draft])):
        return draft, True
    return int(torch.multinomial(residual(p, q), 1, generator=generator)), False


class GumbelNoise:
    """Standard Gumbel vectors, one per sequence position, fresh after every ``clear``.

    The loop clears it after each verification, so a position's noise decides at most one
    emitted token (noise drawn for draft positions past a rejection is thrown away).

    Parameters
    ----------
    width : int
        Vector length (the logits' width).
    generator : torch.Generator or None
        Source of randomness.
    """

    def __init__(self, width: int, generator: torch.Generator | None) -> None:
        self.width = width
        self.generator = generator
        self._by_position: dict[int, torch.Tensor] = {}

    def __call__(self, position: int) -> torch.Tensor:
        g = self._by_position.get(position)
        if g is None:
            u = torch.rand(self.width, generator=self.generator, dtype=torch.float32)
            g = -torch.log(-torch.log(u.clamp_min(1e-20)))
            self._by_position[position] = g
        return g

    def clear(self) -> None:
        """Forget every vector (the next call draws fresh noise)."""
        self._by_position.clear()


NoiseFn = Callable[[int], torch.Tensor]
