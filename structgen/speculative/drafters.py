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
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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


_KEY_TAIL = re.compile(rb'"((?:[^"\\\n]){1,64})"\s*:(\s*)("?)$')


@dataclass
class _Candidate:
    """One look-up continuation: its tokens, where its bytes start in the text, how good the
    match behind it is (``tier``: 3 key-anchored, 2 long, 1 medium, 0 short) and a label."""

    tokens: list[int]
    start: int | None  # byte offset of tokens[0] in the searched text (None: unknown)
    tier: int
    kind: str


class PromptLookupDrafter(Drafter):
    """Copies what followed earlier occurrences of the text so far.

    Candidates, searched in the prompt and (with ``search_output``) the output so far:

    - key-anchored: the output ends just after a JSON key (``"price": `` or ``"name": "``); the
      candidate is what follows the same key and a separator (``price: 0.99``, ``name = Ann``)
      in the prompt, up to the end of its line: the value a source document gives for it;
    - token n-grams: the last ``n`` token ids (``n`` up to ``max_ngram``) occur earlier; the
      candidate is the ids that followed (the source's own tokenization);
    - byte suffixes: the last ``k`` bytes (``min_match <= k <= max_match``) occur earlier; the
      candidate is the tokenization of the bytes that followed (this also matches across token
      boundaries, e.g. ``"John`` in the output against `` John`` in the prompt).

    Extraction reads a document in order, so the drafter keeps a *cursor*: the end of the last
    value copied from the prompt by a key-anchored candidate. An occurrence at or after the
    cursor is preferred to other occurrences of the same match. Among candidates, the best match
    tier wins, then the longest prefix the grammar accepts (key-anchored ones: the first that
    the grammar accepts, in document order from the cursor). Other candidates stop where a JSON
    key ends, so that the next call can anchor on it. Each proposed token carries a feature
    label (match kind, tier, index in the proposal) that the adaptive draft length learns
    acceptance rates for.

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
        Candidates of each kind checked against the grammar per call.
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
        max_candidates: int = 4,
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
        self._prompt_bytes = 0
        self._cursors: list[tuple[int, int]] = [(0, 0)]  # (context length, cursor) history
        self._last: tuple[int, list[int], int] | None = None  # (context len, tokens, start)

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
        self._prompt_bytes = len(self._bytes)
        self._cursors = [(len(prompt), 0)]
        self._last = None

    # ------------------------------------------------------------------ text state

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
        while len(self._cursors) > 1 and self._cursors[-1][0] > keep:
            self._cursors.pop()
        table = self._vocab.token_bytes
        for tid in context[keep:]:
            self._where.setdefault(tid, []).append(len(self._tokens))
            self._tokens.append(tid)
            self._bytes += table[tid] if 0 <= tid < len(table) else b""
            self._ends.append(len(self._bytes))
        self._follow_last()

    def _follow_last(self) -> None:
        """Advance the cursor over the part of the last proposal the context now holds."""
        if self._last is None:
            return
        at, proposed, start = self._last
        got = self._tokens[at : at + len(proposed)]
        k = 0
        while k < len(got) and got[k] == proposed[k]:
            k += 1
        if k and start < self._prompt_bytes and self._vocab is not None:
            copied = sum(len(self._vocab.token_bytes[t]) for t in proposed[:k])
            self._cursors.append((at + k, min(start + copied, self._prompt_bytes)))
        self._last = None

    @property
    def _cursor(self) -> int:
        return self._cursors[-1][1]

    def _searchable(self) -> tuple[int, int]:
        """(token count, byte count) of the text matches may come from."""
        if self.search_output or not self._prompt_len:
            return len(self._tokens), len(self._bytes)
        return self._prompt_len, self._prompt_bytes

    # ------------------------------------------------------------------ candidates

    def _encode_at(self, start: int, end: int, *, complete: bool = False) -> list[int]:
        assert self._vocab is not None
        return _encode_prefix(self._vocab, bytes(self._bytes[start:end]), complete=complete)

    def _key_candidates(self) -> list[_Candidate]:
        """Values the prompt gives for the JSON key the output just opened."""
        buf = self._bytes
        tail = bytes(buf[max(0, len(buf) - 80) :])
        m = _KEY_TAIL.search(tail)
        if m is None:
            return []
        key, spaced, opened = m.group(1), bool(m.group(2)), bool(m.group(3))
        region = self._prompt_bytes
        found: list[int] = []
        at = buf.find(key, self._cursor, region)
        if at >= 0:
            found.append(at)
        at = buf.find(key, 0, region)
        while at >= 0 and len(found) < self.max_candidates:
            if at not in found:
                found.append(at)
            at = buf.find(key, at + 1, region)
        out = []
        for at in found:
            v = at + len(key)
            sep = v
            while sep < region and sep - v < 4 and buf[sep] in b" \t\"':=":
                sep += 1
            if sep == v or buf[sep - 1 : sep] not in (b":", b"=", b" ", b'"', b"'"):
                continue
            if b":" not in buf[v:sep] and b"=" not in buf[v:sep]:
                continue  # the key appears, but not as a key: value pair
            line_end = buf.find(b"\n", sep, region)
            stop = min(line_end if line_end >= 0 else region, sep + self.continuation_bytes)
            if stop <= sep:
                continue
            value = bytes(buf[sep:stop])
            if value[:1] in (b'"', b"'"):
                value, sep = value[1:], sep + 1
            value = value.rstrip(b"\"', ")
            if opened:
                variants = [value + b'"']
            else:  # a string (quoted) or another value; the grammar tells which
                lead = [b""] if spaced else [b" ", b""]
                variants = [p + q + value + q for p in lead for q in (b'"', b"")]
            assert self._vocab is not None
            for data in variants:
                tokens = _encode_prefix(self._vocab, data, complete=True)
                if tokens:
                    out.append(_Candidate(tokens, sep, 3, "key"))
        return out

    def _cut_at_key(self, tokens: list[int]) -> list[int]:
        """``tokens`` up to the first place a JSON key ends (``"name":``), where a key-anchored
        candidate can take over at the next call."""
        assert self._vocab is not None
        table = self._vocab.token_bytes
        text = bytearray(self._bytes[max(0, len(self._bytes) - 80) :])
        for i, t in enumerate(tokens[:-1]):
            text += table[t]
            if b":" in table[t] and _KEY_TAIL.search(text) is not None:
                return tokens[: i + 1]
        return tokens

    def _token_candidates(self, limit: int) -> list[_Candidate]:
        tokens = self._tokens
        last = len(tokens) - 1
        if last < 0:
            return []
        searchable, _ = self._searchable()
        cursor = self._cursor
        scored: list[tuple[int, bool, int, list[int]]] = []
        for at in reversed(self._where.get(tokens[last], ())):
            if at >= last or at + 1 >= searchable:
                continue
            n = 1
            while n < self.max_ngram and at - n >= 0 and tokens[at - n] == tokens[last - n]:
                n += 1
            follow = tokens[at + 1 : min(at + 1 + limit, searchable)]
            if follow:
                ahead = at < self._prompt_len and self._ends[at] >= cursor
                scored.append((n, ahead, at, follow))
            if len(scored) >= 8 * self.max_candidates:
                break
        scored.sort(key=lambda c: (-c[0], not c[1], -c[2]))
        return [
            _Candidate(f, self._ends[at], 2 if n >= 3 else 1 if n == 2 else 0, "tok")
            for n, _, at, f in scored[: self.max_candidates]
        ]

    def _byte_candidates(self) -> Iterator[_Candidate]:
        buf = self._bytes
        end = len(buf)
        _, searchable = self._searchable()
        limit = min(end - 1, searchable)
        cursor = self._cursor
        count = 0
        seen: set[int] = set()
        for size in range(min(self.max_match, end - 1), self.min_match - 1, -1):
            needle = buf[end - size :]
            at = buf.find(needle, cursor, min(limit, self._prompt_bytes))
            if at < 0:
                at = buf.rfind(needle, 0, limit)
            if at < 0:
                continue
            start = at + size  # ends before ``limit``, so something follows it
            if start in seen:
                continue
            seen.add(start)
            tokens = self._encode_at(start, start + self.continuation_bytes)
            if tokens:
                tier = 2 if size >= 12 else 1 if size >= 4 else 0
                yield _Candidate(tokens, start, tier, "byte")
                count += 1
            if count >= self.max_candidates:
                return

    def propose(self, request: DraftRequest) -> Proposal:
        if self._vocab is None:
            self.reset(request.context[: request.prompt_len], request.matcher.compiled.vocab)
        self._sync(request.context)
        best: _Candidate | None = None
        best_valid = 0
        candidates = itertools.chain(
            self._key_candidates(),
            self._token_candidates(request.max_tokens),
            self._byte_candidates(),
        )
        for cand in candidates:
            if best is not None and cand.tier < best.tier:
                continue  # a weaker match: only a stronger one can replace the best
            if cand.kind != "key":
                cand.tokens = self._cut_at_key(cand.tokens)
            tokens = cand.tokens[: request.max_tokens]
            if best is not None and cand.tier == best.tier and len(tokens) <= best_valid:
                continue
            valid = request.matcher.validate_tokens(tokens)
            if valid and (best is None or cand.tier > best.tier or valid > best_valid):
                best, best_valid = cand, valid
                if cand.kind == "key":
                    break  # values in document order: the first that fits
        if best is None:
            return Proposal([], source=self.name)
        tokens = best.tokens[:best_valid]
        if best.kind == "key" and best.start is not None:
            self._last = (len(request.context), tokens, best.start)
        features = [f"{best.kind}{best.tier}/{min(i, 3)}" for i in range(len(tokens))]
        return Proposal(tokens, source=self.name, features=features)


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
