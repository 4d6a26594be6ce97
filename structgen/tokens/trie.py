"""A byte trie of the vocabulary, laid out level by level for vectorised walks.

Node 0 is the root (the empty prefix). Nodes are numbered by depth, so the nodes at depth ``d``
form one contiguous slice whose parents all lie in the previous slice. Walking an automaton over
every token is then one numpy gather per depth level instead of a Python loop over the
vocabulary. On the SmolLM2 vocabulary (49,152 tokens) the trie has about 100k nodes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from structgen import _accel
from structgen.tokens.vocabulary import Vocabulary


@dataclass(frozen=True, eq=False)
class TokenTrie:
    """Level-ordered byte trie of the non-special tokens.

    Attributes:
        parent: ``int32[num_nodes]``, the parent of each node (root's parent is 0).
        byte: ``uint8[num_nodes]``, the byte on the edge into each node.
        levels: ``(start, stop)`` node slices for depth 1, 2, ...
        token_node: ``int32[vocab_size]``, the node where each token ends (0 for special tokens).
        normal: ``bool[vocab_size]``, tokens that are not special and not empty.
    """

    parent: np.ndarray
    byte: np.ndarray
    levels: tuple[tuple[int, int], ...]
    token_node: np.ndarray
    normal: np.ndarray

    @property
    def num_nodes(self) -> int:
        """Number of nodes including the root."""
        return int(self.parent.shape[0])

    @classmethod
    def build(cls, vocab: Vocabulary) -> TokenTrie:
        """Build the trie of ``vocab`` (about 0.3 s for 50k tokens)."""
        prefixes: set[bytes] = set()
        normal = np.zeros(vocab.vocab_size, dtype=bool)
        for tid, data in enumerate(vocab.token_bytes):
            if data and tid not in vocab.special_token_ids:
                normal[tid] = True
                for end in range(1, len(data) + 1):
                    prefixes.add(data[:end])
        ordered = sorted(prefixes, key=lambda p: (len(p), p))
        node_of = {p: i + 1 for i, p in enumerate(ordered)}
        node_of[b""] = 0
        n = len(ordered) + 1
        parent = np.zeros(n, dtype=np.int32)
        byte = np.zeros(n, dtype=np.uint8)
        levels: list[tuple[int, int]] = []
        depth_start = 1
        for i, p in enumerate(ordered, start=1):
            parent[i] = node_of[p[:-1]]
            byte[i] = p[-1]
            if len(p) != len(ordered[depth_start - 1]):
                levels.append((depth_start, i))
                depth_start = i
        if ordered:
            levels.append((depth_start, n))
        token_node = np.zeros(vocab.vocab_size, dtype=np.int32)
        for tid in np.flatnonzero(normal).tolist():
            token_node[tid] = node_of[vocab.token_bytes[tid]]
        return cls(parent, byte, tuple(levels), token_node, normal)


def native_trie(trie: TokenTrie) -> Any:
    """The trie as a ``structgen._native.Trie`` (preorder layout for C walks), built once per
    trie; None when the C extension is not in use."""
    nat = _accel.native()
    if nat is None:
        return None
    hit = trie.__dict__.get("_native")
    if hit is None:
        hit = nat.Trie(
            np.ascontiguousarray(trie.parent, dtype=np.int32),
            np.ascontiguousarray(trie.byte, dtype=np.uint8),
            np.ascontiguousarray(trie.token_node, dtype=np.int32),
            np.ascontiguousarray(trie.normal, dtype=np.uint8),
        )
        trie.__dict__["_native"] = hit  # frozen dataclass: cache without __setattr__
    return hit


_TRIES: dict[str, TokenTrie] = {}
_LOCK = threading.Lock()


def trie_for(vocab: Vocabulary) -> TokenTrie:
    """The (process-wide cached) trie of ``vocab``."""
    key = vocab.fingerprint()
    with _LOCK:
        trie = _TRIES.get(key)
    if trie is None:
        trie = TokenTrie.build(vocab)
        with _LOCK:
            trie = _TRIES.setdefault(key, trie)
    return trie


__all__ = ["TokenTrie", "native_trie", "trie_for"]
