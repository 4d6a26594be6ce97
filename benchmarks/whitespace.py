"""Which whitespace layout should JSON Schema generation use by default? Measured, not guessed.

For a seeded sample of JSONSchemaBench schemas (``--per-split`` per split, as
``benchmarks.jsonschemabench`` samples them, with its prompt), SmolLM2-135M-Instruct generates an
instance under each ``whitespace=`` layout (``compact``, ``flexible``, ``pretty``), greedily, with
``structgen.generate`` (AWRS, fast-forward on). Per layout: outputs valid (complete and
``jsonschema`` validates them, formats asserted), outputs that hit ``--max-new-tokens``, output
tokens, forced (fast-forwarded) tokens, ms per output token (model + constraint time, the
``GenerationStats.ms_per_token`` definition) and forward passes per output token.

Output: ``--out DIR/whitespace.json`` (one record per schema and layout, plus the summary), and
the Markdown table on stdout.

    python -m benchmarks.whitespace --maskbench-data ../shared/jsonschemabench/maskbench \
        --per-split 1 --out benchmarks/results/whitespace
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.e2e_common import check
from benchmarks.jsonschemabench import prompt_for, select_files
from benchmarks.maskbench import DEFAULT_DATA, split_of

MODES = ("compact", "flexible", "pretty")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import structgen as sg
    from structgen.errors import StructgenError
    from structgen.models import load_default_model

    torch.set_num_threads(args.threads)
    model, tok = load_default_model()
    files = select_files(str(args.maskbench_data), set(), args.per_split, args.seed)
    if args.limit:
        files = files[: args.limit]
    records: list[dict[str, Any]] = []
    for path in files:
        schema = json.loads(path.read_text())["schema"]
        for mode in args.modes:
            rec: dict[str, Any] = {"id": path.name, "split": split_of(path.name), "mode": mode}
            t0 = time.perf_counter()
            try:
                res = sg.generate(
                    model,
                    tok,
                    prompt_for(schema),
                    schema=schema,
                    schema_options={"whitespace": mode},
                    max_new_tokens=args.max_new_tokens,
                    **({"recovery": args.recovery} if args.recovery != "default" else {}),
                )
            except StructgenError as exc:
                rec.update(status="error", error=f"{type(exc).__name__}: {exc}"[:300])
                records.append(rec)
                continue
            s = res.stats
            rec.update(
                status="ok",
                valid=bool(res.complete and check(res.text, schema, formats=True)),
                hit_limit=res.reason == "max_new_tokens",
                new_tokens=s.new_tokens,
                forced_tokens=s.forced_tokens,
                ms_per_token=s.ms_per_token,
                passes_per_token=s.forward_passes / max(s.new_tokens, 1),
                backtracks=getattr(s, "backtracks", 0),
                wall_s=time.perf_counter() - t0,
                text=res.text[:600],
            )
            records.append(rec)
            print(f"{path.name:40s} {mode:9s} valid={rec['valid']!s:5s} "
                  f"n={s.new_tokens:3d} {s.ms_per_token:6.1f} ms/tok", flush=True)  # fmt: skip
    return {"args": {k: str(v) for k, v in vars(args).items()}, "records": records,
            "summary": summarise(records, args.modes)}  # fmt: skip


def summarise(records: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ok_everywhere = {r["id"] for r in records if r["status"] == "ok"} - {
        r["id"] for r in records if r["status"] != "ok"
    }
    for mode in modes:
        rs = [r for r in records if r["mode"] == mode and r["id"] in ok_everywhere]
        if not rs:
            continue
        out[mode] = {
            "schemas": len(rs),
            "valid": sum(r["valid"] for r in rs),
            "hit_limit": sum(r["hit_limit"] for r in rs),
            "tokens_p50": statistics.median(r["new_tokens"] for r in rs),
            "tokens_total": sum(r["new_tokens"] for r in rs),
            "forced_share": sum(r["forced_tokens"] for r in rs)
            / max(sum(r["new_tokens"] for r in rs), 1),
            "ms_per_token_p50": statistics.median(r["ms_per_token"] for r in rs),
            "passes_per_token": statistics.mean(r["passes_per_token"] for r in rs),
        }
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| whitespace | schemas | valid | hit token limit | output tokens p50 | tokens total "
        "| forced share | ms/token p50 | forward passes/token |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, s in summary.items():
        lines.append(
            f"| {mode} | {s['schemas']} | {s['valid']} ({100 * s['valid'] / s['schemas']:.0f}%) "
            f"| {s['hit_limit']} | {s['tokens_p50']:.0f} | {s['tokens_total']} "
            f"| {100 * s['forced_share']:.0f}% | {s['ms_per_token_p50']:.1f} "
            f"| {s['passes_per_token']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--maskbench-data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/whitespace"))
    p.add_argument("--per-split", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="at most this many schemas (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument(
        "--recovery", default="default", help="generate(recovery=...); default: not passed"
    )
    args = p.parse_args(argv)
    args.modes = args.modes.split(",")
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "whitespace.json").write_text(json.dumps(result, indent=1))
    (args.out / "whitespace.md").write_text(markdown(result["summary"], argv, args) + "\n")
    print(table(result["summary"]))
    return 0


def markdown(summary: dict[str, Any], argv: list[str] | None, args: argparse.Namespace) -> str:
    """The BENCHMARKS.md section (``benchmarks.report`` includes it when present)."""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m benchmarks.whitespace", *given])
    return "\n".join([
        "## Whitespace layout for generation (SmolLM2-135M-Instruct, CPU, greedy)",
        "",
        f"Command: `{command}`  ",
        f"Revision {rev}, {time.strftime('%Y-%m-%d')}, {args.threads} torch thread(s), max "
        f"{args.max_new_tokens} new tokens, 1-min load at the end {os.getloadavg()[0]:.1f}. Rows "
        "count the schemas every layout ran without error; *valid*: complete and jsonschema "
        "accepts it (formats asserted).",
        "",
        table(summary),
    ])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
