"""Run the benchmarks, then write BENCHMARKS.md.

    python -m benchmarks.run --quick    # < 20 min on 2 cores: MaskBench sample of 100 files,
                                        # the draft2020-12 suite, the shipped grammars on both
                                        # vocabularies; 10 s per file, 5 s per group, 15 s per
                                        # grammar
    python -m benchmarks.run --full     # everything (hours): all MaskBench files, both drafts

Results go to ``benchmarks/results/quick/`` or ``benchmarks/results/full/`` (resumable: an
interrupted run continues where it stopped, on the same frozen copy of structgen's source;
``--fresh`` starts over). Every step runs as its own ``python -m benchmarks.<module>`` command,
printed before it runs, so any step can be repeated by hand with the same environment.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def steps(args: argparse.Namespace) -> list[list[str]]:
    tok = ["--tokenizer", args.tokenizer]
    lim = ["--mem-gb", str(args.mem_gb)]
    if args.quick:
        mb = ["--sample", str(args.sample), "--seed", str(args.seed), "--timeout-s", "10"]
        suite = ["--drafts", "draft2020-12", "--timeout-s", "5"]
        # outlines-core builds an index over the whole vocabulary per schema (~5-10 s each on
        # 2 cores): the ~380 suite groups alone would take an hour, so quick runs skip it there
        suite_engines = [e for e in args.engines.split(",") if e != "outlines"]
    else:
        mb = ["--timeout-s", str(args.timeout_s)]
        suite = ["--drafts", "draft2020-12,draft7", "--timeout-s", str(args.timeout_s)]
        suite_engines = args.engines.split(",")
    if args.maskbench_data:
        mb += ["--data", args.maskbench_data]
    if args.suite_data:
        suite += ["--suite", args.suite_data]
    py = [sys.executable, "-m"]
    # structgen in both property-order readings: "any" (the validation reading, the default
    # engine) and "schema" (the generation default), beside the peers in the same run
    mb_engines = args.engines.split(",")
    if "structgen" in mb_engines and not args.one_order:
        mb_engines.insert(mb_engines.index("structgen") + 1, "structgen-schema-order")
    out = [
        [*py, "benchmarks.maskbench", "--engines", ",".join(mb_engines), *tok, *lim, *mb],
        [*py, "benchmarks.test_suite", "--engines", ",".join(suite_engines), *tok, *lim, *suite],
    ]
    # the shipped Lark grammars on real strings, on both vocabularies (issue 3's targets)
    from benchmarks.grammars import GRAMMAR_ENGINES

    gr_engines = ",".join(e for e in args.engines.split(",") if e in GRAMMAR_ENGINES)
    gr = ["--timeout-s", "15" if args.quick else str(args.timeout_s), *lim]
    if args.maskbench_data:
        gr += ["--data", args.maskbench_data]
    if gr_engines:
        out += [[*py, "benchmarks.grammars", "--engines", gr_engines, "--tokenizer", t, *gr]
                for t in ("smollm2", "deepseek")]
    if args.e2e:
        n = "10" if args.quick else "20"
        out.append([*py, "benchmarks.e2e_overhead", "--n", n])
        jsb = ["--per-split", "1" if args.quick else "20", "--seed", str(args.seed)]
        if args.maskbench_data:
            jsb += ["--data", args.maskbench_data]
        out.append([*py, "benchmarks.jsonschemabench", *jsb])
    out.append([*py, "benchmarks.report"])
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks.engines import ALL_ENGINES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    p.add_argument("--engines", default=",".join(ALL_ENGINES))
    p.add_argument("--tokenizer", default="smollm2", choices=("smollm2", "deepseek"))
    p.add_argument("--sample", type=int, default=100, help="MaskBench files in --quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout-s", type=float, default=300.0, help="per file / group in --full")
    p.add_argument("--mem-gb", type=float, default=12.0, help="address-space cap per worker")
    p.add_argument("--maskbench-data", default="", help="MaskBench folder (default: shared)")
    p.add_argument("--suite-data", default="", help="the test suite's tests/ folder")
    p.add_argument("--e2e", action="store_true", help="also run e2e_overhead and jsonschemabench "
                   "(needs the model)")
    p.add_argument("--results", default="", help="results folder (default results/quick|full)")
    p.add_argument("--fresh", action="store_true",
                   help="delete the results folder first (else the run resumes)")
    p.add_argument("--one-order", action="store_true",
                   help="MaskBench: structgen with property_order=any only (no schema-order row)")
    p.add_argument("--live", action="store_true",
                   help="measure the live checkout instead of a frozen copy of structgen/")
    args = p.parse_args(argv)
    results = args.results or str(ROOT / "results" / ("quick" if args.quick else "full"))
    env = {**os.environ, "BENCH_RESULTS": results, "HF_HUB_OFFLINE": "1"}
    print(f"[run] results in {results}", file=sys.stderr)
    if args.fresh:
        shutil.rmtree(results, ignore_errors=True)
    if not args.live:
        # freeze structgen's source for the whole run, resumptions included (others edit it
        # while benchmarks run); --fresh starts over with a new copy
        src = Path(results) / "structgen-src"
        if (src / "structgen").is_dir():
            print(f"[run] resuming with the structgen copy in {src}", file=sys.stderr)
        else:
            shutil.copytree(ROOT.parent / "structgen", src / "structgen",
                            ignore=shutil.ignore_patterns("__pycache__"))
            print(f"[run] structgen frozen in {src}", file=sys.stderr)
        env["BENCH_STRUCTGEN_SRC"] = str(src)
    for cmd in steps(args):
        pre = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("BENCH_RESULTS",
                                                                "BENCH_STRUCTGEN_SRC") if k in env)
        print(f"[run] {pre} python {shlex.join(cmd[1:])}", file=sys.stderr)
        rc = subprocess.run(cmd, env=env, cwd=ROOT.parent, check=False).returncode
        if rc != 0:
            print(f"[run] step failed with exit code {rc}", file=sys.stderr)
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
