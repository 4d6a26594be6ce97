"""ASAp (Park et al., "Grammar-Aligned Decoding", NeurIPS 2024) over the shared prefix trie.

Each sample draws every token with probability ∝ p(t | w)·Phi~(w·t) over the tokens the grammar
allows, where Phi~ is the trie's upper bound of future grammaticality (trie.py). The first sample
is plain masked decoding; each sample refines the bound along its path, and once the trie is
exact (every node on the support complete) the sampling probability telescopes to
p(y)/Phi(root) = pi_T(y) (docs/algorithms.md §2.4). Before that, samples are biased towards
strings whose prefixes are still over-estimated, and there are no weights to correct that.

Two ways to learn (``check``):

- ``"mask"`` (the paper): the full grammar mask at every new node; the node then lists all
  allowed tokens with their probabilities, so later visits need no forward pass.
- ``"awrs"``: Phi~ differs from 1 only at tokens already seen, so it is an additive logit offset,
  and AWRS draws from p·Phi~ restricted to the grammar with single-token checks; every token AWRS
  rejects is recorded with Phi = 0. No full masks (except where the grammar forces the text or
  at the length cap, where a mask is cheap, and when AWRS falls back after ``max_rejections``),
  so a node learns its dead tokens only as they are drawn, and the bound tightens more slowly.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from structgen.aligned.base import (
    AlignedStats,
    Draw,
    PathDecoder,
    allowed_at,
    check_params,
    draw_index,
    grammar_forces,
)
from structgen.aligned.trie import Node, PrefixTrie
from structgen.compiler import CompiledGrammar
from structgen.errors import ConfigurationError
from structgen.runtime.matcher import Matcher
from structgen.sampling.awrs import AWRS
from structgen.sampling.base import allowed_mask
from structgen.sampling.warp import NoAllowedToken, SamplingParams

__all__ = ["ASAp", "CheckMode"]

CheckMode = Literal["mask", "awrs"]


class _Recorder:
    """A matcher proxy that records what AWRS learns: single-token verdicts and full masks."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.verdicts: list[tuple[int, bool]] = []
        self.mask: torch.Tensor | None = None

    def validate_tokens(self, tokens: list[int]) -> int:
        n = self.matcher.validate_tokens(tokens)
        self.verdicts.append((int(tokens[0]), n == 1))
        return n

    def next_token_mask(self) -> torch.Tensor:
        self.mask = self.matcher.next_token_mask()
        return self.mask


def check_mode(check: Any) -> CheckMode:
    """Validate a ``check`` option.

    Raises:
        ConfigurationError: not ``"mask"`` or ``"awrs"``.
    """
    if check not in ("mask", "awrs"):
        raise ConfigurationError(f"Invalid check: expected 'mask' or 'awrs', got {check!r}")
    mode: CheckMode = check
    return mode


class ASAp:
    """Adaptive sampling with approximate expected futures.

    Args:
        trie: the trie of this (model, prompt, grammar, warps, length cap); it persists and keeps
            learning across calls.
        check: ``"mask"`` or ``"awrs"`` (module docstring).
        max_rejections: AWRS's full-mask fallback (``check="awrs"`` only).
    """

    def __init__(
        self, trie: PrefixTrie, *, check: CheckMode = "mask", max_rejections: int | None = 64
    ) -> None:
        self.trie = trie
        self.check = check_mode(check)
        self._awrs = AWRS(SamplingParams(), max_rejections=max_rejections, proper_weights=False)

    def draw(
        self,
        decoder: PathDecoder,
        compiled: CompiledGrammar,
        max_tokens: int,
        generator: torch.Generator | None,
        stats: AlignedStats,
    ) -> Draw:
        """One sample (``log_weight`` None: ASAp gives no weights).

        A sample that reaches a node with no continuation inside the length cap comes back with
        ``complete=False``; the trie then knows that node is dead.
        """
        check_params(decoder.params, max_tokens)
        stats.attempts += 1
        self.trie.samples += 1
        trie = self.trie
        node = trie.root
        path: list[int] = []
        matcher = compiled.matcher()
        while True:
            depth = len(path)
            if self.check == "mask" or depth >= max_tokens or grammar_forces(matcher):
                slot = self._step_mask(node, path, matcher, decoder, max_tokens, generator, stats)
            else:
                slot = self._step_awrs(node, path, matcher, decoder, generator, stats)
            if slot is None:
                return Draw(path, False, None)
            token = int(node.ids[slot])
            if trie.is_eos(token):
                return Draw(path, True, None)
            matcher.consume_token(token)
            path.append(token)
            node = trie.child(node, slot)

    def _step_mask(  # noqa: PLR0913
        self,
        node: Node,
        path: list[int],
        matcher: Matcher,
        decoder: PathDecoder,
        max_tokens: int,
        generator: torch.Generator | None,
        stats: AlignedStats,
    ) -> int | None:
        if not node.complete:
            logp = node.full_logp if node.full_logp is not None else decoder.logp(path)
            if len(path) < max_tokens:
                stats.full_masks += 1
            self.trie.expand(node, allowed_at(matcher, len(path), max_tokens, logp.numel()), logp)
        if not node.value > 0:
            return None
        return draw_index(node.weights(), generator)

    def _step_awrs(
        self,
        node: Node,
        path: list[int],
        matcher: Matcher,
        decoder: PathDecoder,
        generator: torch.Generator | None,
        stats: AlignedStats,
    ) -> int | None:
        if node.complete:  # a fallback mask listed every allowed token here
            return draw_index(node.weights(), generator) if node.value > 0 else None
        trie = self.trie
        logp = node.full_logp if node.full_logp is not None else decoder.logp(path)
        trie.memo(node, logp)
        scores = logp.clone()
        if node.ids.size:
            ids = torch.from_numpy(node.ids)
            scores[ids] = scores[ids] + torch.from_numpy(node.phi).float().log()
        recorder = _Recorder(matcher)
        try:
            token, _ = self._awrs.sample(scores, recorder, generator)  # type: ignore[arg-type]
        except NoAllowedToken:
            token = None
        stats.checks += len(recorder.verdicts)
        for rejected, ok in recorder.verdicts:
            if not ok:
                trie.record(node, rejected, float(logp[rejected]), alive=False)
        if recorder.mask is not None or token is None:
            stats.full_masks += 1
            trie.expand(node, allowed_mask(matcher, logp.numel()), logp)
        if token is None:
            return None
        slot = trie.record(node, token, float(logp[token]), alive=True)
        return slot
