"""A tiny deterministic world for the grammar-aligned samplers: a fixed-logit causal "model" over
a toy vocabulary.

``ToyLM`` is a test double of the model only: it implements the interface of
``structgen.integrations.lm.CausalLM`` (``new_cache``, ``forward``, ``crop``, ``reorder``,
``cache_len``, ``vocab_width``, ``forward_passes``), and its next-token logits are a fixed
pseudo-random function of the whole context (seeded by a CRC of the token ids), so every
distribution is exactly computable. Grammars, matchers and samplers are the real ones.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import structgen as sg


@dataclass
class ToyStep:
    logits: torch.Tensor


class ToyCache:
    """Per-row token lists: what a KV cache would hold."""

    def __init__(self) -> None:
        self.rows: list[list[int]] = [[]]


class ToyLM:
    """Logits = ``scale`` · N(0, 1) seeded by the context, plus ``bias`` (a per-token offset).

    Args:
        vocab_width: number of logits.
        scale: spread of the random logits.
        bias: added to every context's logits (e.g. to make EOS rare).
        salt: changes the whole function.
    """

    def __init__(
        self, vocab_width: int, *, scale: float = 1.5, bias: Any = None, salt: int = 0
    ) -> None:
        self._width = vocab_width
        self.scale = scale
        self.bias = np.zeros(vocab_width) if bias is None else np.asarray(bias, dtype=np.float64)
        self.salt = salt
        self.forward_passes = 0
        self._memo: dict[tuple[int, ...], torch.Tensor] = {}

    @property
    def vocab_width(self) -> int:
        return self._width

    def next_logits(self, context: tuple[int, ...]) -> torch.Tensor:
        """The logits after ``context`` (prompt included)."""
        found = self._memo.get(context)
        if found is None:
            seed = zlib.crc32(np.asarray(context, dtype=np.int64).tobytes()) ^ self.salt
            rng = np.random.default_rng(seed)
            values = self.scale * rng.standard_normal(self._width) + self.bias
            found = torch.tensor(values, dtype=torch.float32)
            self._memo[context] = found
        return found

    def new_cache(self) -> ToyCache:
        return ToyCache()

    def forward(self, ids: Any, cache: ToyCache, *, last_only: bool = False) -> ToyStep:
        rows = [[int(t) for t in row] for row in (ids.tolist() if torch.is_tensor(ids) else ids)]
        if len(cache.rows) != len(rows):
            if cache.rows == [[]]:
                cache.rows = [[] for _ in rows]
            else:
                raise ValueError(f"batch {len(rows)} != cache rows {len(cache.rows)}")
        if len({len(r) for r in rows}) != 1 or not rows[0]:
            raise ValueError("rows must be non-empty and of one length")
        out = []
        for row, new in zip(cache.rows, rows, strict=True):
            per_pos = []
            for tok in new:
                row.append(tok)
                per_pos.append(self.next_logits(tuple(row)))
            out.append(torch.stack(per_pos[-1:] if last_only else per_pos))
        self.forward_passes += 1
        return ToyStep(torch.stack(out))

    @staticmethod
    def cache_len(cache: ToyCache) -> int:
        return len(cache.rows[0])

    @staticmethod
    def crop(cache: ToyCache, length: int) -> None:
        cache.rows = [row[:length] for row in cache.rows]

    @staticmethod
    def reorder(cache: ToyCache, rows: Any) -> None:
        index = [int(i) for i in (rows.tolist() if torch.is_tensor(rows) else rows)]
        cache.rows = [list(cache.rows[i]) for i in index]


# The world of most tests: GAD's skewed binary grammar ("00000" or "1" and four bits) over a
# vocabulary with one- and two-character tokens, so strings have several tokenizations.
TOKENS = [b"0", b"1", b"00", b"11", b"01", b"x", b"y", b""]
EOS = len(TOKENS) - 1
VOCAB = sg.Vocabulary.from_token_bytes(TOKENS, eos_token_ids=[EOS])
GRAMMAR = sg.compile(sg.Grammar.from_regex("00000|1[01]{4}"), VOCAB)
PROMPT = [5, 6]  # "xy"
MAX_TOKENS = 8


def toy_lm(salt: int = 6) -> ToyLM:
    """The world's model (salt 6: masking is strongly distorted there, see test_world)."""
    return ToyLM(len(TOKENS), scale=1.5, salt=salt)


def text_of(tokens: Any) -> bytes:
    return VOCAB.decode(list(tokens))
