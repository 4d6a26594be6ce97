"""Model-free drafters: grammar-forced text, prompt look-up, and a combination that picks per step.

``ForcedDrafter``
    The bytes the grammar forces next (``Matcher.forced_bytes``), tokenized the way the tokenizer
    encodes them, *all* of them. The speculative loop sends them through verification: the model
    may prefer another tokenization (``order`` + ``Id`` against ``orderId``) and then its own
    choice wins, so the output keeps the model's tokenization. (With ``fast_forward`` on, the
    loop commits the forced tokens but the last unverified, as ``generate`` does; the forced
    drafter then proposes that held-back last token.)

``PromptLookupDrafter``
    Extraction copies text from the prompt. Find the longest suffix of the text so far (bytes,
    not tokens, so ``"John`` in the output matches `` John`` in the prompt) that also occurs
    earlier in the prompt or output, and propose the tokenization of what followed it.

``CombinedDrafter``
    Asks its drafters in order and takes the first non-empty proposal; a drafter whose recent
    acceptance rate falls below ``min_acceptance`` is skipped (and re-tried now and then).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from structgen.errors import ConfigurationError
from structgen.speculative.base import Drafter, DraftRequest, Proposal
from structgen.tokens.vocabulary import Vocabulary

__all__ = ["CombinedDrafter", "ForcedDrafter", "PromptLookupDrafter"]


def _utf8_head(data: bytes) -> bytes:
    """The longest prefix of ``data`` that ends on a UTF-8 character boundary."""
    end = len(data)
    # step back over a trailing, incomplete multi-byte sequence (at most 3 bytes)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 == 0x80:  # a continuation byte: keep looking for the lead byte
            continue
        if byte & 0x80 == 0:  # ASCII: complete
            return data
        width = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return data if back >= width else data[: end - back]
    return data


def _encode_prefix(vocab: Vocabulary, data: bytes, *, complete: bool) -> list[int]:
    """Tokens of ``data`` by the tokenizer's own encoder; unless ``complete``, without the last
    token (the text after ``data`` may merge with it). Empty when ``data`` does not start on a
    character boundary or the encoding does not reproduce it."""
    encode = vocab.encoder
    if encode is None or not data or data[0] & 0xC0 == 0x80:
        return []
    data = _utf8_head(data)
    if not data:
        return []
    tokens = list(encode(data))
    if vocab.decode(tokens) != data:
        return []
    return tokens if complete else tokens[:-1]


class ForcedDrafter(Drafter):
    """Proposes the canonical tokenization of the bytes the grammar forces next."""

    name = "forced"

    def propose(self, request: DraftRequest) -> Proposal:
        matcher = request.matcher
        data = matcher.forced_bytes()
        if not data:
            return Proposal([], source=self.name)
        tokens = _encode_prefix(matcher.compiled.vocab, data, complete=True)
        tokens = tokens[: matcher.validate_tokens(tokens)][: request.max_tokens]
        return Proposal(tokens, source=self.name)


class PromptLookupDrafter(Drafter):
    """Copies what followed earlier occurrences of the text so far.

    Candidates come from two kinds of match, both searched in the prompt and (with
    ``search_output``) the output so far, most recent first:

    - token n-grams: the last ``n`` token ids (``n`` up to ``max_ngram``) occur earlier; the
      candidate is the ids that followed (the source's own tokenization);
    - byte suffixes: the last ``k`` bytes (``min_match <= k <= max_match``) occur earlier; the
      candidate is the tokenization of the bytes that followed (this also matches across token
      boundaries, e.g. ``"John`` in the output against `` John`` in the prompt).

    Of at most ``max_candidates`` candidates, the one with the longest prefix the grammar
    accepts is proposed (ties: the longer match).

    Parameters
    ----------
    min_match : int
        Shortest byte suffix that counts as a match.
    max_match : int
        Longest byte suffix tried.
    max_ngram : int
        Longest token n-gram tried.
    continuation_bytes : int
        How many bytes after a byte match are tokenized.
    max_candidates : int
        Candidates checked against the grammar per call.
    search_output : bool
        Also look in the output generated so far (repeated structure), not only the prompt.
    """

    name = "lookup"

    def __init__(
        self,
        *,
        min_match: int = 1,
        max_match: int = 48,
        max_ngram: int = 4,
        continuation_bytes: int = 96,
        max_candidates: int = 6,
        search_output: bool = True,
    ) -> None:
        if not 1 <= min_match <= max_match:
            raise ConfigurationError(
                f"Invalid match lengths: expected 1 <= min_match <= max_match, got "
                f"{min_match}, {max_match}"
            )
        for label, value in (
            ("continuation_bytes", continuation_bytes),
            ("max_candidates", max_candidates),
            ("max_ngram", max_ngram),
        ):
            if value < 1:
                raise ConfigurationError(f"Invalid {label}: expected >= 1, got {value}")
        self.min_match = min_match
        self.max_match = max_match
        self.max_ngram = max_ngram
        self.continuation_bytes = continuation_bytes
        self.max_candidates = max_candidates
        self.search_output = search_output
        self._vocab: Vocabulary | None = None
        self._tokens: list[int] = []
        self._ends: list[int] = []  # byte offset after each token of _tokens
        self._bytes = bytearray()
        self._where: dict[int, list[int]] = {}  # token id -> its positions in _tokens
        self._prompt_len = 0

    def reset(self, prompt: Sequence[int], vocab: Vocabulary) -> None:
        if vocab.encoder is None:
            raise ConfigurationError(
                "Invalid vocabulary for prompt look-up: it has no encoder",
                hint="build the Vocabulary with Vocabulary.from_tokenizer",
            )
        self._vocab = vocab
        self._tokens, self._ends, self._bytes, self._where = [], [], bytearray(), {}
        self._prompt_len = len(prompt)
        self._sync(list(prompt))

    def _sync(self, context: list[int]) -> None:
        """Make ``_tokens``/``_bytes`` those of ``context`` (re-using the common prefix)."""
        assert self._vocab is not None
        keep = min(len(self._tokens), len(context))
        for i in range(min(self._prompt_len, keep), keep):
            if self._tokens[i] != context[i]:
                keep = i
                break
        for i in range(len(self._tokens) - 1, keep - 1, -1):
            self._where[self._tokens[i]].pop()
        del self._tokens[keep:]
        del self._ends[keep:]
        del self._bytes[self._ends[-1] if self._ends else 0 :]
        table = self._vocab.token_bytes
        for tid in context[keep:]:
            self._where.setdefault(tid, []).append(len(self._tokens))
            self._tokens.append(tid)
            self._bytes += table[tid] if 0 <= tid < len(table) else b""
            self._ends.append(len(self._bytes))

    def _searchable(self) -> tuple[int, int]:
        """(token count, byte count) of the text matches may come from."""
        if self.search_output or not self._prompt_len:
            return len(self._tokens), len(self._bytes)
        return self._prompt_len, self._ends[self._prompt_len - 1]

    def _token_candidates(self, limit: int) -> list[list[int]]:
        tokens = self._tokens
        last = len(tokens) - 1
        if last < 0:
            return []
        searchable, _ = self._searchable()
        scored: list[tuple[int, int, list[int]]] = []
        for at in reversed(self._where.get(tokens[last], ())):
            if at >= last or at + 1 >= searchable:
                continue
            n = 1
            while n < self.max_ngram and at - n >= 0 and tokens[at - n] == tokens[last - n]:
                n += 1
            follow = tokens[at + 1 : min(at + 1 + limit, searchable)]
            if follow:
                scored.append((n, at, follow))
            if len(scored) >= 4 * self.max_candidates:
                break
        scored.sort(key=lambda c: (-c[0], -c[1]))
        return [c[2] for c in scored[: self.max_candidates]]

    def _byte_candidates(self) -> Iterator[list[int]]:
        assert self._vocab is not None
        buf = self._bytes
        end = len(buf)
        _, searchable = self._searchable()
        limit = min(end - 1, searchable)
        count = 0
        seen: set[int] = set()
        for size in range(min(self.max_match, end - 1), self.min_match - 1, -1):
            at = buf.rfind(buf[end - size :], 0, limit)
            if at < 0:
                continue
            start = at + size  # ends before ``limit``, so something follows it
            if start in seen:
                continue
            seen.add(start)
            continuation = bytes(buf[start : start + self.continuation_bytes])
            tokens = _encode_prefix(self._vocab, continuation, complete=False)
            if tokens:
                yield tokens
                count += 1
            if count >= self.max_candidates:
                return

    def propose(self, request: DraftRequest) -> Proposal:
        if self._vocab is None:
            self.reset(request.context[: request.prompt_len], request.matcher.compiled.vocab)
        self._sync(request.context)
        best: list[int] = []
        candidates = itertools.chain(
            self._token_candidates(request.max_tokens), self._byte_candidates()
        )
        for tokens in candidates:
            tokens = tokens[: request.max_tokens]
            if len(tokens) <= len(best):
                continue
            valid = request.matcher.validate_tokens(tokens)
            if valid > len(best):
                best = tokens[:valid]
                if valid == request.max_tokens:
                    break
        return Proposal(best, source=self.name)


class CombinedDrafter(Drafter):
    """Per step, the proposal with the longest prefix the grammar accepts.

    The drafters are asked in order; a drafter marked ``expensive`` (one that runs a model) is
    asked only while the best proposal so far has fewer than ``enough`` valid tokens. Ties go
    to the earlier drafter.

    Parameters
    ----------
    drafters : sequence of Drafter
        In priority order (cheap and certain first: forced, then look-up, then a model).
    enough : int
        A proposal with this many valid tokens spares the expensive drafters.
    min_acceptance : float
        Skip a drafter whose acceptance rate (exponential average over its recent proposals)
        is below this; every ``retry_every``-th skipped call it is asked anyway, so it can
        recover.
    retry_every : int
        See ``min_acceptance``.
    """

    name = "combined"

    def __init__(
        self,
        drafters: Sequence[Drafter],
        *,
        enough: int = 2,
        min_acceptance: float = 0.0,
        retry_every: int = 8,
    ) -> None:
        if not drafters:
            raise ConfigurationError("Invalid drafters: expected at least one")
        if retry_every < 1:
            raise ConfigurationError(f"Invalid retry_every: expected >= 1, got {retry_every}")
        names = [d.name for d in drafters]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"Invalid drafters: names must differ, got {names}")
        self.drafters = list(drafters)
        self.enough = enough
        self.min_acceptance = min_acceptance
        self.retry_every = retry_every
        self._rate = {d.name: 1.0 for d in self.drafters}
        self._skipped = {d.name: 0 for d in self.drafters}

    def reset(self, prompt: Sequence[int], vocab: Vocabulary) -> None:
        for d in self.drafters:
            d.reset(prompt, vocab)
        self._rate = {d.name: 1.0 for d in self.drafters}
        self._skipped = {d.name: 0 for d in self.drafters}

    def propose(self, request: DraftRequest) -> Proposal:
        best = Proposal([], source=self.name)
        best_valid = 0
        for d in self.drafters:
            if getattr(d, "expensive", False) and best_valid >= self.enough:
                continue
            if self._rate[d.name] < self.min_acceptance:
                self._skipped[d.name] += 1
                if self._skipped[d.name] % self.retry_every:
                    continue
            proposal = d.propose(request)
            if len(proposal.tokens) <= best_valid:
                continue
            valid = request.matcher.validate_tokens(proposal.tokens[: request.max_tokens])
            if valid > best_valid:
                best, best_valid = proposal, valid
                if not best.source:
                    best.source = d.name
        return best

    def observe(self, source: str, proposed: int, accepted: int) -> None:
        for d in self.drafters:
            if d.name == source:
                if proposed:
                    self._rate[d.name] = 0.7 * self._rate[d.name] + 0.3 * (accepted / proposed)
                d.observe(source, proposed, accepted)
