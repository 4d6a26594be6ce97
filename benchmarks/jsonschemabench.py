"""JSONSchemaBench end to end: real generation with SmolLM2-135M-Instruct on CPU, per split.

For a seeded sample of ``--per-split`` schemas from each JSONSchemaBench split (the file-name
prefix of the MaskBench files), every engine asks the model for an instance of the schema and
decodes greedily (at most ``--max-new-tokens``). The prompt template is fixed:

    system: "You are a helpful assistant that outputs JSON. Reply with a single JSON value that
             is valid under the JSON Schema given by the user, and nothing else."
    user:   "Generate a JSON value that conforms to this JSON Schema:\\n<json.dumps(schema)>"

rendered with the model's chat template (generation prompt added). Engines:

    structgen            ``structgen.generate`` (AWRS sampler at temperature 0, fast-forward on)
    unconstrained        plain ``model.generate``, no constraint
    unconstrained-loop   the minimal KV-cached greedy loop (the shape of ``structgen.generate``)
    llguidance/xgrammar  their logits processors inside ``model.generate`` (where installed)

Measured per schema and engine, as the JSONSchemaBench paper (Geng et al., 2025) reports them:

- coverage: the schema compiled (a ``StructgenError`` or a peer's compile error, or running out
  of time while compiling, means not covered; the error is recorded). The unconstrained model
  covers every schema.
- compliance: the output parses as JSON and ``jsonschema`` validates it, format checking on.
  For the unconstrained engines the check runs on the raw text after stripping a Markdown code
  fence (```json ... ```) if the model wrote one. Over all sampled schemas this is the paper's
  empirical coverage; over the covered ones, its compliance rate.
- compile time: schema to compiled grammar (structgen: ``Grammar.from_json_schema`` +
  ``compile`` with its cache cleared; peers: building the processor), reported apart. Engines
  that build lazily (structgen's lazy DFAs, llguidance's parser) do part of that work during
  decoding, where it counts in TTFT / TPOT instead.
- TTFT: from the start of the decoding call (compile excluded) to the first token chosen after
  the prompt's forward pass (prefill + first decision). Tokens structgen fast-forwards before
  that count as output tokens but do not shorten TTFT.
- TPOT: (end of the decoding call - first token) / (output tokens - 1), for >= 2 tokens.

Output: ``RESULTS/jsonschemabench-<engine>.jsonl``, one line per schema; schemas already there
are skipped (resumable). Every schema and engine runs under a ``--timeout-s`` limit (SIGALRM).

    python -m benchmarks.jsonschemabench --per-split 20
    python -m benchmarks.jsonschemabench --per-split 1 --split Glaiveai2K,Github_easy
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.e2e_common import check, greedy_loop, load_peers, make_processor
from benchmarks.harness import (
    RESULTS,
    SoftTimeout,
    _on_alarm,
    code_hash,
    done_ids,
    error_record,
    log_run,
    read_jsonl,
    save_engine_info,
)
from benchmarks.maskbench import DEFAULT_DATA, split_of

ENGINES = ("structgen", "unconstrained", "unconstrained-loop", "llguidance", "xgrammar")
PROCESSORS = {"llguidance": "llguidance-processor", "xgrammar": "xgrammar-processor"}
SYSTEM = (
    "You are a helpful assistant that outputs JSON. Reply with a single JSON value that is "
    "valid under the JSON Schema given by the user, and nothing else."
)
USER = "Generate a JSON value that conforms to this JSON Schema:\n{schema}"
WARMUP_SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)(?:```|$)", re.S)


def prompt_for(schema: Any) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER.format(schema=json.dumps(schema))},
    ]


def strip_fence(text: str) -> str:
    """The content of the first Markdown code fence in ``text``, else ``text`` (stripped)."""
    m = FENCE.search(text)
    return (m.group(1) if m else text).strip()


def out_path(engine: str) -> Path:
    return RESULTS / f"jsonschemabench-{engine}.jsonl"


def select_files(data: str, splits: set[str], per_split: int, seed: int) -> list[Path]:
    """``per_split`` files of each split (all with 0), sampled with a seed per split, so the
    sample of one split does not depend on which other splits are selected."""
    by: dict[str, list[Path]] = defaultdict(list)
    for f in sorted(Path(data).glob("*.json")):
        by[split_of(f.name)].append(f)
    out: list[Path] = []
    for sp in sorted(by):
        if splits and sp not in splits:
            continue
        files = by[sp]
        if per_split:
            files = sorted(random.Random(f"{seed}:{sp}").sample(files, min(per_split, len(files))))
        out += files
    return out


class Clock:
    """Timestamps of the chosen tokens: ``tick`` from a loop, or ``put`` as a transformers
    streamer (whose first ``put`` is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def tick(self) -> None:
        self.times.append(time.perf_counter())

    def put(self, value: Any) -> None:
        if self._prompt_seen:
            self.tick()
        self._prompt_seen = True

    def end(self) -> None:
        pass


class TimedSampler:
    """A structgen sampler that ticks a clock after each token it picks."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self.inner, self.clock = inner, clock

    @property
    def stats(self) -> Any:
        return self.inner.stats

    def sample(self, logits: Any, matcher: Any, generator: Any) -> Any:
        out = self.inner.sample(logits, matcher, generator)
        self.clock.tick()
        return out


class Context:
    """The model, tokenizer, vocabulary and peers, loaded once."""

    def __init__(self, engines: list[str], threads: int) -> None:
        import torch

        from structgen.integrations.generate import vocabulary_for
        from structgen.models import load_default_model

        torch.set_num_threads(threads)
        self.model, self.tok = load_default_model()
        self.model.eval()
        self.vocab = vocabulary_for(self.tok, self.model)
        self.eos = sorted(self.vocab.eos_token_ids)
        self.peers = load_peers(
            self.tok, self.vocab, [PROCESSORS[e] for e in engines if e in PROCESSORS]
        )


def run_one(
    engine: str, ctx: Context, schema: Any, ids: list[int], max_new: int, rec: dict[str, Any]
) -> None:
    """Compile and generate; fills ``rec`` (``rec["phase"]`` says how far it got)."""
    import torch

    import structgen as sg

    clock = Clock()
    perf = time.perf_counter
    rec["phase"] = "compile"
    if engine == "structgen":
        from structgen.compiler import clear_cache
        from structgen.sampling.awrs import AWRS
        from structgen.sampling.warp import SamplingParams

        clear_cache()  # a cold compile every time
        t = perf()
        compiled = sg.compile(sg.Grammar.from_json_schema(schema), ctx.vocab)
        rec["compile_s"] = perf() - t
        rec["phase"] = "generate"
        sampler = TimedSampler(AWRS(SamplingParams(temperature=0.0)), clock)
        t0 = perf()
        res = sg.generate(
            ctx.model,
            ctx.tok,
            prompt_for(schema),
            grammar=compiled,
            sampler=sampler,
            max_new_tokens=max_new,
            temperature=0.0,
        )
        t_end = perf()
        t0 += res.stats.compile_s  # generate's own set-up (prompt template), not decoding
        text, n = res.text, res.stats.new_tokens
        complete, reason = res.complete, res.reason
        rec.update(
            forced_tokens=res.stats.forced_tokens,
            checks_per_token=res.stats.constraint_checks / max(n, 1),
            full_masks=res.stats.full_masks,
        )
    elif engine == "unconstrained-loop":
        rec["phase"] = "generate"
        t0 = perf()
        out_ids = greedy_loop(ctx.model, ids, ctx.eos, max_new, clock.tick)
        t_end = perf()
        text, n = ctx.tok.decode(out_ids), len(out_ids)
        complete = len(clock.times) > n  # the last tick was EOS
        reason = "eos" if complete else "max_new_tokens"
    else:
        procs: list[Any] = []
        if engine in PROCESSORS:
            t = perf()
            procs = [make_processor(PROCESSORS[engine], schema, ctx.vocab, ctx.peers)]
            rec["compile_s"] = perf() - t
        rec["phase"] = "generate"
        inputs = torch.tensor([ids])
        t0 = perf()
        with torch.inference_mode():
            out = ctx.model.generate(
                inputs,
                logits_processor=procs,
                streamer=clock,
                max_new_tokens=max_new,
                do_sample=False,
                eos_token_id=ctx.eos,
                pad_token_id=ctx.eos[0],
                attention_mask=torch.ones_like(inputs),
            )
        t_end = perf()
        gen = [int(t) for t in out[0, len(ids) :]]
        stop = next((i for i, t in enumerate(gen) if t in ctx.eos), None)
        complete = stop is not None
        reason = "eos" if complete else "max_new_tokens"
        new = gen[:stop] if complete else gen
        text, n = ctx.tok.decode(new), len(new)
    rec["phase"] = "check"
    first = clock.times[0] if clock.times else t_end
    judged = strip_fence(text) if engine.startswith("unconstrained") else text
    rec.update(
        status="ok",
        new_tokens=n,
        complete=complete,
        reason=reason,
        hit_limit=reason == "max_new_tokens",
        ttft_s=first - t0,
        tpot_s=(t_end - first) / (n - 1) if n >= 2 else None,
        decode_s=t_end - t0,
        parses=check(judged, True),
        compliant=check(judged, schema, formats=True),
        text=text[:2000],
    )


def record(
    engine: str, ctx: Context, path: Path, schema: Any, ids: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    from structgen.errors import StructgenError

    rec: dict[str, Any] = {}
    signal.setitimer(signal.ITIMER_REAL, args.timeout_s)
    try:
        run_one(engine, ctx, schema, ids, args.max_new_tokens, rec)
    except SoftTimeout:
        rec.update(
            status="timeout",
            error=f"over {args.timeout_s:g} s while in {rec.get('phase', 'compile')}",
        )
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        compiling = rec.get("phase", "compile") == "compile"
        expected = isinstance(exc, StructgenError) or engine != "structgen"
        rec.update(
            status="compile_error" if compiling else "error",
            unexpected=not (compiling and expected),
            **error_record(exc),
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    covered = engine.startswith("unconstrained") or rec.get("phase") not in (None, "compile")
    rec.setdefault("compliant", False)
    return {
        "id": path.name,
        "split": split_of(path.name),
        "engine": engine,
        "model": "smollm2-135m-instruct",
        "covered": covered,
        "max_new_tokens": args.max_new_tokens,
        "prompt_tokens": len(ids),
        **rec,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder of MaskBench json files")
    p.add_argument("--per-split", type=int, default=20, help="schemas per split (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="", help="only these splits (comma-separated)")
    p.add_argument(
        "--engines",
        default="structgen,unconstrained",
        help=f"comma-separated, of {', '.join(ENGINES)}",
    )
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--timeout-s", type=float, default=120.0, help="per schema and engine")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        p.error(f"unknown engines {unknown}; known: {', '.join(ENGINES)}")
    log_run(
        "jsonschemabench",
        [
            "python",
            "-m",
            "benchmarks.jsonschemabench",
            *(argv if argv is not None else sys.argv[1:]),
        ],
    )
    files = select_files(
        args.data, {s for s in args.split.split(",") if s}, args.per_split, args.seed
    )
    done = {e: done_ids(out_path(e)) for e in engines}
    todo = [f for f in files if any(f.name not in done[e] for e in engines)]
    print(
        f"[jsonschemabench] {len(files)} schemas, {len(todo)} with work left; engines {engines}",
        file=sys.stderr,
    )
    if not todo:
        return 0
    from tqdm import tqdm

    from benchmarks.engines import _version
    from structgen.integrations.generate import prompt_ids

    signal.signal(signal.SIGALRM, _on_alarm)
    try:
        ctx = Context(engines, args.threads)
    except ImportError as exc:  # a peer library that is not installed
        print(f"[jsonschemabench] cannot start: {exc}", file=sys.stderr)
        return 1
    for name in PROCESSORS:
        if name in engines:
            save_engine_info(
                f"{name} (e2e)",
                "smollm2",
                {
                    "version": _version(name),
                    "settings": "default JSON options, HF logits processor",
                },
            )
    code = code_hash()
    warm_ids = prompt_ids(ctx.tok, prompt_for(WARMUP_SCHEMA))
    for engine in engines:  # warm-up (first calls are slow), not recorded
        warm_args = argparse.Namespace(**{**vars(args), "max_new_tokens": 8})
        record(engine, ctx, Path("warmup.json"), WARMUP_SCHEMA, warm_ids, warm_args)
    outs = {e: out_path(e).open("a") for e in engines}
    counts: Counter[str] = Counter()
    try:
        bar = tqdm(todo, desc="jsonschemabench", unit="schema", dynamic_ncols=True)
        for path in bar:
            schema = json.loads(path.read_text())["schema"]
            ids = prompt_ids(ctx.tok, prompt_for(schema))
            for engine in engines:
                if path.name in done[engine]:
                    continue
                rec = record(engine, ctx, path, schema, ids, args)
                rec["structgen_code"] = code
                outs[engine].write(json.dumps(rec) + "\n")
                outs[engine].flush()
                counts[f"{engine} ok"] += bool(rec["compliant"])
                bar.set_postfix(counts, refresh=False)
    finally:
        for f in outs.values():
            f.close()
    print(f"[jsonschemabench] compliant outputs: {dict(counts)}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------ report


def load_results() -> dict[str, list[dict[str, Any]]]:
    """Records per engine (the last one per id wins)."""
    by: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(RESULTS.glob("jsonschemabench-*.jsonl")):
        for rec in read_jsonl(path):
            by[rec["engine"]][rec["id"]] = rec
    order = {e: i for i, e in enumerate(ENGINES)}
    return {e: list(by[e].values()) for e in sorted(by, key=lambda e: (order.get(e, 99), e))}


def group_row(recs: list[dict[str, Any]], unconstrained: bool) -> list[str]:
    from benchmarks.report_util import fmt_us, pct, share

    n = len(recs)
    cov = [r for r in recs if r["covered"]]
    ok = sum(1 for r in recs if r["compliant"])
    comp = [1e6 * r["compile_s"] for r in cov if r.get("compile_s") is not None]
    ttft = [1e6 * r["ttft_s"] for r in recs if r.get("ttft_s") is not None]
    tpot = [1e6 * r["tpot_s"] for r in recs if r.get("tpot_s") is not None]
    tp = pct(tpot, (50, 90))
    return [
        str(n),
        "-" if unconstrained else f"{share(len(cov), n)} ({len(cov)})",
        f"{share(ok, n)} ({ok})",
        "-" if unconstrained else share(ok, len(cov)),
        fmt_us(pct(comp, (50,))[0]),
        fmt_us(pct(ttft, (50,))[0]),
        fmt_us(tp[0]),
        fmt_us(tp[1]),
        str(sum(1 for r in recs if r["status"] == "timeout")),
        str(sum(1 for r in recs if r.get("hit_limit"))),
    ]


def report_section(plots: Path) -> list[str]:
    """The BENCHMARKS.md section (and ``plots/jsonschemabench_splits.png``)."""
    from benchmarks.report_util import norm_error, table

    by = load_results()
    if not by:
        return []
    head = [
        "schemas",
        "coverage",
        "compliance (all)",
        "compliance (covered)",
        "compile p50",
        "TTFT p50",
        "TPOT p50",
        "TPOT p90",
        "timeouts",
        "hit token limit",
    ]
    all_recs = [r for recs in by.values() for r in recs]
    max_new = sorted({r.get("max_new_tokens") for r in all_recs}, key=str)
    sizes = Counter(r["split"] for r in by[next(iter(by))])
    rows = [[e, *group_row(recs, e.startswith("unconstrained"))] for e, recs in by.items()]
    out = [
        "## JSONSchemaBench end to end (SmolLM2, CPU)",
        "",
        f"SmolLM2-135M-Instruct, greedy, max_new_tokens={'/'.join(map(str, max_new))}, a "
        f"seeded sample of the MaskBench files per split ({len(sizes)} splits, "
        f"{min(sizes.values())}-{max(sizes.values())} schemas each); prompt template, "
        "engines and definitions in `benchmarks/jsonschemabench.py`. Coverage: the schema "
        "compiled; compliance: the output parses and `jsonschema` validates it (format "
        "checking on; the unconstrained model's output after stripping a code fence), over "
        "all sampled schemas (the paper's empirical coverage) and over the covered ones (its "
        "compliance rate). Compile time is apart from TTFT (prefill + first token) and TPOT "
        "(per output token after the first).",
        "",
        table(["engine", *head], rows),
        "",
    ]
    rows = []
    for sp in sorted({r["split"] for r in all_recs}):
        for e, recs in by.items():
            sub = [r for r in recs if r["split"] == sp]
            if sub:
                rows.append([sp, e, *group_row(sub, e.startswith("unconstrained"))])
    out += ["Per split:", "", table(["split", "engine", *head], rows), ""]
    for e, recs in by.items():
        c = Counter(
            f"{r['status']}{' (UNEXPECTED)' if r.get('unexpected') else ''}: "
            f"{r.get('error_type', '')} {norm_error(r.get('error', ''))}"
            for r in recs
            if r["status"] != "ok"
        )
        if c:
            out += [f"Errors, {e}:", ""] + [f"- {k} — **{v}**" for k, v in c.most_common(8)]
            out += [""]
    plot_splits(by, plots)
    out += ["![JSONSchemaBench per split](benchmarks/plots/jsonschemabench_splits.png)", ""]
    return out


def plot_splits(by: dict[str, list[dict[str, Any]]], plots: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    splits = sorted({r["split"] for recs in by.values() for r in recs})
    engines = list(by)
    fig, axes = plt.subplots(
        2, 1, figsize=(min(14, max(7, 0.35 * len(splits) * len(engines))), 7), sharex=True
    )
    width = 0.8 / len(engines)
    for ax, key, label in (
        (axes[0], "covered", "% coverage"),
        (axes[1], "compliant", "% compliance (all sampled)"),
    ):
        for k, e in enumerate(engines):
            vals = []
            for sp in splits:
                sub = [r for r in by[e] if r["split"] == sp]
                vals.append(100 * sum(1 for r in sub if r[key]) / len(sub) if sub else 0)
            ax.bar(np.arange(len(splits)) + k * width, vals, width, label=e)
        ax.set_ylabel(label)
        ax.set_ylim(0, 105)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_title("JSONSchemaBench end to end per split (SmolLM2, greedy)")
    axes[0].legend(fontsize=8)
    axes[1].set_xticks(np.arange(len(splits)) + 0.4 - width / 2, splits, rotation=45, ha="right")
    fig.tight_layout()
    plots.mkdir(parents=True, exist_ok=True)
    fig.savefig(plots / "jsonschemabench_splits.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
