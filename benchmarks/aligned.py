"""Grammar-aligned sampling benchmark: how close each sampler gets to the exact conditional.

For each grammar of ``aligned_world.CASES`` (small enough to enumerate), SmolLM2-135M-Instruct's
distribution conditioned on the grammar, pi(y) ∝ p(y·EOS)·1[y in L], is computed exactly by
enumerating every token sequence of the grammar (batched teacher forcing, pruning prefixes below
``min_prefix_prob``; the pruned mass is reported). Then each method draws a stream of samples:

    masked      locally masked decoding (the baseline), unweighted
    awrs        the same distribution via AWRS, unweighted
    masked+IS   masked samples weighted by Π Z_t (self-normalised importance sampling)
    smc         SMC, 32 particles per run, AWRS weights, resampling at ESS < 0.5
    imh         independent Metropolis-Hastings, masked proposals (every state kept)
    asap        ASAp, full masks at new trie nodes
    asap-awrs   ASAp composed with AWRS (no full masks except forced/cap states)
    cars        CARS over the trie, full masks at new nodes
    cars-awrs   CARS with single-token checks

and the distance of its empirical distribution (over strings; weighted where the method has
weights) to pi is measured after 100, 500 and 2,000 samples: KL(pi ‖ empirical) with add-½
smoothing, total variation, and the running mean of pi(y) over the samples (the "expected
likelihood" of the GAD paper, ideal Σ pi²). Cost: token positions fed to the model (a masked
sample of L tokens costs about L), model calls, and the samplers' own wall time. Budget-matched
comparison: each method's KL with the samples it draws within the positions masked decoding
spends on N samples.

The model is replayed from the enumeration's table (``aligned_world.ReplayLM``); a short live
run gives real wall times per sample.

    python -m benchmarks.aligned --out benchmarks/results/aligned
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

import structgen as sg
from benchmarks.aligned_world import CASES, Case, ReplayLM
from structgen.aligned import CARS, AlignedStats, ASAp, Draw, PathDecoder, PrefixTrie
from structgen.aligned.enumerate import ExactDistribution, enumerate_language
from structgen.aligned.imh import iter_imh
from structgen.aligned.metrics import empirical, kl_divergence, total_variation
from structgen.aligned.smc import AdaptiveAWRS, MaskedRows, run_particles
from structgen.sampling.warp import SamplingParams

METHODS = (
    "masked",
    "awrs",
    "masked+IS",
    "smc",
    "imh",
    "asap",
    "asap-awrs",
    "cars",
    "cars-awrs",
)
CHECKPOINTS = (100, 500, 2000)
BATCH = 32
PARAMS = SamplingParams()

# a stream: per sample (text, log_weight or None, cumulative positions, calls, sampler seconds)
Record = tuple[str, float | None, int, int, float]


# ---------------------------------------------------------------------- streams


def _batched(
    make: Callable[[], Iterator[list[Draw]]], stats: AlignedStats, live: ReplayLM, decode: Any
) -> Iterator[Record]:
    t0 = time.perf_counter()
    live_before = live.live_s
    for draws in make():
        elapsed = time.perf_counter() - t0 - (live.live_s - live_before)
        for d in draws:
            text = decode(d.tokens) if d.complete else None
            yield text, d.log_weight, stats.positions, stats.forward_passes, elapsed


def stream(method: str, lm: ReplayLM, compiled: Any, prompt: list[int], case: Case,
           n: int, seed: int, decode: Any) -> list[Record]:  # fmt: skip
    """``n`` samples of ``method`` with their cumulative costs."""
    gen = torch.Generator().manual_seed(seed)
    stats = AlignedStats()
    t_cap = case.max_tokens

    def particles(proposal: Any, size: int, threshold: float) -> Iterator[list[Draw]]:
        while True:
            run = run_particles(lm, compiled, prompt, size, params=PARAMS, max_tokens=t_cap,
                                generator=gen, proposal=proposal(), ess_threshold=threshold,
                                stats=stats)  # fmt: skip
            yield run.draws

    def chain() -> Iterator[list[Draw]]:
        it = iter_imh(lm, compiled, prompt, params=PARAMS, max_tokens=t_cap, generator=gen,
                      batch_size=BATCH, stats=stats)  # fmt: skip
        while True:
            yield [next(it)]

    def trie_method(cls: Any, check: str) -> Iterator[list[Draw]]:
        method = cls(PrefixTrie(compiled.eos_token_ids), check=check)
        decoder = PathDecoder(lm, prompt, PARAMS, stats)
        while True:
            yield [method.draw(decoder, compiled, t_cap, gen, stats)]

    makers: dict[str, Callable[[], Iterator[list[Draw]]]] = {
        "masked": lambda: particles(MaskedRows, BATCH, 0.0),
        "awrs": lambda: particles(AdaptiveAWRS, BATCH, 0.0),
        "smc": lambda: particles(AdaptiveAWRS, BATCH, 0.5),
        "imh": chain,
        "asap": lambda: trie_method(ASAp, "mask"),
        "asap-awrs": lambda: trie_method(ASAp, "awrs"),
        "cars": lambda: trie_method(CARS, "mask"),
        "cars-awrs": lambda: trie_method(CARS, "awrs"),
    }
    out: list[Record] = []
    for record in _batched(makers[method], stats, lm, decode):
        out.append(record)
        if len(out) == n:
            break
    return out


# ---------------------------------------------------------------------- metrics


def dist_at(records: list[Record], k: int, weighted: bool) -> dict[Any, float]:
    texts = [r[0] for r in records[:k]]
    if not weighted:
        return empirical(texts)
    lw = [r[1] if r[1] is not None else -math.inf for r in records[:k]]
    return empirical(texts, lw)


def expected_likelihood(records: list[Record], target: dict[str, float],
                        weighted: bool) -> list[float]:  # fmt: skip
    """Running (weighted) mean of pi(y_i)."""
    vals = np.array([target.get(r[0], 0.0) if r[0] is not None else 0.0 for r in records])
    if weighted:
        lw = np.array([r[1] if r[1] is not None else -math.inf for r in records])
        # running self-normalised mean; one common scale (the largest weight) for all prefixes
        w = np.exp(lw - lw.max()) if np.isfinite(lw).any() else np.zeros_like(lw)
        num, den = np.cumsum(w * vals), np.cumsum(w)
        return list(np.where(den > 0, num / np.maximum(den, 1e-300), 0.0))
    return list(np.cumsum(vals) / np.arange(1, len(vals) + 1))


def samples_within(records: list[Record], positions: int) -> int:
    """How many samples were complete within ``positions`` token positions."""
    k = 0
    for r in records:
        if r[2] > positions:
            break
        k += 1
    return k


def summarize(
    case: Case,
    exact: ExactDistribution,
    target: dict[str, float],
    lcd: dict[str, float],
    streams: dict[str, list[Record]],
) -> dict[str, Any]:
    weighted = {"masked+IS", "smc"}
    rows: dict[str, Any] = {}
    for name, recs in streams.items():
        w = name in weighted
        row: dict[str, Any] = {"n": len(recs)}
        for k in CHECKPOINTS:
            if k > len(recs):
                continue
            d = dist_at(recs, k, w)
            row[f"kl@{k}"] = kl_divergence(target, d, n=k)
            row[f"tv@{k}"] = total_variation(target, d)
        last = recs[-1]
        row["positions_per_sample"] = last[2] / len(recs)
        row["calls_per_sample"] = last[3] / len(recs)
        row["sampler_ms_per_sample"] = 1000 * last[4] / len(recs)
        row["complete"] = sum(r[0] is not None for r in recs) / len(recs)
        row["expected_likelihood"] = expected_likelihood(recs, target, w)[-1]
        rows[name] = row
    budget: dict[str, Any] = {}
    masked = streams["masked"]
    for k in CHECKPOINTS:
        if k > len(masked):
            continue
        spend = masked[k - 1][2]
        entry: dict[str, Any] = {"positions": spend}
        for name, recs in streams.items():
            got = samples_within(recs, spend)
            entry[name] = {
                "samples": got,
                "kl": kl_divergence(target, dist_at(recs, got, name in weighted), n=got)
                if got
                else None,
            }
        budget[str(k)] = entry
    pi = np.array(list(target.values()))
    return {
        "case": {
            "name": case.name,
            "note": case.note,
            "constraint": case.source,
            "question": case.question,
            "max_tokens": case.max_tokens,
            "min_prefix_prob": case.min_prefix_prob,
        },  # fmt: skip
        "strings": len(target),
        "sequences": len(exact.sequences),
        "enumeration_nodes": exact.nodes,
        "log_z": exact.log_z,
        "pruned_mass_bound": exact.pruned_mass,
        "pruned_relative": exact.pruned_mass / math.exp(exact.log_z),
        "lcd_kl": kl_divergence(target, lcd),
        "lcd_tv": total_variation(target, lcd),
        "lcd_mass_enumerated": float(sum(lcd.values())),
        "ideal_expected_likelihood": float((pi * pi).sum()),
        "methods": rows,
        "budget": budget,
    }


# ---------------------------------------------------------------------- plots, report


def plot(case_name: str, target: dict[str, float], lcd_kl: float,
         streams: dict[str, list[Record]], out: Path) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weighted = {"masked+IS", "smc"}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    grid = sorted({int(x) for x in np.geomspace(10, 2000, 25)})
    for name, recs in streams.items():
        ks = [k for k in grid if k <= len(recs)]
        kls = [kl_divergence(target, dist_at(recs, k, name in weighted), n=k) for k in ks]
        style = "--" if name in ("masked", "awrs") else "-"
        axes[0].plot(ks, kls, style, label=name)
        axes[1].plot([max(recs[k - 1][2], 1) for k in ks], kls, style, label=name)
        el = expected_likelihood(recs, target, name in weighted)
        axes[2].plot(range(1, len(el) + 1), el, style, label=name)
    for ax in axes[:2]:
        ax.axhline(lcd_kl, color="grey", lw=0.8, ls=":", label="KL(pi‖masked), exact")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("KL(pi ‖ empirical), add-½")
    axes[0].set_xlabel("samples")
    axes[1].set_xlabel("token positions fed to the model (cumulative)")
    pi = np.array(list(target.values()))
    axes[2].axhline(float((pi * pi).sum()), color="k", lw=0.8, ls=":", label="ideal Σ pi²")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("samples")
    axes[2].set_ylabel("running mean of pi(sample)")
    axes[2].legend(fontsize=7, loc="best")
    fig.suptitle(f"{case_name}: distance to the exact conditional (SmolLM2-135M-Instruct)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def report(results: dict[str, Any], plot_dir: str) -> str:
    lines = ["## Grammar-aligned sampling (SmolLM2-135M-Instruct, exact conditionals)", ""]
    meta = results.get("meta") or {
        "command": "(partial run)",
        "date": "",
        "machine": "",
        "torch": torch.__version__,
        "wall_s": 0.0,
        "samples": max(CHECKPOINTS),
    }
    lines += [
        f"Command: `{meta['command']}` ({meta['date']}, {meta['machine']}, torch "
        f"{meta['torch']}; {meta['wall_s'] / 60:.0f} min). Temperature 1, no top-k/top-p; "
        "KL(pi ‖ empirical) over strings with add-½ smoothing (so even an exact sampler shows "
        "a floor of roughly (K−1)/2N); TV unsmoothed; SMC and masked+IS weighted. Model compute "
        "is counted in *token positions* fed to the model (a masked sample of L tokens costs "
        "about L+1; batching does not reduce it); `calls` are forward passes (a batch is one).",
        "",
        "| grammar | strings (sequences) | P(L) | masked: KL(pi‖q), TV | enumeration nodes, "
        "pruned mass / P(L) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["grammars"].items():
        lines.append(
            f"| {name}: {r['case']['note']} | {r['strings']} ({r['sequences']}) | "
            f"{math.exp(r['log_z']):.2e} | {r['lcd_kl']:.3f}, {r['lcd_tv']:.3f} | "
            f"{r['enumeration_nodes']}, {r['pruned_relative']:.1e} |"
        )
    lines += ["", "### KL to the exact conditional by number of samples", ""]
    header = "| method | " + " | ".join(
        f"{g} @{k}" for g in results["grammars"] for k in CHECKPOINTS
    )
    lines += [header + " |", "|---" * (1 + len(results["grammars"]) * len(CHECKPOINTS)) + "|"]
    for m in METHODS:
        cells = []
        for r in results["grammars"].values():
            row = r["methods"].get(m, {})
            cells += [fmt(row.get(f"kl@{k}")) for k in CHECKPOINTS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "### Cost per sample (over each method's whole stream) and TV at the end", ""]
    lines += ["| method | " + " | ".join(results["grammars"]) + " |",
              "|---" * (1 + len(results["grammars"])) + "|"]  # fmt: skip
    last_tv = f"tv@{max(k for k in CHECKPOINTS if k <= meta['samples'])}"
    for m in METHODS:
        cells = []
        for r in results["grammars"].values():
            row = r["methods"].get(m)
            if row is None:
                cells.append("–")
                continue
            cells.append(
                f"{row['positions_per_sample']:.1f} pos, {row['calls_per_sample']:.2f} calls, "
                f"{row['sampler_ms_per_sample']:.1f} ms; TV {fmt(row.get(last_tv), 2)}"
            )
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "`ms` is the samplers' own time per sample (model replayed from the enumeration table, "
        "so model compute is excluded; it is the `pos` column).",
        "",
        "### Same model compute as masked decoding",
        "",
        "Each method's KL with the samples it completed within the token positions masked "
        "decoding spent on N samples (its sample count in brackets; streams stop at "
        f"{meta['samples']} samples, so the trie methods, which need far fewer positions, are "
        "compared with no more samples than masked). Target: the best method's KL at most 1/5 "
        "of masked's (masked+IS counts: it is masked decoding's own samples, reweighted).",
        "",
        "| grammar | N | masked KL (samples) | best method (samples): KL | ratio | ≤ 1/5? | "
        "best without a trie (samples): KL | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    trie_methods = {"asap", "asap-awrs", "cars", "cars-awrs"}
    for name, r in results["grammars"].items():
        for k in CHECKPOINTS:
            entry = r["budget"].get(str(k))
            if entry is None:
                continue
            base = entry["masked"]["kl"]
            cands = [
                (v["kl"], m, v["samples"])
                for m, v in entry.items()
                if m not in ("positions", "masked", "awrs") and v["kl"] is not None
            ]
            best = min(cands)
            plain = min(c for c in cands if c[1] not in trie_methods)
            ratio = best[0] / base if base else float("nan")
            lines.append(
                f"| {name} | {k} | {base:.3f} ({entry['masked']['samples']}) | "
                f"{best[1]} ({best[2]}): {best[0]:.4f} | {ratio:.3f} | "
                f"{'yes' if ratio <= 0.2 else 'no'} | {plain[1]} ({plain[2]}): {plain[0]:.4f} | "
                f"{plain[0] / base:.3f} |"
            )
    if results.get("live"):
        live = results["live"]
        lines += [
            "",
            f"### Live wall time per sample ({live['grammar']}, {live['samples']} samples, "
            "real SmolLM2 forward passes on this machine's 2 shared CPU cores)",
            "",
            "| method | s/sample | calls/sample | positions/sample |",
            "|---|---|---|---|",
        ]
        for m, row in live["methods"].items():
            lines.append(
                f"| {m} | {row['s_per_sample']:.2f} | {row['calls_per_sample']:.2f} | "
                f"{row['positions_per_sample']:.1f} |"
            )
    lines += ["", "Plots (KL by samples, KL by model compute, expected likelihood):", ""]
    for name in results["grammars"]:
        lines.append(f"![{name}]({plot_dir}/aligned_{name}.png)")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- main


def live_timing(model: Any, tokenizer: Any, case: Case, samples: int, seed: int) -> dict[str, Any]:
    """Wall time per sample with real forward passes (fresh tries, so the learning is paid)."""
    from structgen.aligned import sample_tokens
    from structgen.integrations.generate import prompt_ids, vocabulary_for
    from structgen.integrations.lm import CausalLM

    vocab = vocabulary_for(tokenizer, model)
    compiled = sg.compile(case.grammar(), vocab)
    ids = prompt_ids(tokenizer, case.messages())
    rows = {}
    settings: tuple[tuple[str, dict[str, Any]], ...] = (
        ("masked", {"sampler": "masked"}),
        ("smc", {"sampler": "smc", "particles": samples}),
        ("imh", {"sampler": "imh"}),
        ("asap", {"sampler": "asap"}),
        ("cars", {"sampler": "cars"}),
        ("cars-awrs", {"sampler": "cars", "check": "awrs"}),
    )
    for m, kw in settings:
        lm = CausalLM(model)
        trie = PrefixTrie(compiled.eos_token_ids) if m.startswith(("asap", "cars")) else None
        t0 = time.perf_counter()
        out = sample_tokens(
            lm,
            compiled,
            ids,
            samples,
            params=PARAMS,
            max_new_tokens=case.max_tokens,
            generator=torch.Generator().manual_seed(seed),
            trie=trie,
            batch_size=samples,
            **kw,
        )
        wall = time.perf_counter() - t0
        rows[m] = {"s_per_sample": wall / samples,
                   "calls_per_sample": out.stats.forward_passes / samples,
                   "positions_per_sample": out.stats.positions / samples}  # fmt: skip
    return {"grammar": case.name, "samples": samples, "methods": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/aligned")
    parser.add_argument("--samples", type=int, default=max(CHECKPOINTS))
    parser.add_argument("--grammars", nargs="*", default=[c.name for c in CASES])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--live-samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default="benchmarks/plots")
    parser.add_argument(
        "--report-only", action="store_true", help="re-render aligned.md from aligned.json"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        saved = json.loads((Path(args.out) / "aligned.json").read_text())
        (Path(args.out) / "aligned.md").write_text(report(saved, args.plots))
        return
    torch.set_num_threads(1)  # tiny ops dominate; threads only add sync overhead here
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = Path(args.plots)
    plots.mkdir(parents=True, exist_ok=True)
    from structgen.integrations.generate import prompt_ids, vocabulary_for
    from structgen.integrations.lm import CausalLM
    from structgen.models import load_default_model

    t_start = time.perf_counter()
    model, tokenizer = load_default_model()
    vocab = vocabulary_for(tokenizer, model)
    live = CausalLM(model)
    results: dict[str, Any] = {"grammars": {}}
    for case in CASES:
        if case.name not in args.grammars:
            continue
        compiled = sg.compile(case.grammar(), vocab)
        prompt = prompt_ids(tokenizer, case.messages())
        t0 = time.perf_counter()
        torch.set_num_threads(2)
        exact = enumerate_language(live, compiled, prompt, max_tokens=case.max_tokens,
                                   min_prefix_prob=case.min_prefix_prob, keep_logits=True,
                                   batch_size=64)  # fmt: skip
        torch.set_num_threads(1)
        enum_s = time.perf_counter() - t0

        def decode(tokens: Any) -> str:
            return vocab.decode(tokens).decode("utf-8", errors="replace")

        target = exact.by_key(exact.target(), decode)
        lcd = exact.by_key(exact.lcd(), decode)
        assert exact.logits is not None
        replay = ReplayLM(live, tuple(prompt), exact.logits)
        streams: dict[str, list[Record]] = {}
        for i, m in enumerate(args.methods):
            if m == "masked+IS":
                continue
            t1 = time.perf_counter()
            streams[m] = stream(m, replay, compiled, prompt, case, args.samples,
                                args.seed + 1000 * i, decode)  # fmt: skip
            print(f"{case.name:14s} {m:10s} {time.perf_counter() - t1:7.1f}s "
                  f"(live misses so far: {replay.live_rows} rows)", flush=True)  # fmt: skip
        if "masked" in streams and "masked+IS" in args.methods:
            streams["masked+IS"] = streams["masked"]  # same draws, weighted
        summary = summarize(case, exact, target, lcd, streams)
        summary["enumeration_s"] = enum_s
        summary["live_misses"] = {"rows": replay.live_rows, "calls": replay.live_calls,
                                  "seconds": replay.live_s}  # fmt: skip
        results["grammars"][case.name] = summary
        plot(case.name, target, summary["lcd_kl"], streams, plots / f"aligned_{case.name}.png")
        exact.logits = None
        (out / "aligned.json").write_text(json.dumps(results, indent=1, default=str))
    if args.live_samples > 0:
        case = next(c for c in CASES if c.name in args.grammars)
        torch.set_num_threads(2)
        results["live"] = live_timing(model, tokenizer, case, args.live_samples, args.seed)
    results["meta"] = {
        "command": "python -m benchmarks.aligned "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "wall_s": time.perf_counter() - t_start,
        "samples": args.samples,
    }
    (out / "aligned.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "aligned.md").write_text(report(results, str(plots)))
    print(f"wrote {out / 'aligned.json'}, {out / 'aligned.md'}, plots in {plots}")


if __name__ == "__main__":
    main()
