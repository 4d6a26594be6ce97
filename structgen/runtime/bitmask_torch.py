"""torch kernels for token bitmasks: allocate, fill, unpack and apply.

A ``bitmask`` is ``int32[batch, ceil(vocab/32)]``: bit ``t % 32`` of word ``t // 32`` is set iff
token ``t`` is allowed (the layout llguidance and XGrammar use). A ``mask`` is ``bool[vocab]``.
This is the only runtime module that imports torch.
"""

from __future__ import annotations

import numpy as np
import torch

from structgen.errors import ConfigurationError

_BIT_WEIGHTS = torch.tensor([1 << i for i in range(32)], dtype=torch.int64)


def allocate_token_bitmask(batch_size: int, vocab_size: int) -> torch.Tensor:
    """A zeroed ``int32[batch_size, ceil(vocab_size/32)]`` CPU tensor."""
    return torch.zeros((batch_size, (vocab_size + 31) // 32), dtype=torch.int32)


def fill_row_from_numpy(bitmask: torch.Tensor, row: int, words: np.ndarray) -> None:
    """Copy packed words into ``bitmask[row]``."""
    if bitmask.dtype != torch.int32 or bitmask.dim() != 2 or bitmask.shape[1] != words.size:
        raise ConfigurationError(
            f"Invalid bitmask: expected torch.int32[batch, {words.size}], "
            f"got {bitmask.dtype}{list(bitmask.shape)}"
        )
    if bitmask.device.type != "cpu":
        raise ConfigurationError(
            f"Invalid bitmask: expected a CPU tensor, got one on {bitmask.device}",
            hint="fill a CPU bitmask, then move it to the device",
        )
    bitmask[row] = torch.from_numpy(words)


def unpack_bitmask_np(words: np.ndarray, vocab_size: int) -> torch.Tensor:
    """``bool[vocab_size]`` from one packed row (numpy int32)."""
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")[:vocab_size]
    return torch.from_numpy(bits.astype(bool))


def bitmask_to_bool(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``bool[batch, vocab_size]`` from ``int32[batch, words]`` (any device)."""
    weights = _BIT_WEIGHTS.to(bitmask.device)
    bits = (bitmask.to(torch.int64).unsqueeze(-1) & weights) != 0
    return bits.reshape(bitmask.shape[0], -1)[:, :vocab_size]


def apply_token_bitmask_inplace(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """Set disallowed logits to ``-inf`` in place. ``logits``: ``float[batch, V]`` or ``[V]``.

    Columns beyond ``32 * words`` (logits wider than the vocabulary) are disallowed.
    """
    squeeze = logits.dim() == 1
    rows = logits.unsqueeze(0) if squeeze else logits
    masks = bitmask.unsqueeze(0) if bitmask.dim() == 1 else bitmask
    if masks.shape[0] != rows.shape[0]:
        raise ConfigurationError(
            f"Invalid bitmask: expected {rows.shape[0]} rows, got {masks.shape[0]}"
        )
    width = rows.shape[-1]
    allowed = bitmask_to_bool(masks.to(rows.device), min(width, masks.shape[1] * 32))
    if allowed.shape[1] < width:
        pad = torch.zeros(
            (rows.shape[0], width - allowed.shape[1]), dtype=torch.bool, device=rows.device
        )
        allowed = torch.cat([allowed, pad], dim=1)
    rows.masked_fill_(~allowed, float("-inf"))


__all__ = [
    "allocate_token_bitmask",
    "apply_token_bitmask_inplace",
    "bitmask_to_bool",
    "fill_row_from_numpy",
    "unpack_bitmask_np",
]
