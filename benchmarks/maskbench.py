"""MaskBench: compile each JSONSchemaBench schema, then walk its test instances token by token.

Per file: compile time and time to first mask (compile + matcher + first full mask; wall clock,
and the worker process's CPU time as ``ttfm_cpu_us``); for each test
instance ``json.dumps(data)`` (default separators) is tokenized without special tokens, and before
every token (and before EOS at the end) the full next-token mask is computed, the token's bit is
checked and the token committed. A valid instance must be accepted token by token and then be
complete (EOS allowed); an invalid one must be rejected at some token or be incomplete at the end.

    python -m benchmarks.maskbench --engines structgen,llguidance --sample 150 --seed 0

Output: one jsonl per engine (``benchmarks/results/maskbench-<engine>.jsonl``, ``-deepseek``
suffix for that tokenizer), one line per file; files already there are skipped (resumable).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    RESULTS,
    TOKENIZERS,
    done_ids,
    error_record,
    instance_text,
    judge,
    log_run,
    start_pool,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "jsonschemabench" / "maskbench"
MAX_FAILS = 5


def split_of(file_id: str) -> str:
    """The JSONSchemaBench split (or extra source) a file belongs to."""
    stem = file_id.removesuffix(".json")
    if "---" in stem:
        return stem.split("---", 1)[0]
    return re.sub(r"_\d+$", "", stem)


def process_file(engine: Any, task: dict[str, Any]) -> dict[str, Any]:
    """Runs in the worker: the MaskBench record of one file."""
    from benchmarks.engines import CompileError

    path = Path(task["path"])
    data = json.loads(path.read_text())
    tests = data.get("tests", [])
    rec: dict[str, Any] = {
        "n_tests": len(tests),
        "n_valid": sum(1 for t in tests if t["valid"]),
        "n_invalid": sum(1 for t in tests if not t["valid"]),
    }
    clock = time.perf_counter_ns
    # CPU time of the whole worker process (every thread of it) beside the wall clock: on a
    # shared machine a competing job inflates the wall time, hardly the CPU time
    cpu = time.process_time_ns
    c0 = cpu()
    t0 = clock()
    try:
        handle = engine.compile_json_schema(data["schema"])
    except CompileError as exc:
        rec.update(status="compile_error", error_type=exc.kind, error=str(exc)[:2000],
                   unexpected=False)
        return rec
    except Exception as exc:  # noqa: BLE001 - not a deliberate refusal: recorded as unexpected
        rec.update(status="compile_error", unexpected=True, **error_record(exc))
        return rec
    t1 = clock()
    mask = engine.new_mask()
    engine.fill_mask(engine.new_matcher(handle), mask)
    t2 = clock()
    c2 = cpu()
    rec.update(compile_us=(t1 - t0) // 1000, ttfm_us=(t2 - t0) // 1000,
               ttfm_cpu_us=(c2 - c0) // 1000,
               describe=engine.describe(handle))
    lower_us = getattr(engine, "last_lower_us", None)  # structgen: the front end's share
    if lower_us is not None:
        rec["lower_us"] = lower_us

    times: list[int] = []
    fails: list[dict[str, Any]] = []
    fa = fr = errors = right = n_tokens = 0
    for i, test in enumerate(tests):
        text = instance_text(test["data"], task.get("raw_unicode", False))
        tokens = engine.tokenizer.encode(text, add_special_tokens=False)
        n_tokens += len(tokens)
        try:
            res = judge(engine, handle, tokens, bool(test["valid"]), mask, times)
        except Exception as exc:  # noqa: BLE001
            errors += 1
            if len(fails) < MAX_FAILS:
                fails.append({"test": i, "valid": test["valid"], **error_record(exc)})
            continue
        if res["right"]:
            right += 1
            continue
        if test["valid"]:
            fr += 1
        else:
            fa += 1
        if len(fails) < MAX_FAILS:
            at = res["at"]
            tok = (engine.tokenizer.decode([tokens[at]]) if 0 <= at < len(tokens) else "<EOS>")
            fails.append({"test": i, "valid": test["valid"], "at": at, "token": tok,
                          "why": res["why"], "text": text[:300]})
    rec.update(status="ok", tests_right=right, false_accepts=fa, false_rejects=fr,
               test_errors=errors, n_tokens=n_tokens, mask_us=times, fails=fails)
    return rec


def default_out(engine: str, tokenizer: str) -> Path:
    suffix = "" if tokenizer == "smollm2" else f"-{tokenizer}"
    return RESULTS / f"maskbench-{engine}{suffix}.jsonl"


def select_files(args: argparse.Namespace) -> list[Path]:
    files = sorted(Path(args.data).glob("*.json"))
    if args.split:
        wanted = set(args.split.split(","))
        files = [f for f in files if split_of(f.name) in wanted]
    if args.sample:
        files = sorted(random.Random(args.seed).sample(files, min(args.sample, len(files))))
    if args.limit:
        files = files[: args.limit]
    return files


def run_engines(engines: list[str], files: list[Path], args: argparse.Namespace) -> None:
    """Run every engine over ``files``, interleaved: file by file, each engine in turn (the
    order rotating from file to file), one worker per engine. Run one engine after another,
    a change in the machine's load between the runs lands on some engines only (the quick run
    in BENCHMARKS.md at ce2c5eb measured structgen's front end, compile and every mask about
    2x slower than the same code does on a quiet machine; its peers had run half an hour
    earlier). Interleaved, every engine sees the same conditions within a file or two."""
    import contextlib

    from tqdm import tqdm

    lanes: list[dict[str, Any]] = []
    for engine in engines:
        out = Path(args.out.format(engine=engine, tokenizer=args.tokenizer)) if args.out \
            else default_out(engine, args.tokenizer)
        out.parent.mkdir(parents=True, exist_ok=True)
        done = done_ids(out)
        todo = {f.name for f in files if f.name not in done}
        print(f"[maskbench] {engine}: {len(todo)} files to run ({len(files) - len(todo)} "
              f"already in {out})", file=sys.stderr)
        if todo:
            lanes.append({"engine": engine, "out": out, "todo": todo, "counts": {}})
    with contextlib.ExitStack() as stack:
        for lane in list(lanes):
            pool = start_pool("maskbench", lane["engine"], args.tokenizer,
                              "benchmarks.maskbench:process_file", args.timeout_s, args.mem_gb)
            if pool is None:
                lanes.remove(lane)
                continue
            lane["pool"] = stack.enter_context(pool)
            lane["file"] = stack.enter_context(lane["out"].open("a"))
        work = [f for f in files if any(f.name in lane["todo"] for lane in lanes)]
        bar = tqdm(work, desc="maskbench", unit="file", dynamic_ncols=True)
        for k, path in enumerate(bar):
            turn = k % len(lanes)
            for lane in lanes[turn:] + lanes[:turn]:
                if path.name in lane["todo"]:
                    run_one(lane, path, args)
    for lane in lanes:
        print(f"[maskbench] {lane['engine']}: {lane['counts']}", file=sys.stderr)


def run_one(lane: dict[str, Any], path: Path, args: argparse.Namespace) -> None:
    """One file on one engine's worker; its record appended to the engine's jsonl."""
    pool, engine = lane["pool"], lane["engine"]
    rec = pool.run({"path": str(path), "raw_unicode": args.raw_unicode})
    if "n_tests" not in rec:  # timeout or crash: the worker could not say
        tests = json.loads(path.read_text()).get("tests", [])
        rec.update(n_tests=len(tests), n_valid=sum(1 for t in tests if t["valid"]),
                   n_invalid=sum(1 for t in tests if not t["valid"]))
    rec = {"id": path.name, "split": split_of(path.name), "engine": engine,
           "tokenizer": args.tokenizer, "structgen_code": pool.code, **rec}
    lane["file"].write(json.dumps(rec) + "\n")
    lane["file"].flush()
    lane["counts"][rec["status"]] = lane["counts"].get(rec["status"], 0) + 1


def main(argv: list[str] | None = None) -> int:
    from benchmarks.engines import ALL_ENGINES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder of MaskBench json files")
    p.add_argument("--engines", default=",".join(ALL_ENGINES))
    p.add_argument("--tokenizer", choices=TOKENIZERS, default="smollm2")
    p.add_argument("--limit", type=int, default=0, help="first N files (after --sample)")
    p.add_argument("--sample", type=int, default=0, help="random sample of N files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="", help="only these splits (comma-separated)")
    p.add_argument("--out", default="", help="output path; {engine} and {tokenizer} expand")
    p.add_argument("--timeout-s", type=float, default=120.0, help="per file")
    p.add_argument("--mem-gb", type=float, default=16.0, help="address-space cap per worker")
    p.add_argument("--raw-unicode", action="store_true",
                   help="serialise with ensure_ascii=False (MaskBench's own runner does)")
    args = p.parse_args(argv)
    log_run("maskbench", ["python", "-m", "benchmarks.maskbench", *(argv or sys.argv[1:])])
    files = select_files(args)
    run_engines([e for e in args.engines.split(",") if e], files, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
