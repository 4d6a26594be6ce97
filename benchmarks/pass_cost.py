"""What one forward pass of the default model costs, by positions fed and by LM-head rows.

The speculative loop prices drafts by pass cost (``structgen.speculative.adaptive``) and the
model adapter asks the LM head for the rows it needs only (``CausalLM.forward(rows=...)``, at
least 4 when more than one). This script measures the numbers those choices rest on, on this
machine: after a prompt of ``--context`` tokens, a pass of ``n`` new positions with logits for
all of them, for the last only, and for ``k`` rows; and the LM head alone (``hidden @ W.T``) by
row count. Variants are interleaved, repeated, and reported as medians (ms).

    python -m benchmarks.pass_cost [--context 700] [--reps 12] [--threads 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch


def _median_ms(samples: list[float]) -> float:
    return round(1000 * statistics.median(samples), 2)


def measure(context: int, reps: int, seed: int = 0) -> dict[str, Any]:
    from structgen.integrations.lm import CausalLM
    from structgen.models import load_default_model

    model = load_default_model()[0]
    lm = CausalLM(model)
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(100, 40000, (1, context), generator=gen)
    cache = lm.new_cache()
    lm.forward(prompt, cache, last_only=True)

    def one(n: int, mode: str) -> float:
        ids = torch.randint(100, 40000, (1, n), generator=gen)
        if mode == "all":
            kw: dict[str, Any] = {}
        elif mode == "last":
            kw = {"last_only": True}
        else:
            kw = {"rows": list(range(min(int(mode), n)))}
        t = time.perf_counter()
        lm.forward(ids, cache, **kw)
        dt = time.perf_counter() - t
        lm.crop(cache, context)
        return dt

    passes: dict[str, dict[str, float]] = {}
    sizes = (1, 2, 3, 4, 6, 8, 12, 16)
    modes = ("all", "last", "2", "4")
    samples: dict[tuple[int, str], list[float]] = {(n, m): [] for n in sizes for m in modes}
    for _ in range(reps):
        for n in sizes:
            for m in modes:
                samples[(n, m)].append(one(n, m))
    for n in sizes:
        passes[str(n)] = {m: _median_ms(samples[(n, m)]) for m in modes}

    head = model.get_output_embeddings().weight.detach()
    heads: dict[str, float] = {}
    hs: dict[int, list[float]] = {k: [] for k in (1, 2, 3, 4, 6, 8, 16)}
    with torch.inference_mode():
        for _ in range(reps):
            for k in hs:
                x = torch.randn(1, k, head.shape[1], generator=gen)
                t = time.perf_counter()
                torch.nn.functional.linear(x, head)
                hs[k].append(time.perf_counter() - t)
    for k, v in hs.items():
        heads[str(k)] = _median_ms(v)
    return {"context": context, "reps": reps, "pass_ms": passes, "head_ms": heads}


def render(res: dict[str, Any]) -> str:
    lines = [
        "## Forward-pass cost by positions and LM-head rows (SmolLM2, CPU)",
        "",
        f"After a {res['context']}-token prompt; medians of {res['reps']} interleaved repeats, ms. "
        "*all*: logits for every position; *last*: the last only; *2*/*4*: that many rows "
        "(the adapter pads 2 or 3 rows to 4).",
        "",
        "| positions | all | last | 2 rows | 4 rows |",
        "|---|---|---|---|---|",
    ]
    for n, row in res["pass_ms"].items():
        lines.append(f"| {n} | {row['all']} | {row['last']} | {row['2']} | {row['4']} |")
    lines += ["", "LM head alone (`hidden @ W.T`), by rows:", "", "| rows | ms |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in res["head_ms"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--context", type=int, default=700)
    p.add_argument("--reps", type=int, default=12)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = measure(args.context, args.reps)
    res["threads"] = args.threads
    text = render(res)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "pass_cost.json").write_text(json.dumps(res, indent=1))
        (args.out / "pass_cost.md").write_text(text)
    print(text, end="")  # a script's report, not library output


if __name__ == "__main__":
    main()
