"""StructgenLogitsProcessor: structgen constraints inside ``model.generate``.

One matcher per sequence. Rather than trusting that batch rows keep their identity between steps
(beam search reorders them), each row's matcher is found by the tokens the row has generated so
far: the processor remembers the matchers of recent calls by generated suffix, copies the
longest remembered prefix's (normally the parent, one token shorter) and commits the tokens
after it. So greedy search, sampling, beam search, batches, ``num_return_sequences`` and
assisted generation all work without knowing the generation mode.

Assisted generation (``assistant_model=``, ``prompt_lookup_num_tokens=``): transformers calls
the processor on every prefix of the candidate sequence, and the candidate generators use it too
(the assistant's own ``generate``, and prompt look-up's check that cuts candidates at the first
forbidden token), so candidates are valid and the target's scores at every verified position
are masked by the grammar state after the tokens before it. Greedy assisted generation thus
picks the same tokens as greedy search with the processor; sampling with an assistant model
applies the ``min(1, p/q)`` rule to masked ``p`` and ``q`` and keeps the masked distribution.

Modes:
    ``"mask"`` (default): every step sets disallowed scores to ``-inf``. Exact for every
        generation mode.
    ``"fast"``: checks candidates in score order and keeps only the best allowed token. Exact
        only for greedy search (``do_sample=False, num_beams=1``), where it picks the same token
        as ``"mask"`` after at most a few single-token checks instead of a full mask.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from structgen.compiler import CompiledGrammar
from structgen.errors import ConfigurationError, ConstraintViolation, DeadEnd
from structgen.runtime.bitmask_torch import apply_token_bitmask_inplace
from structgen.runtime.matcher import Matcher

ProcessorMode = Literal["mask", "fast"]


class StructgenLogitsProcessor:
    """A transformers ``LogitsProcessor`` that enforces a compiled grammar.

    Args:
        compiled: one ``CompiledGrammar`` for every row, or a list with one per batch row (rows of
            ``num_return_sequences`` / beams of one prompt share their prompt's grammar).
        mode: ``"mask"`` or ``"fast"`` (see the module docstring).
        inplace: modify the caller's ``scores`` tensor instead of returning a new one.
        tokenizer: optional, used only to decode the prefix in error messages.

    Call ``reset()`` before reusing the processor for another ``generate`` call.
    """

    def __init__(
        self,
        compiled: CompiledGrammar | list[CompiledGrammar],
        *,
        mode: ProcessorMode = "mask",
        inplace: bool = False,
        tokenizer: Any = None,
    ) -> None:
        if mode not in ("mask", "fast"):
            raise ConfigurationError(f"Invalid mode: expected 'mask' or 'fast', got {mode!r}")
        self.compiled = compiled
        self.mode = mode
        self.inplace = inplace
        self.tokenizer = tokenizer
        self.reset()

    def reset(self) -> None:
        """Forget all sequences; the next call starts new generations."""
        self._prompt_len: int | None = None
        self._matchers: dict[tuple[int, tuple[int, ...]], Matcher] = {}
        self._by_length: dict[int, list[tuple[int, tuple[int, ...]]]] = {}
        self._longest = 0

    _WINDOW = 256
    """Matchers of suffixes this many tokens shorter than the longest seen are forgotten
    (assisted generation returns to a prefix at most its draft length back)."""

    def _remember(self, key: tuple[int, tuple[int, ...]], matcher: Matcher) -> None:
        if key in self._matchers:
            return
        self._matchers[key] = matcher
        length = len(key[1])
        self._by_length.setdefault(length, []).append(key)
        if length > self._longest:
            self._longest = length
            for old in [n for n in self._by_length if n < length - self._WINDOW]:
                for k in self._by_length.pop(old):
                    self._matchers.pop(k, None)

    def _grammar_for_row(self, row: int, batch: int) -> CompiledGrammar:
        if isinstance(self.compiled, CompiledGrammar):
            return self.compiled
        per_prompt = batch // len(self.compiled)
        if per_prompt * len(self.compiled) != batch:
            raise ConfigurationError(
                f"Invalid compiled list: {len(self.compiled)} grammars for a batch of {batch} rows"
            )
        return self.compiled[row // per_prompt]

    def _group_of_row(self, row: int, batch: int) -> int:
        if isinstance(self.compiled, CompiledGrammar):
            return 0
        return row // (batch // len(self.compiled))

    def _matcher_for(self, row: int, ids: list[int], batch: int) -> Matcher:
        """The matcher after this row's generated tokens, derived from a remembered prefix."""
        assert self._prompt_len is not None
        suffix = tuple(ids[self._prompt_len :])
        group = self._group_of_row(row, batch)
        key = (group, suffix)
        matcher = self._matchers.get(key)
        if matcher is not None:
            return matcher
        if not suffix:
            matcher = self._grammar_for_row(row, batch).matcher(max_rollback=0)
        else:
            parent = None
            back = 0
            for back in range(1, min(len(suffix), self._WINDOW) + 1):
                parent = self._matchers.get((group, suffix[:-back]))
                if parent is not None:
                    break
            if parent is None:  # a row we have not seen (e.g. reset() was not called)
                raise ConfigurationError(
                    "Invalid call: a row's earlier tokens were never seen by this processor",
                    hint="call reset() before each new generate() call",
                )
            if parent.is_terminated():  # tokens after EOS are padding
                return parent
            matcher = parent.copy()
            for token in suffix[len(suffix) - back :]:
                if not matcher.consume_token(token):
                    prefix = self._decode(list(suffix))
                    raise ConstraintViolation(
                        f"row {row} contains a token the grammar rejects ({matcher.last_error}); "
                        f"generated so far: {prefix!r}"
                    )
                if matcher.is_terminated():  # tokens after EOS are padding
                    break
        return matcher

    def _decode(self, tokens: list[int]) -> str:
        if self.tokenizer is not None:
            return str(self.tokenizer.decode(tokens))
        vocab = (
            self._grammar_for_row(0, 1).vocab
            if isinstance(self.compiled, CompiledGrammar)
            else self.compiled[0].vocab
        )
        return vocab.decode(tokens).decode("utf-8", errors="replace")

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Mask ``scores`` (``float[batch, vocab]``) given ``input_ids`` (``long[batch, seq]``).

        Raises:
            DeadEnd: a row's text is incomplete and no token is allowed after it (a semantic
                check refuses every completion), at the step whose mask would be empty.
            ConstraintViolation: a row holds a token the grammar rejects.
        """
        if scores.dim() != 2 or input_ids.dim() != 2 or scores.shape[0] != input_ids.shape[0]:
            raise ConfigurationError(
                f"Invalid shapes: expected input_ids[batch, seq] and scores[batch, vocab], got "
                f"{list(input_ids.shape)} and {list(scores.shape)}"
            )
        batch = scores.shape[0]
        if self._prompt_len is None:
            self._prompt_len = input_ids.shape[1]
        out = scores if self.inplace else scores.clone()
        rows = input_ids.tolist()
        bitmasks = []
        for row in range(batch):
            matcher = self._matcher_for(row, rows[row], batch)
            key = (self._group_of_row(row, batch), tuple(rows[row][self._prompt_len :]))
            self._remember(key, matcher)
            if matcher.is_terminated():
                # the row already ended (EOS); HF pads it, keep the pad/EOS token possible
                bitmasks.append(None)
                continue
            if self.mode == "fast":
                if not self._keep_best_allowed(out[row], matcher):
                    self._dead_end(row, rows[row])
                bitmasks.append(None)
            else:
                words = matcher.next_token_bitmask_np()
                if not words.any():  # EOS would be set if the text were complete
                    self._dead_end(row, rows[row])
                bitmasks.append(torch.from_numpy(words))
        for row, words in enumerate(bitmasks):
            if words is not None:
                apply_token_bitmask_inplace(out[row], words)
        return out

    def _dead_end(self, row: int, ids: list[int]) -> None:
        """Raise ``DeadEnd``: nothing is allowed after this row's tokens. Without it the model
        would pick a masked token (every score ``-inf``) and the next call would fail on it."""
        assert self._prompt_len is not None
        raise DeadEnd.at(self._decode(ids[self._prompt_len :]), f"row {row}: ")

    @staticmethod
    def _keep_best_allowed(row_scores: torch.Tensor, matcher: Matcher) -> bool:
        """Greedy fast path: keep only the highest-scoring allowed token; False where no token
        at all is allowed (a dead end)."""
        order = torch.argsort(row_scores, descending=True)
        for chunk_start in range(0, order.numel(), 64):
            for token in order[chunk_start : chunk_start + 64].tolist():
                if row_scores[token] == float("-inf"):
                    break
                if matcher.validate_tokens([token]) == 1:
                    best = row_scores[token].clone()
                    row_scores.fill_(float("-inf"))
                    row_scores[token] = best
                    return True
        words = matcher.next_token_bitmask_np()
        apply_token_bitmask_inplace(row_scores, torch.from_numpy(words))
        return bool(words.any())


__all__ = ["StructgenLogitsProcessor"]
