"""Write BENCHMARKS.md (and the plots under benchmarks/plots/) from the jsonl results.

    python -m benchmarks.report            # reads benchmarks/results/, writes ./BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import grammars, jsonschemabench
from benchmarks.harness import RESULTS, ROOT, read_jsonl
from benchmarks.report_util import (
    Groups,
    engines_of,
    fmt_us,
    load,
    pct,
    plot_maskbench,
    share,
    table,
    top_errors,
)

REPO = ROOT.parent
SUMMARY = ROOT / "summary.md"  # hand-written reading of the numbers, kept in git
# model benchmarks that write their own section: results/<name>/<name>.md (their own --out)
MODEL_SECTIONS = ("speculative", "traps", "whitespace", "aligned")
NOTES = """### How to run

```sh
python -m benchmarks.run --quick   # make bench: MaskBench sample (100 files) + draft2020-12 suite
python -m benchmarks.run --full    # make bench-full: every MaskBench file, draft2020-12 + draft7
python -m benchmarks.run --quick --e2e   # also the end-to-end run (needs the SmolLM2 model)
```

Each step is a module that can be run alone (`python -m benchmarks.maskbench --help`,
`benchmarks.test_suite`, `benchmarks.grammars`, `benchmarks.e2e_overhead`,
`benchmarks.jsonschemabench`, `benchmarks.report`); `BENCH_RESULTS` picks
the results folder (default `benchmarks/results/`; `run.py` uses `results/quick` or
`results/full`). Runs are resumable: files already in a jsonl are skipped.

### Protocol

- One tokenizer for every engine (SmolLM2, 49,152 ids, unless stated); mask width and EOS ids
  come from structgen's `Vocabulary`. Every engine runs in a child process, one file at a time,
  under a per-file time limit and an address-space cap (`RLIMIT_AS`).
- Instances are serialised with `json.dumps(data)`: `", "` / `": "` separators and `\\uXXXX`
  escapes for non-ASCII text (surrogate pairs outside the BMP). MaskBench's own runner uses
  `ensure_ascii=False`; `--raw-unicode` does that here.
- Before every token, and before EOS at the end, the full next-token bitmask is computed (that
  call alone is the *mask* time); the token must be in it and must then be committed. A valid
  instance must end with EOS allowed and the matcher accepting; an invalid one must be rejected
  at some token or end incomplete.
- TTFM = compile + new matcher + first full mask, with caches off (structgen `use_cache=False`,
  xgrammar `cache_enabled=False`). xgrammar runs with `max_threads=1` (MaskBench does the same;
  its default is 8), so all engines are single-threaded.
- Engine settings: structgen `additional_properties="spec"`, `property_order="any"` (the
  validation reading; Test Suite groups that `$ref` other documents also get the suite's
  `remotes/` as `registry=`, an API the peers do not have); llguidance
  default JSON options (flexible whitespace); xgrammar defaults (`strict_mode=True`: unspecified
  `additionalProperties` / extra items are refused, which makes valid instances with extra keys
  false rejects; engine `xgrammar-compliant` runs `strict_mode=False`); outlines-core defaults, its
  `Vocabulary` built from the same token bytes (`from_pretrained` needs the hub), with one EOS.
- structgen runs with its C extension (`structgen._native`, built by `pip install`) unless
  `STRUCTGEN_PURE_PYTHON=1`; the engine settings below say which. Within a worker process it
  shares terminal automata and their token walks across schemas (keyed by content, like
  XGrammar-2's cross-grammar caching); `use_cache=False` turns off only the whole-grammar
  compile cache. Engine `structgen-cold` clears the shared automata before every compile.
- The machine is shared with other jobs: compare percentiles, and only within one run.
"""


# ---------------------------------------------------------------------------------- maskbench


def code_warning(groups: Groups, tok: str) -> list[str]:
    """A warning when structgen's results come from more than one version of its source."""
    codes = Counter(r.get("structgen_code") or "?" for (t, e), recs in groups.items()
                    if t == tok and e.startswith("structgen") for r in recs)
    if len(codes) <= 1:
        return []
    parts = ", ".join(f"{c}: {n} records" for c, n in codes.most_common())
    return [f"> **Note:** structgen's source changed during this run (source hashes {parts}); "
            "its rows mix versions. Re-run structgen alone on a fixed checkout to compare.", ""]


def mb_stats(recs: list[dict[str, Any]]) -> dict[str, Any]:
    st = Counter(r["status"] for r in recs)
    ok = [r for r in recs if r["status"] == "ok"]
    with_tests = [r for r in recs if r["n_tests"]]
    all_right = [r for r in ok if r["tests_right"] == r["n_tests"]]
    masks = [t for r in ok for t in r["mask_us"]]
    return {
        "files": len(recs), "status": st, "compiled": len(ok),
        "unexpected": sum(1 for r in recs if r.get("unexpected")),
        "all_right": len(all_right),
        "all_right_tested": sum(1 for r in all_right if r["n_tests"]),
        "with_tests": len(with_tests),
        "fa": sum(r.get("false_accepts", 0) for r in ok),
        "fr": sum(r.get("false_rejects", 0) for r in ok),
        "test_errors": sum(r.get("test_errors", 0) for r in ok),
        "instances": sum(r["n_tests"] for r in ok),
        "ttfm": [r["ttfm_us"] for r in ok], "masks": masks,
    }


def maskbench_section(groups: Groups, tok: str, plots: Path) -> list[str]:
    engines = engines_of(groups, tok)
    if not engines:
        return []
    stats = {e: mb_stats(groups[(tok, e)]) for e in engines}
    out = [f"## MaskBench ({tok} tokenizer)", ""] + code_warning(groups, tok)
    rows = []
    for e in engines:
        s = stats[e]
        st = s["status"]
        rows.append([
            e, str(s["files"]), f"{st['compile_error']} ({s['unexpected']} unexpected)",
            str(st["timeout"]), str(st["crash"] + st["oom"] + st["unexpected_error"]),
            share(s["all_right"], s["files"]), share(s["all_right_tested"], s["with_tests"]),
            str(s["instances"]), str(s["fa"]), str(s["fr"]), str(s["test_errors"]),
        ])
    out += [table(["engine", "files", "compile errors", "timeouts", "crashes/errors",
                   "files all right", "tested files all right", "instances run",
                   "false accepts", "false rejects", "instance exceptions"], rows), ""]
    out += ["*files all right*: compiled, and every test instance judged right (files without "
            "tests count when they compile). *False accepts*: invalid instances accepted; "
            "*false rejects*: valid instances rejected (instances, over compiled files).", ""]
    rows = []
    for e in engines:
        s = stats[e]
        t = pct(s["ttfm"], (50, 90, 99, 100))
        m = pct(s["masks"], (50, 90, 99, 99.9, 100))
        rows.append([e, *map(fmt_us, t), str(len(s["masks"])), *map(fmt_us, m)])
    out += [table(["engine", "TTFM p50", "p90", "p99", "max", "masks", "mask p50", "p90",
                   "p99", "p99.9", "max"], rows), ""]
    out += ["TTFM = compile + new matcher + first full mask, over the files each engine compiled; "
            "mask = one full next-token mask (every token of every instance, and the EOS step). "
            "Files that timed out contribute no times, so an engine's percentiles leave out its "
            "slowest files.", ""]
    out += issue14_targets(groups, tok, engines, stats)
    out += common_subset(groups, tok, engines)
    out += split_table(groups, tok, engines)
    out += top_errors(groups, tok, engines)
    plot_maskbench(groups, tok, engines, stats, plots)
    suffix = "" if tok == "smollm2" else f"-{tok}"
    out += [f"![TTFM CDF](benchmarks/plots/ttfm_cdf{suffix}.png) "
            f"![mask CDF](benchmarks/plots/mask_cdf{suffix}.png) "
            f"![per split](benchmarks/plots/maskbench_splits{suffix}.png)", ""]
    return out


ISSUE14 = (  # (target, key, percentile, limit in us)
    ("TTFM p50 <= 5 ms", "ttfm", 50, 5_000),
    ("TTFM p90 <= 50 ms", "ttfm", 90, 50_000),
    ("full mask p50 <= 20 us", "masks", 50, 20),
    ("full mask p99 <= 1 ms", "masks", 99, 1_000),
)


def issue14_targets(
    groups: Groups, tok: str, engines: list[str], stats: dict[str, dict[str, Any]]
) -> list[str]:
    """Issue 14's targets per engine (structgen in both property orders, the peers beside), and
    structgen's TTFM split into the JSON Schema front end and the rest (automata, first mask)."""
    shown = [e for e in ("structgen", "structgen-schema-order", "structgen-cold", "llguidance",
                         "xgrammar") if e in stats]
    if not shown:
        return []
    rows = []
    for label, key, q, limit in ISSUE14:
        row = [label]
        for e in shown:
            v = pct(stats[e][key], (q,))[0]
            row.append(f"{fmt_us(v)} ({'met' if v <= limit else 'not met'})" if v == v else "-")
        rows.append(row)
    row = ["no file past 10 s (TTFM, or a per-file timeout)"]
    for e in shown:
        recs = groups[(tok, e)]
        late = sum(1 for r in recs if r["status"] == "timeout" or r.get("ttfm_us", 0) > 10**7)
        row.append(f"{late} ({'met' if late == 0 else 'not met'})")
    rows.append(row)
    out = ["### Issue 14 targets", "", table(["target", *shown], rows), "",
           "Percentiles over the files each engine compiled (TTFM) and over all their masks; a "
           "timed-out file counts in the last row.", ""]
    phase_rows = []
    for e in shown:
        recs = [r for r in groups[(tok, e)] if r["status"] == "ok" and "lower_us" in r]
        if not recs:
            continue
        lower = [r["lower_us"] for r in recs]
        rest = [r["ttfm_us"] - r["lower_us"] for r in recs]
        phase_rows.append([e, *map(fmt_us, pct(lower, (50, 90, 99))),
                           *map(fmt_us, pct(rest, (50, 90, 99)))])
    if phase_rows:
        out += ["structgen's TTFM by phase: the JSON Schema front end (schema to grammar IR) and "
                "the rest (automata, vocabulary proof, matcher, first mask):", "",
                table(["engine", "front end p50", "p90", "p99", "automata + first mask p50",
                       "p90", "p99"], phase_rows), ""]
    return out


def common_subset(groups: Groups, tok: str, engines: list[str]) -> list[str]:
    """Medians on the files every engine compiled, and structgen / peer ratios."""
    ok = {e: {r["id"]: r for r in groups[(tok, e)] if r["status"] == "ok"} for e in engines}
    common = set.intersection(*(set(v) for v in ok.values())) if ok else set()
    base = "structgen" if "structgen" in engines else engines[0]
    if not common:
        return []
    med = {}
    for e in engines:
        med[e] = (float(np.median([ok[e][i]["ttfm_us"] for i in common])),
                  float(np.median([t for i in common for t in ok[e][i]["mask_us"]] or [0])))
    rows = []
    for e in engines:
        rt = med[base][0] / med[e][0] if med[e][0] else float("nan")
        rm = med[base][1] / med[e][1] if med[e][1] else float("nan")
        rows.append([e, fmt_us(med[e][0]), f"{rt:.2f}x", fmt_us(med[e][1]), f"{rm:.2f}x"])
    return [f"On the {len(common)} files every engine compiled (medians; ratio = {base} / "
            f"engine, >1 means {base} is slower):", "",
            table(["engine", "TTFM p50", f"{base}/engine", "mask p50", f"{base}/engine"],
                  rows), ""]


def split_table(groups: Groups, tok: str, engines: list[str]) -> list[str]:
    splits = sorted({r["split"] for e in engines for r in groups[(tok, e)]})
    rows = []
    for sp in splits:
        row = [sp]
        for e in engines:
            recs = [r for r in groups[(tok, e)] if r["split"] == sp]
            good = sum(1 for r in recs if r["status"] == "ok" and r["tests_right"] == r["n_tests"])
            row.append(f"{share(good, len(recs))} ({len(recs)})")
        rows.append(row)
    return ["Files all right per split (files in the split):", "",
            table(["split", *engines], rows), ""]


# --------------------------------------------------------------------------------- test suite


def suite_section(groups: Groups, tok: str) -> list[str]:
    engines = engines_of(groups, tok)
    if not engines:
        return []
    out = [f"## JSON Schema Test Suite ({tok} tokenizer)", ""] + code_warning(groups, tok)
    drafts = sorted({r["draft"] for e in engines for r in groups[(tok, e)]})
    rows = []
    for e in engines:
        for d in drafts:
            recs = [r for r in groups[(tok, e)] if r["draft"] == d]
            cases = [(ok, v, r, i in r.get("errors", ())) for r in recs
                     for i, (ok, v) in enumerate(zip(
                         r["right"], r.get("valid") or [None] * len(r["right"]), strict=True))]
            n, good = len(cases), sum(1 for c in cases if c[0])
            local = [c for c in cases if not c[2]["needs_remote"]]
            gl = sum(1 for c in local if c[0])
            ran = [c for c in cases if c[2]["status"] == "ok"]
            exc = sum(1 for c in ran if c[3])
            fa = sum(1 for ok, v, _, x in ran if not ok and v is False and not x)
            fr = sum(1 for ok, v, _, x in ran if not ok and v and not x)
            ce = sum(1 for r in recs if r["status"] != "ok")
            rows.append([e, d, str(len(recs)), str(ce), f"{share(good, n)} ({good}/{n})",
                         f"{share(gl, len(local))} ({gl}/{len(local)})", str(len(ran)),
                         str(fa), str(fr), str(exc)])
    out += [table(["engine", "draft", "groups", "groups not compiled / timed out",
                   "cases right", "cases right, without remote-ref groups",
                   "cases run (compiled)", "false accepts", "false rejects",
                   "exceptions while matching"], rows), ""]
    out += ["A group that does not compile counts all its cases wrong; an engine that ignores a "
            "keyword still gets the cases right whose answer does not depend on it (often half). "
            "False accepts / rejects are over the cases of compiled groups.", ""]
    remote = sorted({r["id"] for e in engines for r in groups[(tok, e)] if r["needs_remote"]})
    if remote:
        out += [f"Groups needing remote documents ({len(remote)}; approximate detection): "
                + ", ".join(f"`{x}`" for x in remote[:40]) + (" ..." if len(remote) > 40 else ""),
                ""]
    for d in drafts:
        kws = sorted({r["keyword"] for e in engines for r in groups[(tok, e)] if r["draft"] == d})
        rows = []
        for kw in kws:
            row = [kw]
            for e in engines:
                recs = [r for r in groups[(tok, e)] if r["draft"] == d and r["keyword"] == kw]
                n = sum(len(r["right"]) for r in recs)
                row.append(f"{sum(sum(r['right']) for r in recs) / n:.2f}" if n else "-")
            rows.append(row)
        out += [f"Share of cases right per keyword file, {d}:", "", table(["keyword", *engines],
                                                                         rows), ""]
    out += top_errors(groups, tok, [e for e in engines if e.startswith("structgen")])
    return out


# ------------------------------------------------------------------------------- e2e, header


def e2e_section() -> list[str]:
    path = RESULTS / "e2e.jsonl"
    if not path.exists():
        return []
    recs = list(read_jsonl(path))
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by[r["mode"]].append(r)

    def med(rs: list[dict[str, Any]], key: str) -> float:
        vals = [r[key] for r in rs if r.get(key) is not None]
        return float(np.median(vals)) if vals else float("nan")

    base_ms = med(by.get("unconstrained-generate", []), "ms_per_token")
    loop_ms = med(by.get("unconstrained-loop", []), "ms_per_token")
    rows = []
    for mode, rs in by.items():
        ms = [r["ms_per_token"] for r in rs if r.get("ms_per_token") is not None]
        p50 = med(rs, "ms_per_token")
        ref = loop_ms if mode in ("structgen-awrs", "unconstrained-loop") else base_ms
        rows.append([
            mode, str(len(rs)), f"{p50:.1f}", f"{p50 / ref:.2f}x",
            f"{np.percentile(ms, 90):.1f}" if ms else "-",
            f"{sum(1 for r in rs if r.get('valid'))}/{len(rs)}",
            str(sum(1 for r in rs if r.get("hit_limit"))),
            str(sum(1 for r in rs if r.get("error"))),
            f"{med(rs, 'new_tokens'):.0f}", fmt_us(1e6 * med(rs, "compile_s")),
            f"{med(rs, 'checks_per_token'):.2f}" if mode == "structgen-awrs" else "",
        ])
    vocab = recs[0].get("vocab_size", "?") if recs else "?"
    errs = Counter(f"{r['mode']}: {r['error'][:150]}" for r in recs if r.get("error"))
    out = ["## End to end (SmolLM2-135M-Instruct, CPU, greedy, max_new_tokens=160)", "",
           table(["mode", "schemas", "ms/token p50", "vs unconstrained", "ms/token p90",
                  "valid (json + jsonschema)", "hit token limit", "errors", "new tokens p50",
                  "compile p50", "AWRS checks/token p50"], rows), "",
           "ms/token = wall time of the decoding call (compile excluded) / output tokens. "
           "`structgen-awrs` runs its own KV-cached loop, so it is compared with "
           "`unconstrained-loop`; the processors run inside `model.generate` and are compared "
           "with `unconstrained-generate`. Fast-forwarded (forced) tokens count as output "
           f"tokens. A full mask is one check per vocabulary entry ({vocab}).", ""]
    if errs:
        out += ["Errors:", ""] + [f"- {k} — {v}" for k, v in errs.most_common(8)] + [""]
    return out


def machine() -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return [f"- CPU: {cpu}, {os.cpu_count()} cores; {mem:.0f} GiB RAM; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}"]


def header() -> list[str]:
    out = ["# Benchmarks", "", "Generated by `python -m benchmarks.report` from "
           "`benchmarks/results/*.jsonl`. Times are wall-clock on a shared machine: read "
           "percentiles, not single values.", "", "### Machine", ""] + machine()
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=False).stdout.strip()
        out.append(f"- structgen HEAD when this report was written: {rev or '?'} (the "
                   "revision each run measured is in the commands below)")
    except OSError:
        pass
    out += ["", NOTES]
    info_path = RESULTS / "engines.json"
    if info_path.exists():
        out += ["", "### Engines", ""]
        for name, info in sorted(json.loads(info_path.read_text()).items()):
            out.append(f"- **{name}** {info.get('version', '?')}: {info.get('settings', '')}")
    runs = RESULTS / "runs.jsonl"
    if runs.exists():
        out += ["", "### Commands (as run; 1-min load average and structgen revision at start)",
                "", "```"]
        seen = set()
        for r in read_jsonl(runs):
            cmd = " ".join(r["argv"])
            if cmd not in seen:
                seen.add(cmd)
                load = r.get("loadavg")
                note = f"load {load[0]:.1f}" if load else ""
                if r.get("structgen_rev"):
                    note += f", structgen HEAD {r['structgen_rev']}"
                if r.get("structgen_code"):
                    frozen = " (frozen copy)" if r.get("structgen_src") else ""
                    note += f", source hash {r['structgen_code']}{frozen}"
                out.append(f"{cmd}    # {r.get('time', '')} {note}")
        out += ["```"]
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    args = p.parse_args(argv)
    # beside the report, where its relative links point (benchmarks/plots for the default)
    plots = Path(args.out).resolve().parent / "benchmarks" / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    lines = header()
    if SUMMARY.exists():  # after the title line, before the generated text
        lines[1:1] = ["", SUMMARY.read_text().strip()]
    mb, suite = load("maskbench"), load("suite")
    for tok in sorted({t for t, _ in mb}, key=lambda t: t != "smollm2"):
        lines += maskbench_section(mb, tok, plots)
    for tok in sorted({t for t, _ in suite}, key=lambda t: t != "smollm2"):
        lines += suite_section(suite, tok)
    lines += grammars.report_section()
    lines += e2e_section()
    lines += jsonschemabench.report_section(plots)
    for name in MODEL_SECTIONS:
        section = ROOT / "results" / name / f"{name}.md"
        if section.exists():
            lines += ["", section.read_text().strip(), ""]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
