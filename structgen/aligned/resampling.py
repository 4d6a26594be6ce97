"""Resampling schemes and weight summaries for particle methods (numpy over log-weights)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from structgen.errors import ConfigurationError

__all__ = ["ResamplingScheme", "ess", "log_mean_exp", "normalized", "resample"]

ResamplingScheme = Literal["systematic", "multinomial"]


def log_mean_exp(log_weights: np.ndarray) -> float:
    """log of the mean weight; -inf when every weight is 0."""
    top = float(np.max(log_weights)) if log_weights.size else -math.inf
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.mean(np.exp(log_weights - top))))


def normalized(log_weights: np.ndarray) -> np.ndarray:
    """Weights normalised to sum to 1 (all zero when every weight is 0)."""
    top = float(np.max(log_weights)) if log_weights.size else -math.inf
    if top == -math.inf:
        return np.zeros_like(log_weights, dtype=np.float64)
    w = np.exp(log_weights - top)
    return np.asarray(w / w.sum(), dtype=np.float64)


def ess(log_weights: np.ndarray) -> float:
    """Effective sample size 1/Σ w_i² of the normalised weights (0 when all weights are 0)."""
    w = normalized(log_weights)
    total = float(np.sum(w * w))
    return 1.0 / total if total > 0 else 0.0


def resample(
    log_weights: np.ndarray,
    scheme: ResamplingScheme,
    generator: torch.Generator | None,
) -> np.ndarray:
    """Ancestor indices (``int64[n]``) drawn according to the normalised weights.

    Raises:
        ConfigurationError: an unknown ``scheme``.
    """
    w = normalized(log_weights)
    n = w.size
    cum = np.cumsum(w)
    cum[-1] = 1.0
    if scheme == "systematic":
        u0 = float(torch.rand((), generator=generator, dtype=torch.float64))
        points = (u0 + np.arange(n)) / n
    elif scheme == "multinomial":
        points = np.sort(torch.rand(n, generator=generator, dtype=torch.float64).numpy())
    else:
        raise ConfigurationError(
            f"Invalid resampling: expected 'systematic' or 'multinomial', got {scheme!r}"
        )
    return np.minimum(np.searchsorted(cum, points, side="right"), n - 1).astype(np.int64)
