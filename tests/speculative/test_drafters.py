"""Drafters, the draft-length policy, the early-exit adapter and the processor's matcher memory,
without the real model (the SmolLM2 tokenizer where a real one matters)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from spec_toy import EOS, ToyLM, toy_grammar

import structgen as sg
from structgen.sampling.warp import SamplingParams
from structgen.speculative import (
    AdaptiveDraftLength,
    CombinedDrafter,
    Drafter,
    DraftRequest,
    FixedDraftLength,
    ForcedDrafter,
    ModelDrafter,
    PromptLookupDrafter,
    Proposal,
    decode_speculative,
    default_drafter,
    resolve_drafter,
)

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def vocab(smollm2_tokenizer: Any) -> sg.Vocabulary:
    return sg.Vocabulary.from_tokenizer(smollm2_tokenizer)


def _request(tok: Any, vocab: sg.Vocabulary, compiled: Any, prompt: str, out: str) -> DraftRequest:
    prompt_ids = tok(prompt)["input_ids"]
    out_ids = tok(out, add_special_tokens=False)["input_ids"] if out else []
    m = compiled.matcher()
    assert m.consume_tokens(out_ids) == len(out_ids)
    return DraftRequest(
        context=prompt_ids + out_ids,
        prompt_len=len(prompt_ids),
        matcher=m,
        max_tokens=16,
        params=GREEDY,
    )


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
DOC = "Document:\nname: Ada Lovelace\nage: 36\n"


def _text(tok: Any, ids: list[int]) -> str:
    return str(tok.decode(ids))


def test_lookup_copies_the_value_of_the_key_just_opened(smollm2_tokenizer, vocab) -> None:
    tok = smollm2_tokenizer
    compiled = sg.compile(sg.Grammar.from_json_schema(PERSON), vocab)
    d = PromptLookupDrafter()
    req = _request(tok, vocab, compiled, DOC, '{"name": "')
    d.reset(req.context[: req.prompt_len], vocab)
    p = d.propose(req)
    assert _text(tok, p.tokens).startswith("Ada Lovelace")
    assert p.features and p.features[0].startswith("key3/")
    # the number: no quote, and the grammar picks the variant it accepts
    req = _request(tok, vocab, compiled, DOC, '{"name": "Ada Lovelace", "age":')
    d.reset(req.context[: req.prompt_len], vocab)
    assert _text(tok, d.propose(req).tokens).strip() == "36"


def test_lookup_proposals_are_grammar_valid_and_copy_repeated_text(
    smollm2_tokenizer, vocab
) -> None:
    tok = smollm2_tokenizer
    compiled = sg.compile(sg.Grammar.from_regex(r"The (cat|dog) sat on the mat\. .*"), vocab)
    prompt = "Copy: The cat sat on the mat. It was happy."
    req = _request(tok, vocab, compiled, prompt, "The cat")
    d = PromptLookupDrafter()
    d.reset(req.context[: req.prompt_len], vocab)
    p = d.propose(req)
    assert _text(tok, p.tokens).startswith(" sat on the mat.")
    assert compiled.matcher().consume_tokens(req.context[req.prompt_len :] + p.tokens) == len(
        req.context
    ) - req.prompt_len + len(p.tokens)
    # nothing that matches: nothing proposed
    req = _request(tok, vocab, compiled, "Zzz", "The dog")
    d.reset(req.context[: req.prompt_len], vocab)
    assert d.propose(req).tokens == [] or compiled.matcher().validate_tokens(
        req.context[req.prompt_len :] + d.propose(req).tokens
    ) == len(req.context) - req.prompt_len + len(d.propose(req).tokens)


def test_forced_drafter_proposes_the_forced_text(smollm2_tokenizer, vocab) -> None:
    tok = smollm2_tokenizer
    compiled = sg.compile(sg.Grammar.from_regex(r"hello world, (yes|no)"), vocab)
    req = _request(tok, vocab, compiled, "Say it.", "")
    p = ForcedDrafter().propose(req)
    assert _text(tok, p.tokens) == "hello world, "
    req = _request(tok, vocab, compiled, "Say it.", "hello world, ")
    assert ForcedDrafter().propose(req).tokens == []  # a choice: nothing forced


class Fixed(Drafter):
    def __init__(self, name: str, tokens: list[int]) -> None:
        self.name = name
        self.tokens = tokens

    def propose(self, request: DraftRequest) -> Proposal:
        return Proposal(list(self.tokens), source=self.name)


def test_combined_drafter_takes_the_longest_valid_proposal() -> None:
    compiled = toy_grammar()  # (a|b){1,3}cabab(c|ba)?
    m = compiled.matcher()
    req = DraftRequest(context=[0], prompt_len=1, matcher=m, max_tokens=8, params=GREEDY)
    short, invalid, long = Fixed("s", [0]), Fixed("x", [4, 4, 4]), Fixed("l", [0, 1, 4])
    assert CombinedDrafter([short, invalid, long]).propose(req).source == "l"
    assert CombinedDrafter([long, Fixed("l2", [0, 1, 4])]).propose(req).source == "l"  # tie
    with pytest.raises(sg.ConfigurationError):
        CombinedDrafter([short, Fixed("s", [1])])
    with pytest.raises(sg.ConfigurationError):
        CombinedDrafter([])


def test_resolve_drafter() -> None:
    assert isinstance(resolve_drafter("auto"), CombinedDrafter)
    d = ForcedDrafter()
    assert resolve_drafter(d) is d
    assert isinstance(resolve_drafter(ToyLM()), ModelDrafter)
    for bad in ("fast", 3):
        with pytest.raises(sg.ConfigurationError):
            resolve_drafter(bad)


def test_adaptive_length_learns_to_stop_and_counts_forced_apart() -> None:
    policy = AdaptiveDraftLength(cost_ratio=0.1)
    policy.begin(1)
    assert sum(policy.admit("x/1", None) for _ in range(40)) >= 5  # optimistic prior
    for _ in range(60):
        policy.observe("x/0", False)
        policy.observe("x/1", False)
    admitted = []
    for _ in range(8):
        policy.begin(1)
        admitted.append(policy.admit("x/0", None))
    assert sum(admitted) == 2  # only the exploration drafts (every 4th) try it
    # forced tokens make the pass dearer but are never a reason to stop by themselves
    policy.begin(1)
    policy.add_forced(50)
    assert policy.admit("y/0", None)
    # confident but always wrong: calibration brings it down
    for _ in range(60):
        policy.observe("m/0", False, confidence=0.95)
    policy.begin(2)
    assert not policy.admit("m/0", 0.95)
    # passes timed: the cost curve is learned per size (the 1 -> 2 step is dear on CPU)
    timed = AdaptiveDraftLength()
    for n, t in [(1, 0.07), (2, 0.115), (3, 0.117), (8, 0.12), (16, 0.15)] * 3:
        timed.record_pass(n, t)
    assert timed.pass_cost(1) == pytest.approx(0.07)
    # more positions: a line through the draft sizes' estimates, so each costs the same few %
    assert timed.pass_cost(2) == pytest.approx(0.115, rel=0.05)
    assert 0.12 < timed.pass_cost(12) < 0.15
    steps = [timed.pass_cost(n + 1) - timed.pass_cost(n) for n in range(2, 16)]
    assert max(steps) == pytest.approx(min(steps)) and 0 < steps[0] < 0.005
    # a pass preempted by other work only takes longer: a low quantile, not the mean
    noisy = AdaptiveDraftLength()
    for k in range(16):
        noisy.record_pass(1, 0.07 if k % 4 else 0.3)
        noisy.record_pass(8, 0.12 if k % 4 else 0.5)
    assert noisy.pass_cost(1) == pytest.approx(0.07) and noisy.pass_cost(8) == pytest.approx(0.12)
    # a token that does not pay alone (0.5 of a token for ~64% of a pass) opens a run that does
    timed._drafts = 1  # not an exploration draft
    for p, expected in [(0.3, False), (0.5, True)]:
        timed.begin(1)
        assert timed.admit("lookup/v", p) is expected, p
        alone = p * timed.pass_cost(1) >= timed.pass_cost(2) - timed.pass_cost(1)
        assert not alone  # the myopic rule alone refuses both
    timed.begin(1)
    run = [timed.admit("lookup/v", 0.7) for _ in range(20)]
    assert run[:6] == [True] * 6 and not run[-1]  # a run, then the myopic rule stops it
    fixed = FixedDraftLength(2)
    fixed.begin(1)
    assert [fixed.admit("z/0", None) for _ in range(3)] == [True, True, False]
    with pytest.raises(sg.ConfigurationError):
        AdaptiveDraftLength(max_tokens=0)
    with pytest.raises(sg.ConfigurationError):
        FixedDraftLength(0)


def test_loop_rejects_bad_arguments() -> None:
    compiled = toy_grammar()
    lm = ToyLM()
    kwargs: dict[str, Any] = dict(drafter=default_drafter(), params=GREEDY, max_new_tokens=4)
    with pytest.raises(sg.ConfigurationError):
        decode_speculative(lm, compiled, [0], **{**kwargs, "max_new_tokens": 0})
    with pytest.raises(sg.ConfigurationError):
        decode_speculative(lm, compiled, [0], verification="exact", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(sg.ConfigurationError):
        decode_speculative(lm, compiled, [0], **{**kwargs, "drafter": object()})


def test_stats_count_passes_and_drafts() -> None:
    compiled = toy_grammar()
    lm = ToyLM()
    out = decode_speculative(
        lm,
        compiled,
        [0, 1, 4, 2, 2],
        drafter=ModelDrafter(ToyLM()),
        params=GREEDY,
        max_new_tokens=32,
    )
    s = out.stats
    assert s.forward_passes == lm.forward_passes
    assert s.accepted == s.proposed > 0  # the target drafting for itself
    assert s.forward_passes < len(out.tokens)
    assert s.by_source["model"] == [s.proposed, s.accepted]
    assert EOS not in out.tokens


def test_early_exit_shares_weights_and_keeps_the_full_depth_exact() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from structgen.integrations.lm import CausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config).eval()
    lm = CausalLM(model)
    ids = [[1, 5, 9, 13]]
    full = lm.forward(ids, lm.new_cache()).logits
    same = lm.early_exit(3)
    torch.testing.assert_close(same.forward(ids, same.new_cache()).logits, full)
    short = lm.early_exit(1)
    cache = short.new_cache()
    assert short.forward(ids, cache).logits.shape == full.shape
    assert short.cache_len(cache) == 4
    assert short.model.model.layers[0] is model.model.layers[0]  # shared, not copied
    assert len(model.model.layers) == 3 and model.config.num_hidden_layers == 3  # untouched
    torch.testing.assert_close(lm.forward(ids, lm.new_cache()).logits, full)
    for bad in (0, 4):
        with pytest.raises(sg.ConfigurationError):
            lm.early_exit(bad)


def test_processor_follows_assisted_generation_call_patterns() -> None:
    vocab = sg.Vocabulary.byte_level()
    compiled = sg.compile(sg.Grammar.from_regex("[a-c]{1,12}"), vocab)
    proc = sg.StructgenLogitsProcessor(compiled)
    prompt = [200, 201]
    scores = torch.zeros(1, vocab.vocab_size)
    a, b, c = ord("a"), ord("b"), ord("c")

    def call(suffix: list[int]) -> torch.Tensor:
        return proc(torch.tensor([prompt + suffix]), scores)

    # a round: every prefix of the candidate [a, b, c, a]; 1 accepted, then token b
    for k in range(5):
        call([a, b, c, a][:k])
    out = call([a, b])  # back to a prefix two tokens shorter than the last call
    assert torch.isfinite(out[0, c]) and torch.isinf(out[0, ord("z")])
    call([a, b, c, c, c])  # jumps ahead by three tokens
    with pytest.raises(sg.ConstraintViolation):
        call([a, b, ord("z")])


def test_generate_refuses_samplers_the_loop_cannot_verify() -> None:
    for sampler in ("smc", "asap"):
        with pytest.raises(sg.ConfigurationError, match="speculative"):
            sg.generate(None, None, "x", regex="a", sampler=sampler, speculative="auto")
    with pytest.raises(sg.ConfigurationError, match="sampler"):
        sg.generate(
            None, None, "x", regex="a", sampler=object(), temperature=1.0, speculative="auto"
        )
