"""The prefix trie shared by ASAp and CARS: sound over-approximations of future grammaticality.

For a token prefix w, Phi(w) is the probability that the model, continuing w, produces a string
of the target (docs/algorithms.md §2.2, "expected future grammaticality"). The trie stores, at
each node it has seen, the next tokens it knows about with their (warped) probability p(t | w)
and the current bound Phi(w·t); tokens it does not know about count as Phi = 1. So

    Phi~(w) = Σ_known p(t | w)·Phi~(w·t) + (1 − Σ_known p(t | w))   (node not complete)
    Phi~(w) = Σ_known p(t | w)·Phi~(w·t)                             (complete: known = allowed)

is an upper bound of the true value, and it is exact once every node below w is complete. A node
becomes complete when the full grammar mask is recorded there (``expand``); a single check that
rejects a token records that token with Phi = 0 (``record``). After each change the new value
propagates to the root. EOS children are leaves with Phi = 1.

Simplifications: nodes are never deleted (deleting one would break the consistency CARS relies
on). When the trie reaches ``max_bytes`` it stops growing: ``child`` then returns detached nodes
that are used for one sample and forgotten, so sampling continues below the frontier with the
plain bound Phi = 1 there.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["Node", "PrefixTrie"]

_NODE_OVERHEAD = 400  # bytes per node beyond its arrays (object, slots, dict entry), roughly


class Node:
    """One prefix. ``ids``/``logp``/``phi`` are parallel arrays over the known next tokens."""

    __slots__ = (
        "parent",
        "slot",
        "ids",
        "logp",
        "phi",
        "children",
        "complete",
        "value",
        "full_logp",
        "_slot_of",
        "attached",
    )

    def __init__(self, parent: Node | None, slot: int, attached: bool = True) -> None:
        self.parent = parent
        self.slot = slot
        self.ids = np.zeros(0, dtype=np.int64)
        self.logp = np.zeros(0, dtype=np.float64)
        self.phi = np.zeros(0, dtype=np.float64)
        self.children: dict[int, Node] = {}
        self.complete = False
        self.value = 1.0
        self.full_logp: torch.Tensor | None = None
        self._slot_of: dict[int, int] | None = None
        self.attached = attached

    @property
    def expanded(self) -> bool:
        """Whether the full allowed set is recorded here."""
        return self.complete

    def slot_of(self, token: int) -> int | None:
        """The array slot of ``token`` if it is known here."""
        if self._slot_of is None:
            self._slot_of = {int(t): i for i, t in enumerate(self.ids.tolist())}
        return self._slot_of.get(token)

    def weights(self) -> np.ndarray:
        """p(t | w)·Phi~(w·t) over the known tokens."""
        return np.exp(self.logp) * self.phi

    def compute_value(self) -> float:
        """Phi~ of this node from its arrays (see the module docstring)."""
        known = float(np.dot(np.exp(self.logp), self.phi)) if self.ids.size else 0.0
        if self.complete:
            return known
        unknown = 1.0 - float(np.exp(self.logp).sum()) if self.ids.size else 1.0
        return known + max(unknown, 0.0)

    def nbytes(self) -> int:
        """Approximate memory held by this node."""
        total = _NODE_OVERHEAD + self.ids.nbytes + self.logp.nbytes + self.phi.nbytes
        if self.full_logp is not None:
            total += self.full_logp.numel() * self.full_logp.element_size()
        return total


class PrefixTrie:
    """The trie of one (model, prompt, grammar, warps, length cap) combination.

    Args:
        eos_ids: the vocabulary's EOS ids (leaves).
        max_bytes: stop growing past this much memory (None: unbounded).
        memo_logits: keep each node's full next-token log-probabilities (``float32[V]``), so
            samplers that walk back through a node need no forward pass there. Only used by the
            check-based (AWRS) modes, which need the full distribution; memory-capped as above.
    """

    def __init__(
        self,
        eos_ids: np.ndarray | list[int],
        *,
        max_bytes: int | None = 256 * 2**20,
        memo_logits: bool = True,
    ) -> None:
        self.eos = frozenset(int(t) for t in np.asarray(eos_ids).tolist())
        self.max_bytes = max_bytes
        self.memo_logits = memo_logits
        self.root = Node(None, -1)
        self.nbytes = self.root.nbytes()
        self.num_nodes = 1
        self.samples = 0  # samples drawn with this trie (across calls)

    # ------------------------------------------------------------------ structure

    @property
    def full(self) -> bool:
        """Whether the memory cap is reached (no new nodes are kept)."""
        return self.max_bytes is not None and self.nbytes >= self.max_bytes

    def child(self, node: Node, slot: int) -> Node:
        """The node for token ``node.ids[slot]`` (created on first use; detached if full)."""
        found = node.children.get(slot)
        if found is not None:
            return found
        if not node.attached or self.full:
            return Node(node, slot, attached=False)
        new = Node(node, slot)
        node.children[slot] = new
        self.nbytes += new.nbytes()
        self.num_nodes += 1
        return new

    def memo(self, node: Node, logp: torch.Tensor) -> None:
        """Keep ``logp`` at ``node`` if memoisation is on and there is room."""
        if self.memo_logits and node.attached and node.full_logp is None and not self.full:
            node.full_logp = logp
            self.nbytes += logp.numel() * logp.element_size()

    # ------------------------------------------------------------------ learning

    def expand(self, node: Node, allowed: torch.Tensor, logp: torch.Tensor) -> None:
        """Record the full allowed set at ``node`` (``allowed``: ``bool[V]``; ``logp``: ``[V]``).

        Tokens already known keep their Phi; newly listed ones start at Phi = 1; the node becomes
        complete (every unlisted token is outside the grammar).
        """
        if node.complete:
            return
        ok = allowed & torch.isfinite(logp)
        ids = torch.nonzero(ok).flatten().numpy().astype(np.int64)
        values = logp[ok].double().numpy()
        phi = np.ones(ids.size, dtype=np.float64)
        if node.ids.size:
            position = {int(t): i for i, t in enumerate(ids.tolist())}
            for old_slot, token in enumerate(node.ids.tolist()):
                i = position.get(int(token))
                if i is not None:
                    phi[i] = node.phi[old_slot]
            # children keep their slots: remap them to the new arrays
            children = {}
            for old_slot, child in node.children.items():
                i = position.get(int(node.ids[old_slot]))
                if i is not None:
                    child.slot = i
                    children[i] = child
            node.children = children
        before = node.nbytes()
        node.ids, node.logp, node.phi = ids, values, phi
        node._slot_of = None
        node.complete = True
        self._grew(node, before)
        self._refresh(node)

    def record(self, node: Node, token: int, logp: float, alive: bool) -> int:
        """Record one checked token at ``node``; returns its slot.

        A rejected token (``alive=False``) gets Phi = 0; an accepted one keeps what it had (or 1).
        """
        slot = node.slot_of(token)
        if slot is not None:
            if not alive and node.phi[slot] != 0.0:
                node.phi[slot] = 0.0
                self._refresh(node)
            return slot
        if node.complete:  # a complete node lists every allowed token: others are dead already
            return -1
        before = node.nbytes()
        node.ids = np.append(node.ids, np.int64(token))
        node.logp = np.append(node.logp, np.float64(logp))
        node.phi = np.append(node.phi, 1.0 if alive else 0.0)
        slot = node.ids.size - 1
        if node._slot_of is not None:
            node._slot_of[token] = slot
        self._grew(node, before)
        if not alive:
            self._refresh(node)
        return slot

    def kill(self, node: Node) -> None:
        """Mark ``node`` dead (no string of the target continues it)."""
        node.complete = True
        node.phi = np.zeros_like(node.phi)
        self._refresh(node)

    def _grew(self, node: Node, before: int) -> None:
        if node.attached:
            self.nbytes += node.nbytes() - before

    def _refresh(self, node: Node) -> None:
        """Recompute ``node.value`` and push the change up to the root.

        A detached node's bound serves its own sample only: it is not pushed into its parent,
        whose entry for it must stay what the parent's draws used (CARS relies on that).
        """
        current = node
        while True:
            value = current.compute_value()
            if value == current.value and current is not node:
                return
            current.value = value
            parent = current.parent
            if parent is None or not current.attached:
                return
            parent.phi[current.slot] = value
            current = parent

    def is_eos(self, token: int) -> bool:
        """Whether ``token`` is an EOS id."""
        return token in self.eos

    def __repr__(self) -> str:
        return (
            f"PrefixTrie(nodes={self.num_nodes}, Phi(root)={self.root.value:.4g}, "
            f"MiB={self.nbytes / 2**20:.1f}, samples={self.samples})"
        )
