"""Helpers of the report: loading results, percentiles, formatting, tables, plots."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import RESULTS, read_jsonl

ORDER = ("structgen", "structgen-schema-order", "structgen-cold", "structgen-declared",
         "llguidance", "xgrammar", "xgrammar-compliant", "outlines")
Groups = dict[tuple[str, str], list[dict[str, Any]]]


def load(prefix: str) -> Groups:
    """Records of ``results/<prefix>-*.jsonl`` grouped by (tokenizer, engine); last one wins."""
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(RESULTS.glob(f"{prefix}-*.jsonl")):
        for rec in read_jsonl(path):
            by_key[(rec["tokenizer"], rec["engine"])][rec["id"]] = rec
    return {k: list(v.values()) for k, v in by_key.items()}


def engines_of(groups: Groups, tok: str) -> list[str]:
    names = {e for t, e in groups if t == tok}
    return sorted(names, key=lambda e: (ORDER.index(e) if e in ORDER else 99, e))


def pct(values: Any, qs: tuple[float, ...]) -> list[float]:
    arr = np.asarray(values, dtype=np.float64)
    return [float(np.percentile(arr, q)) if arr.size else float("nan") for q in qs]


def fmt_us(x: float) -> str:
    if x != x:  # nan
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} s"
    if x >= 1e4:
        return f"{x / 1e3:.0f} ms"
    if x >= 1e3:
        return f"{x / 1e3:.1f} ms"
    return f"{x:.0f} us"


def share(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}%" if d else "-"


def norm_error(msg: str) -> str:
    """An error message without locations, hints and quoted values, for counting."""
    msg = msg.strip().split("\n")[0].split("; hint:")[0].split(" while processing ")[0]
    msg = re.sub(r" \(at [^)]*\)", "", msg)
    msg = re.sub(r"\{.*\}", "{...}", msg, flags=re.S)
    msg = re.sub(r"\d+", "N", msg)
    return msg.strip()[:160]


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def top_errors(groups: Groups, tok: str, engines: list[str], n: int = 12) -> list[str]:
    out = []
    for e in engines:
        c: Counter[str] = Counter()
        for r in groups[(tok, e)]:
            if r["status"] == "ok":
                for f in r.get("fails", ()):
                    if "error_type" in f:  # an exception while matching an instance
                        c[f"EXCEPTION while matching {f['error_type']} @ "
                          f"{f.get('error_where', '')}: {norm_error(f['error'])}"] += 1
                continue
            head = r.get("error_type") or r["status"]
            if r.get("unexpected"):
                head = f"UNEXPECTED {head} @ {r.get('error_where', '')}"
            c[f"{head}: {norm_error(r.get('error', ''))}"] += 1
        if c:
            out += [f"Top compile errors / failures, {e}:", ""]
            out += [f"- {k} — **{v}**" for k, v in c.most_common(n)] + [""]
    return out


def plot_maskbench(groups: Groups, tok: str, engines: list[str], stats: dict[str, Any],
                   plots: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suffix = "" if tok == "smollm2" else f"-{tok}"
    for key, title, name in (("ttfm", "time to first mask", "ttfm_cdf"),
                             ("masks", "full next-token mask", "mask_cdf")):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for e in engines:
            v = np.sort(np.asarray(stats[e][key], dtype=np.float64))
            if v.size:
                ax.plot(np.maximum(v, 0.5), np.arange(1, v.size + 1) / v.size, label=e)
        ax.set_xscale("log")
        ax.set_xlabel("microseconds (log)")
        ax.set_ylabel("fraction")
        ax.set_title(f"MaskBench {title} CDF ({tok})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(plots / f"{name}{suffix}.png", dpi=110)
        plt.close(fig)
    splits = sorted({r["split"] for e in engines for r in groups[(tok, e)]})
    fig, ax = plt.subplots(figsize=(min(13, max(7, 0.25 * len(splits) * len(engines))), 4.5))
    width = 0.8 / len(engines)
    for k, e in enumerate(engines):
        vals = []
        for sp in splits:
            recs = [r for r in groups[(tok, e)] if r["split"] == sp]
            good = sum(1 for r in recs if r["status"] == "ok" and r["tests_right"] == r["n_tests"])
            vals.append(100 * good / len(recs) if recs else 0)
        ax.bar(np.arange(len(splits)) + k * width, vals, width, label=e)
    ax.set_xticks(np.arange(len(splits)) + 0.4 - width / 2, splits, rotation=45, ha="right")
    ax.set_ylabel("% files all right")
    ax.set_title(f"MaskBench share of files all right per split ({tok})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / f"maskbench_splits{suffix}.png", dpi=110)
    plt.close(fig)
