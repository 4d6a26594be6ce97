"""The enumerable grammars of the grammar-aligned benchmark, and SmolLM2 replayed from a table.

``ReplayLM`` answers the samplers' forward passes with SmolLM2's logits computed once, during the
exact enumeration (every prefix the enumeration visited), and computes any other prefix with the
live model on first use (batched by length, reusing the prompt's KV cache), keeping it too. So
every method sees exactly SmolLM2's conditionals, the samplers count their forward passes as
usual, and the model's compute is paid once per distinct prefix instead of once per method: on a
2-core machine that is what makes 2,000 samples x 9 methods x 5 grammars affordable. Wall times
measured through the replay are the samplers' own cost; the model's is reported separately (its
token positions, and a live run of a few samples).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

import structgen as sg


@dataclass(frozen=True)
class Case:
    """One grammar of the benchmark: constraint, chat prompt, length cap, enumeration pruning."""

    name: str
    kind: str  # "regex" or "schema"
    source: Any
    question: str
    max_tokens: int
    min_prefix_prob: float
    note: str = ""

    def grammar(self) -> sg.Grammar:
        if self.kind == "regex":
            return sg.Grammar.from_regex(self.source)
        return sg.Grammar.from_json_schema(self.source, whitespace="compact")

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.question}]


CASES = (
    Case(
        "gad_binary",
        "regex",
        "00000|1[01]{4}",
        "Give me a random binary string of length 5.",
        6,
        1e-9,
        "GAD's skewed grammar (Park et al. 2024): 00000, or 1 and four bits",
    ),
    Case(
        "binary_upto4",
        "regex",
        "[01]{1,4}",
        "Give me a random binary string of at most 4 digits.",
        5,
        1e-9,
        "binary strings of length 1-4: where to stop is where masking distorts",
    ),
    Case(
        "number_1_100",
        "regex",
        "[1-9][0-9]?|100",
        "Pick a random number between 1 and 100.",
        4,
        1e-9,
        "an integer 1-100 (100 strings)",
    ),
    Case(
        "sygus_terms",
        "regex",
        r"x|y|1|\((\+|\*) (x|y|1) (x|y|1)\)",
        "Write a small expression in prefix notation over x, y and 1, such as (+ x 1).",
        10,
        1e-8,
        "SyGuS-like terms of depth <= 1 (21 strings)",
    ),
    Case(
        "json_enum",
        "schema",
        {
            "type": "object",
            "properties": {
                "color": {"enum": ["red", "green", "blue"]},
                "size": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            "required": ["color", "size"],
            "additionalProperties": False,
        },
        'Reply with only a JSON object like {"color":"red","size":3} for a random t-shirt '
        "(color red, green or blue; size 1 to 5).",
        16,
        1e-9,
        "JSON object, enum + bounded integer, compact whitespace",
    ),
)


class _Rows:
    """What a KV cache holds, as token lists per row."""

    def __init__(self) -> None:
        self.rows: list[list[int]] = [[]]


@dataclass
class ReplayLM:
    """SmolLM2 through a table of logits keyed by the tokens after the prompt (module docstring).

    Implements the ``CausalLM`` interface the samplers use.
    """

    live: Any  # structgen.integrations.lm.CausalLM
    prompt: tuple[int, ...]
    table: dict[tuple[int, ...], torch.Tensor]
    forward_passes: int = 0
    live_rows: int = 0
    live_calls: int = 0
    live_s: float = 0.0
    _base: Any = field(default=None, repr=False)

    @property
    def vocab_width(self) -> int:
        return int(self.live.vocab_width)

    def new_cache(self) -> _Rows:
        return _Rows()

    def forward(self, ids: Any, cache: _Rows, *, last_only: bool = False) -> Any:
        rows = [[int(t) for t in row] for row in (ids.tolist() if torch.is_tensor(ids) else ids)]
        if cache.rows == [[]] and len(rows) > 1:
            cache.rows = [[] for _ in rows]
        if len(cache.rows) != len(rows):
            raise ValueError(f"batch of {len(rows)} rows for a cache of {len(cache.rows)}")
        keys: list[list[tuple[int, ...]]] = []
        for row, new in zip(cache.rows, rows, strict=True):
            per_row = []
            for tok in new:
                row.append(tok)
                if len(row) >= len(self.prompt):
                    if tuple(row[: len(self.prompt)]) != self.prompt:
                        raise ValueError("ReplayLM serves one prompt only")
                    per_row.append(tuple(row[len(self.prompt) :]))
                else:
                    per_row.append(None)
            keys.append(per_row[-1:] if last_only else per_row)
        missing = {k for per_row in keys for k in per_row if k is not None and k not in self.table}
        if missing:
            self._fill(sorted(missing, key=len))
        self.forward_passes += 1
        width = self.vocab_width
        out = torch.stack(
            [
                torch.stack([self.table[k] if k is not None else torch.zeros(width) for k in r])
                for r in keys
            ]
        )
        return _Step(out)

    def _fill(self, paths: list[tuple[int, ...]]) -> None:
        t0 = time.perf_counter()
        lm = self.live
        if self._base is None:
            self._base = lm.new_cache()
            lm.forward([list(self.prompt)], self._base, last_only=True)
        by_len: dict[int, list[tuple[int, ...]]] = {}
        for p in paths:
            if len(p) == 0:
                raise ValueError("the root's logits must be in the table")
            by_len.setdefault(len(p), []).append(p)
        for group in by_len.values():
            for start in range(0, len(group), 64):
                chunk = group[start : start + 64]
                lm.crop(self._base, len(self.prompt))
                lm.reorder(self._base, [0] * len(chunk))
                logits = lm.forward([list(p) for p in chunk], self._base, last_only=True).logits
                for p, row in zip(chunk, logits[:, -1], strict=True):
                    self.table[p] = row.detach().clone()
                self.live_calls += 1
                self.live_rows += len(chunk)
            lm.crop(self._base, len(self.prompt))
            lm.reorder(self._base, [0])
        self.live_s += time.perf_counter() - t0

    @staticmethod
    def cache_len(cache: _Rows) -> int:
        return len(cache.rows[0])

    @staticmethod
    def crop(cache: _Rows, length: int) -> None:
        cache.rows = [row[:length] for row in cache.rows]

    @staticmethod
    def reorder(cache: _Rows, rows: Any) -> None:
        index = [int(i) for i in (rows.tolist() if torch.is_tensor(rows) else rows)]
        cache.rows = [list(cache.rows[i]) for i in index]


@dataclass
class _Step:
    logits: torch.Tensor
