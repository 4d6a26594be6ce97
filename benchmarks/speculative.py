"""Speculative constrained decoding on SmolLM2-135M-Instruct (CPU): tokens/s, forward passes per
token, acceptance rates and greedy identity, against plain constrained decoding and the peers'
processors, in one run.

Workloads (JSONSchemaBench schemas from MaskBench files, seeded sample, small instances):

    extraction   the prompt holds a source document (a valid test instance of the schema,
                 rendered as indented ``key: value`` text, or with ``--source json`` as its JSON)
                 and asks for the record as JSON; the schema is in the prompt too
    generation   the JSONSchemaBench prompt: "Generate a JSON value that conforms to this JSON
                 Schema: <schema>" (no source document)

Engines (all greedy; compile done before the clock starts):

    plain            ``structgen.generate`` (AWRS, fast-forward on), one pass per chosen token
                     (dead-end recovery off where ``generate`` has it: the speculative loop
                     mirrors the loop without it)
    spec-auto        ``speculative="auto"``: prompt look-up and grammar-forced drafts
    spec-forced      grammar-forced drafts only
    spec-lookup      prompt look-up only
    spec-layerskip   the target's first ``--layerskip-layers`` layers as drafter
    spec-self        SmolLM2 as its own draft model (proves the plumbing; cannot be faster)
    hf-structgen     structgen's LogitsProcessor inside ``model.generate``
    hf-structgen-lookup   the same with transformers' prompt look-up (assisted generation)
    hf-llguidance / hf-xgrammar   the peers' processors inside ``model.generate``

Engines run one after another on the same item, so they share the machine's conditions. Times
(compile excluded): *e2e* is the whole call; *decode* excludes the prefill, measured the same way
for every structgen engine (a prompt-only forward pass timed just before the item, best of 2; a
speculative loop's first pass also verifies its first draft, which thus counts as decode time)
and for the transformers engines as the time to the first token. tokens/s = (output tokens - 1)
/ decode time (the prefill yields the first token); e2e tokens/s = output tokens / e2e time.
Output tokens include forced ones.

    python -m benchmarks.speculative --maskbench-data PATH --out DIR [--quick]
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "jsonschemabench" / "maskbench"
SPLITS = (
    "Glaiveai2K",
    "Github_easy",
    "Github_trivial",
    "Github_medium",
    "Kubernetes",
    "Snowplow",
    "JsonSchemaStore",
)
ALL_ENGINES = (
    "plain",
    "spec-auto",
    "spec-forced",
    "spec-lookup",
    "spec-layerskip",
    "spec-self",
    "hf-structgen",
    "hf-structgen-lookup",
    "hf-llguidance",
    "hf-xgrammar",
)
SYSTEM_EXTRACT = (
    "You are an information extraction system. Read the document and output the record it "
    "describes as a single JSON value, and nothing else."
)
USER_EXTRACT = (
    "Document:\n{source}\n\nOutput the record as JSON that conforms to this JSON Schema:\n{schema}"
)
SYSTEM_GENERATE = (
    "You are a helpful assistant that outputs JSON. Reply with a single JSON value that is "
    "valid under the JSON Schema given by the user, and nothing else."
)
USER_GENERATE = "Generate a JSON value that conforms to this JSON Schema:\n{schema}"


# ---------------------------------------------------------------------------- workload


def render(value: Any, indent: int = 0) -> str:
    """A JSON value as indented ``key: value`` text (the extraction source document)."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:\n{render(v, indent + 1)}")
            else:
                lines.append(f"{pad}{k}: {render(v, 0)}")
        return "\n".join(lines)
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}-\n{render(v, indent + 1)}")
            else:
                out.append(f"{pad}- {render(v, 0)}")
        return "\n".join(out) if out else "[]"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def select_items(
    data: Path, n_extract: int, n_generate: int, seed: int, vocab: Any
) -> list[dict[str, Any]]:
    """A seeded sample: schemas that compile, each with a small valid object instance."""
    import structgen as sg

    files = sorted(f for f in data.glob("*.json") if f.name.split("---")[0] in SPLITS)
    random.Random(seed).shuffle(files)
    items: list[dict[str, Any]] = []
    need = {"extraction": n_extract, "generation": n_generate}
    for f in files:
        if not any(need.values()):
            break
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        schema = doc.get("schema")
        schema_text = json.dumps(schema)
        if not isinstance(schema, dict) or len(schema_text) > 2500:
            continue
        valid = [
            t["data"]
            for t in doc.get("tests", [])
            if t.get("valid") and isinstance(t.get("data"), dict) and len(t["data"]) >= 2
        ]
        valid = [v for v in valid if 40 <= len(json.dumps(v)) <= 260]
        kind = "extraction" if need["extraction"] and valid else "generation"
        if not need[kind]:
            continue
        try:
            sg.compile(sg.Grammar.from_json_schema(schema), vocab)
        except Exception:  # noqa: BLE001 - not covered by structgen: not in the workload
            continue
        item = {"id": f.name, "kind": kind, "schema": schema}
        if kind == "extraction":
            item["instance"] = valid[0]
        items.append(item)
        need[kind] -= 1
    return items


def messages(item: dict[str, Any], source: str) -> list[dict[str, str]]:
    schema = json.dumps(item["schema"])
    if item["kind"] == "extraction":
        inst = item["instance"]
        text = json.dumps(inst) if source == "json" else render(inst)
        return [
            {"role": "system", "content": SYSTEM_EXTRACT},
            {"role": "user", "content": USER_EXTRACT.format(source=text, schema=schema)},
        ]
    return [
        {"role": "system", "content": SYSTEM_GENERATE},
        {"role": "user", "content": USER_GENERATE.format(schema=schema)},
    ]


# ---------------------------------------------------------------------------- engines


def prefill_seconds(ctx: Context, msgs: Any) -> float:
    """One prompt-only forward pass, timed: the prefill every structgen engine pays first."""
    from structgen.integrations.generate import prompt_ids

    ids = prompt_ids(ctx.tok, msgs)
    t = time.perf_counter()
    ctx.lm.forward([ids], ctx.lm.new_cache(), last_only=True)
    return time.perf_counter() - t


class Clock:
    """Transformers streamer: the time of the first generated token."""

    def __init__(self) -> None:
        self.first: float | None = None
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if self._prompt_seen and self.first is None:
            self.first = time.perf_counter()
        self._prompt_seen = True

    def end(self) -> None:
        pass


class Context:
    def __init__(self, engines: list[str], threads: int, layerskip_layers: int) -> None:
        import torch

        from benchmarks.e2e_common import load_peers
        from structgen.integrations.generate import vocabulary_for
        from structgen.integrations.lm import CausalLM
        from structgen.models import load_default_model

        torch.set_num_threads(threads)
        self.model, self.tok = load_default_model()
        self.model.eval()
        self.lm = CausalLM(self.model)
        self.vocab = vocabulary_for(self.tok, self.model)
        self.eos = sorted(self.vocab.eos_token_ids)
        self.layerskip_layers = layerskip_layers
        self.drafters: dict[str, Any] = {}
        peer_modes = {"hf-llguidance": "llguidance-processor", "hf-xgrammar": "xgrammar-processor"}
        self.peer_modes = peer_modes
        self.peers = load_peers(
            self.tok, self.vocab, [peer_modes[e] for e in engines if e in peer_modes]
        )


def drafter_for(engine: str, ctx: Context) -> Any:
    """The engine's drafter: ``"auto"`` as a user passes it; the others made once and kept, so
    each learns its draft lengths over the run as a long-lived drafter would."""
    if engine == "plain":
        return None
    if engine == "spec-auto":
        return "auto"
    if engine in ctx.drafters:
        return ctx.drafters[engine]
    ctx.drafters[engine] = made = _make_drafter(engine, ctx)
    return made


def _make_drafter(engine: str, ctx: Context) -> Any:
    from structgen.speculative import (
        ForcedDrafter,
        LayerSkipDrafter,
        ModelDrafter,
        PromptLookupDrafter,
    )

    if engine == "spec-forced":
        return ForcedDrafter()
    if engine == "spec-lookup":
        return PromptLookupDrafter()
    if engine == "spec-layerskip":
        return LayerSkipDrafter(ctx.lm, ctx.layerskip_layers)
    if engine == "spec-self":
        return ModelDrafter(ctx.model, tokenizer=ctx.tok, name="self")
    return None


def run_structgen(
    engine: str, ctx: Context, item: dict[str, Any], msgs: Any, max_new: int
) -> dict[str, Any]:
    import structgen as sg

    compiled = sg.compile(sg.Grammar.from_json_schema(item["schema"]), ctx.vocab)
    drafter = drafter_for(engine, ctx)
    from structgen.integrations.lm import CausalLM

    lm = CausalLM(ctx.model)
    draft_passes0 = getattr(drafter, "forward_passes", 0) if not isinstance(drafter, str) else 0
    extra: dict[str, Any] = {}
    if drafter is None and "recovery" in inspect.signature(sg.generate).parameters:
        extra["recovery"] = "off"  # the plain loop the speculative one mirrors
    t0 = time.perf_counter()
    res = sg.generate(
        lm, ctx.tok, msgs, grammar=compiled, max_new_tokens=max_new, speculative=drafter, **extra
    )
    total = time.perf_counter() - t0 - res.stats.compile_s
    rec: dict[str, Any] = {
        "tokens": res.tokens,
        "new_tokens": len(res.tokens),
        "complete": res.complete,
        "reason": res.reason,
        "total_s": total,
        "decode_s": max(total - item["prefill_s"], 1e-3),
        "prefill_s": item["prefill_s"],
        "forward_passes": lm.forward_passes,
        "forced_tokens": res.stats.forced_tokens,
    }
    spec = res.stats.speculative
    if spec is not None:
        passes = getattr(drafter, "forward_passes", 0) if not isinstance(drafter, str) else 0
        rec.update(
            proposed=spec.proposed,
            accepted=spec.accepted,
            trimmed=spec.trimmed,
            near_ties=spec.near_ties,
            by_source=spec.by_source,
            by_feature=spec.by_feature,
            draft_s=spec.draft_s,
            draft_passes=passes - draft_passes0,
        )
    return rec


def run_hf(
    engine: str, ctx: Context, item: dict[str, Any], msgs: Any, max_new: int
) -> dict[str, Any]:
    import torch

    import structgen as sg
    from benchmarks.e2e_common import make_processor
    from structgen.integrations.generate import prompt_ids

    if engine.startswith("hf-structgen"):
        compiled = sg.compile(sg.Grammar.from_json_schema(item["schema"]), ctx.vocab)
        proc = sg.StructgenLogitsProcessor(compiled)
    else:
        proc = make_processor(ctx.peer_modes[engine], item["schema"], ctx.vocab, ctx.peers)
    ids = prompt_ids(ctx.tok, msgs)
    inputs = torch.tensor([ids])
    extra = {"prompt_lookup_num_tokens": 10} if engine == "hf-structgen-lookup" else {}
    clock = Clock()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = ctx.model.generate(
            inputs,
            logits_processor=[proc],
            streamer=clock,
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=ctx.eos,
            pad_token_id=ctx.eos[0],
            attention_mask=torch.ones_like(inputs),
            **extra,
        )
    t_end = time.perf_counter()
    gen = [int(t) for t in out[0, len(ids) :]]
    stop = next((i for i, t in enumerate(gen) if t in ctx.eos), None)
    new = gen[:stop] if stop is not None else gen
    first = clock.first if clock.first is not None else t_end
    return {
        "tokens": new,
        "new_tokens": len(new),
        "complete": stop is not None,
        "reason": "eos" if stop is not None else "max_new_tokens",
        "total_s": t_end - t0,
        "decode_s": t_end - first,
        "prefill_s": first - t0,
    }


def run_engine(
    engine: str, ctx: Context, item: dict[str, Any], msgs: Any, max_new: int
) -> dict[str, Any]:
    try:
        if engine.startswith("hf-"):
            rec = run_hf(engine, ctx, item, msgs, max_new)
        else:
            rec = run_structgen(engine, ctx, item, msgs, max_new)
        rec["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - recorded; the run goes on
        rec = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]}
    return rec


# ---------------------------------------------------------------------------- report


def _rate(rec: dict[str, Any]) -> float | None:
    if rec.get("status") != "ok" or rec["decode_s"] <= 0 or rec["new_tokens"] < 2:
        return None
    # the prefill yields the first token; the rest come in the decode time
    return (rec["new_tokens"] - 1) / rec["decode_s"]


def summarize(records: list[dict[str, Any]], engines: list[str]) -> dict[str, Any]:
    """Per workload and engine: sums, rates, identity with ``plain`` / ``hf-structgen``."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    plain: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        by[(r["kind"], r["engine"])].append(r)
        if r["engine"] in ("plain", "hf-structgen"):
            plain[(r["id"], r["engine"])] = r
    out: dict[str, Any] = {}
    for kind in ("extraction", "generation"):
        rows: dict[str, Any] = {}
        base_tps = None
        for engine in engines:
            recs = [r for r in by.get((kind, engine), []) if r.get("status") == "ok"]
            if not recs:
                continue
            tokens = sum(r["new_tokens"] for r in recs)
            decode = sum(r["decode_s"] for r in recs)
            total = sum(r["total_s"] for r in recs)
            tps = (tokens - len(recs)) / decode if decode > 0 else None
            rates = [x for x in (_rate(r) for r in recs) if x is not None]
            row: dict[str, Any] = {
                "items": len(recs),
                "errors": len(by.get((kind, engine), [])) - len(recs),
                "tokens": tokens,
                "tokens_per_s": tps,
                "e2e_tokens_per_s": tokens / total if total > 0 else None,
                "median_item_tokens_per_s": statistics.median(rates) if rates else None,
            }
            if "forward_passes" in recs[0]:
                passes = sum(r["forward_passes"] for r in recs)
                row["forward_passes_per_token"] = passes / max(tokens, 1)
            if "proposed" in recs[0]:
                proposed = sum(r["proposed"] for r in recs)
                accepted = sum(r["accepted"] for r in recs)
                row.update(
                    proposed=proposed,
                    accepted=accepted,
                    acceptance=accepted / proposed if proposed else None,
                    near_ties=sum(r["near_ties"] for r in recs),
                    draft_passes=sum(r.get("draft_passes", 0) for r in recs),
                )
            ref_engine = "hf-structgen" if engine.startswith("hf-structgen") else "plain"
            if engine.startswith(("spec-", "hf-structgen-")):
                same = [
                    r["tokens"] == plain[(r["id"], ref_engine)]["tokens"]
                    for r in recs
                    if (r["id"], ref_engine) in plain
                ]
                row["identical"] = sum(same)
                row["compared"] = len(same)
            rows[engine] = row
            if engine == "plain":
                base_tps = tps
        base_e2e = rows.get("plain", {}).get("e2e_tokens_per_s")
        for row in rows.values():
            if base_tps and row["tokens_per_s"]:
                row["speedup_vs_plain"] = row["tokens_per_s"] / base_tps
            if base_e2e and row["e2e_tokens_per_s"]:
                row["e2e_speedup_vs_plain"] = row["e2e_tokens_per_s"] / base_e2e
        out[kind] = rows
    return out


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    def fmt(v: Any, spec: str = ".2f") -> str:
        return "-" if v is None else format(v, spec)

    lines = [
        "## Speculative decoding (SmolLM2-135M-Instruct, CPU)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Revision {meta['revision']}, {meta['date']}, {meta['threads']} torch thread(s), "
        f"max {meta['max_new_tokens']} new tokens, greedy, source documents as "
        f"{meta['source']}.",
        "",
    ]
    for kind, rows in summary.items():
        if not rows:
            continue
        lines += [
            f"### {kind} ({max(r['items'] for r in rows.values())} items)",
            "",
            "| engine | items | tokens | tokens/s | x plain | e2e tokens/s | x plain "
            "| passes/token | proposed | accepted | acceptance | greedy identical | near ties |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for engine, r in rows.items():
            ident = f"{r['identical']}/{r['compared']}" if "identical" in r else "-"
            lines.append(
                f"| {engine} | {r['items']} | {r['tokens']} | {fmt(r['tokens_per_s'])} "
                f"| {fmt(r.get('speedup_vs_plain'))} | {fmt(r['e2e_tokens_per_s'])} "
                f"| {fmt(r.get('e2e_speedup_vs_plain'))} "
                f"| {fmt(r.get('forward_passes_per_token'))} "
                f"| {r.get('proposed', '-')} | {r.get('accepted', '-')} "
                f"| {fmt(r.get('acceptance'))} | {ident} | {r.get('near_ties', '-')} |"
            )
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--maskbench-data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="benchmarks/results/speculative")
    p.add_argument("--extraction", type=int, default=30, help="extraction items")
    p.add_argument("--generation", type=int, default=10, help="generation items")
    p.add_argument("--engines", default=",".join(ALL_ENGINES))
    p.add_argument(
        "--slow-engines-items",
        type=int,
        default=8,
        help="run spec-layerskip and spec-self on only this many items per workload",
    )
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--layerskip-layers", type=int, default=24)
    p.add_argument("--source", choices=("text", "json"), default="text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="3 + 2 items, fewer engines")
    args = p.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ALL_ENGINES]
    if unknown:
        p.error(f"unknown engines {unknown}; known: {', '.join(ALL_ENGINES)}")
    if args.quick:
        args.extraction, args.generation = 3, 2
        args.max_new_tokens = min(args.max_new_tokens, 64)
        args.slow_engines_items = 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(engines, args.threads, args.layerskip_layers)
    items = select_items(
        Path(args.maskbench_data), args.extraction, args.generation, args.seed, ctx.vocab
    )
    warm = dict(items[0], prefill_s=0.0)
    for engine in ("plain", "spec-auto"):
        run_engine(engine, ctx, warm, messages(warm, args.source), 8)
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = defaultdict(int)
    jsonl = (out / "speculative.jsonl").open("w")
    for n, item in enumerate(items):
        msgs = messages(item, args.source)
        item["prefill_s"] = min(prefill_seconds(ctx, msgs) for _ in range(2))
        seen[item["kind"]] += 1
        for engine in engines:
            slow = engine in ("spec-layerskip", "spec-self")
            if slow and seen[item["kind"]] > args.slow_engines_items:
                continue
            rec = run_engine(engine, ctx, item, msgs, args.max_new_tokens)
            rec.update(id=item["id"], kind=item["kind"], engine=engine)
            records.append(rec)
            jsonl.write(json.dumps(rec) + "\n")
            jsonl.flush()
            print(
                f"[{n + 1}/{len(items)}] {item['kind']} {item['id']} {engine}: "
                f"{rec.get('new_tokens')} tokens, {rec.get('decode_s', 0):.2f} s "
                f"{rec.get('status')}",
                file=sys.stderr,
                flush=True,
            )
    jsonl.close()
    summary = summarize(records, engines)
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    meta = {
        "command": "python -m benchmarks.speculative "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "revision": rev,
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "source": "indented key: value text" if args.source == "text" else "JSON",
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "items": [{"id": i["id"], "kind": i["kind"]} for i in items],
    }
    (out / "speculative.json").write_text(json.dumps({"meta": meta, "summary": summary}, indent=2))
    (out / "speculative.md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
