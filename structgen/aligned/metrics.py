"""Distances between a known distribution and samples: KL, total variation, chi-square.

Distributions are dicts from outcome (a token tuple, a string) to probability. Empirical
distributions may be weighted (self-normalised importance weights).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "chi_square_pvalue",
    "empirical",
    "kl_divergence",
    "total_variation",
]


def empirical(
    outcomes: Iterable[Hashable], log_weights: Sequence[float] | None = None
) -> dict[Hashable, float]:
    """The (weighted) empirical distribution of ``outcomes``; weights are self-normalised."""
    items = list(outcomes)
    if log_weights is None:
        w = np.ones(len(items))
    else:
        lw = np.asarray(log_weights, dtype=np.float64)
        top = float(lw.max()) if lw.size else -math.inf
        w = np.exp(lw - top) if top > -math.inf else np.zeros_like(lw)
    total = float(w.sum())
    out: dict[Hashable, float] = {}
    if total <= 0:
        return out
    for item, weight in zip(items, (w / total).tolist(), strict=True):
        if weight > 0:
            out[item] = out.get(item, 0.0) + weight
    return out


def kl_divergence(
    exact: Mapping[Hashable, float],
    estimate: Mapping[Hashable, float],
    *,
    n: float | None = None,
    smoothing: float = 0.5,
) -> float:
    """KL(exact ‖ estimate) in nats.

    An empirical estimate has zeros where ``exact`` does not, which makes the divergence
    infinite; with ``n`` (the number of samples behind ``estimate``) it is smoothed first by
    additive pseudo-counts: (n·q(y) + smoothing)/(n + smoothing·K) over the K outcomes of either
    distribution. Without ``n`` no smoothing is applied.
    """
    keys = set(exact) | set(estimate)
    if n is not None and smoothing > 0:
        denom = n + smoothing * len(keys)
        q = {k: (n * estimate.get(k, 0.0) + smoothing) / denom for k in keys}
    else:
        q = dict(estimate)
    total = 0.0
    for k, p in exact.items():
        if p <= 0:
            continue
        qk = q.get(k, 0.0)
        if qk <= 0:
            return math.inf
        total += p * math.log(p / qk)
    return max(total, 0.0)


def total_variation(p: Mapping[Hashable, float], q: Mapping[Hashable, float]) -> float:
    """½ Σ |p − q| over the union of the supports."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def chi_square_pvalue(
    counts: Mapping[Hashable, int], probs: Mapping[Hashable, float], *, min_expected: float = 5.0
) -> float:
    """p-value of Pearson's chi-square test of ``counts`` against ``probs``.

    Outcomes with an expected count below ``min_expected`` are pooled into one bin (the test's
    approximation needs expected counts of about 5); an observed outcome outside the support of
    ``probs`` gives p = 0.
    """
    n = sum(counts.values())
    if n == 0:
        return 1.0
    if any(c > 0 and probs.get(k, 0.0) <= 0 for k, c in counts.items()):
        return 0.0
    bins_obs: list[float] = []
    bins_exp: list[float] = []
    pool_obs = pool_exp = 0.0
    for k, p in probs.items():
        expected = n * p
        if expected < min_expected:
            pool_obs += counts.get(k, 0)
            pool_exp += expected
        else:
            bins_obs.append(counts.get(k, 0))
            bins_exp.append(expected)
    if pool_exp > 0:
        bins_obs.append(pool_obs)
        bins_exp.append(pool_exp)
    dof = len(bins_exp) - 1
    if dof < 1:
        return 1.0
    stat = sum((o - e) ** 2 / e for o, e in zip(bins_obs, bins_exp, strict=True))
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0), torch.tensor(stat / 2.0)))
