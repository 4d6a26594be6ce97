"""Grouped-query attention without the KV copy: the same numbers as transformers' own ``sdpa``
function (the oracle), and the model's attention setting restored after every pass."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

import structgen.integrations.lm as lm_module
from structgen.integrations.attention import (
    IMPLEMENTATION,
    gqa_attention,
    grouped_attention,
    supports_grouped_attention,
)
from structgen.integrations.lm import CausalLM


class _Attn(torch.nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def _causal_mask(q: int, k: int) -> torch.Tensor:
    """Bottom-right aligned causal mask (q new positions after k - q cached), [1, 1, q, k]."""
    rows = torch.arange(k - q, k)[:, None]
    return (torch.arange(k)[None, :] <= rows)[None, None]


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize(("q", "k"), [(1, 7), (4, 4), (4, 19), (9, 40)])
def test_same_attention_as_transformers_sdpa(groups: int, q: int, k: int) -> None:
    gen = torch.Generator().manual_seed(q * 100 + k + groups)
    kv_heads, dim = 2, 16
    query = torch.randn(1, kv_heads * groups, q, dim, generator=gen)
    key = torch.randn(1, kv_heads, k, dim, generator=gen)
    value = torch.randn(1, kv_heads, k, dim, generator=gen)
    mask = _causal_mask(q, k)
    module = _Attn(groups)
    ours, _ = gqa_attention(module, query, key, value, mask, scaling=0.25)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    assert ours.shape == theirs.shape == (1, q, kv_heads * groups, dim)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # and against plain arithmetic: softmax(q k^T * scale + mask) v with keys repeated per group
    rep_k = key.repeat_interleave(groups, dim=1)
    rep_v = value.repeat_interleave(groups, dim=1)
    scores = (query @ rep_k.transpose(-1, -2)) * 0.25
    scores = scores.masked_fill(~mask, float("-inf"))
    expected = (scores.softmax(-1) @ rep_v).transpose(1, 2)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_other_calls_go_to_transformers_unchanged() -> None:
    module = _Attn(3)
    query, key, value = torch.randn(1, 6, 3, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    float_mask = torch.zeros(1, 1, 3, 5)
    float_mask[..., -1] = float("-inf")
    ours, _ = gqa_attention(module, query, key, value, float_mask)
    theirs, _ = sdpa_attention_forward(module, query, key, value, float_mask)
    torch.testing.assert_close(ours, theirs)
    with pytest.raises(ValueError, match="softcap"):  # refused exactly as transformers refuses
        gqa_attention(module, query, key, value, None, softcap=30.0)


class _Config:
    def __init__(self, impl: str, heads: int, kv_heads: int) -> None:
        self._attn_implementation_internal = impl
        self.num_attention_heads = heads
        self.num_key_value_heads = kv_heads


class _Model:
    def __init__(self, config: _Config) -> None:
        self.config = config


def test_switch_only_for_grouped_sdpa_models_and_always_restored() -> None:
    grouped = _Model(_Config("sdpa", 9, 3))
    assert supports_grouped_attention(grouped)
    assert not supports_grouped_attention(_Model(_Config("sdpa", 8, 8)))
    assert not supports_grouped_attention(_Model(_Config("eager", 9, 3)))
    with grouped_attention(grouped):
        assert grouped.config._attn_implementation_internal == IMPLEMENTATION
    assert grouped.config._attn_implementation_internal == "sdpa"
    with pytest.raises(RuntimeError), grouped_attention(grouped):
        raise RuntimeError("a failing pass")
    assert grouped.config._attn_implementation_internal == "sdpa"
    eager = _Model(_Config("eager", 9, 3))
    with grouped_attention(eager):
        assert eager.config._attn_implementation_internal == "eager"


@pytest.mark.slow
def test_model_logits_unchanged_and_setting_restored(
    smollm2: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = smollm2[0]
    assert supports_grouped_attention(model)  # SmolLM2: 9 query heads over 3 KV heads
    lm = CausalLM(model)
    ids = [1, 504, 3458, 314, 253, 1345, 28, 429, 1036, 17, 42, 99]
    cache = lm.new_cache()
    lm.forward([ids[:5]], cache)
    ours = lm.forward([ids[5:]], cache).logits
    assert model.config._attn_implementation == "sdpa"
    monkeypatch.setattr(lm_module, "grouped_attention", lambda m: nullcontext())
    cache = lm.new_cache()
    lm.forward([ids[:5]], cache)
    theirs = lm.forward([ids[5:]], cache).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
