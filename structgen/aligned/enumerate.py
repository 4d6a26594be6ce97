"""Exact enumeration of a finite target: every token sequence of the grammar within the length
cap, with its model probability, for tests and benchmarks.

Breadth-first over token prefixes: the prefixes of one depth are scored in batches (all rows have
the same length, so no padding is needed), each reusing the prompt's KV cache. At each prefix the
full grammar mask gives the allowed continuations; the EOS ones complete a sequence. Besides the
target pi_T(y) = p(y·EOS)/Σ p, the walk yields the exact distribution of locally masked decoding,
q(y) = Π_t p(y_t | y_<t)/Z_t, which is what ``Masked`` and ``AWRS`` sample.

Tokenization makes the sequence space larger than the string space (a string has many token
paths). ``min_prefix_prob`` prunes prefixes whose model probability p(prefix) falls below it;
every sequence below a pruned prefix has at most that probability, and ``pruned_mass`` (the sum
over pruned prefixes) bounds the target mass left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from structgen.aligned.base import AlignedStats, LanguageModel, allowed_at, check_params, logsumexp
from structgen.compiler import CompiledGrammar
from structgen.errors import ConfigurationError, LimitExceeded
from structgen.runtime.matcher import Matcher
from structgen.sampling.warp import SamplingParams, warp_logits

__all__ = ["ExactDistribution", "enumerate_language"]


@dataclass
class ExactDistribution:
    """The enumerated target.

    Attributes:
        sequences: token ids of every sequence found (EOS excluded).
        log_p: log p(y·EOS | prompt) per sequence (warped model; summed over EOS ids).
        log_q: log-probability of each sequence under locally masked decoding.
        pruned_mass: model probability of the pruned prefixes (bounds the mass left out).
        nodes: prefixes evaluated (one model row each).
        logits: raw logits (``float32[V]``) at each evaluated prefix, when kept.
    """

    sequences: list[tuple[int, ...]]
    log_p: np.ndarray
    log_q: np.ndarray
    pruned_mass: float
    nodes: int
    logits: dict[tuple[int, ...], torch.Tensor] | None = None

    @property
    def log_z(self) -> float:
        """log Σ_y p(y·EOS): the model's probability of the target (over what was found)."""
        return logsumexp(self.log_p)

    def target(self) -> np.ndarray:
        """pi_T over ``sequences`` (sums to 1)."""
        return np.asarray(np.exp(self.log_p - self.log_z), dtype=np.float64)

    def lcd(self) -> np.ndarray:
        """The locally masked decoding distribution over ``sequences``."""
        return np.asarray(np.exp(self.log_q), dtype=np.float64)

    def by_key(self, probs: np.ndarray, key: object = None) -> dict[object, float]:
        """``probs`` summed by ``key(sequence)`` (default: the sequence itself)."""
        out: dict[object, float] = {}
        for seq, pr in zip(self.sequences, probs.tolist(), strict=True):
            k = key(seq) if callable(key) else seq
            out[k] = out.get(k, 0.0) + pr
        return out


def enumerate_language(
    lm: LanguageModel,
    compiled: CompiledGrammar,
    prompt: Sequence[int],
    *,
    params: SamplingParams | None = None,
    max_tokens: int,
    min_prefix_prob: float = 0.0,
    max_nodes: int = 100_000,
    batch_size: int = 64,
    keep_logits: bool = False,
    stats: AlignedStats | None = None,
) -> ExactDistribution:
    """Enumerate the target pi_T with the model.

    Raises:
        LimitExceeded: more than ``max_nodes`` prefixes would be evaluated.
        ConfigurationError: bad arguments.
    """
    params = params or SamplingParams()
    check_params(params, max_tokens)
    if batch_size < 1:
        raise ConfigurationError(f"Invalid batch_size: expected >= 1, got {batch_size}")
    prompt = [int(t) for t in prompt]
    if not prompt:
        raise ConfigurationError("Invalid prompt: expected at least one token (e.g. BOS)")
    stats = stats if stats is not None else AlignedStats()
    log_floor = math.log(min_prefix_prob) if min_prefix_prob > 0 else -math.inf
    eos = frozenset(int(t) for t in compiled.eos_token_ids.tolist())
    cache = lm.new_cache()
    root_logits = stats.forward(lm, [prompt], cache, last_only=True)[0, -1]
    sequences: list[tuple[int, ...]] = []
    log_p: list[float] = []
    log_q: list[float] = []
    kept: dict[tuple[int, ...], torch.Tensor] | None = {} if keep_logits else None
    pruned = 0.0
    nodes = 0
    # frontier entries: (path, matcher, log p(path), log q(path))
    frontier: list[tuple[tuple[int, ...], Matcher, float, float]] = [
        ((), compiled.matcher(), 0.0, 0.0)
    ]
    index: dict[tuple[int, ...], int] = {}
    depth = 0
    while frontier:
        nodes += len(frontier)
        if nodes > max_nodes:
            raise LimitExceeded(
                f"enumeration needs more than max_nodes={max_nodes} prefixes",
                hint="raise max_nodes or min_prefix_prob, or use a smaller grammar",
            )
        following: list[tuple[tuple[int, ...], Matcher, float, float]] = []
        for start in range(0, len(frontier), batch_size):
            chunk = frontier[start : start + batch_size]
            if depth == 0:
                logits = root_logits.unsqueeze(0)
            else:
                lm.crop(cache, len(prompt))
                lm.reorder(cache, [0] * len(chunk))
                logits = stats.forward(lm, [list(p) for p, *_ in chunk], cache, last_only=True)
                logits = logits[:, -1]
            for row, (path, matcher, lp, lq) in enumerate(chunk):
                raw = logits[row]
                if kept is not None:
                    kept[path] = raw.detach().clone()
                logp = warp_logits(raw, params)
                mask = allowed_at(matcher, depth, max_tokens, logp.numel()) & torch.isfinite(logp)
                ids = torch.nonzero(mask).flatten()
                if ids.numel() == 0:
                    continue
                values = logp[ids].double()
                log_z = float(torch.logsumexp(values, dim=0))
                for token, value in zip(ids.tolist(), values.tolist(), strict=True):
                    cp, cq = lp + value, lq + value - log_z
                    if token in eos:  # several EOS ids end the same sequence: add them up
                        at = index.get(path)
                        if at is None:
                            index[path] = len(sequences)
                            sequences.append(path)
                            log_p.append(cp)
                            log_q.append(cq)
                        else:
                            log_p[at] = float(np.logaddexp(log_p[at], cp))
                            log_q[at] = float(np.logaddexp(log_q[at], cq))
                    elif cp < log_floor:
                        pruned += math.exp(cp)
                    else:
                        child = matcher.copy()
                        child.consume_token(token)
                        following.append(((*path, token), child, cp, cq))
        frontier = following
        depth += 1
    return ExactDistribution(
        sequences=sequences,
        log_p=np.array(log_p, dtype=np.float64),
        log_q=np.array(log_q, dtype=np.float64),
        pruned_mass=pruned,
        nodes=nodes,
        logits=kept,
    )
