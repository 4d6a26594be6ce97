"""Draft length: a fixed count, or adaptive (SpecDec++-style stopping).

Adaptive rule. Each proposed token ``i`` of a draft has a predicted acceptance ``p_i``. With
a drafter's confidence (a draft model's probability of its token) it is that confidence times
a calibration factor learned online (accepted tokens / summed confidence: an untrained early
exit is confident and mostly wrong). Without one, it is an acceptance rate learned online for
the token's *feature* (its source and a label the drafter gives, e.g. the kind and strength of
a look-up match and the token's index in the proposal), counted over verified tokens whose
predecessors in the draft were accepted. SpecDec++ trains a head to predict acceptance; this is
the same stopping rule with a lookup table learned as decoding goes.

The draft's first ``i`` tokens all stand with probability ``s_i = p_1 ... p_i``, which is
also the expected gain, in tokens, of drafting token ``i``. Its cost is one more position in
the verification pass, plus drafting it (measured per source: a drafter that runs a model pays
per token). Pass costs are learned from the loop's own timings as a function of the number of
positions (``pass_cost``: one position measured on its own, more positions by a line fitted to
the draft sizes), each size's estimate a low quantile of its recent timings, since a preempted
or throttled pass only ever takes longer (on a busy machine the means made multi-position passes
look dear and drafts short). On CPU the curve is not a line: going from 1 to 2 positions costs
~60% of a pass for SmolLM2, each position after that a few percent. With ``C`` the step's cost
so far and ``E = 1 + s_1 + ... + s_{i-1}`` its expected tokens, token ``i`` is drafted while

    s_i / (marginal cost of token i)  >=  E / C

i.e. while it raises the expected tokens per second of the step. Every 4th draft admits its
first token regardless, so acceptance rates are learned (and re-learned) for features that do
not look worth drafting yet. Tokens the grammar forces are certain: they are counted apart (they
add to the pass's cost but are never a reason to stop), and a drafter whose source is the
grammar itself (``forced``) keeps its own acceptance rate. Drafters that take the policy's
``admit`` through ``DraftRequest.admit`` stop drafting as soon as a token would not pay.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from structgen.errors import ConfigurationError

__all__ = ["AdaptiveDraftLength", "DraftLength", "FixedDraftLength"]

_PASS_WINDOW = 16  # recent timings kept per pass size
_PASS_QUANTILE = 0.25  # the estimate of a size's cost: this quantile of its window
_LINE_SIZES = 64  # the line is fitted to pass sizes 2.._LINE_SIZES (drafts, not prefills)


class DraftLength:
    """The draft-length policy interface used by the speculative loop.

    Per draft: ``begin(positions)`` (the positions the pass feeds anyway), then ``admit`` for
    each proposed token (False: stop drafting here) and ``add_forced`` for each forced one.
    After the pass: ``record_pass`` with its size and duration and ``observe`` per verified token.
    """

    max_tokens: int = 16

    def begin(self, positions: int) -> None:
        """A new draft starts; the pass already feeds ``positions`` tokens."""

    def admit(self, feature: str, confidence: float | None) -> bool:
        """May one more proposed token (``feature``: ``source/label``) join the draft?"""
        raise NotImplementedError

    def add_forced(self, count: int = 1) -> None:
        """``count`` forced tokens joined the draft."""

    def remaining(self) -> int:
        """How many more proposed tokens the draft may take at most."""
        raise NotImplementedError

    def record_draft(self, source: str, tokens: int, seconds: float) -> None:
        """``source`` took ``seconds`` to propose ``tokens`` tokens."""

    def observe(self, feature: str, accepted: bool, confidence: float | None = None) -> None:
        """A verified token with ``feature`` (and the drafter's ``confidence``) stood or not."""

    def record_pass(self, positions: int, seconds: float) -> None:
        """A verification pass over ``positions`` positions took ``seconds``."""


class FixedDraftLength(DraftLength):
    """Always draft up to ``max_tokens`` proposed tokens.

    Parameters
    ----------
    max_tokens : int
        Proposed tokens per draft (forced tokens not counted).
    """

    def __init__(self, max_tokens: int = 8) -> None:
        if max_tokens < 1:
            raise ConfigurationError(f"Invalid max_tokens: expected >= 1, got {max_tokens}")
        self.max_tokens = max_tokens
        self._count = 0

    def begin(self, positions: int) -> None:
        self._count = 0

    def admit(self, feature: str, confidence: float | None) -> bool:
        if self._count >= self.max_tokens:
            return False
        self._count += 1
        return True

    def remaining(self) -> int:
        return self.max_tokens - self._count


@dataclass
class _Calibration:
    """Exponentially decayed sums of confidence and acceptance, with a prior of 2 tokens."""

    confidence: float = 0.0
    accepted: float = 0.0

    def add(self, confidence: float, accepted: bool, decay: float) -> None:
        self.confidence = decay * self.confidence + confidence
        self.accepted = decay * self.accepted + (1.0 if accepted else 0.0)

    def factor(self) -> float:
        return (self.accepted + 2.0) / (self.confidence + 2.0)


@dataclass
class _Rate:
    """Exponentially decayed counts of accepted and refused tokens."""

    accepted: float = 0.0
    refused: float = 0.0

    def add(self, accepted: int, refused: int, decay: float) -> None:
        self.accepted = decay * self.accepted + accepted
        self.refused = decay * self.refused + refused

    def estimate(self, prior: float, weight: float = 2.0) -> float:
        return (self.accepted + prior * weight) / (self.accepted + self.refused + weight)


@dataclass
class AdaptiveDraftLength(DraftLength):
    """Draft while the next token is predicted to pay for its place in the verification pass.

    Parameters
    ----------
    max_tokens : int
        Hard cap on proposed tokens per draft.
    prior : float
        Acceptance rate assumed for a source before it has been observed.
    cost_ratio : float or None
        ``b / a`` of the pass-cost model ``a + b * n``; None fits it from ``record_pass``
        timings (prior 0.05 until a few passes of different sizes were seen).
    decay : float
        Weight of the past in the acceptance rates and the draft costs, per observation.
    """

    max_tokens: int = 32
    prior: float = 0.6
    cost_ratio: float | None = None
    decay: float = 0.97
    _rates: dict[str, _Rate] = field(default_factory=dict, repr=False)
    _calibration: dict[str, _Calibration] = field(default_factory=dict, repr=False)
    _by_size: dict[int, deque[float]] = field(default_factory=dict, repr=False)
    _size_cost: dict[int, float] = field(default_factory=dict, repr=False)
    _line: tuple[float, float] | None = field(default=None, repr=False)
    _draft_cost: dict[str, list[float]] = field(default_factory=dict, repr=False)
    _count: int = field(default=0, repr=False)
    _drafts: int = field(default=0, repr=False)
    _n: int = field(default=1, repr=False)
    _cost: float = field(default=1.0, repr=False)
    _joint: float = field(default=1.0, repr=False)
    _gain: float = field(default=1.0, repr=False)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigurationError(f"Invalid max_tokens: expected >= 1, got {self.max_tokens}")
        if not 0.0 < self.prior <= 1.0:
            raise ConfigurationError(f"Invalid prior: expected 0 < prior <= 1, got {self.prior}")
        if self.cost_ratio is not None and not self.cost_ratio > 0:
            raise ConfigurationError(
                f"Invalid cost_ratio: expected None or > 0, got {self.cost_ratio}"
            )
        if not 0.0 < self.decay <= 1.0:
            raise ConfigurationError(f"Invalid decay: expected 0 < decay <= 1, got {self.decay}")

    # ------------------------------------------------------------------ cost model

    def _pass_seconds(self) -> tuple[float, float] | None:
        """The fitted ``(a, b)`` in seconds, or None before a few passes of different sizes."""
        return self._line

    def _refit(self) -> None:
        """The line ``a + b * n`` through each size's estimate, weighted by its timings: over
        the sizes a draft makes (2 to ``_LINE_SIZES``) where two or more of them were seen, else
        over all sizes."""
        drafts = [n for n in self._size_cost if 2 <= n <= _LINE_SIZES]
        sizes = drafts if len(drafts) >= 2 else list(self._size_cost)
        w = sx = sy = sxx = sxy = 0.0
        for size in sizes:
            cost = self._size_cost[size]
            k = float(len(self._by_size[size]))
            x = float(size)
            w, sx, sy = w + k, sx + k * x, sy + k * cost
            sxx, sxy = sxx + k * x * x, sxy + k * x * cost
        var = w * sxx - sx * sx
        if w < 4 or var <= 1e-9 * max(w * sxx, 1.0):
            self._line = None
            return
        b = (w * sxy - sx * sy) / var
        self._line = ((sy - b * sx) / w, b)

    def pass_cost(self, positions: int) -> float:
        """Predicted cost of a pass over ``positions`` positions.

        In seconds once timings of a few passes of different sizes were recorded: for one
        position, a low quantile of the recent one-position passes (once seen twice); for more,
        the line ``a + b * n`` fitted to the per-size estimates of draft-sized passes (never
        below the one-position cost). On CPU the step from 1 to 2 positions is large, ~60% for
        SmolLM2 (the matrix-vector kernels give way to matrix-matrix ones); beyond that a
        position costs a few percent, and a line keeps that marginal cost smooth: per-size
        estimates differ by more noise than a position costs, and a spurious jump between two
        sizes stopped drafts there (0.35 passes per token on extraction against 0.27 with the
        line alone). Before that, or with a fixed ``cost_ratio``, in units of a one-position
        pass: ``1 + ratio * (positions - 1)``.
        """
        positions = max(positions, 1)
        if self.cost_ratio is not None:
            return 1.0 + self.cost_ratio * (positions - 1)
        fit = self._pass_seconds()
        if fit is None:
            return 1.0 + 0.05 * (positions - 1)
        one = self._size_cost[1] if len(self._by_size.get(1, ())) >= 2 else None
        if positions == 1 and one is not None:
            return one
        a, b = fit
        line = max(a + b * positions, 1e-6)
        return line if one is None else max(line, one)

    def pass_cost_ratio(self) -> float:
        """``b / a`` of the fitted line (for reports; decisions use ``pass_cost``)."""
        if self.cost_ratio is not None:
            return self.cost_ratio
        fit = self._pass_seconds()
        if fit is None:
            return 0.05
        a, b = fit
        return 1.0 if a <= 0 else min(max(b / a, 0.005), 1.0)

    def draft_cost(self, source: str) -> float:
        """What ``source`` spends per drafted token, in the units of ``pass_cost``."""
        spent = self._draft_cost.get(source)
        if spent is None or spent[1] <= 0:
            return 0.0
        seconds = spent[0] / spent[1]
        if self.cost_ratio is None and self._pass_seconds() is not None:
            return seconds
        one = self._size_cost.get(1)  # in units of a one-position pass
        return seconds / one if one else 0.0

    def record_draft(self, source: str, tokens: int, seconds: float) -> None:
        """``source`` took ``seconds`` to propose ``tokens`` tokens."""
        if tokens <= 0 or not math.isfinite(seconds) or seconds < 0:
            return
        spent = self._draft_cost.setdefault(source, [0.0, 0.0])
        spent[0] = self.decay * spent[0] + seconds
        spent[1] = self.decay * spent[1] + tokens

    def record_pass(self, positions: int, seconds: float) -> None:
        if positions <= 0 or not math.isfinite(seconds) or seconds <= 0:
            return
        seen = self._by_size.setdefault(positions, deque(maxlen=_PASS_WINDOW))
        seen.append(seconds)
        ordered = sorted(seen)
        self._size_cost[positions] = ordered[int(_PASS_QUANTILE * (len(ordered) - 1))]
        self._refit()

    # ------------------------------------------------------------------ per draft

    def rate(self, feature: str) -> float:
        """Predicted acceptance of a token with ``feature``.

        Before any observation: ``prior`` for a proposal's first token (label ending in
        ``/0``), ``(1 + prior) / 2`` for later ones (a continuation whose start stood).
        """
        prior = self.prior if feature.endswith("/0") else (1.0 + self.prior) / 2
        r = self._rates.get(feature)
        return prior if r is None else r.estimate(prior)

    def begin(self, positions: int) -> None:
        self._count = 0
        self._drafts += 1
        self._n = max(positions, 1)
        self._cost = self.pass_cost(self._n)
        self._joint = 1.0
        self._gain = 1.0  # the token the pass always yields (correction or bonus)

    def _position_cost(self, n: int | None = None) -> float:
        """What one more position adds to a pass over ``n`` (default: this step's) positions,
        never less than 1% of it."""
        n = self._n if n is None else n
        now = self.pass_cost(n)
        return max(self.pass_cost(n + 1) - now, 0.01 * now)

    def add_forced(self, count: int = 1) -> None:
        for _ in range(count):
            self._cost += self._position_cost()
            self._n += 1

    def admit(self, feature: str, confidence: float | None) -> bool:
        if self._count >= self.max_tokens:
            return False
        if confidence is None:
            p = self.rate(feature)
        else:
            cal = self._calibration.get(feature)
            p = min(max(confidence * (1.0 if cal is None else cal.factor()), 0.0), 1.0)
        joint = self._joint * p
        # marginal cost of the token: its position in the pass, and drafting it
        extra = self._position_cost() + self.draft_cost(feature.split("/", 1)[0])
        # s_i / extra >= E / cost: the token raises the expected tokens per second; or a run
        # of such tokens would, though the first alone does not (the 1 -> 2 step is dear)
        worth = joint * self._cost >= extra * self._gain or self._run_pays(p, feature)
        # every 4th draft its first token goes anyway, so rates are learned (and re-learned)
        # for features that do not look worth it yet
        explore = self._count == 0 and self._drafts % 4 == 0
        if not (worth or explore):
            return False
        self._count += 1
        self._n += 1
        self._cost += extra
        self._joint = joint
        self._gain += joint
        return True

    def _run_pays(self, p: float, feature: str) -> bool:
        """Would drafting this token and up to ``remaining() - 1`` more, each standing with
        probability ``p`` as this one, raise the step's expected tokens per second?

        The stopping rule above is myopic, and on CPU the cost curve is concave (the first
        extra position costs ~60% of a pass, the next ones a few percent each): a token that
        does not pay alone can open a run that does. ``p`` for the later tokens is this token's
        own, the best estimate there is before the drafter proposes them."""
        if p <= 0.0:
            return False
        draft = self.draft_cost(feature.split("/", 1)[0])
        joint, gain, cost, n = self._joint, self._gain, self._cost, self._n
        for _ in range(self.remaining()):
            cost += self._position_cost(n) + draft
            n += 1
            joint *= p
            gain += joint
            if gain * self._cost > self._gain * cost:
                return True
        return False

    def remaining(self) -> int:
        return self.max_tokens - self._count

    def observe(self, feature: str, accepted: bool, confidence: float | None = None) -> None:
        if confidence is not None:
            cal = self._calibration.setdefault(feature, _Calibration())
            cal.add(min(max(confidence, 0.0), 1.0), accepted, self.decay)
            return
        rate = self._rates.setdefault(feature, _Rate())
        rate.add(1 if accepted else 0, 0 if accepted else 1, self.decay)
