"""One adapter over a transformers causal LM: forward with a KV cache, crop, reorder, batch.

Every decode loop in structgen (``generate``, grammar-aligned samplers, the speculative loop)
talks to the model through ``CausalLM`` only, so transformers' API drift is handled in one place:

- transformers >= 5.x names the cache argument and output field ``cache`` (``past_key_values``
  is deprecated and warns); older releases (the pyproject allows >= 4.57) only know
  ``past_key_values``. The argument name is read from ``model.forward``'s signature once.
- The cache is always a ``DynamicCache`` that the adapter creates, never a legacy tuple, so
  ``crop`` (speculative rejection) and ``reorder`` (SMC resampling) work on every version.
- Passes of several positions attend without copying the KV cache per query group
  (``integrations.attention``); the model is switched only for the duration of each pass.

The cache holds, for each row of the batch, the key/value states of every token fed so far;
``cache_len`` is that length. Rows always have equal lengths (no padding): the speculative loop
runs one row, particle samplers feed every particle one position per step.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from structgen.errors import ConfigurationError
from structgen.integrations.attention import grouped_attention

__all__ = ["CausalLM", "Step"]

_SMALL_GEMM_ROWS = 4
"""Fewest rows the LM head is asked for when more than one is needed: on CPU (MKL, fp32) a
product with 2 or 3 rows is slower than with 4 (SmolLM2's head, one thread: 21 and 32 ms against
16 ms; ``python -m benchmarks.pass_cost`` measures it). Extra rows are dropped after the head."""


def _head_rows(rows: Sequence[int], width: int) -> list[int]:
    """The distinct positions to run the LM head on, ascending, padded to ``_SMALL_GEMM_ROWS``."""
    keep = sorted(set(rows))
    if 1 < len(keep) < _SMALL_GEMM_ROWS:
        spare = [r for r in range(width - 1, -1, -1) if r not in keep]
        keep = sorted(keep + spare[: _SMALL_GEMM_ROWS - len(keep)])
    return keep


@dataclass
class Step:
    """The result of one forward pass.

    Attributes:
        logits: float tensor ``[batch, positions, vocab]`` for the positions fed.
        hidden: hidden states of the requested layer ``[batch, positions, d]``, or None.
    """

    logits: torch.Tensor
    hidden: torch.Tensor | None = None


def _new_dynamic_cache(config: Any) -> Any:
    from transformers import DynamicCache

    params = inspect.signature(DynamicCache.__init__).parameters
    if "config" in params:
        return DynamicCache(config=config)
    return DynamicCache()


class CausalLM:
    """A transformers causal LM with an explicit KV cache.

    Args:
        model: a transformers ``PreTrainedModel`` with a causal LM head.

    Use ``new_cache()``, then ``forward(ids, cache)`` with the tokens not yet in the cache; the
    cache is updated in place. ``crop(cache, n)`` keeps the first ``n`` positions,
    ``reorder(cache, rows)`` selects (and duplicates) batch rows.
    """

    def __init__(self, model: Any) -> None:
        if not callable(getattr(model, "forward", None)):
            raise ConfigurationError(
                f"Invalid model: expected a transformers causal LM, got {type(model).__name__}"
            )
        self.model = model
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._keep_arg = next(
            (n for n in ("logits_to_keep", "num_logits_to_keep") if n in params), None
        )
        self.forward_passes = 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def vocab_width(self) -> int:
        """Number of logits per position (may exceed the tokenizer's vocabulary)."""
        emb = self.model.get_output_embeddings()
        return int(emb.weight.shape[0])

    def new_cache(self) -> Any:
        """An empty KV cache for this model."""
        return _new_dynamic_cache(getattr(self.model, "config", None))

    @torch.inference_mode()
    def forward(
        self,
        ids: Sequence[Sequence[int]] | torch.Tensor,
        cache: Any,
        *,
        last_only: bool = False,
        rows: Sequence[int] | None = None,
    ) -> Step:
        """Feed ``ids`` (``[batch, positions]``, all rows one length) after what ``cache`` holds.

        Args:
            ids: token ids to append, one list per row.
            cache: a cache from ``new_cache`` (updated in place).
            last_only: return logits of the last position only (``[batch, 1, vocab]``).
            rows: return logits of these positions only, in this order
                (``[batch, len(rows), vocab]``); the LM head then runs on those rows alone, as
                ``last_only`` does for one. Every position still enters the cache.
        """
        if not isinstance(ids, torch.Tensor):
            ids = torch.tensor([list(map(int, row)) for row in ids], dtype=torch.long)
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ConfigurationError(
                "Invalid ids: expected a non-empty [batch, positions] array, got "
                f"{tuple(ids.shape)}"
            )
        width = int(ids.shape[1])
        if rows is not None:
            rows = [int(r) for r in rows]
            if not rows or not all(0 <= r < width for r in rows):
                raise ConfigurationError(
                    f"Invalid rows: expected a non-empty list of positions in [0, {width}), "
                    f"got {rows}"
                )
        kwargs: dict[str, Any] = {self._cache_arg: cache, "use_cache": True}
        keep: list[int] | None = None
        if self._keep_arg is not None:
            if last_only:
                kwargs[self._keep_arg] = 1
            elif rows is not None and len(rows) < width:
                keep = _head_rows(rows, width)
                kwargs[self._keep_arg] = torch.tensor(keep, dtype=torch.long, device=self.device)
        with grouped_attention(self.model):
            out = self.model(input_ids=ids.to(self.device), **kwargs)
        self.forward_passes += 1
        returned = getattr(out, "cache", None)
        if returned is None:
            returned = getattr(out, "past_key_values", None)
        if returned is not None and returned is not cache:
            raise ConfigurationError(
                "Invalid model: it returned a new cache object instead of updating the one given; "
                "structgen needs a transformers model that supports DynamicCache"
            )
        logits = out.logits
        if last_only:
            logits = logits[:, -1:]
        elif rows is not None:
            if keep is None:
                keep = list(range(logits.shape[1]))
            at = {r: i for i, r in enumerate(keep)}
            picked = [at[r] for r in rows]
            if picked != list(range(len(keep))):
                logits = logits[:, picked]
        return Step(logits=logits.float())

    def early_exit(self, num_layers: int) -> CausalLM:
        """An adapter over this model cut after its first ``num_layers`` decoder layers.

        The final norm and the LM head stay, every weight is shared (nothing is copied), and the
        new adapter has its own caches (of ``num_layers`` layers) and pass counter. This is the
        drafter of layer-skip self-speculation: the target's own early layers.

        Args:
            num_layers: how many decoder layers to keep (1 to the model's layer count).

        Raises:
            ConfigurationError: the model's decoder layers cannot be found, or ``num_layers`` is
                out of range.
        """
        model = self.model
        config = getattr(model, "config", None)
        total = getattr(config, "num_hidden_layers", None)
        inner_name = getattr(model, "base_model_prefix", "")
        inner = getattr(model, inner_name, None) if inner_name else None
        layers_name = next(
            (
                n
                for n in ("layers", "h", "blocks")
                if isinstance(getattr(inner, n, None), torch.nn.ModuleList)
            ),
            None,
        )
        if total is None or inner is None or layers_name is None:
            raise ConfigurationError(
                f"Invalid model for early exit: cannot find the decoder layers of "
                f"{type(model).__name__}",
                hint="use a draft model instead",
            )
        if not 1 <= num_layers <= total:
            raise ConfigurationError(
                f"Invalid num_layers: expected 1 <= num_layers <= {total}, got {num_layers}"
            )
        cfg = copy.deepcopy(config)
        cfg.num_hidden_layers = num_layers
        if isinstance(getattr(cfg, "layer_types", None), list):
            cfg.layer_types = cfg.layer_types[:num_layers]
        top = copy.copy(model)
        top._modules = type(model._modules)(model._modules)  # own module table, shared modules
        short = copy.copy(inner)
        short._modules = type(inner._modules)(inner._modules)
        kept = torch.nn.ModuleList(list(getattr(inner, layers_name))[:num_layers])
        setattr(short, layers_name, kept)
        short.config = cfg
        top.config = cfg
        setattr(top, inner_name, short)
        return CausalLM(top)

    @staticmethod
    def cache_len(cache: Any) -> int:
        """How many positions ``cache`` holds."""
        return int(cache.get_seq_length())

    @staticmethod
    def crop(cache: Any, length: int) -> None:
        """Keep the first ``length`` positions of ``cache`` (in place)."""
        if length < 0:
            raise ConfigurationError(f"Invalid crop length: expected >= 0, got {length}")
        current = CausalLM.cache_len(cache)
        if length < current:
            # A negative count removes that many positions on every release (5.x accepts only
            # negative counts; 4.x reads a positive value as the length to keep).
            cache.crop(length - current)

    @staticmethod
    def reorder(cache: Any, rows: Sequence[int] | torch.Tensor) -> None:
        """Make row ``i`` of ``cache`` a copy of its old row ``rows[i]`` (in place)."""
        index = torch.as_tensor(rows, dtype=torch.long)
        if hasattr(cache, "layers"):  # transformers >= 4.56: one object per layer
            for layer in cache.layers:
                keys = getattr(layer, "keys", None)
                if keys is None or not isinstance(keys, torch.Tensor) or keys.numel() == 0:
                    continue
                layer.keys = layer.keys.index_select(0, index.to(layer.keys.device))
                layer.values = layer.values.index_select(0, index.to(layer.values.device))
            return
        for i in range(len(cache.key_cache)):  # older releases: parallel lists of tensors
            if cache.key_cache[i].numel():
                cache.key_cache[i] = cache.key_cache[i].index_select(0, index)
                cache.value_cache[i] = cache.value_cache[i].index_select(0, index)
