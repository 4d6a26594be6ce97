"""Turn a tokenizer object into a Vocabulary: the exact bytes every token id stands for.

Three families are recognised, by duck typing (no tokenizer library is imported here):

* Hugging Face tokenizers (``transformers`` tokenizers with a ``backend_tokenizer``, or a bare
  ``tokenizers.Tokenizer``) whose decoder is byte-level BPE (GPT-2, SmolLM2, Llama 3, DeepSeek) or
  SentencePiece-like (``▁`` for a space, ``<0xNN>`` byte-fallback pieces: Llama 2, Mistral).
* SentencePiece models: a ``sentencepiece.SentencePieceProcessor``, or a ``transformers``
  tokenizer that wraps one in ``sp_model``.
* tiktoken encodings: any object with ``_mergeable_ranks`` (bytes -> id) and ``_special_tokens``
  (str -> id), such as ``tiktoken.Encoding`` or the Qwen tokenizer; plain rank files can be read
  with :func:`load_tiktoken_ranks` and turned into a vocabulary with
  :func:`vocabulary_from_tiktoken`.

The bytes of a token are those it contributes in the *middle* of a sequence, so
``b"".join(token_bytes[i] for i in ids)`` equals the encoded text. Known differences from a
tokenizer's own ``decode``:

* SentencePiece adds a dummy-prefix space when encoding (``"hi"`` becomes ``"▁hi"``) and its
  decoder strips one leading space at the very start of a text; here ``"▁hi"`` is always ``b" hi"``.
  Code that feeds a prompt-free completion should account for that leading space itself. (The
  Hugging Face conversion of such a model, a ``Metaspace`` pre-tokenizer, adds the prefix only when
  the text does not already start with a space; ``sentencepiece`` itself always adds it.)
* Hugging Face byte-level decoders map a *non-special* added token such as ``"café"`` through the
  byte table, which corrupts non-ASCII text; here such a token keeps its UTF-8 bytes, which is what
  the tokenizer's encoder matches in the input text.
* Added tokens with ``lstrip``/``rstrip`` swallow neighbouring spaces when encoding; the space is
  not part of their bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from structgen.errors import ConfigurationError, VocabularyError

if TYPE_CHECKING:
    from structgen.tokens.vocabulary import Vocabulary

#: Names of special tokens that end generation when a tokenizer names no EOS token itself.
EOS_TOKEN_NAMES: frozenset[str] = frozenset(
    {
        "<|endoftext|>",
        "<|im_end|>",
        "<|eot_id|>",
        "<|end_of_text|>",
        "</s>",
        "<eos>",
        "<｜end▁of▁sentence｜>",
    }
)

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE_MARK = "\u2581"  # "▁", SentencePiece's stand-in for a space


# ---------------------------------------------------------------------- tables


def _gpt2_unicode_to_byte() -> dict[str, int]:
    """The inverse of GPT-2's ``bytes_to_unicode``: printable character -> byte.

    Bytes that are printable Latin-1 characters (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand
    for themselves; the remaining 68 bytes, in increasing order, are shifted to ``U+0100`` onwards
    (so the space ``0x20`` is ``Ġ`` and the newline ``0x0A`` is ``Ċ``).
    """
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    table = {chr(b): b for b in printable}
    shifted = [b for b in range(256) if b not in printable]
    table.update({chr(0x100 + i): b for i, b in enumerate(shifted)})
    return table


GPT2_UNICODE_TO_BYTE: Mapping[str, int] = _gpt2_unicode_to_byte()


def byte_level_token_bytes(token: str) -> bytes | None:
    """The bytes of a byte-level BPE token string, or None if a character is outside the table.

    >>> byte_level_token_bytes("Ġhello")
    b' hello'
    """
    try:
        return bytes(map(GPT2_UNICODE_TO_BYTE.__getitem__, token))
    except KeyError:
        return None


# ---------------------------------------------------------------------- entry


def vocabulary_from_tokenizer(
    cls: type[Vocabulary], tokenizer: Any, vocab_size: int | None = None
) -> Vocabulary:
    """Build a vocabulary of class ``cls`` from a tokenizer object.

    Args:
        cls: the Vocabulary class (passed in to avoid a circular import).
        tokenizer: a Hugging Face tokenizer, a ``tokenizers.Tokenizer``, a
            ``sentencepiece.SentencePieceProcessor`` or a tiktoken-style encoding.
        vocab_size: width of the model's logits; extra rows beyond the tokenizer's ids become
            special (empty) ids.

    Returns:
        The vocabulary.

    Raises:
        VocabularyError: the tokenizer type is not recognised, or it names no EOS token.
        ConfigurationError: ``vocab_size`` is smaller than the tokenizer's vocabulary.
    """
    if _is_tiktoken(tokenizer):
        return _from_tiktoken_object(cls, tokenizer, vocab_size)
    if _is_sentencepiece(tokenizer):
        return _from_sentencepiece(cls, tokenizer, vocab_size)
    if _is_sentencepiece(getattr(tokenizer, "sp_model", None)):
        return _from_hf_sentencepiece(cls, tokenizer, vocab_size)
    backend = _hf_backend(tokenizer)
    if backend is not None:
        return _from_hf_fast(cls, tokenizer, backend, vocab_size)
    raise VocabularyError(
        f"Unrecognised tokenizer type {type(tokenizer).__module__}.{type(tokenizer).__qualname__}",
        hint=(
            "pass a Hugging Face tokenizer, a tokenizers.Tokenizer, a SentencePieceProcessor or a"
            " tiktoken Encoding, or build one with Vocabulary.from_token_bytes"
        ),
    )


# ---------------------------------------------------------------------- shared


def _finish(
    cls: type[Vocabulary],
    table: list[bytes | None],
    eos: Iterable[int],
    special: Iterable[int],
    vocab_size: int | None,
    name: str,
) -> Vocabulary:
    """Pad ``table`` to ``vocab_size`` and build the vocabulary; ``None`` entries are special."""
    size = len(table)
    if vocab_size is not None:
        if vocab_size < size:
            raise ConfigurationError(
                f"vocab_size={vocab_size} is smaller than the tokenizer's vocabulary ({size} ids)",
                hint="pass the width of the model's logits, or leave vocab_size unset",
            )
        table = table + [None] * (vocab_size - size)
    eos_ids = {int(t) for t in eos if t is not None and 0 <= int(t) < len(table)}
    if not eos_ids:
        raise VocabularyError(
            f"Tokenizer {name!r} names no EOS token",
            hint="build the vocabulary with Vocabulary.from_token_bytes(..., eos_token_ids=...)",
        )
    holes = {i for i, data in enumerate(table) if data is None}
    special_ids = {int(t) for t in special if t is not None and 0 <= int(t) < len(table)}
    token_bytes = [b"" if data is None else data for data in table]
    return cls.from_token_bytes(token_bytes, eos_ids, special_ids | holes, name=name)


def _table_of_size(size: int) -> list[bytes | None]:
    return [None] * size


def _eos_by_name(names_to_ids: Mapping[str, int]) -> set[int]:
    return {tid for text, tid in names_to_ids.items() if text in EOS_TOKEN_NAMES}


def _hf_special_ids(tokenizer: Any) -> set[int]:
    """Ids a ``transformers`` tokenizer calls special (bos, eos, pad, unk, all_special_ids)."""
    ids: set[int] = set()
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        tid = getattr(tokenizer, attr, None)
        if isinstance(tid, int):
            ids.add(tid)
    all_special = getattr(tokenizer, "all_special_ids", None)
    if all_special:
        ids.update(int(t) for t in all_special if t is not None)
    return ids


def _hf_eos_ids(tokenizer: Any, added: Mapping[int, Any]) -> set[int]:
    """``eos_token_id``, or (for a bare ``tokenizers.Tokenizer``) special tokens named like EOS."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, int):
        return {eos}
    return _eos_by_name({tok.content: tid for tid, tok in added.items() if tok.special})


def _overlay_added_tokens(
    table: list[bytes | None], added: Mapping[int, Any], model_vocab: Mapping[int, str]
) -> set[int]:
    """Write added tokens into ``table`` (growing it as needed); return the special ids.

    Non-special added tokens keep the UTF-8 bytes of their text, unless the same string is
    already the model's token for that id (then the model's bytes, already in ``table``, stand).
    """
    special: set[int] = set()
    for tid, tok in added.items():
        if tid >= len(table):
            table.extend([None] * (tid + 1 - len(table)))
        if tok.special:
            special.add(tid)
            table[tid] = None
        elif model_vocab.get(tid) != tok.content or table[tid] is None:
            table[tid] = tok.content.encode("utf-8")
    return special


# ---------------------------------------------------------------------- HF fast


def _hf_backend(tokenizer: Any) -> Any | None:
    """The ``tokenizers.Tokenizer`` behind a ``transformers`` tokenizer, or the object itself."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and all(
        hasattr(tokenizer, attr) for attr in ("get_vocab", "get_added_tokens_decoder", "decoder")
    ):
        backend = tokenizer
    return backend


def _component_json(component: Any) -> dict[str, Any] | None:
    """The JSON description of a tokenizers decoder or pre-tokenizer (None if absent)."""
    if component is None:
        return None
    try:
        return json.loads(component.__getstate__())
    except (AttributeError, TypeError, ValueError):
        return None


def _flatten(spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The leaf steps of a (possibly nested) ``Sequence`` decoder or pre-tokenizer."""
    if spec is None:
        return []
    children = spec.get("decoders") or spec.get("pretokenizers")
    if spec.get("type") == "Sequence" and isinstance(children, list):
        return [leaf for child in children for leaf in _flatten(child)]
    return [spec]


class _PieceRules:
    """How a SentencePiece-like decoder turns a piece string into text."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.byte_fallback = False
        self.replacements: list[tuple[str, str]] = []
        for step in steps:
            kind = step.get("type")
            if kind == "ByteFallback":
                self.byte_fallback = True
            elif kind == "Metaspace":
                self.replacements.append((step.get("replacement", _SPACE_MARK), " "))
            elif kind == "Replace":
                pattern = step.get("pattern", {})
                if "String" not in pattern:
                    raise VocabularyError(f"Unsupported regex Replace decoder step: {step}")
                self.replacements.append((pattern["String"], step.get("content", "")))
            elif kind not in ("Fuse", "Strip"):
                raise VocabularyError(f"Unsupported tokenizer decoder step {kind!r}")

    def piece_bytes(self, piece: str) -> bytes:
        """The bytes of one piece in the middle of a text."""
        if self.byte_fallback and _BYTE_PIECE.fullmatch(piece):
            return _byte_piece(piece)
        for old, new in self.replacements:
            piece = piece.replace(old, new)
        return piece.encode("utf-8")


def _hf_family(backend: Any, model_vocab: Mapping[int, str]) -> str | _PieceRules:
    """``"byte_level"`` or the piece rules of a SentencePiece-like Hugging Face tokenizer."""
    steps = _flatten(_component_json(getattr(backend, "decoder", None)))
    kinds = {step.get("type") for step in steps}
    if "ByteLevel" in kinds:
        return "byte_level"
    if kinds & {"Metaspace", "ByteFallback", "Replace"}:
        return _PieceRules(steps)
    if not steps:
        pre = _flatten(_component_json(getattr(backend, "pre_tokenizer", None)))
        if any(step.get("type") == "ByteLevel" for step in pre) or _looks_byte_level(model_vocab):
            return "byte_level"
    raise VocabularyError(
        f"Unsupported Hugging Face tokenizer decoder {sorted(k for k in kinds if k) or None}",
        hint="only byte-level BPE and SentencePiece-style (▁, <0xNN>) tokenizers are supported",
    )


def _looks_byte_level(model_vocab: Mapping[int, str]) -> bool:
    """Whether every token maps through the GPT-2 table and all 256 byte tokens exist."""
    tokens = set(model_vocab.values())
    return all(ch in tokens for ch in GPT2_UNICODE_TO_BYTE) and all(
        byte_level_token_bytes(tok) is not None for tok in tokens
    )


def _byte_level_bytes(token: str) -> bytes:
    """A byte-level token's bytes; like the HF decoder, UTF-8 if it is not in the table."""
    data = byte_level_token_bytes(token)
    return token.encode("utf-8") if data is None else data


def _from_hf_fast(
    cls: type[Vocabulary], tokenizer: Any, backend: Any, vocab_size: int | None
) -> Vocabulary:
    """A vocabulary from a ``tokenizers.Tokenizer`` (and the ``transformers`` object around it)."""
    model_vocab = {tid: tok for tok, tid in backend.get_vocab(with_added_tokens=False).items()}
    added = backend.get_added_tokens_decoder()
    family = _hf_family(backend, model_vocab)
    convert = family.piece_bytes if isinstance(family, _PieceRules) else _byte_level_bytes
    table = _table_of_size(max(model_vocab, default=-1) + 1)
    for tid, tok in model_vocab.items():
        table[tid] = convert(tok)
    special = _overlay_added_tokens(table, added, model_vocab) | _hf_special_ids(tokenizer)
    name = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
    return _finish(cls, table, _hf_eos_ids(tokenizer, added), special, vocab_size, name)


# ---------------------------------------------------------------------- SentencePiece


def _byte_piece(piece: str) -> bytes:
    """The byte a ``<0xNN>`` byte-fallback piece stands for."""
    match = _BYTE_PIECE.fullmatch(piece)
    if match is None:
        raise VocabularyError(f"Byte piece {piece!r} is not of the form <0xNN>")
    return bytes([int(match.group(1), 16)])


def _is_sentencepiece(obj: Any) -> bool:
    return obj is not None and all(
        hasattr(obj, attr) for attr in ("get_piece_size", "id_to_piece", "is_byte", "is_control")
    )


def _sentencepiece_table(sp: Any) -> tuple[list[bytes | None], set[int]]:
    """Bytes of every piece of a SentencePieceProcessor (None for special pieces), and eos ids."""
    size = sp.get_piece_size()
    pieces = sp.id_to_piece(list(range(size)))
    table: list[bytes | None] = []
    for tid, piece in enumerate(pieces):
        if sp.is_control(tid) or sp.is_unknown(tid) or sp.is_unused(tid):
            table.append(None)
        elif sp.is_byte(tid):
            table.append(_byte_piece(piece))
        else:
            table.append(piece.replace(_SPACE_MARK, " ").encode("utf-8"))
    for tid in (sp.bos_id(), sp.pad_id(), sp.unk_id(), sp.eos_id()):
        if 0 <= tid < size:
            table[tid] = None
    eos = {sp.eos_id()} if sp.eos_id() >= 0 else set()
    return table, eos


def _from_sentencepiece(cls: type[Vocabulary], sp: Any, vocab_size: int | None) -> Vocabulary:
    """A vocabulary from a ``sentencepiece.SentencePieceProcessor``."""
    table, eos = _sentencepiece_table(sp)
    return _finish(cls, table, eos, (), vocab_size, "sentencepiece")


def _from_hf_sentencepiece(
    cls: type[Vocabulary], tokenizer: Any, vocab_size: int | None
) -> Vocabulary:
    """A vocabulary from a ``transformers`` tokenizer that wraps a SentencePiece model."""
    table, sp_eos = _sentencepiece_table(tokenizer.sp_model)
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    model_vocab: dict[int, str] = {}
    special = _overlay_added_tokens(table, added, model_vocab) | _hf_special_ids(tokenizer)
    eos = _hf_eos_ids(tokenizer, added) or sp_eos
    name = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
    return _finish(cls, table, eos, special, vocab_size, name)


# ---------------------------------------------------------------------- tiktoken


def _is_tiktoken(obj: Any) -> bool:
    return isinstance(getattr(obj, "_mergeable_ranks", None), Mapping) and isinstance(
        getattr(obj, "_special_tokens", None), Mapping
    )


def load_tiktoken_ranks(path: str | os.PathLike[str]) -> dict[bytes, int]:
    """Read a tiktoken rank file: one ``<base64 token> <rank>`` pair per line.

    Args:
        path: the file (e.g. ``qwen.tiktoken``).

    Returns:
        token bytes -> rank (the rank is the token id).

    Raises:
        VocabularyError: a line is malformed.
    """
    ranks: dict[bytes, int] = {}
    with Path(path).open("rb") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
            except (ValueError, binascii.Error) as exc:
                raise VocabularyError(
                    f"Malformed tiktoken rank line {line[:60]!r}", location=f"{path}:{lineno}"
                ) from exc
    return ranks


def vocabulary_from_tiktoken(
    cls: type[Vocabulary],
    mergeable_ranks: Mapping[bytes, int],
    special_tokens: Mapping[str, int],
    *,
    eos_token_ids: Iterable[int] | None = None,
    vocab_size: int | None = None,
    name: str = "tiktoken",
) -> Vocabulary:
    """A vocabulary from tiktoken-style ranks and special tokens.

    Args:
        cls: the Vocabulary class.
        mergeable_ranks: token bytes -> id (e.g. from :func:`load_tiktoken_ranks`).
        special_tokens: special token text -> id.
        eos_token_ids: ids that end generation; by default the special tokens named in
            :data:`EOS_TOKEN_NAMES` (``<|endoftext|>``, ``<|im_end|>``, ...).
        vocab_size: width of the model's logits, if larger than the encoding.
        name: a name for the vocabulary.

    Returns:
        The vocabulary; ids that no rank or special token names (gaps) are special.
    """
    size = 1 + max(
        max(mergeable_ranks.values(), default=-1), max(special_tokens.values(), default=-1)
    )
    table = _table_of_size(size)
    for data, tid in mergeable_ranks.items():
        table[tid] = bytes(data)
    special = set(special_tokens.values())
    for tid in special:
        table[tid] = None
    eos = set(eos_token_ids) if eos_token_ids is not None else _eos_by_name(special_tokens)
    return _finish(cls, table, eos, special, vocab_size, name)


def _from_tiktoken_object(
    cls: type[Vocabulary], encoding: Any, vocab_size: int | None
) -> Vocabulary:
    """A vocabulary from a ``tiktoken.Encoding`` or an object with the same two attributes."""
    name = str(getattr(encoding, "name", "") or type(encoding).__name__)
    return vocabulary_from_tiktoken(
        cls,
        encoding._mergeable_ranks,
        encoding._special_tokens,
        vocab_size=vocab_size,
        name=name,
    )


__all__ = [
    "EOS_TOKEN_NAMES",
    "GPT2_UNICODE_TO_BYTE",
    "byte_level_token_bytes",
    "load_tiktoken_ranks",
    "vocabulary_from_tiktoken",
    "vocabulary_from_tokenizer",
]
