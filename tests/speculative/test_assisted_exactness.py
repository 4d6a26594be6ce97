"""The LogitsProcessor inside transformers' assisted generation keeps the masked sampling law:
two tiny random Llama models (target and assistant) over an 8-token vocabulary, a real grammar,
``model.generate(do_sample=True, assistant_model=...)``; the output frequencies pass a
chi-square test against the enumerated law of masked sampling with the target alone."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from spec_toy import chi_square_pvalue

import structgen as sg

TOKENS = [b"a", b"b", b"ab", b"ba", b"c", b"", b"x", b"y"]  # 5: EOS
EOS = 5
PROMPT = [6, 7, 6]


def _tiny(seed: int):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(TOKENS),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        bos_token_id=6,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # spread the logits so the distributions are far from uniform
        model.lm_head.weight.mul_(8.0)
    return model


def _exact(model, compiled):  # type: ignore[no-untyped-def]
    out: dict[tuple[int, ...], float] = {}

    def walk(m: sg.Matcher, tokens: list[int], prob: float) -> None:
        with torch.no_grad():
            logits = model(torch.tensor([PROMPT + tokens])).logits[0, -1]
        p = torch.softmax(logits.masked_fill(~m.next_token_mask(), float("-inf")), dim=-1)
        for t in torch.nonzero(p > 0).flatten().tolist():
            if t == EOS:
                out[tuple(tokens)] = out.get(tuple(tokens), 0.0) + prob * float(p[t])
                continue
            child = m.copy()
            assert child.consume_token(t)
            walk(child, tokens + [t], prob * float(p[t]))

    walk(compiled.matcher(), [], 1.0)
    return out


@pytest.mark.parametrize("assist", ["model", "lookup"])
def test_assisted_sampling_keeps_the_masked_law(assist: str) -> None:
    vocab = sg.Vocabulary.from_token_bytes(TOKENS, eos_token_ids=[EOS], special_token_ids=[6, 7])
    compiled = sg.compile(sg.Grammar.from_regex("(a|b){1,2}c?"), vocab)
    target = _tiny(0)
    extra = {"assistant_model": _tiny(1)} if assist == "model" else {"prompt_lookup_num_tokens": 3}
    processor = sg.StructgenLogitsProcessor(compiled)
    torch.manual_seed(5)
    counts: Counter[tuple[int, ...]] = Counter()
    for _ in range(200):
        processor.reset()
        out = target.generate(
            torch.tensor([PROMPT]),
            attention_mask=torch.ones(1, len(PROMPT), dtype=torch.long),
            logits_processor=[processor],
            do_sample=True,
            top_k=0,
            max_new_tokens=6,
            **extra,
        )
        gen = out[0, len(PROMPT) :].tolist()
        assert gen[-1] == EOS
        counts[tuple(gen[:-1])] += 1
    exact = _exact(target, compiled)
    assert chi_square_pvalue(counts, exact) > 1e-3
