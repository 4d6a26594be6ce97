"""The model adapter on the real model: cached forward passes agree with one full pass, crop and
reorder leave the cache as if the dropped positions / rows had never been fed."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from structgen.errors import ConfigurationError
from structgen.integrations.lm import CausalLM

IDS = [1, 504, 3458, 314, 253, 1345, 28, 429, 1036]


@pytest.mark.slow
def test_incremental_forward_matches_one_full_pass(smollm2: tuple[Any, Any]) -> None:
    lm = CausalLM(smollm2[0])
    full = lm.forward([IDS], lm.new_cache()).logits[0]
    cache = lm.new_cache()
    parts = [lm.forward([IDS[:4]], cache).logits[0]]
    parts += [lm.forward([[t]], cache).logits[0] for t in IDS[4:]]
    assert lm.cache_len(cache) == len(IDS)
    torch.testing.assert_close(torch.cat(parts), full, atol=1e-3, rtol=1e-3)
    last = lm.forward([IDS], lm.new_cache(), last_only=True).logits
    assert last.shape == (1, 1, full.shape[-1])
    torch.testing.assert_close(last[0, 0], full[-1], atol=1e-3, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "rows", [[8], [2, 5], [0, 3, 8], [8, 1, 4, 4], [0, 1, 2, 3, 4, 5, 6, 7, 8]]
)
def test_logits_of_chosen_rows_match_the_full_pass(
    smollm2: tuple[Any, Any], rows: list[int]
) -> None:
    lm = CausalLM(smollm2[0])
    full = lm.forward([IDS], lm.new_cache()).logits[0]
    cache = lm.new_cache()
    picked = lm.forward([IDS], cache, rows=rows).logits[0]
    assert lm.cache_len(cache) == len(IDS)  # every position enters the cache
    assert picked.shape == (len(rows), full.shape[-1])
    torch.testing.assert_close(picked, full[rows], atol=1e-3, rtol=1e-3)
    with pytest.raises(ConfigurationError):
        lm.forward([IDS], lm.new_cache(), rows=[len(IDS)])
    with pytest.raises(ConfigurationError):
        lm.forward([IDS], lm.new_cache(), rows=[])


def test_head_rows_are_distinct_sorted_and_never_two_or_three() -> None:
    from structgen.integrations.lm import _head_rows

    assert _head_rows([5], 9) == [5]
    assert _head_rows([5, 2], 9) == [2, 5, 7, 8]
    assert _head_rows([0, 0, 1], 3) == [0, 1, 2]  # only 3 positions: all of them
    assert _head_rows([1, 1], 9) == [1]
    assert _head_rows([1, 0], 2) == [0, 1]
    assert _head_rows([3, 0, 6, 2, 3], 9) == [0, 2, 3, 6]
    for width in range(1, 12):
        for rows in ([0], [width - 1], list(range(0, width, 2)), list(range(width))):
            keep = _head_rows(rows, width)
            assert set(rows) <= set(keep) and keep == sorted(set(keep))
            assert all(0 <= r < width for r in keep)
            assert len(keep) == 1 or len(keep) >= min(4, width)


@pytest.mark.slow
def test_crop_then_refeed_equals_never_fed(smollm2: tuple[Any, Any]) -> None:
    lm = CausalLM(smollm2[0])
    cache = lm.new_cache()
    lm.forward([IDS[:5]], cache)
    lm.forward([[7, 8, 9]], cache)  # a rejected draft
    lm.crop(cache, 5)
    assert lm.cache_len(cache) == 5
    after_crop = lm.forward([IDS[5:]], cache).logits[0]
    reference = lm.forward([IDS], lm.new_cache()).logits[0, 5:]
    torch.testing.assert_close(after_crop, reference, atol=1e-3, rtol=1e-3)
    with pytest.raises(ConfigurationError):
        lm.crop(cache, -1)


@pytest.mark.slow
def test_reorder_selects_and_duplicates_rows(smollm2: tuple[Any, Any]) -> None:
    lm = CausalLM(smollm2[0])
    a, b = IDS[:4], [1, 18, 19, 20]
    cache = lm.new_cache()
    lm.forward([a, b], cache)
    lm.reorder(cache, [1, 1, 0])
    step = lm.forward([[42], [42], [42]], cache).logits[:, 0]
    only_b = lm.forward([b + [42]], lm.new_cache()).logits[0, -1]
    only_a = lm.forward([a + [42]], lm.new_cache()).logits[0, -1]
    torch.testing.assert_close(step[0], only_b, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(step[1], only_b, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(step[2], only_a, atol=1e-3, rtol=1e-3)
    assert lm.forward_passes == 4


def test_bad_model_and_bad_ids_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="causal LM"):
        CausalLM(object())

    class Tiny(torch.nn.Module):
        def forward(self, input_ids: Any = None, past_key_values: Any = None, **_: Any) -> Any:
            raise AssertionError("not reached")

    lm = CausalLM(Tiny())
    with pytest.raises(ConfigurationError, match="batch, positions"):
        lm.forward([[]], None)
