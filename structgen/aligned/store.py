"""Where the prefix tries live between calls: one per (model, prompt, grammar, warps, length cap),
least recently used first out when their total memory passes a cap.

A trie is only valid for the exact setting it learned in (its probabilities are the model's for
that prompt and those warps), so that whole setting is the key. Evicting a whole trie is always
safe: a fresh trie is a sound (if loose) bound.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

from structgen.aligned.trie import PrefixTrie
from structgen.errors import ConfigurationError

__all__ = ["DEFAULT_STORE", "TrieStore"]


class TrieStore:
    """An LRU collection of tries with a total memory cap.

    Args:
        max_bytes: total memory of all tries; each trie also stops growing at this size.
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        if max_bytes < 1:
            raise ConfigurationError(f"Invalid max_bytes: expected >= 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self._tries: OrderedDict[tuple[int, Hashable], tuple[Any, PrefixTrie]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: Any, key: Hashable, eos_ids: np.ndarray) -> PrefixTrie:
        """The trie for ``model`` and ``key``, created empty on first use."""
        ref = _ref(model)
        full_key = (id(model), key)
        with self._lock:
            found = self._tries.get(full_key)
            if found is not None and found[0]() is model:
                self._tries.move_to_end(full_key)
                trie = found[1]
            else:
                trie = PrefixTrie(eos_ids, max_bytes=self.max_bytes)
                self._tries[full_key] = (ref, trie)
            self._evict(keep=full_key)
        return trie

    @property
    def nbytes(self) -> int:
        """Memory held by all tries."""
        return sum(trie.nbytes for _, trie in self._tries.values())

    def __len__(self) -> int:
        return len(self._tries)

    def clear(self) -> None:
        """Forget every trie."""
        with self._lock:
            self._tries.clear()

    def _evict(self, keep: tuple[int, Hashable]) -> None:
        for k in [k for k, (ref, _) in self._tries.items() if ref() is None]:
            del self._tries[k]
        while self.nbytes > self.max_bytes and len(self._tries) > 1:
            oldest = next(iter(self._tries))
            if oldest == keep:
                self._tries.move_to_end(oldest)
                oldest = next(iter(self._tries))
            del self._tries[oldest]


def _ref(model: Any) -> Any:
    try:
        return weakref.ref(model)
    except TypeError:  # not weak-referenceable: hold it (the key's id stays valid meanwhile)
        return lambda: model


DEFAULT_STORE = TrieStore()
