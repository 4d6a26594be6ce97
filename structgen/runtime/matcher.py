"""Matcher: the per-sequence cursor over a CompiledGrammar.

Error contract: a rejected token is a return value (``False`` / a shorter prefix length), never an
exception, and it leaves the state unchanged; ``last_error`` says why. Only API misuse raises
(``ValueError`` subclasses, e.g. rolling back more tokens than the history holds).

EOS is accepted exactly when the text so far is complete; after EOS the matcher is terminated and
accepts nothing more (its mask allows nothing).
"""

from __future__ import annotations

import operator
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from structgen.errors import ConfigurationError

if TYPE_CHECKING:
    import torch

    from structgen.compiler import CompiledGrammar


class _Terminated:
    """The state after EOS. A singleton that pickles by reference, so ``state is _TERMINATED``
    still holds in an unpickled matcher."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_TERMINATED"

    def __repr__(self) -> str:
        return "<terminated>"


_TERMINATED: Any = _Terminated()  # marker state pushed when EOS is consumed


def _token_id(value: Any, what: str = "token id") -> int:
    """``value`` as an int token id: an int, a numpy integer or anything integral with
    ``__index__`` (a 0-d integer tensor). Bools and floats are API misuse (``True`` must not
    act as token 1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    dtype = str(getattr(value, "dtype", ""))
    if not isinstance(value, (bool, np.bool_)) and "bool" not in dtype:
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise ConfigurationError(
        f"Invalid {what}: expected an int (or numpy integer), got {type(value).__name__} {value!r}",
        hint="pass token ids as ints",
    )


def _token_ids(values: Any) -> list[int]:
    """A sequence of token ids as ints, every element checked before anything is consumed."""
    if isinstance(values, (str, bytes, bytearray)) or not hasattr(values, "__iter__"):
        raise ConfigurationError(
            f"Invalid token_ids: expected a sequence of ints, got {type(values).__name__}",
            hint="pass a list (or 1-D array) of token ids",
        )
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ConfigurationError(
            f"Invalid token_ids: expected a 1-D sequence, got an array of shape {values.shape}"
        )
    return [_token_id(v, f"token id at index {i}") for i, v in enumerate(values)]


class Matcher:
    """Tracks one sequence's position in a compiled grammar.

    Args:
        compiled: the compiled grammar.
        max_rollback: how many tokens ``rollback`` can undo (None: unlimited).
    """

    __slots__ = ("_compiled", "_index", "_history", "_state", "_max_rollback", "last_error")

    def __init__(self, compiled: CompiledGrammar, *, max_rollback: int | None = None) -> None:
        if max_rollback is not None:
            max_rollback = _token_id(max_rollback, "max_rollback")
        if max_rollback is not None and max_rollback < 0:
            raise ConfigurationError(
                f"Invalid max_rollback: expected None or >= 0, got {max_rollback}"
            )
        self._compiled = compiled
        self._index = compiled.index
        self._max_rollback = max_rollback
        self._history: deque[Any] = deque(maxlen=max_rollback)
        self._state: Any = self._index.initial_state()
        self.last_error: str | None = None

    # ------------------------------------------------------------------ consuming

    def _next_state(self, state: Any, token_id: int) -> tuple[Any, str | None]:
        """(new state, None) if accepted, else (None, reason). Does not change self."""
        vocab = self._compiled.vocab
        if state is _TERMINATED:
            return None, "the matcher is terminated (EOS was consumed)"
        if not 0 <= token_id < vocab.vocab_size:
            return None, f"token id {token_id} is outside the vocabulary (size {vocab.vocab_size})"
        if token_id in vocab.eos_token_ids:
            if self._index.is_accepting(state):
                return _TERMINATED, None
            return None, "EOS is not allowed: the text is incomplete"
        if token_id in vocab.special_token_ids:
            return None, f"special token {token_id} is not allowed inside constrained text"
        nxt = self._index.advance(state, token_id)
        if nxt is None:
            return None, f"token {token_id} ({vocab.token_bytes[token_id]!r}) is rejected"
        return nxt, None

    def consume_token(self, token_id: int) -> bool:
        """Advance by one token. Returns False (state unchanged) if the grammar rejects it
        (an id outside the vocabulary included).

        Raises:
            ConfigurationError: ``token_id`` is not an int or numpy integer (a bool, a float).
        """
        nxt, err = self._next_state(self._state, _token_id(token_id))
        if err is not None:
            self.last_error = err
            return False
        self._history.append(self._state)
        self._state = nxt
        self.last_error = None
        return True

    def consume_tokens(self, token_ids: list[int]) -> int:
        """Consume tokens until the first rejected one; return how many were consumed.

        Raises:
            ConfigurationError: an element is not an int (checked before anything is consumed).
        """
        ids = _token_ids(token_ids)
        for i, tid in enumerate(ids):
            if not self.consume_token(tid):
                return i
        return len(ids)

    def validate_tokens(self, token_ids: list[int]) -> int:
        """Length of the longest prefix of ``token_ids`` the grammar accepts. No state change.

        Raises:
            ConfigurationError: an element is not an int.
        """
        ids = _token_ids(token_ids)
        state = self._state
        for i, tid in enumerate(ids):
            state, err = self._next_state(state, tid)
            if err is not None:
                return i
        return len(ids)

    def consume_bytes(self, data: bytes) -> bool:
        """Advance by raw bytes (counts as one history entry). False if rejected."""
        if self._state is _TERMINATED:
            self.last_error = "the matcher is terminated (EOS was consumed)"
            return False
        nxt = self._index.advance_bytes(self._state, data)
        if nxt is None:
            self.last_error = f"bytes {data!r} are rejected"
            return False
        self._history.append(self._state)
        self._state = nxt
        self.last_error = None
        return True

    def rollback(self, num_tokens: int) -> None:
        """Undo the last ``num_tokens`` consumed tokens.

        Raises:
            ConfigurationError: a negative count, more tokens than the rollback history holds,
                or a count that is not an int.
        """
        num_tokens = _token_id(num_tokens, "rollback count")
        if num_tokens < 0 or num_tokens > len(self._history):
            raise ConfigurationError(
                f"Invalid rollback: expected 0 <= num_tokens <= {len(self._history)} "
                f"(the available history), got {num_tokens}"
            )
        for _ in range(num_tokens):
            self._state = self._history.pop()
        self.last_error = None

    def reset(self) -> None:
        """Back to the start of the grammar, history cleared."""
        self._history.clear()
        self._state = self._index.initial_state()
        self.last_error = None

    # ------------------------------------------------------------------ queries

    def is_accepting(self) -> bool:
        """Whether the text so far is complete (EOS would be accepted), or EOS was consumed."""
        if self._state is _TERMINATED:
            return True
        return self._index.is_accepting(self._state)

    def can_continue(self) -> bool:
        """Whether some non-EOS token is allowed next (False once terminated)."""
        if self._state is _TERMINATED:
            return False
        return bool(self._index.can_continue(self._state))

    def is_dead_end(self) -> bool:
        """Whether nothing is allowed next, EOS included, before EOS was consumed: a semantic
        check refuses every completion of the text so far (the grammar alone never gets here)."""
        if self._state is _TERMINATED:
            return False
        if self._index.is_accepting(self._state):
            return False
        return not self._index.token_bitmask(self._state).any()

    def forced_bytes(self) -> bytes:
        """The bytes every continuation must start with (empty if there is a choice)."""
        if self._state is _TERMINATED:
            return b""
        return self._index.forced_bytes(self._state)

    def compute_ff_tokens(self) -> list[int]:
        """Tokens the grammar forces next, tokenized the way the tokenizer would encode them.

        The forced bytes are encoded with the vocabulary's tokenizer, then the last token is held
        back (the text that follows may merge with it into another token), and any remaining
        token the matcher would reject is dropped with everything after it. Empty when the
        vocabulary has no encoder (``Vocabulary.from_token_bytes``) or nothing is forced.
        """
        data = self.forced_bytes()
        encode = self._compiled.vocab.encoder
        if not data or encode is None:
            return []
        tokens = list(encode(data))
        if self._compiled.vocab.decode(tokens) != data:
            return []
        tokens = tokens[:-1]
        return tokens[: self.validate_tokens(tokens)]

    def is_terminated(self) -> bool:
        """Whether EOS has been consumed."""
        return self._state is _TERMINATED

    @property
    def num_rollback_tokens(self) -> int:
        """How many tokens ``rollback`` can currently undo."""
        return len(self._history)

    @property
    def compiled(self) -> CompiledGrammar:
        """The compiled grammar this matcher walks."""
        return self._compiled

    def next_token_bitmask_np(self) -> np.ndarray:
        """``int32[ceil(V/32)]``, bit ``t`` set iff token ``t`` is allowed next (a new array)."""
        words = (self._compiled.vocab_size + 31) // 32
        if self._state is _TERMINATED:
            return np.zeros(words, dtype=np.int32)
        out = self._index.token_bitmask(self._state).copy()
        if self._index.is_accepting(self._state):
            unsigned = out.view(np.uint32)
            for eos in self._compiled.eos_token_ids.tolist():
                unsigned[eos >> 5] |= np.uint32(1 << (eos & 31))
        return out

    def fill_next_token_bitmask(self, bitmask: Any, row: int = 0) -> None:
        """Write the allowed set into row ``row`` of an ``int32[batch, ceil(V/32)]`` bitmask.

        ``bitmask`` is a CPU torch tensor or a numpy array.
        """
        words = self.next_token_bitmask_np()
        if isinstance(bitmask, np.ndarray):
            if bitmask.dtype != np.int32 or bitmask.ndim != 2 or bitmask.shape[1] != words.size:
                raise ConfigurationError(
                    f"Invalid bitmask: expected int32[batch, {words.size}], "
                    f"got {bitmask.dtype}{list(bitmask.shape)}"
                )
            bitmask[row] = words
            return
        from structgen.runtime.bitmask_torch import fill_row_from_numpy

        fill_row_from_numpy(bitmask, row, words)

    def next_token_mask(self) -> torch.Tensor:
        """``torch.bool[vocab_size]``: True for the tokens allowed next (EOS iff accepting)."""
        from structgen.runtime.bitmask_torch import unpack_bitmask_np

        return unpack_bitmask_np(self.next_token_bitmask_np(), self._compiled.vocab_size)

    def allowed_token_ids(self) -> np.ndarray:
        """The ids allowed next, as an int64 array (sorted)."""
        bits = np.unpackbits(self.next_token_bitmask_np().view(np.uint8), bitorder="little")
        return np.flatnonzero(bits[: self._compiled.vocab_size]).astype(np.int64)

    def copy(self) -> Matcher:
        """An independent matcher at the same position (history included). O(history)."""
        other = Matcher.__new__(Matcher)
        other._compiled = self._compiled
        other._index = self._index
        other._max_rollback = self._max_rollback
        other._history = self._history.copy()
        other._state = self._state
        other.last_error = self.last_error
        return other

    def __repr__(self) -> str:
        return (
            f"Matcher(state={self._state!r}, accepting={self.is_accepting()}, "
            f"terminated={self.is_terminated()})"
        )


__all__ = ["Matcher"]
