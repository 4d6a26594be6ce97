"""The drafter interface: what a drafter is asked, what it answers.

A drafter proposes the tokens that come next; the speculative loop checks them against the grammar
(``Matcher.validate_tokens`` cuts a proposal at its first refused token), adds the tokens the
grammar forces, and lets the target model verify everything in one forward pass. A drafter never
commits anything: it may walk the matcher forward to look ahead, but must leave it as it found it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from structgen.runtime.matcher import Matcher
from structgen.sampling.warp import SamplingParams
from structgen.speculative.adaptive import DraftLength
from structgen.tokens.vocabulary import Vocabulary

__all__ = ["DraftRequest", "Drafter", "Proposal"]


@dataclass
class DraftRequest:
    """One call to ``Drafter.propose``.

    Attributes
    ----------
    context : list of int
        Every token id of the sequence so far: the prompt, the output, and the draft built so far
        in this step. The drafter proposes what follows.
    prompt_len : int
        How many of ``context``'s ids are the prompt.
    matcher : Matcher
        The grammar state after ``context``. Read-only for the drafter: it may consume tokens to
        look ahead but must roll them back before returning.
    max_tokens : int
        Propose at most this many tokens (>= 1).
    params : SamplingParams
        The target's warps; a drafter that samples applies the same ones.
    noise : callable or None
        ``noise(position) -> float32[vocab]``: the Gumbel noise of the sequence position
        ``position`` (an index into the full sequence, so ``len(context)`` is the first proposed
        token's). Given when sampling (``params.greedy`` is False); a drafter that samples picks
        ``argmax(warped log q + noise)`` over the allowed tokens, which couples its draft with
        the target's choice (see ``structgen.speculative.verify``).
    want_q : bool
        Whether the verifier needs the drafter's distributions (``Proposal.q``): the
        acceptance rule ``min(1, p(x) / q(x))`` with full masks. Deterministic drafters ignore it.
    admit : callable or None
        ``admit(source, label, confidence) -> bool``: the draft-length policy's verdict on one
        more token (``structgen.speculative.adaptive``). A drafter that pays per token (runs a
        model) calls it before each token it adds and stops at the first False; it then sets
        ``Proposal.admitted`` so the loop does not ask again.
    """

    context: list[int]
    prompt_len: int
    matcher: Matcher
    max_tokens: int
    params: SamplingParams
    noise: Callable[[int], torch.Tensor] | None = None
    want_q: bool = False
    admit: Callable[[str, str, float | None], bool] | None = None


@dataclass
class Proposal:
    """A drafter's answer.

    Attributes
    ----------
    tokens : list of int
        The proposed ids, in order (may be empty: nothing to propose).
    q : list of torch.Tensor or None
        For a drafter that samples, ``q[i]`` is the probability vector (``float32[vocab]``) that
        ``tokens[i]`` was drawn from. None means the proposal is deterministic (a point mass on
        each token), whatever the random state.
    confidence : list of float or None
        The drafter's estimate that each token is accepted (used by the adaptive draft length).
    source : str
        Which drafter produced it (for statistics).
    features : list of str or None
        A label per token (e.g. how strong the match behind it is); the adaptive draft length
        learns an acceptance rate per ``source/label`` for tokens without a confidence.
        Default: the token's index in the proposal.
    admitted : bool
        Every token already passed ``DraftRequest.admit``.
    """

    tokens: list[int]
    q: list[torch.Tensor] | None = None
    confidence: list[float] | None = None
    source: str = ""
    features: list[str] | None = None
    admitted: bool = False


class Drafter(ABC):
    """Proposes tokens for the speculative loop.

    Subclasses implement ``propose``. ``reset`` is called at the start of every generation and
    ``observe`` after every verification with how many of the drafter's tokens the target
    accepted, so a drafter can adapt (the combined drafter picks by these counts).
    """

    name: str = "drafter"
    draft_length: DraftLength | None = None
    """The draft-length policy the loop uses with this drafter when none is given; created on
    first use and kept, so what it learns carries over to the drafter's next generation."""

    @abstractmethod
    def propose(self, request: DraftRequest) -> Proposal:
        """Propose up to ``request.max_tokens`` tokens after ``request.context``."""

    def reset(self, prompt: Sequence[int], vocab: Vocabulary) -> None:  # noqa: B027
        """Forget state from an earlier generation.

        Parameters
        ----------
        prompt : list of int
            The new generation's prompt ids.
        vocab : Vocabulary
            The target's vocabulary (a drafter with its own tokenizer checks it matches).

        Raises
        ------
        ConfigurationError
            The drafter cannot serve this vocabulary.
        """

    def observe(self, source: str, proposed: int, accepted: int) -> None:  # noqa: B027
        """``accepted`` of the ``proposed`` tokens that ``source`` drafted were accepted."""
