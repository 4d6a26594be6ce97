"""ASAp and the prefix trie: the bound is sound at every node, it tightens to the truth, ASAp's
samples converge to the target, the trie persists across calls and respects its memory cap.

World and exact distributions: toy_world.py and conftest.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from toy_world import GRAMMAR, MAX_TOKENS, PROMPT, text_of

from structgen.aligned import PrefixTrie, TrieStore, sample_tokens
from structgen.aligned.metrics import chi_square_pvalue, empirical, kl_divergence
from structgen.aligned.trie import Node
from structgen.errors import ConfigurationError


def true_phi(exact, lm, path: tuple[int, ...]) -> float:  # type: ignore[no-untyped-def]
    """Phi(w) = Σ_{y extends w} p(y·EOS)/p(w), from the enumeration."""
    log_pw = 0.0
    for i, tok in enumerate(path):
        logits = lm.next_logits(tuple(PROMPT) + path[:i])
        log_pw += float(torch.log_softmax(logits, -1)[tok])
    total = sum(
        math.exp(lp - log_pw)
        for seq, lp in zip(exact.sequences, exact.log_p.tolist(), strict=True)
        if seq[: len(path)] == path
    )
    return total


def walk(node: Node, path: tuple[int, ...] = ()):  # type: ignore[no-untyped-def]
    yield path, node
    for slot, child in node.children.items():
        yield from walk(child, (*path, int(node.ids[slot])))


@pytest.mark.parametrize("check", ["mask", "awrs"])
def test_the_bound_is_sound_at_every_node(world, check) -> None:  # type: ignore[no-untyped-def]
    lm, exact, _, _ = world
    trie = PrefixTrie(GRAMMAR.eos_token_ids)
    gen = torch.Generator().manual_seed(0)
    sample_tokens(lm, GRAMMAR, PROMPT, 60, sampler="asap", check=check, trie=trie,
                  max_new_tokens=MAX_TOKENS, generator=gen)  # fmt: skip
    nodes = list(walk(trie.root))
    assert len(nodes) > 20
    for path, node in nodes:
        assert node.value >= true_phi(exact, lm, path) * (1 - 1e-4), path  # float32 logits
        if node.parent is not None:  # consistency: a parent draws its child with the child's bound
            assert node.parent.phi[node.slot] == node.value


@pytest.mark.parametrize("check", ["mask", "awrs"])
def test_asap_converges_to_the_target(world, check) -> None:  # type: ignore[no-untyped-def]
    lm, exact, target, lcd = world
    trie = PrefixTrie(GRAMMAR.eos_token_ids)
    gen = torch.Generator().manual_seed(1)
    windows, bounds = [], []
    for _ in range(5):
        out = sample_tokens(lm, GRAMMAR, PROMPT, 300, sampler="asap", check=check, trie=trie,
                            max_new_tokens=MAX_TOKENS, generator=gen)  # fmt: skip
        assert all(d.complete and d.log_weight is None for d in out.draws)
        windows.append(kl_divergence(target, empirical(text_of(d.tokens) for d in out.draws),
                                     n=300))  # fmt: skip
        bounds.append(trie.root.value)
    # KL falls window after window; late windows are far closer than masked decoding
    assert windows[-1] < windows[0] / 2, windows
    assert windows[-1] < kl_divergence(target, lcd) / 10, windows
    # the bound Phi~(root) only falls, towards Phi(L)
    assert all(a >= b for a, b in zip(bounds, bounds[1:], strict=False)), bounds
    z = math.exp(exact.log_z)
    assert z - 1e-9 <= bounds[-1] <= 1.1 * z


def test_converged_asap_is_exact(world) -> None:  # type: ignore[no-untyped-def]
    # once every node on the support is complete, ASAp's draw probability telescopes to pi(y);
    # after 1500 samples only nodes of tiny probability are still unexplored
    lm, exact, target, _ = world
    trie = PrefixTrie(GRAMMAR.eos_token_ids)
    gen = torch.Generator().manual_seed(2)
    sample_tokens(lm, GRAMMAR, PROMPT, 1500, sampler="asap", trie=trie,
                  max_new_tokens=MAX_TOKENS, generator=gen)  # fmt: skip
    assert trie.root.value == pytest.approx(math.exp(exact.log_z), rel=1e-2)
    out = sample_tokens(lm, GRAMMAR, PROMPT, 1000, sampler="asap", trie=trie,
                        max_new_tokens=MAX_TOKENS, generator=gen)  # fmt: skip
    counts: dict[bytes, int] = {}
    for d in out.draws:
        counts[text_of(d.tokens)] = counts.get(text_of(d.tokens), 0) + 1
    assert chi_square_pvalue(counts, target) > 1e-3
    assert out.stats.forward_passes <= 5  # the trie holds the probabilities: almost no model


def test_the_trie_persists_in_a_store(world) -> None:  # type: ignore[no-untyped-def]
    lm = world[0]
    store = TrieStore()
    gen = torch.Generator().manual_seed(3)
    first = sample_tokens(lm, GRAMMAR, PROMPT, 50, sampler="asap", store=store,
                          max_new_tokens=MAX_TOKENS, generator=gen)  # fmt: skip
    again = sample_tokens(lm, GRAMMAR, PROMPT, 50, sampler="cars", store=store,
                          max_new_tokens=MAX_TOKENS, generator=gen)  # fmt: skip
    assert first.trie is again.trie and len(store) == 1 and first.trie.samples == 100
    other = sample_tokens(lm, GRAMMAR, PROMPT, 5, sampler="asap", store=store,
                          max_new_tokens=MAX_TOKENS - 1, generator=gen)  # fmt: skip
    assert other.trie is not first.trie and len(store) == 2  # another length cap, another trie
    store.clear()
    assert len(store) == 0


def test_a_full_trie_stops_growing_and_cars_stays_exact(world) -> None:  # type: ignore[no-untyped-def]
    lm, _, target, _ = world
    trie = PrefixTrie(GRAMMAR.eos_token_ids, max_bytes=4000)  # a handful of nodes
    gen = torch.Generator().manual_seed(4)
    out = sample_tokens(lm, GRAMMAR, PROMPT, 800, sampler="cars", trie=trie,
                        max_new_tokens=MAX_TOKENS, generator=gen)  # fmt: skip
    assert trie.full and trie.num_nodes < 12
    counts: dict[bytes, int] = {}
    for d in out.draws:
        counts[text_of(d.tokens)] = counts.get(text_of(d.tokens), 0) + 1
    assert chi_square_pvalue(counts, target) > 1e-3


def test_asap_reports_dead_ends_as_incomplete(world) -> None:  # type: ignore[no-untyped-def]
    lm = world[0]
    trie = PrefixTrie(GRAMMAR.eos_token_ids)
    out = sample_tokens(lm, GRAMMAR, PROMPT, 30, sampler="asap", trie=trie, max_new_tokens=2)
    assert not any(d.complete for d in out.draws)
    with pytest.raises(ConfigurationError, match="check"):
        sample_tokens(lm, GRAMMAR, PROMPT, 1, sampler="asap", check="full")  # type: ignore[arg-type]
