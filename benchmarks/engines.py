"""One small interface over structgen and its peer engines, for the benchmarks.

An ``Engine`` compiles a constraint to a handle, makes per-sequence matchers from a handle, fills
a full next-token bitmask (``int32[1, ceil(V/32)]``, bit ``t`` set iff token ``t`` is allowed,
EOS included exactly when the text is complete) and commits tokens. Every engine is built on the
same tokenizer and sees the same mask width and EOS ids (those of structgen's ``Vocabulary``).

Peers are optional: ``make_engine`` raises ``EngineUnavailable`` with a note when a peer's import
fails. A refusal or error while compiling raises ``CompileError`` (``refused`` for structgen's
``UnsupportedFeature``/``LimitExceeded``, ...). structgen exceptions that are not a
``StructgenError`` are deliberately *not* wrapped: the runners record them as unexpected.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from typing import Any

import numpy as np

ALL_ENGINES = ("structgen", "llguidance", "xgrammar", "outlines")
EXTRA_ENGINES = (
    "structgen-declared",
    "structgen-schema-order",
    "structgen-cold",
    "xgrammar-compliant",
)


class CompileError(Exception):
    """The engine refused or failed to compile the constraint.

    Args:
        message: the engine's own message.
        kind: the engine's exception type (or a short tag).
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class EngineUnavailable(Exception):
    """A peer engine cannot be loaded here (import failed, no offline vocabulary, ...)."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class Engine:
    """Base class. ``vocab`` is structgen's Vocabulary of the shared tokenizer."""

    name = "engine"
    version = "?"
    settings = ""

    def __init__(self, tokenizer: Any, vocab: Any) -> None:
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.vocab_size = int(vocab.vocab_size)
        self.eos_ids = sorted(int(t) for t in vocab.eos_token_ids)

    @property
    def mask_words(self) -> int:
        return (self.vocab_size + 31) // 32

    def new_mask(self) -> np.ndarray:
        return np.zeros((1, self.mask_words), dtype=np.int32)

    def compile_json_schema(self, schema: Any) -> Any:
        """Compile a JSON schema (raise ``CompileError`` on refusal)."""
        raise NotImplementedError

    def compile_json_schema_with(self, schema: Any, registry: dict[str, Any] | None) -> Any:
        """Like ``compile_json_schema``, with other documents by URI for remote ``$ref``s where
        the engine can take them (only structgen's API can; the others get the schema alone)."""
        return self.compile_json_schema(schema)

    def compile_grammar(self, lark_text: str) -> Any:
        raise CompileError(f"{self.name} has no Lark front end here", "unsupported")

    def compile_regex(self, pattern: str) -> Any:
        raise CompileError(f"{self.name} has no regex front end here", "unsupported")

    def new_matcher(self, handle: Any) -> Any:
        raise NotImplementedError

    def fill_mask(self, matcher: Any, mask: np.ndarray) -> None:
        raise NotImplementedError

    def commit(self, matcher: Any, token: int) -> bool:
        raise NotImplementedError

    def is_accepting(self, matcher: Any) -> bool:
        raise NotImplementedError

    def describe(self, handle: Any) -> str:
        """A short note on how the handle was compiled (e.g. which internal engine)."""
        return ""


# ---------------------------------------------------------------------------------- structgen


class StructgenEngine(Engine):
    name = "structgen"

    def __init__(
        self,
        tokenizer: Any,
        vocab: Any,
        additional_properties: str = "spec",
        property_order: str = "any",
        cold: bool = False,
    ) -> None:
        super().__init__(tokenizer, vocab)
        import structgen as sg

        self._sg = sg
        self.version = _version("structgen")
        self.options = {
            "additional_properties": additional_properties,
            "property_order": property_order,
        }
        # cold: before each compile, forget what structgen shares across grammars in a process
        # (terminal automata and their token walks), as if every schema were the first
        self.cold = cold
        if additional_properties != "spec":
            self.name = f"structgen-{additional_properties}"
        elif property_order != "any":
            self.name = f"structgen-{property_order}-order"
        elif cold:
            self.name = "structgen-cold"
        shown = ", ".join(f'{k}="{v}"' for k, v in self.options.items())
        try:
            from structgen import _accel

            implementation = _accel.describe()
        except ImportError:  # a structgen from before the C extension
            implementation = "pure Python (no structgen._accel)"
        sharing = "shared automata cleared before each compile" if cold else "no compile cache"
        self.settings = f"from_json_schema({shown}), {sharing}; {implementation}"
        self.last_lower_us: int | None = None  # the JSON Schema front end's share of a compile
        if self._prepare():
            self.settings += "; vocabulary trie and JSON front end loaded before the first file"

    def _prepare(self) -> bool:
        """One-time setup outside the timed compiles, as the peers' tokenizer preparation
        (llguidance's ``from_tokenizer``, XGrammar's ``TokenizerInfo``) is: the vocabulary's
        token trie (~0.6 s for SmolLM2) and the JSON Schema front end's imports (jsonschema,
        ~0.35 s), which the first compile of a process would otherwise pay."""
        try:
            import structgen.grammar.json_schema  # noqa: F401
            from structgen.tokens.trie import native_trie, trie_for
        except ImportError:  # a structgen without these modules: nothing to prepare
            return False
        native_trie(trie_for(self.vocab))
        return True

    def _compile(self, make: Any, arg: Any) -> Any:
        sg = self._sg
        if self.cold:
            sg.compiler.clear_cache()
        try:
            return sg.compile(make(arg), self.vocab, use_cache=False)
        except sg.StructgenError as exc:  # refusals and user errors; anything else propagates
            raise CompileError(str(exc), type(exc).__name__) from exc

    def compile_json_schema(self, schema: Any) -> Any:
        def lower(s: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return self._sg.Grammar.from_json_schema(s, **self.options)
            finally:
                self.last_lower_us = (time.perf_counter_ns() - t0) // 1000

        self.last_lower_us = None
        return self._compile(lower, schema)

    def compile_json_schema_with(self, schema: Any, registry: dict[str, Any] | None) -> Any:
        if not registry:
            return self.compile_json_schema(schema)
        return self._compile(
            lambda s: self._sg.Grammar.from_json_schema(s, registry=registry, **self.options),
            schema,
        )

    def compile_grammar(self, lark_text: str) -> Any:
        return self._compile(self._sg.Grammar.from_lark, lark_text)

    def compile_regex(self, pattern: str) -> Any:
        return self._compile(self._sg.Grammar.from_regex, pattern)

    def new_matcher(self, handle: Any) -> Any:
        return handle.matcher()

    def fill_mask(self, matcher: Any, mask: np.ndarray) -> None:
        matcher.fill_next_token_bitmask(mask, 0)

    def commit(self, matcher: Any, token: int) -> bool:
        return bool(matcher.consume_token(token))

    def is_accepting(self, matcher: Any) -> bool:
        return bool(matcher.is_accepting())

    def describe(self, handle: Any) -> str:
        return type(handle.index).__name__


# --------------------------------------------------------------------------------- llguidance


class LLGuidanceEngine(Engine):
    """``LLMatcher`` on ``llguidance.hf.from_tokenizer``; JSON options are llguidance's defaults."""

    name = "llguidance"

    def __init__(self, tokenizer: Any, vocab: Any) -> None:
        super().__init__(tokenizer, vocab)
        try:
            import llguidance
            import llguidance.hf
        except Exception as exc:  # noqa: BLE001 - any import failure makes the peer optional
            raise EngineUnavailable(f"llguidance import failed: {exc!r}") from exc
        self._llg = llguidance
        self.version = _version("llguidance")
        self.settings = "grammar_from_json_schema(schema), default options (flexible whitespace)"
        self._tok = llguidance.hf.from_tokenizer(
            tokenizer, n_vocab=self.vocab_size, eos_token=self.eos_ids
        )

    def _matcher(self, grammar: str) -> Any:
        m = self._llg.LLMatcher(self._tok, grammar, log_level=0)
        if m.is_error():
            raise CompileError(m.get_error(), "LLMatcher error")
        return m

    def compile_json_schema(self, schema: Any) -> Any:
        try:
            grammar = self._llg.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        except Exception as exc:  # noqa: BLE001 - llguidance reports refusals as exceptions
            raise CompileError(str(exc), type(exc).__name__) from exc
        return self._matcher(grammar)

    def compile_grammar(self, lark_text: str) -> Any:
        return self._matcher(self._llg.LLMatcher.grammar_from_lark(lark_text))

    def compile_regex(self, pattern: str) -> Any:
        return self._matcher(self._llg.LLMatcher.grammar_from_regex(pattern))

    def new_matcher(self, handle: Any) -> Any:
        return handle.deep_copy()

    def fill_mask(self, matcher: Any, mask: np.ndarray) -> None:
        row = mask[0]
        matcher.unsafe_compute_mask_ptr(row.ctypes.data, row.nbytes)

    def commit(self, matcher: Any, token: int) -> bool:
        return bool(matcher.consume_token(token))

    def is_accepting(self, matcher: Any) -> bool:
        return bool(matcher.is_accepting()) and not matcher.is_error()


# ----------------------------------------------------------------------------------- xgrammar


class XGrammarEngine(Engine):
    """``GrammarCompiler`` + ``GrammarMatcher``; default JSON options unless ``compliant``."""

    name = "xgrammar"

    def __init__(self, tokenizer: Any, vocab: Any, compliant: bool = False) -> None:
        super().__init__(tokenizer, vocab)
        try:
            import xgrammar
        except Exception as exc:  # noqa: BLE001
            raise EngineUnavailable(f"xgrammar import failed: {exc!r}") from exc
        self._xgr = xgrammar
        self.version = _version("xgrammar")
        self.compliant = compliant
        threads = int(os.environ.get("BENCH_XGR_THREADS", "1"))
        info = xgrammar.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=self.vocab_size, stop_token_ids=self.eos_ids
        )
        # no cache: every schema is compiled once anyway, and TTFM must not hit a cache
        self._compiler = xgrammar.GrammarCompiler(info, max_threads=threads, cache_enabled=False)
        if compliant:
            self.name = "xgrammar-compliant"
            self.settings = f"compile_json_schema(strict_mode=False), max_threads={threads}"
        else:
            self.settings = (
                f"compile_json_schema defaults (any_whitespace=True, strict_mode=True), "
                f"max_threads={threads}"
            )

    def _wrap(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - xgrammar refuses with RuntimeError & co.
            raise CompileError(str(exc), type(exc).__name__) from exc

    def compile_json_schema(self, schema: Any) -> Any:
        kwargs = {"strict_mode": False} if self.compliant else {}
        return self._wrap(self._compiler.compile_json_schema, json.dumps(schema), **kwargs)

    def compile_grammar(self, lark_text: str) -> Any:
        return self._wrap(self._compiler.compile_lark, lark_text)

    def compile_regex(self, pattern: str) -> Any:
        return self._wrap(self._compiler.compile_regex, pattern)

    def new_matcher(self, handle: Any) -> Any:
        return self._xgr.GrammarMatcher(handle)

    def fill_mask(self, matcher: Any, mask: np.ndarray) -> None:
        matcher.fill_next_token_bitmask(mask, 0)

    def commit(self, matcher: Any, token: int) -> bool:
        return bool(matcher.accept_token(token))

    def is_accepting(self, matcher: Any) -> bool:
        return bool(matcher.is_completed() or matcher.is_terminated())


# ------------------------------------------------------------------------------- outlines-core


class OutlinesEngine(Engine):
    """``build_regex_from_schema`` + ``Index`` + ``Guide``; its ``Vocabulary`` is built from
    structgen's token bytes (``Vocabulary.from_pretrained`` would need the hub)."""

    name = "outlines"

    def __init__(self, tokenizer: Any, vocab: Any) -> None:
        super().__init__(tokenizer, vocab)
        try:
            import outlines_core
            from outlines_core.json_schema import build_regex_from_schema
        except Exception as exc:  # noqa: BLE001
            raise EngineUnavailable(f"outlines_core import failed: {exc!r}") from exc
        self._oc = outlines_core
        self._build_regex = build_regex_from_schema
        self.version = _version("outlines_core")
        self.settings = "build_regex_from_schema(schema) default whitespace; Index + Guide"
        by_bytes: dict[bytes, list[int]] = {}
        special = vocab.special_token_ids
        for tid, data in enumerate(vocab.token_bytes):
            if data and tid not in special:
                by_bytes.setdefault(bytes(data), []).append(tid)
        # outlines-core has one EOS id; the others are left out (never allowed)
        self._vocabulary = outlines_core.Vocabulary(self.eos_ids[0], by_bytes)

    def _index(self, regex: str) -> Any:
        try:
            return self._oc.Index(regex, self._vocabulary)
        except Exception as exc:  # noqa: BLE001
            raise CompileError(str(exc), type(exc).__name__) from exc

    def compile_json_schema(self, schema: Any) -> Any:
        try:
            regex = self._build_regex(json.dumps(schema))
        except Exception as exc:  # noqa: BLE001
            raise CompileError(str(exc), type(exc).__name__) from exc
        return self._index(regex)

    def compile_regex(self, pattern: str) -> Any:
        return self._index(pattern)

    def new_matcher(self, handle: Any) -> Any:
        return self._oc.Guide(handle)

    def fill_mask(self, matcher: Any, mask: np.ndarray) -> None:
        matcher.write_mask_into(mask.ctypes.data, mask.size, 4)

    def commit(self, matcher: Any, token: int) -> bool:
        try:
            matcher.advance(token, return_tokens=False)
        except Exception:  # noqa: BLE001 - a rejected token raises
            return False
        return True

    def is_accepting(self, matcher: Any) -> bool:
        return bool(matcher.is_finished())


def make_engine(name: str, tokenizer: Any, vocab: Any) -> Engine:
    """The engine called ``name`` (see ``ALL_ENGINES`` and ``EXTRA_ENGINES``)."""
    if name == "structgen":
        return StructgenEngine(tokenizer, vocab)
    if name == "structgen-declared":
        return StructgenEngine(
            tokenizer, vocab, additional_properties="declared", property_order="schema"
        )
    if name == "structgen-schema-order":
        return StructgenEngine(tokenizer, vocab, property_order="schema")
    if name == "structgen-cold":
        return StructgenEngine(tokenizer, vocab, cold=True)
    if name == "llguidance":
        return LLGuidanceEngine(tokenizer, vocab)
    if name == "xgrammar":
        return XGrammarEngine(tokenizer, vocab)
    if name == "xgrammar-compliant":
        return XGrammarEngine(tokenizer, vocab, compliant=True)
    if name == "outlines":
        return OutlinesEngine(tokenizer, vocab)
    raise ValueError(f"unknown engine {name!r}; known: {ALL_ENGINES + EXTRA_ENGINES}")


__all__ = [
    "ALL_ENGINES",
    "EXTRA_ENGINES",
    "CompileError",
    "Engine",
    "EngineUnavailable",
    "make_engine",
]
