"""Refuted prefixes: output prefixes a decode loop must not produce again.

``RefutedPrefixes`` is a set of byte strings, each a prefix of the output that was found to be a
dead end; an output is ruled out when its bytes start with one of them. It plays the part of the
refuted-prefix trie that grammar-aligned sampling keeps (CARS/ASAp rule out dead prefixes the
same way), kept over bytes instead of token ids, so a refuted text cannot come back under another
tokenization of the same bytes (``"fel" "ines"`` after ``"felines"`` was refuted as one token).

It does not share ``structgen.aligned.trie.PrefixTrie``: that trie is keyed by token ids and
stores, per node, probability arrays and the future-grammaticality bound Phi that ASAp and CARS
update; here only membership matters, on bytes, for the handful of strings one call refutes.

``TokenPrefixIndex`` answers "which tokens start with these bytes" from one sorted array of the
vocabulary's token bytes (two binary searches), so excluding every token that would complete a
refuted string costs no walk over the vocabulary.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["RefutedPrefixes", "TokenPrefixIndex"]


class TokenPrefixIndex:
    """The token ids whose bytes start with a given byte string.

    Args:
        token_bytes: the bytes of each token id (a ``Vocabulary.token_bytes``).
    """

    _BY_VOCAB: weakref.WeakKeyDictionary[Any, TokenPrefixIndex] = weakref.WeakKeyDictionary()

    def __init__(self, token_bytes: Sequence[bytes]) -> None:
        order = sorted(range(len(token_bytes)), key=lambda t: token_bytes[t])
        self._ids = np.asarray(order, dtype=np.int64)
        self._keys = [token_bytes[t] for t in order]

    @classmethod
    def for_vocab(cls, vocab: Any) -> TokenPrefixIndex:
        """The index of ``vocab`` (built once per Vocabulary object)."""
        try:
            index = cls._BY_VOCAB.get(vocab)
        except TypeError:
            index = None
        if index is None:
            index = cls(vocab.token_bytes)
            try:
                cls._BY_VOCAB[vocab] = index
            except TypeError:
                pass
        return index

    def starting_with(self, prefix: bytes) -> np.ndarray:
        """Ids of the tokens whose bytes start with ``prefix`` (non-empty), as int64."""
        lo = bisect.bisect_left(self._keys, prefix)
        upper = prefix.rstrip(b"\xff")
        if not upper:
            return self._ids[lo:]
        upper = upper[:-1] + bytes([upper[-1] + 1])
        hi = bisect.bisect_left(self._keys, upper, lo)
        return self._ids[lo:hi]


class RefutedPrefixes:
    """Refuted prefixes of an output, as byte strings: an output whose bytes start with one of
    them is ruled out. A handful per ``generate`` call (one per back-up), so plain scans."""

    def __init__(self) -> None:
        self._refuted: set[bytes] = set()

    def add(self, prefix: bytes) -> bool:
        """Refute ``prefix``; False if it (or a prefix of it) already was. Longer strings it
        makes redundant are dropped."""
        if not prefix:
            raise ValueError("the empty string cannot be refuted (it would refute every output)")
        if self.is_refuted(prefix):
            return False
        self._refuted = {r for r in self._refuted if not r.startswith(prefix)}
        self._refuted.add(prefix)
        return True

    def is_refuted(self, text: bytes) -> bool:
        """Whether ``text`` starts with a refuted string."""
        return any(text.startswith(r) for r in self._refuted)

    def pending(self, text: bytes) -> list[bytes]:
        """The rests ``r[len(text):]`` of the refuted strings ``r`` that extend ``text``: a next
        token whose bytes start with one of them would complete a refuted string."""
        n = len(text)
        return [r[n:] for r in self._refuted if len(r) > n and r.startswith(text)]

    def clear(self) -> None:
        """Forget every refuted string."""
        self._refuted.clear()

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._refuted

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._refuted))

    def __len__(self) -> int:
        return len(self._refuted)
