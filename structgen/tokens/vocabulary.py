"""Vocabulary: token id -> the exact bytes the token stands for, plus which ids are special.

Constraints are checked on bytes, so a Vocabulary is all the token layer needs to know about a
tokenizer. Special tokens (EOS, BOS, chat markers, padding rows of the logits) have no bytes and
are never allowed inside constrained text; EOS is allowed exactly where the text is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from structgen.errors import ConfigurationError


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Immutable map from token id to bytes.

    Args:
        token_bytes: ``token_bytes[i]`` is the byte string of token ``i``; ``b""`` for special ids.
        eos_token_ids: ids that end generation (allowed iff the text is complete).
        special_token_ids: ids never allowed inside constrained text (a superset of the EOS ids is
            not required; EOS ids are treated as special in any case).
        name: a human-readable name (e.g. the tokenizer's name or path).
        encoder: optional ``bytes -> token ids`` function (the tokenizer's own encoding), used to
            tokenize forced text canonically (``Matcher.compute_ff_tokens``).
    """

    token_bytes: tuple[bytes, ...]
    eos_token_ids: frozenset[int]
    special_token_ids: frozenset[int]
    name: str = "vocabulary"
    encoder: Callable[[bytes], list[int]] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        size = len(self.token_bytes)
        for tid in self.eos_token_ids | self.special_token_ids:
            if not 0 <= tid < size:
                raise ConfigurationError(
                    f"Invalid token id {tid}: expected 0 <= id < vocab_size ({size})"
                )
        if not self.eos_token_ids:
            raise ConfigurationError(
                "Invalid Vocabulary: no EOS token id",
                hint="pass eos_token_ids explicitly",
            )

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_token_bytes(
        cls,
        token_bytes: Sequence[bytes],
        eos_token_ids: Iterable[int],
        special_token_ids: Iterable[int] = (),
        name: str = "vocabulary",
    ) -> Vocabulary:
        """A vocabulary from an explicit list of token byte strings."""
        eos = frozenset(int(t) for t in eos_token_ids)
        special = frozenset(int(t) for t in special_token_ids) | eos
        data = tuple(b"" if i in special else bytes(b) for i, b in enumerate(token_bytes))
        return cls(data, eos, special, name)

    @classmethod
    def byte_level(cls, extra_tokens: Sequence[bytes] = ()) -> Vocabulary:
        """A toy vocabulary: the 256 single bytes, then ``extra_tokens``, then one EOS token.

        >>> v = Vocabulary.byte_level([b"ab"])
        >>> v.vocab_size, v.token_bytes[97], v.token_bytes[256]
        (258, b'a', b'ab')
        """
        tokens = [bytes([b]) for b in range(256)] + [bytes(t) for t in extra_tokens] + [b""]
        return cls.from_token_bytes(tokens, eos_token_ids=[len(tokens) - 1], name="byte-level")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, vocab_size: int | None = None) -> Vocabulary:
        """A vocabulary from a tokenizer.

        Supports Hugging Face tokenizers (byte-level BPE such as GPT-2, SmolLM2, Llama 3 and
        DeepSeek; SentencePiece with ``▁`` and ``<0xNN>`` byte fallback) and tiktoken encodings.

        Args:
            tokenizer: the tokenizer object.
            vocab_size: width of the model's logits, if larger than the tokenizer's vocabulary;
                the extra rows are treated as special (never allowed).
        """
        from structgen.tokens.tokenizers import vocabulary_from_tokenizer

        vocab = vocabulary_from_tokenizer(cls, tokenizer, vocab_size)
        return dataclasses.replace(vocab, encoder=_encoder_for(tokenizer))

    # ------------------------------------------------------------------ queries

    @property
    def vocab_size(self) -> int:
        """Number of token ids (the width of the logits)."""
        return len(self.token_bytes)

    def __len__(self) -> int:
        return len(self.token_bytes)

    def is_special(self, token_id: int) -> bool:
        """Whether ``token_id`` is a special token (never allowed in constrained text)."""
        return token_id in self.special_token_ids

    def single_byte_values(self) -> frozenset[int]:
        """The bytes that are themselves a normal token (computed once per object)."""
        cached = self.__dict__.get("_single_bytes")
        if cached is None:
            special = self.special_token_ids | self.eos_token_ids
            cached = frozenset(
                data[0]
                for tid, data in enumerate(self.token_bytes)
                if len(data) == 1 and tid not in special
            )
            self.__dict__["_single_bytes"] = cached  # frozen dataclass: cache without __setattr__
        return cached

    def fingerprint(self) -> str:
        """A content hash (hex), stable across processes (computed once per object)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return str(cached)
        h = hashlib.sha256()
        for data in self.token_bytes:
            h.update(len(data).to_bytes(4, "little"))
            h.update(data)
        h.update(repr(sorted(self.eos_token_ids)).encode())
        h.update(repr(sorted(self.special_token_ids)).encode())
        digest = h.hexdigest()
        self.__dict__["_fingerprint"] = digest  # frozen dataclass: cache without __setattr__
        return digest

    def decode(self, token_ids: Iterable[int]) -> bytes:
        """The concatenated bytes of ``token_ids`` (special tokens contribute nothing)."""
        return b"".join(self.token_bytes[t] for t in token_ids)


class _HFEncoder:
    """Encode bytes with a Hugging Face tokenizer (no special tokens added). Picklable."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, data: bytes) -> list[int]:
        text = data.decode("utf-8", errors="replace")
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


class _TiktokenEncoder:
    """Encode bytes with a tiktoken-style encoding (special tokens treated as text)."""

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding

    def __call__(self, data: bytes) -> list[int]:
        text = data.decode("utf-8", errors="replace")
        return list(self.encoding.encode(text, disallowed_special=()))


def _encoder_for(tokenizer: Any) -> Callable[[bytes], list[int]] | None:
    inner = getattr(tokenizer, "_tokenizer", None)
    if hasattr(tokenizer, "_mergeable_ranks") and hasattr(tokenizer, "encode"):
        return _TiktokenEncoder(tokenizer)
    if inner is not None and hasattr(inner, "_mergeable_ranks"):
        return _TiktokenEncoder(inner)
    if callable(tokenizer) and hasattr(tokenizer, "backend_tokenizer"):
        return _HFEncoder(tokenizer)
    return None


__all__ = ["Vocabulary"]
