"""Dead-end recovery for ``generate``: back up over a value a semantic check refused, and resample.

A keyword the grammar cannot express is enforced by a check that rejects the token completing an
invalid value (docs/json_schema.md). The prefix before that token is then often a dead end for the
model: it wanted to close ``8.5`` under ``maximum: 1``, or the third ``"felines"`` of a
``uniqueItems`` array, was refused, and extends the value forever (``8.5000000...``). This module
detects that and backs up:

1. **Detection.** After each sampled token, if the model's most likely token (the argmax of the
   scores the sampler saw) was rejected, and the same grammar *without its checks* accepts it (an
   Earley parser over the same BNF with no predicates, from the same chart), then a check refused
   what the model wanted: a *check refusal*. It is attributed to the innermost JSON value open at
   that point (a small incremental scanner over the output bytes tracks where each open value
   started).
   The grammar itself can refuse a completion too: ``8.5`` under ``maximum: 1`` is a live prefix
   (``8.5e-1``), so closing it is refused and the model writes ``8.5000...`` forever. Such a
   *grammar refusal* counts for the innermost number or string (not for containers: ``]``
   refused under ``minItems`` just asks for more items).
2. **Dead end.** A value a check refused, or a number the grammar refused to close, is a dead end
   when it is still open ``patience`` tokens after the refusal (default 0: at once); any value
   is one when a second refusal hits it, or when the token budget runs out while it is open. A
   *runaway* is one too, refused or not: an open number or string whose last tokens repeat one
   unit (``REPEATS`` copies: ``0000000000``, ``-sti-sti-sti``), or a number longer than
   ``MAX_NUMBER_BYTES``. (With recovery on, fast-forwarded text never takes the last token of the
   budget, so a forced run into a dead end still reaches the sampler.)
3. **Back up and refute.** The loop goes back to the token where that value starts (matcher
   ``rollback``, KV cache ``crop``), and the bytes from there up to the refusal are refuted for
   this context (``refuted.RefutedPrefixes``): a token that would complete a refuted string is
   masked out of the scores from then on, so the model must choose differently. Each further dead
   end at the same point refutes a shorter prefix (half as long, down to one byte of the value),
   widening the search; for a number the grammar refused, its integer part is refuted (the
   magnitude was wrong); a second dead end among the members of one container refutes the
   separator before the member where the container may close there (the model repeats
   itself). If every allowed token is refuted somewhere, the current prefix is refuted too and
   the loop backs up again.
4. **Bounds.** At most ``max_backtracks`` back-ups and ``max_discarded`` discarded sampled tokens
   (default: the token budget) per call; past them decoding goes on without backing up (and refuted
   strings give way where they are all that is left), except where the grammar allows no token
   at all (``MAX_RESCUES`` more back-ups). The counts are in ``GenerationStats.backtracks`` /
   ``discarded_tokens``.

Exactness: every token still passes the matcher, and ``generate`` validates the result with
``jsonschema`` as before; recovery only removes continuations. It changes the sampled
distribution (refuted continuations get probability 0), so ``log_weight`` is ``None`` after a
back-up.

Check refusals need a grammar with checks (the CFG engine); grammar refusals apply to every
JSON grammar.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from structgen.decoding.refuted import RefutedPrefixes, TokenPrefixIndex
from structgen.errors import ConfigurationError
from structgen.sampling.warp import NoAllowedToken

__all__ = ["JsonScanner", "Recovery", "RecoveryOptions", "with_recovery"]


@dataclass(frozen=True)
class RecoveryOptions:
    """Options of dead-end recovery (``generate(recovery=...)``).

    Args:
        max_backtracks: most back-ups per ``generate`` call.
        patience: tokens a value may still run on after a check refused its completion
            (0: back up at once).
        max_discarded: most sampled tokens discarded by back-ups per call (None: the token
            budget; forced tokens are not counted: they cost no sampling).
        grammar_refusals: also back up over a number whose completion the grammar itself
            refused (``8.5`` under ``maximum: 1`` is a live prefix, as ``8.5e-1``, but a model
            that wanted to stop at ``8.5`` writes ``8.5000...``: its integer part is refuted), a
            string whose completion it refused twice, and a number longer than
            ``MAX_NUMBER_BYTES`` (no double needs more).
    """

    max_backtracks: int = 12
    patience: int = 0
    max_discarded: int | None = None
    grammar_refusals: bool = True

    def __post_init__(self) -> None:
        for name in ("max_backtracks", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(
                    f"Invalid recovery {name}: expected an int >= 0, got {value!r}"
                )
        if not isinstance(self.grammar_refusals, bool):
            raise ConfigurationError(
                f"Invalid recovery grammar_refusals: expected True or False, "
                f"got {self.grammar_refusals!r}"
            )
        if self.max_discarded is not None and (
            not isinstance(self.max_discarded, int) or self.max_discarded < 0
        ):
            raise ConfigurationError(
                f"Invalid recovery max_discarded: expected None or an int >= 0, "
                f"got {self.max_discarded!r}"
            )


# -- where each open JSON value starts -------------------------------------------------------------

_NONE, _STRING, _NUMBER, _WORD = 0, 1, 2, 3
MAX_RESCUES = 32
"""Back-ups past ``max_backtracks``/``max_discarded`` where the grammar allows no token at all
(a prefix whose every completion a check refuses, ``nul`` under ``enum: [[]]``): without one the
loop could only fail; past this many, ``NoAllowedToken`` is raised as without recovery."""
REPEATS = 4
"""A value whose last tokens are ``REPEATS`` copies of a unit of up to ``MAX_PERIOD`` tokens,
``2 * REPEATS`` tokens at least (``00000000``, ``-sti-sti-sti-sti``), repeats itself: a
runaway, backed up over."""
MAX_PERIOD = 12
MAX_NUMBER_BYTES = 32
"""A number this long is a runaway (a double needs at most 24 characters): backed up over."""
_NUMBER_BYTES = frozenset(b"0123456789+-.eE")
_WS = frozenset(b" \t\r\n")

ScanState = tuple[tuple[int, ...], int, int, bool]
"""(start offsets of the open containers, start of the open scalar or -1, scalar kind, escape)."""


class JsonScanner:
    """Start offsets of the JSON values open after some bytes of a JSON text (keys count as values).

    ``step(state, data, offset)`` returns the state after ``data`` (which starts at byte
    ``offset``); states are immutable tuples, so one can be kept per token and rolled back to.
    The text is assumed to be a prefix of valid JSON (the grammar guarantees it); anything else
    is skipped.
    """

    INITIAL: ScanState = ((), -1, _NONE, False)

    @staticmethod
    def step(state: ScanState, data: bytes, offset: int) -> ScanState:
        stack, start, kind, escape = state
        opened = list(stack)
        for i, byte in enumerate(data, offset):
            if kind == _STRING:
                if escape:
                    escape = False
                elif byte == 0x5C:  # backslash
                    escape = True
                elif byte == 0x22:  # closing quote
                    start, kind = -1, _NONE
                continue
            if kind == _NUMBER and byte in _NUMBER_BYTES:
                continue
            if kind == _WORD and 0x61 <= byte <= 0x7A:
                continue
            start, kind = -1, _NONE  # a number or literal ends before this byte
            if byte in _WS or byte in b",:":
                continue
            if byte in b"{[":
                opened.append(i)
            elif byte in b"}]":
                if opened:
                    opened.pop()
            elif byte == 0x22:
                start, kind = i, _STRING
            elif byte in _NUMBER_BYTES:
                start, kind = i, _NUMBER
            elif 0x61 <= byte <= 0x7A:
                start, kind = i, _WORD
        return (tuple(opened), start, kind, escape)

    @staticmethod
    def innermost(state: ScanState) -> int:
        """Start offset of the innermost open value (-1 if none)."""
        stack, start, _, _ = state
        if start >= 0:
            return start
        return stack[-1] if stack else -1

    @staticmethod
    def is_open(state: ScanState, value_start: int) -> bool:
        """Whether the value that started at ``value_start`` is still open."""
        stack, start, _, _ = state
        return start == value_start or value_start in stack


def _json_schema_grammar(grammar: Any) -> bool:
    """Whether ``grammar`` came from a JSON Schema (its lowering always notes its
    ``additionalProperties`` reading)."""
    return any(str(n).startswith("additionalProperties:") for n in getattr(grammar, "notes", ()))


def _parent(scan: ScanState, start: int) -> int:
    """Start offset of the container the value at ``start`` is in (-1: none)."""
    stack = scan[0]
    inside = stack[:-1] if stack and stack[-1] == start else stack
    return inside[-1] if inside else -1


# -- the recovery state of one generate call -----------------------------------------------------

_FREE_PARSERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _free_parser(index: Any) -> Any:
    """An Earley parser over ``index``'s BNF without its semantic checks (cached per index)."""
    parser = _FREE_PARSERS.get(index)
    if parser is None:
        # the index's own parser class (the C one or the reference), so chart sets match
        parser = type(index.parser)(dataclasses.replace(index.bnf, predicates={}))
        _FREE_PARSERS[index] = parser
    return parser


@dataclass
class _Strain:
    """A value a check refused to complete: where it starts, where it was refused, when."""

    start: int  # byte offset of the value
    refused_at: int  # byte offset of the refusal (the value's bytes end here)
    token: int  # number of generated tokens at the refusal
    by_check: bool  # refused by a check (else by the grammar itself)
    parent: int  # byte offset of the container the value is in (-1: top level)
    refusals: int = 1
    number: bool = False  # a number the grammar refused to close: its integer part is refuted
    runaway: bool = False  # a value repeating itself: a dead end at once


def with_recovery(
    option: Any,
    sampler: Any,
    compiled: Any,
    lm: Any,
    cache: Any,
    prompt: list[int],
    tokens: list[int],
    max_new_tokens: int,
    stats: Any,
) -> Any:
    """``sampler``, wrapped with dead-end recovery for one ``generate`` call where it applies.

    Args:
        option: ``"auto"`` (default options, for grammars lowered from a JSON Schema; other
            grammars are left alone), ``True`` (default options, any grammar),
            ``False``/``None``/``"off"``, a ``RecoveryOptions`` or a dict of its fields.
        sampler: the loop's sampler (``sample(logits, matcher, generator)``).
        compiled: the compiled grammar.
        lm, cache, prompt: the loop's ``CausalLM``, its KV cache and the prompt's token ids
            (a back-up crops the cache and runs the forward pass for the position it goes to).
        tokens: the loop's list of generated tokens (read, and cut on a back-up).
        max_new_tokens: the loop's token budget.
        stats: the loop's ``GenerationStats`` (``backtracks``, ``discarded_tokens``).
    """
    if option in (False, None, "off"):
        return sampler
    if option == "auto" and not _json_schema_grammar(compiled.grammar):
        return sampler  # a Lark grammar or a regex: its values are not JSON values
    if option is True or option == "auto":
        options = RecoveryOptions()
    elif isinstance(option, RecoveryOptions):
        options = option
    elif isinstance(option, dict):
        try:
            options = RecoveryOptions(**option)
        except TypeError as exc:
            raise ConfigurationError(f"Invalid recovery options: {exc}") from exc
    else:
        raise ConfigurationError(
            "Invalid recovery: expected 'auto', 'off', True, False, None, a RecoveryOptions or a "
            f"dict of its fields, got {option!r}"
        )
    recovery = Recovery(compiled, lm, cache, prompt, tokens, options, max_new_tokens, stats)
    return _RecoveringSampler(sampler, recovery)


class Recovery:
    """Detects check refusals and dead ends in one ``generate`` call and backs up over them.

    ``generate`` wraps its sampler (``with_recovery``); every call of the wrapped ``sample``
    first backs up if a dead end is due, then samples with the refuted continuations masked, and
    observes whether a check refused the model's favourite token (see the module docstring).
    """

    def __init__(
        self,
        compiled: Any,
        lm: Any,
        cache: Any,
        prompt: list[int],
        tokens: list[int],
        options: RecoveryOptions,
        max_new_tokens: int,
        stats: Any,
    ) -> None:
        self.compiled = compiled
        self.vocab = compiled.vocab
        self.lm = lm
        self.cache = cache
        self.prompt = prompt
        self.tokens = tokens
        self.options = options
        self.max_new_tokens = max_new_tokens
        self.max_discarded = (
            max_new_tokens if options.max_discarded is None else options.max_discarded
        )
        self.stats = stats
        self.refuted = RefutedPrefixes()
        self._prefix_index: TokenPrefixIndex | None = None
        # a parser of the grammar without its checks (None: the grammar has none)
        checked = getattr(getattr(compiled.index, "bnf", None), "predicates", None)
        self.free = _free_parser(compiled.index) if checked else None
        self.eos = set(self.vocab.eos_token_ids)
        # per generated token i: offsets[i] = byte offset where it starts; scans[i] = scanner
        # state before it (scans[len(tokens)] is the current one)
        self.offsets: list[int] = [0]
        self.scans: list[ScanState] = [JsonScanner.INITIAL]
        self.text = bytearray()
        self.strain: _Strain | None = None
        self.exhausted = False  # every allowed token is refuted here
        self.dead_counts: dict[bytes, int] = {}
        self.container_counts: dict[tuple[int, bytes], int] = {}
        self.backtracks = 0
        self.discarded = 0
        self.rescues = 0  # back-ups past the bounds, where no token at all is allowed
        self.sampled: list[int] = []  # positions of the tokens the sampler chose (not forced)
        self.discarded_sampled = 0  # sampled tokens discarded (what max_discarded bounds)

    # -- bookkeeping ------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether another back-up is allowed."""
        return (
            self.backtracks < self.options.max_backtracks
            and self.discarded_sampled < self.max_discarded
        )

    @property
    def prefix_index(self) -> TokenPrefixIndex:
        """Tokens by byte prefix (built on the first refutation: a sort of the vocabulary)."""
        if self._prefix_index is None:
            self._prefix_index = TokenPrefixIndex.for_vocab(self.vocab)
        return self._prefix_index

    def _sync(self) -> None:
        """Bring offsets, scanner states and text up to date with ``tokens``."""
        tokens = self.tokens
        n = len(tokens)
        if n + 1 < len(self.offsets):
            del self.text[self.offsets[n] :]
            del self.offsets[n + 1 :]
            del self.scans[n + 1 :]
        token_bytes = self.vocab.token_bytes
        for i in range(len(self.offsets) - 1, n):
            data = token_bytes[tokens[i]]
            self.scans.append(JsonScanner.step(self.scans[i], data, self.offsets[i]))
            self.offsets.append(self.offsets[i] + len(data))
            self.text += data

    def banned(self) -> np.ndarray | None:
        """Token ids that would complete a refuted string here (None: none)."""
        if not len(self.refuted):
            return None
        rests = self.refuted.pending(bytes(self.text))
        if not rests:
            return None
        return np.unique(np.concatenate([self.prefix_index.starting_with(r) for r in rests]))

    # -- detection --------------------------------------------------------------------------------

    def observe(self, scores: torch.Tensor, token: int, matcher: Any) -> None:
        """Record a check refusal if the model's favourite token was refused by a check and
        would have completed the innermost open value."""
        top = int(torch.argmax(scores))
        if top == token or top in self.eos or not np.isfinite(float(scores[top])):
            return
        if top >= self.vocab.vocab_size or top in self.vocab.special_token_ids:
            return
        if matcher.validate_tokens([top]) == 1:
            return  # allowed after all (a sampled, not greedy, step)
        scan = self.scans[len(self.tokens)]
        start = JsonScanner.innermost(scan)
        if start < 0:
            return
        after = JsonScanner.step(scan, self.vocab.token_bytes[top], len(self.text))
        if JsonScanner.is_open(after, start):
            return  # the refused token completes only a value it opens itself: nothing to undo
        by_check = self._check_refused(matcher, top)
        if not by_check and (not self.options.grammar_refusals or start != scan[1]):
            return  # the grammar refused to close a container: it needs more (minItems...)
        if not by_check and self._closable(matcher, scan[2]):
            return  # the value may end here: what the grammar refused is what follows it
        strain = self.strain
        if strain is not None and strain.start == start:
            strain.refusals += 1
            strain.by_check = strain.by_check or by_check
        elif not by_check and scan[2] == _NUMBER:
            parent = _parent(scan, start)
            self.strain = _Strain(start, start, len(self.tokens), False, parent, number=True)
        else:
            parent = _parent(scan, start)
            self.strain = _Strain(start, len(self.text), len(self.tokens), by_check, parent)

    def _check_refused(self, matcher: Any, token: int) -> bool:
        """Whether the grammar without its checks accepts ``token`` here (so a check refused
        it): the same chart, advanced by a parser with no predicates."""
        state = getattr(matcher, "_state", None)  # the matcher's parse state (a ChartState)
        if self.free is None or state is None or not hasattr(state, "sets"):
            return False
        from structgen.automata.earley import ChartState

        private = ChartState(list(state.sets[: state.length]), state.length)
        return self.free.advance(private, self.vocab.token_bytes[token]) is not None

    _ENDS = {_STRING: (b'"',), _NUMBER: (b",", b"}", b"]", b" ", b"\n", b"\r", b"\t")}

    def _closable(self, matcher: Any, kind: int) -> bool:
        """Whether the open number or string may end right here (its closing quote, or a
        byte after a number, is allowed)."""
        return any(matcher.copy().consume_bytes(end) for end in self._ENDS.get(kind, ()))

    def _repeating(self, value_start: int) -> int:
        """Where the open value from ``value_start`` on started to repeat itself, if its last tokens
        are one unit of 1 to ``MAX_PERIOD`` tokens over and over (at least ``REPEATS`` copies
        and ``REPEATS * 2`` tokens): the offset just after the first copy; else -1."""
        tokens, n = self.tokens, len(self.tokens)
        for period in range(1, MAX_PERIOD + 1):
            copies = max(REPEATS, -(-2 * REPEATS // period))
            first = n - period * copies
            if first < 0 or self.offsets[first] < value_start:
                continue
            unit = tokens[n - period :]
            if any(tokens[first + i] != unit[i % period] for i in range(period * copies)):
                continue
            while first - period >= 0 and self.offsets[first - period] >= value_start:
                if tokens[first - period : first] != unit:
                    break
                first -= period
            return self.offsets[first + period]
        return -1

    def dead_end(self) -> bool:
        """Whether to back up before sampling the next token."""
        if self.exhausted:
            return True
        if len(self.refuted) and self.refuted.is_refuted(bytes(self.text)):
            self.exhausted = True  # forced tokens ran into a refuted string
            return True
        strain = self.strain
        scan = self.scans[len(self.tokens)]
        if strain is not None and (
            strain.token > len(self.tokens) or not JsonScanner.is_open(scan, strain.start)
        ):
            strain = self.strain = None  # the value completed (or was cut away)
        if self.options.grammar_refusals and scan[2] in (_STRING, _NUMBER):
            number = scan[2] == _NUMBER
            floor = scan[1]
            if number:  # an integer part may well be 1000000000: only a fraction repeats
                dot = self.text.find(b".", scan[1])
                floor = dot + 1 if dot >= 0 else len(self.text) + 1
            cut = self._repeating(floor)
            if cut >= 0 or (number and len(self.text) - scan[1] > MAX_NUMBER_BYTES):
                # a runaway: a number's integer part is refuted, a string up to the first copy
                parent = _parent(scan, scan[1])
                self.strain = _Strain(
                    scan[1], cut, len(self.tokens), False, parent, number=number, runaway=True
                )
                return True
        if strain is None:
            return False
        immediate = strain.by_check or strain.number or strain.runaway
        overdue = immediate and len(self.tokens) - strain.token >= self.options.patience
        last = len(self.tokens) + 1 >= self.max_new_tokens  # the budget runs out with it open
        return overdue or strain.refusals > 1 or last

    # -- backing up -------------------------------------------------------------------------------

    def back_up(self, matcher: Any) -> torch.Tensor:
        """Refute, roll back ``tokens``, ``matcher`` and the cache, run the forward pass for the
        position backed up to; return its logits."""
        tokens = self.tokens
        before = len(tokens)
        k = self._exhausted_point() if self.exhausted else self._refute_strain(matcher)
        self.exhausted = False
        self.strain = None
        matcher.rollback(len(tokens) - k)
        del tokens[k:]
        self._sync()
        # the text the grammar forces from here cannot lead into a refuted string: if it does,
        # this point is a dead end too (a sampled token never reaches forced bytes' choices)
        while k and self.refuted.is_refuted(bytes(self.text) + matcher.forced_bytes()):
            self.refuted.add(bytes(self.text))
            matcher.rollback(1)
            k -= 1
            del tokens[k:]
            self._sync()
        if not k and self.refuted.is_refuted(matcher.forced_bytes()):
            self.refuted.clear()  # the whole output is refuted: start over without refutations
        self.backtracks += 1
        self.discarded += before - k
        kept = bisect.bisect_left(self.sampled, k)
        self.discarded_sampled += len(self.sampled) - kept
        del self.sampled[kept:]
        self.stats.backtracks = self.backtracks
        self.stats.discarded_tokens = self.discarded
        self.lm.crop(self.cache, len(self.prompt) + k - 1)
        feed = [tokens[k - 1]] if k else [self.prompt[-1]]
        t0 = time.perf_counter()
        logits = self.lm.forward([feed], self.cache, last_only=True).logits[0, -1]
        spent = time.perf_counter() - t0
        self.stats.model_s += spent  # generate counts the whole sample() call as constraint
        self.stats.constraint_s -= spent  # time: move the forward pass over to model time
        return logits

    def _refute_strain(self, matcher: Any) -> int:
        """Refute the refused value's bytes (a shorter prefix of them on each repeated dead end
        at the same place); return the token to back up to: the one the value starts in.

        A second dead end among the members of one container (the model repeats itself: a
        duplicate item after a duplicate item) refutes the separator before the value instead,
        where the container could close there: the model has run out of new members."""
        strain = self.strain
        assert strain is not None
        if strain.parent >= 0:
            key = (strain.parent, bytes(self.text[: strain.parent]))
            seen = self.container_counts.get(key, 0) + 1
            self.container_counts[key] = seen
            comma = self._separator_before(strain.start)
            if seen >= 2 and comma >= 0 and self._can_close(matcher, comma, strain.parent):
                if self.refuted.add(bytes(self.text[: comma + 1])):
                    return bisect.bisect_right(self.offsets, comma) - 1
        if strain.number:  # refute the integer part: the magnitude was wrong
            end = strain.start + (self.text[strain.start] == 0x2D)  # a minus sign
            while end < len(self.text) and 0x30 <= self.text[end] <= 0x39:
                end += 1
            self.refuted.add(bytes(self.text[: max(end, strain.start + 1)]))
            return bisect.bisect_right(self.offsets, strain.start) - 1
        key = bytes(self.text[: strain.start])
        count = self.dead_counts.get(key, 0) + 1
        self.dead_counts[key] = count
        length = strain.refused_at - strain.start
        # at least the value's first byte; a string's first character too (the quote is no choice)
        shortest = 2 if self.text[strain.start] == 0x22 else 1
        keep = min(length, max(shortest, length >> (count - 1)))
        if keep > 0:
            self.refuted.add(bytes(self.text[: strain.start + keep]))
        return bisect.bisect_right(self.offsets, strain.start) - 1

    def _separator_before(self, start: int) -> int:
        """Offset of the ``,`` before the value at ``start`` (whitespace skipped), else -1."""
        i = start - 1
        while i >= 0 and self.text[i] in _WS:
            i -= 1
        return i if i >= 0 and self.text[i] == 0x2C else -1

    _CLOSING_SPACE = (b"", b" ", b"\r\n", *(b"\n" + b" " * n for n in range(41)), b"\n\t")

    def _can_close(self, matcher: Any, pos: int, container: int) -> bool:
        """Whether the grammar lets the container at ``container`` close at byte ``pos``."""
        closer = b"]" if self.text[container] == 0x5B else b"}"
        k = bisect.bisect_right(self.offsets, pos) - 1
        base = matcher.copy()
        base.rollback(len(self.tokens) - k)
        if not base.consume_bytes(bytes(self.text[self.offsets[k] : pos])):
            return False
        return any(base.copy().consume_bytes(space + closer) for space in self._CLOSING_SPACE)

    def _exhausted_point(self) -> int:
        """Every continuation of the output is refuted (or it ran into a refuted string):
        refute the output so far and back up one token (or to where the refuted string ends)."""
        text = bytes(self.text)
        if not text:
            self.refuted.clear()
            return 0
        ends = [len(r) for r in self.refuted if text.startswith(r)]
        if ends:  # back up into the token that completed the refuted string
            return bisect.bisect_right(self.offsets, min(ends) - 1) - 1
        self.refuted.add(text)
        return len(self.tokens) - 1


class _RecoveringSampler:
    """A sampler that backs up over dead ends, masks refuted continuations and reports check
    refusals to its ``Recovery``."""

    def __init__(self, inner: Any, recovery: Recovery) -> None:
        self.inner = inner
        self.recovery = recovery

    @property
    def stats(self) -> Any:
        return self.inner.stats

    def sample(
        self, logits: torch.Tensor, matcher: Any, generator: Any = None
    ) -> tuple[int, float]:
        rec = self.recovery
        rec._sync()
        while True:
            if rec.exhausted or (rec.active and rec.dead_end()):
                logits = rec.back_up(matcher)
            banned = rec.banned()
            scores = logits
            if banned is not None:
                banned = banned[banned < logits.numel()]
                scores = logits.clone()
                scores[torch.from_numpy(banned)] = float("-inf")
            try:
                token, log_weight = self.inner.sample(scores, matcher, generator)
            except NoAllowedToken:
                if not rec.active:
                    if banned is not None:  # out of back-ups: the refutations give way
                        return self.inner.sample(logits, matcher, generator)  # type: ignore[no-any-return]
                    if rec.rescues >= MAX_RESCUES:
                        raise
                    rec.rescues += 1  # nothing is allowed at all: back up even so
                rec.exhausted = True  # every allowed token is refuted (or none is allowed)
                continue
            rec.observe(scores, token, matcher)
            if rec.active and rec.strain is not None and rec.dead_end():
                continue  # a refusal that is a dead end already (patience 0): back up now
            rec.sampled.append(len(rec.tokens))
            return token, log_weight
