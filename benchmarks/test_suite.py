"""The JSON Schema Test Suite as a constrained-decoding benchmark.

Each test group's schema is compiled once per engine; each test instance is judged exactly as in
MaskBench (full mask before every token, the token's bit checked, then committed; valid instances
must end complete, invalid ones must be rejected somewhere or end incomplete). A schema that does
not compile counts all its cases wrong. Groups whose schema ``$ref``s a remote document (the
suite's ``localhost:1234`` remotes, or a metaschema) are marked ``needs_remote``: no engine here
fetches them, and the report shows the share with and without those groups.

    python -m benchmarks.test_suite --drafts draft2020-12 --engines structgen,llguidance

Output: ``benchmarks/results/suite-<engine>.jsonl``, one line per test group (resumable).
"""

from __future__ import annotations

import argparse
import json
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

DEFAULT_SUITE = Path(__file__).resolve().parents[2] / "shared" / "json-schema-test-suite" / "tests"
DRAFT_URIS = {"draft7": "http://json-schema.org/draft-07/schema#"}
REMOTE_BASE = "http://localhost:1234/"


def _ids_and_refs(node: Any, ids: set[str], refs: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$id", "id") and isinstance(value, str):
                ids.add(value.split("#")[0])
            elif key in ("$ref", "$dynamicRef") and isinstance(value, str):
                refs.append(value)
            _ids_and_refs(value, ids, refs)
    elif isinstance(node, list):
        for value in node:
            _ids_and_refs(value, ids, refs)


def needs_remote(schema: Any) -> bool:
    """Whether some absolute ``$ref`` points outside the schema (approximate: relative refs
    against a remote base are not resolved)."""
    ids: set[str] = set()
    refs: list[str] = []
    _ids_and_refs(schema, ids, refs)
    for ref in refs:
        base = ref.split("#")[0]
        if base.startswith(("http://", "https://", "urn:")) and base not in ids:
            return True
        if "localhost:1234" in ref:
            return True
    return False


def refs_other_documents(schema: Any) -> bool:
    """Whether some ``$ref`` is not a bare fragment (it may name another document)."""
    refs: list[str] = []
    _ids_and_refs(schema, set(), refs)
    return any(not ref.startswith("#") for ref in refs)


def process_group(engine: Any, task: dict[str, Any]) -> dict[str, Any]:
    """Runs in the worker: one test group (schema + tests) against one engine."""
    from benchmarks.engines import CompileError

    schema = task["schema"]
    tests = task["tests"]
    rec: dict[str, Any] = {"n_tests": len(tests)}
    t0 = time.perf_counter_ns()
    try:
        handle = engine.compile_json_schema_with(schema, task.get("registry"))
    except CompileError as exc:
        rec.update(status="compile_error", error_type=exc.kind, error=str(exc)[:1000],
                   unexpected=False, right=[False] * len(tests))
        return rec
    except Exception as exc:  # noqa: BLE001 - not a deliberate refusal
        rec.update(status="compile_error", unexpected=True, right=[False] * len(tests),
                   **error_record(exc))
        return rec
    rec["compile_us"] = (time.perf_counter_ns() - t0) // 1000
    mask = engine.new_mask()
    times: list[int] = []
    right: list[bool] = []
    errors: list[int] = []
    fails: list[dict[str, Any]] = []
    for i, test in enumerate(tests):
        text = instance_text(test["data"], task.get("raw_unicode", False))
        tokens = engine.tokenizer.encode(text, add_special_tokens=False)
        try:
            res = judge(engine, handle, tokens, bool(test["valid"]), mask, times)
        except Exception as exc:  # noqa: BLE001
            right.append(False)
            errors.append(i)
            fails.append({"test": i, **error_record(exc)})
            continue
        right.append(bool(res["right"]))
        if not res["right"]:
            fails.append({"test": i, "valid": test["valid"], "why": res["why"], "at": res["at"],
                          "text": text[:200]})
    rec.update(status="ok", right=right, errors=errors, fails=fails[:10],
               mask_us_p50=sorted(times)[len(times) // 2] if times else None)
    return rec


def load_remotes(folder: Path) -> dict[str, Any]:
    """The suite's remote documents by the URI its tests use (``http://localhost:1234/...``)."""
    if not folder.is_dir():
        return {}
    return {
        f"{REMOTE_BASE}{path.relative_to(folder).as_posix()}": json.loads(path.read_text())
        for path in sorted(folder.rglob("*.json"))
    }


def load_groups(suite: Path, drafts: list[str], optional: bool) -> list[dict[str, Any]]:
    groups = []
    for draft in drafts:
        folder = suite / draft
        files = sorted(folder.glob("*.json"))
        if optional:
            files += sorted((folder / "optional").rglob("*.json"))
        for path in files:
            keyword = str(path.relative_to(folder).with_suffix(""))
            for i, group in enumerate(json.loads(path.read_text())):
                schema = group["schema"]
                if draft in DRAFT_URIS and isinstance(schema, dict) and "$schema" not in schema:
                    schema = {"$schema": DRAFT_URIS[draft], **schema}
                groups.append({
                    "id": f"{draft}/{keyword}#{i}", "draft": draft, "keyword": keyword,
                    "description": group["description"], "schema": schema,
                    "tests": group["tests"], "needs_remote": needs_remote(schema),
                    "refs_other_documents": refs_other_documents(schema),
                })
    return groups


def run_engine(engine: str, groups: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from tqdm import tqdm

    suffix = "" if args.tokenizer == "smollm2" else f"-{args.tokenizer}"
    out = RESULTS / f"suite-{engine}{suffix}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_ids(out)
    todo = [g for g in groups if g["id"] not in done]
    print(f"[suite] {engine}: {len(todo)} groups to run", file=sys.stderr)
    if not todo:
        return
    worker_task = "benchmarks.test_suite:process_group"
    pool = start_pool("suite", engine, args.tokenizer, worker_task, args.timeout_s, args.mem_gb)
    if pool is None:
        return
    with pool, out.open("a") as f:
        for g in tqdm(todo, desc=engine, unit="group", dynamic_ncols=True):
            registry = args.registry if g["refs_other_documents"] else None
            rec = pool.run({"schema": g["schema"], "tests": g["tests"],
                            "raw_unicode": args.raw_unicode, "registry": registry})
            if "right" not in rec:  # timeout, crash, unexpected error: every case wrong
                rec["right"] = [False] * len(g["tests"])
            rec = {"id": g["id"], "draft": g["draft"], "keyword": g["keyword"],
                   "description": g["description"], "needs_remote": g["needs_remote"],
                   "valid": [bool(t["valid"]) for t in g["tests"]],
                   "engine": engine, "tokenizer": args.tokenizer, "structgen_code": pool.code,
                   **rec}
            f.write(json.dumps(rec) + "\n")
            f.flush()


def main(argv: list[str] | None = None) -> int:
    from benchmarks.engines import ALL_ENGINES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default=str(DEFAULT_SUITE), help="the suite's tests/ folder")
    p.add_argument("--drafts", default="draft2020-12,draft7")
    p.add_argument("--engines", default=",".join(ALL_ENGINES))
    p.add_argument("--tokenizer", choices=TOKENIZERS, default="smollm2")
    p.add_argument("--optional", action="store_true", help="include the optional/ tests")
    p.add_argument("--limit", type=int, default=0, help="first N groups (for smoke tests)")
    p.add_argument("--raw-unicode", action="store_true",
                   help="serialise with ensure_ascii=False (no \\uXXXX surrogate-pair escapes)")
    p.add_argument("--timeout-s", type=float, default=120.0, help="per test group")
    p.add_argument("--mem-gb", type=float, default=16.0)
    p.add_argument("--remotes", default="",
                   help="the suite's remotes/ folder (default: beside --suite; 'none' to skip); "
                   "given to engines whose API takes other documents (structgen's registry=)")
    args = p.parse_args(argv)
    if args.remotes != "none":
        args.registry = load_remotes(Path(args.remotes or Path(args.suite).parent / "remotes"))
    else:
        args.registry = {}
    log_run("suite", ["python", "-m", "benchmarks.test_suite", *(argv or sys.argv[1:])])
    groups = load_groups(Path(args.suite), args.drafts.split(","), args.optional)
    if args.limit:
        groups = groups[: args.limit]
    for engine in [e for e in args.engines.split(",") if e]:
        run_engine(engine, groups, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
