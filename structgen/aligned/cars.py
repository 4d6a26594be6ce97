"""CARS-style exact rejection sampling over the ASAp trie (cf. arXiv 2510.01902).

Proposal: from the root, draw each token with probability p(t | w)·Phi~(w·t)/Phi~(w) over every
token not known to be dead (trie.py), so tokens the trie knows nothing about count with Phi = 1.
A proposal is rejected as soon as it is known to leave the target; it is accepted when it draws
EOS. Why every accepted sample is exact: if the trie does not change during an attempt, the
probability of drawing y telescopes,

    Π_i p(y_i | y_<i)·Phi~(y_<=i)/Phi~(y_<i) = p(y)·Phi~(y·EOS)/Phi~(root) = p(y)/Phi~(root),

so accepted samples follow p(y)·1[y in L_T]/Phi(L_T) = pi_T(y). What the trie learns inside an
attempt is handled so that the identity still holds:

- a token drawn and refuted by a single check (``check="awrs"``) ends the attempt: that draw was
  the rejection event itself; it is recorded with Phi = 0 for later attempts;
- a node whose full mask is recorded on arrival (``check="mask"`` at every new node; both modes
  at the length cap and where the grammar forces the text, ``base.grammar_forces``) has a new
  bound Phi_new <= Phi_used, the value its parent drew it with; the attempt continues with
  probability Phi_new/Phi_used (the mask is a function of the path, not of the draws, so this
  thinning keeps the product telescoping: the parent's factor Phi_used cancels against the
  thinning, and the node's own normaliser is Phi_new).

Acceptance rate = Phi(L_T)/Phi~(root), which rises as refuted subtrees are pruned; attempts walk
the trie without forward passes wherever it holds the probabilities (mask mode, or memoised
logits), so late attempts are cheap.
"""

from __future__ import annotations

import torch

from structgen.aligned.asap import CheckMode, check_mode
from structgen.aligned.base import (
    AlignedStats,
    Draw,
    PathDecoder,
    allowed_at,
    check_params,
    draw_index,
    grammar_forces,
    is_allowed_at,
    uniform,
)
from structgen.aligned.trie import Node, PrefixTrie
from structgen.compiler import CompiledGrammar
from structgen.errors import ConfigurationError, LimitExceeded
from structgen.runtime.matcher import Matcher

__all__ = ["CARS"]


class CARS:
    """Exact rejection sampler over a persistent prefix trie.

    Args:
        trie: the trie of this (model, prompt, grammar, warps, length cap); shareable with ASAp.
        check: ``"mask"`` (learn full masks at new nodes) or ``"awrs"`` (single checks only).
        max_attempts: give up after this many rejected attempts for one sample.
    """

    def __init__(
        self, trie: PrefixTrie, *, check: CheckMode = "mask", max_attempts: int = 100_000
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError(f"Invalid max_attempts: expected >= 1, got {max_attempts}")
        self.trie = trie
        self.check = check_mode(check)
        self.max_attempts = max_attempts

    def draw(
        self,
        decoder: PathDecoder,
        compiled: CompiledGrammar,
        max_tokens: int,
        generator: torch.Generator | None,
        stats: AlignedStats,
    ) -> Draw:
        """One exact sample of pi_T (``log_weight`` 0.0).

        Raises:
            ConfigurationError: no string of the grammar fits in ``max_tokens`` tokens.
            LimitExceeded: ``max_attempts`` attempts were all rejected.
        """
        check_params(decoder.params, max_tokens)
        for _ in range(self.max_attempts):
            if not self.trie.root.value > 0:
                raise ConfigurationError(
                    f"Invalid max_new_tokens: no string of the grammar fits in {max_tokens} tokens",
                    hint="raise max_new_tokens",
                )
            stats.attempts += 1
            tokens = self._attempt(decoder, compiled, max_tokens, generator, stats)
            if tokens is not None:
                stats.accepted += 1
                self.trie.samples += 1
                return Draw(tokens, True, 0.0)
        raise LimitExceeded(
            f"CARS: {self.max_attempts} attempts in a row were rejected",
            hint="raise max_attempts, or use sampler='smc'",
        )

    def _attempt(
        self,
        decoder: PathDecoder,
        compiled: CompiledGrammar,
        max_tokens: int,
        generator: torch.Generator | None,
        stats: AlignedStats,
    ) -> list[int] | None:
        """The tokens of an accepted attempt, None on rejection."""
        trie = self.trie
        node = trie.root
        used = node.value  # the bound the current node was drawn with
        path: list[int] = []
        matcher = compiled.matcher()
        while True:
            depth = len(path)
            if not node.complete and (
                self.check == "mask" or depth >= max_tokens or grammar_forces(matcher)
            ):
                logp = node.full_logp if node.full_logp is not None else decoder.logp(path)
                if depth < max_tokens:
                    stats.full_masks += 1
                trie.expand(node, allowed_at(matcher, depth, max_tokens, logp.numel()), logp)
                # thinning by Phi_new / Phi_used (module docstring)
                if not node.value > 0 or uniform(generator) * used >= node.value:
                    return None
            if node.complete:
                if not node.value > 0:
                    return None
                slot = draw_index(node.weights(), generator)
            else:
                slot = self._draw_checked(
                    node, path, matcher, decoder, max_tokens, generator, stats
                )
                if slot is None:
                    return None
            used = float(node.phi[slot])
            token = int(node.ids[slot])
            if trie.is_eos(token):
                return path
            matcher.consume_token(token)
            path.append(token)
            node = trie.child(node, slot)

    def _draw_checked(
        self,
        node: Node,
        path: list[int],
        matcher: Matcher,
        decoder: PathDecoder,
        max_tokens: int,
        generator: torch.Generator | None,
        stats: AlignedStats,
    ) -> int | None:
        """Draw from p·Phi~ over all tokens not known dead, check it; None if it is refuted."""
        trie = self.trie
        logp = node.full_logp if node.full_logp is not None else decoder.logp(path)
        trie.memo(node, logp)
        scores = logp.clone()
        if node.ids.size:
            ids = torch.from_numpy(node.ids)
            scores[ids] = scores[ids] + torch.from_numpy(node.phi).float().log()
        probs = torch.softmax(scores.double(), dim=-1)
        token = int(torch.multinomial(probs, 1, generator=generator))
        stats.checks += 1
        alive = is_allowed_at(matcher, token, len(path), max_tokens)
        slot = trie.record(node, token, float(logp[token]), alive=alive)
        return slot if alive else None
