"""Grouped-query attention without copying the KV cache, for passes of several positions on CPU.

transformers' ``sdpa`` attention hands grouped-query attention (fewer key/value heads than query
heads, e.g. SmolLM2: 9 query heads over 3 KV heads) to ``scaled_dot_product_attention`` with
``enable_gqa=True`` only where no attention mask is given; with a mask, which every pass of more
than one position after a cache has (the causal mask is not top-left aligned there), it first
repeats the cached keys and values once per query group (``repeat_kv``): a copy of the whole
cache in every layer of every pass. A speculative verification pass is such a pass. On CPU,
PyTorch's SDPA takes a boolean mask together with ``enable_gqa`` and computes the same attention
without the copy: SmolLM2 after a 700-token prompt, 4 positions: ~103 -> ~87 ms a pass.

``gqa_attention`` does exactly that where it applies (CPU tensors, grouped heads, more than one
query position, a boolean mask shared by all heads, nothing else asked of the kernel) and hands
every other call to transformers' own ``sdpa`` function unchanged. ``grouped_attention(model)``
switches a model that uses ``sdpa`` to it for the duration of a ``with`` block and back after,
so the user's model is left as it was; models that cannot be switched are used as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["IMPLEMENTATION", "gqa_attention", "grouped_attention", "supports_grouped_attention"]

IMPLEMENTATION = "structgen_gqa_sdpa"
"""The name under which ``gqa_attention`` is registered with transformers."""

_registered: bool | None = None


def gqa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; see the module docstring."""
    groups = int(getattr(module, "num_key_value_groups", 1) or 1)
    if (
        groups > 1
        and query.device.type == "cpu"
        and query.shape[2] > 1
        and attention_mask is not None
        and attention_mask.dtype == torch.bool
        and attention_mask.dim() == 4
        and attention_mask.shape[1] == 1
        and query.shape[1] == key.shape[1] * groups
        and kwargs.get("position_bias") is None
        and kwargs.get("softcap") is None
        and kwargs.get("s_aux") is None
        and not kwargs.get("output_attentions", False)
    ):
        out = torch.nn.functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=dropout,
            scale=scaling,
            enable_gqa=True,
        )
        return out.transpose(1, 2).contiguous(), None
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=dropout,
        scaling=scaling,
        is_causal=is_causal,
        **kwargs,
    )


def _register() -> bool:
    """Register ``gqa_attention`` (and sdpa's mask builder under its name) once; False if this
    transformers release lacks the interfaces."""
    global _registered
    if _registered is None:
        try:
            from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: F401
            from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
            from transformers.modeling_utils import AttentionInterface
        except ImportError:
            _registered = False
        else:
            AttentionInterface.register(IMPLEMENTATION, gqa_attention)
            ALL_MASK_ATTENTION_FUNCTIONS.register(IMPLEMENTATION, sdpa_mask)
            _registered = True
    return _registered


def supports_grouped_attention(model: Any) -> bool:
    """Whether ``grouped_attention`` switches ``model``: its config selects ``sdpa`` (stored in
    ``_attn_implementation_internal``), it has grouped KV heads, and transformers has the
    interfaces."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation_internal", None) != "sdpa":
        return False
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    if not heads or not kv_heads or heads == kv_heads:
        return False
    return _register()


@contextmanager
def grouped_attention(model: Any) -> Iterator[None]:
    """Within the block, ``model`` attends with ``gqa_attention`` (if it supports the switch)."""
    if not supports_grouped_attention(model):
        yield
        return
    config = model.config
    config._attn_implementation_internal = IMPLEMENTATION
    try:
        yield
    finally:
        config._attn_implementation_internal = "sdpa"
