"""Dead ends under constraints: trap schemas and JSONSchemaBench, SmolLM2, structgen and peers.

Two suites, every engine on the same prompts in the same run:

- ``traps``: the 48 schemas of ``benchmarks.trap_schemas`` (bounded numbers, formats,
  uniqueItems, enums, patterns, nested required objects, keywords that stay checks), each with a
  prompt that lures the model out of range; ``--max-new-tokens`` (60) per output.
- ``jsonschemabench``: a seeded sample of the MaskBench files (``--per-split`` per split, the
  sample ``benchmarks.jsonschemabench`` takes), with its prompt; ``--jsb-max-new-tokens`` (160).

Engines: ``structgen`` (``generate``, AWRS, dead-end recovery on: the default),
``structgen-norecovery`` (``recovery="off"``), ``llguidance`` and ``xgrammar`` (their logits
processors inside ``model.generate``, ``benchmarks.e2e_common``). Decoding: ``greedy`` and
``sampled`` (temperature ``--temperature``, no top-k/top-p, a seed per schema).

Per output: valid (it parses and ``jsonschema`` validates it, formats asserted), hit the token
budget, **dead end** (it hit the budget inside a value that cannot complete: the validation
grammar, ``additional_properties="spec"``, members in any order, any whitespace, rejects the
text, or a bounded search finds no bytes it accepts that finish the innermost open value;
``unknown`` when the search runs out first; ``Judge``), back-ups (structgen's
``stats.backtracks``), ms per output token (decoding wall time, compile excluded).

    python -m benchmarks.traps --maskbench-data ../shared/jsonschemabench/maskbench \\
        --out benchmarks/results/traps --quick

``--quick`` (about 15 minutes on 2 CPU cores): greedy only, every other trap schema, eight
JSONSchemaBench schemas. Output: ``DIR/traps.json`` (records and summary) and ``DIR/traps.md``.
``--rejudge`` recomputes the dead-end verdicts and the summary of ``DIR/traps.json`` in place.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.harness import SoftTimeout, _on_alarm, code_hash, error_record  # isort: skip
from benchmarks.e2e_common import check, make_processor
from benchmarks.jsonschemabench import PROCESSORS as PEERS
from benchmarks.jsonschemabench import SYSTEM, USER, Context, select_files
from benchmarks.maskbench import DEFAULT_DATA, split_of
from benchmarks.trap_schemas import TRAPS

ENGINES = ("structgen", "structgen-norecovery", "llguidance", "xgrammar")
WHITESPACE = ""  # --whitespace: structgen's layout ("": generate's default)
QUICK_SPLITS = (
    "Glaiveai2K",
    "Github_easy",
    "Github_medium",
    "JsonSchemaStore",
    "Kubernetes",
    "Snowplow",
    "BFCL_simple",
    "WashingtonPost",
)
# bytes the completion search tries first: closers, then what ends a format or a number, digits
# late (a search that tries "0" first dives into 0000...)
_PREFERRED = [ord(c) for c in '"}]Zz:e-+.01atfn,']


# -- can this output still complete? -----------------------------------------------------------


class Judge:
    """Whether an output cut by the token budget stopped inside a value that cannot complete.

    The validation grammar (every valid instance: extra members allowed, members in any order,
    any JSON whitespace) over a byte-level vocabulary. A prefix it rejects cannot complete (up to
    its documented spelling restrictions, e.g. exponent spellings): ``"dead"``. Otherwise a
    depth-first search over the bytes it allows (no whitespace; closing bytes first, digits
    late) looks for a way to finish the innermost open value (the one the budget cut: a string,
    a number, else the innermost array or object) that the grammar accepts: ``"completable"``
    if found, ``"dead"`` if every branch is refused, ``"unknown"`` if the search runs out.
    """

    def __init__(self, schema: Any) -> None:
        import structgen as sg

        grammar = sg.Grammar.from_json_schema(
            schema,
            additional_properties="spec",
            property_order="any",
            whitespace_pattern=r"[ \t\n\r]*",
            best_effort=True,
        )
        self.compiled = sg.compile(grammar, sg.Vocabulary.byte_level([]))

    def verdict(self, text: str, budget: int = 3000, depth: int = 48) -> str:
        """``"completable"``, ``"dead"`` or ``"unknown"`` (the search ran out)."""
        import numpy as np

        from structgen.decoding.recovery import JsonScanner

        data = text.encode()
        m = self.compiled.matcher()
        if not m.consume_bytes(data):
            return "dead"
        scan = JsonScanner.step(JsonScanner.INITIAL, data, 0)
        target = JsonScanner.innermost(scan)
        if target < 0:
            return "completable"
        steps = [0]

        def search(state: Any, pos: int, d: int) -> bool | None:
            if not JsonScanner.is_open(state, target):
                return True
            if d >= depth or steps[0] >= budget:
                return None
            bits = np.unpackbits(m.next_token_bitmask_np().view(np.uint8), bitorder="little")
            live = [b for b in np.flatnonzero(bits[:256]).tolist() if b not in b" \t\r\n"]
            allowed = [b for b in _PREFERRED if b in live]
            allowed += [b for b in live if b not in _PREFERRED]
            unknown = False
            for byte in allowed[:6]:
                steps[0] += 1
                if not m.consume_token(byte):
                    continue
                found = search(JsonScanner.step(state, bytes([byte]), pos), pos + 1, d + 1)
                m.rollback(1)
                if found:
                    return True
                unknown = unknown or found is None
            return None if unknown or len(allowed) > 6 else False

        found = search(scan, len(data), 0)
        return "completable" if found else "unknown" if found is None else "dead"


# -- running one output -----------------------------------------------------------------------


def generate_one(
    ctx: Context, engine: str, schema: Any, messages: Any, max_new: int, temperature: float,
    seed: int,
) -> dict[str, Any]:  # fmt: skip
    import torch

    import structgen as sg
    from structgen.integrations.generate import prompt_ids

    perf = time.perf_counter
    if engine.startswith("structgen"):
        t0 = perf()
        res = sg.generate(
            ctx.model,
            ctx.tok,
            messages,
            schema=schema,
            max_new_tokens=max_new,
            temperature=temperature,
            seed=seed,
            recovery="off" if engine == "structgen-norecovery" else "auto",
            schema_options={"whitespace": WHITESPACE} if WHITESPACE else None,
        )
        wall = perf() - t0 - res.stats.compile_s
        return {
            "text": res.text,
            "new_tokens": res.stats.new_tokens,
            "hit_limit": res.reason == "max_new_tokens",
            "decode_s": wall,
            "compile_s": res.stats.compile_s,
            "backtracks": res.stats.backtracks,
            "discarded_tokens": res.stats.discarded_tokens,
        }
    ids = prompt_ids(ctx.tok, messages)
    t = perf()
    proc = make_processor(PEERS[engine], schema, ctx.vocab, ctx.peers)
    compile_s = perf() - t
    inputs = torch.tensor([ids])
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    t0 = perf()
    with torch.inference_mode():
        out = ctx.model.generate(
            inputs,
            logits_processor=[proc],
            max_new_tokens=max_new,
            eos_token_id=ctx.eos,
            pad_token_id=ctx.eos[0],
            attention_mask=torch.ones_like(inputs),
            **sampling,
        )
    wall = perf() - t0
    gen = [int(x) for x in out[0, len(ids) :]]
    stop = next((i for i, x in enumerate(gen) if x in ctx.eos), None)
    new = gen[:stop] if stop is not None else gen
    return {
        "text": ctx.tok.decode(new),
        "new_tokens": len(new),
        "hit_limit": stop is None,
        "decode_s": wall,
        "compile_s": compile_s,
        "backtracks": 0,
        "discarded_tokens": 0,
    }


def record(
    ctx: Context, engine: str, item: dict[str, Any], decoding: str, args: argparse.Namespace,
    judges: dict[str, Judge],
) -> dict[str, Any]:  # fmt: skip
    schema = item["schema"]
    temperature = args.temperature if decoding == "sampled" else 0.0
    rec: dict[str, Any] = {
        "suite": item["suite"],
        "id": item["id"],
        "category": item["category"],
        "engine": engine,
        "decoding": decoding,
        "max_new_tokens": item["max_new"],
    }
    signal.setitimer(signal.ITIMER_REAL, args.timeout_s)
    try:
        out = generate_one(
            ctx, engine, schema, item["messages"], item["max_new"], temperature, item["seed"]
        )
    except SoftTimeout:
        rec.update(status="timeout")
        return rec
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        rec.update(status="error", **error_record(exc))
        return rec
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    rec.update(status="ok", **out)
    rec["valid"] = check(out["text"], schema, formats=True)
    rec["ms_per_token"] = 1000 * out["decode_s"] / max(out["new_tokens"], 1)
    rec["dead_end"] = None
    if out["hit_limit"] and not rec["valid"]:
        if item["id"] not in judges:
            try:
                judges[item["id"]] = Judge(schema)
            except Exception as exc:  # noqa: BLE001 - a schema structgen cannot lower
                rec["judge_error"] = f"{type(exc).__name__}: {exc}"[:300]
        if item["id"] in judges:
            rec["dead_end"] = judges[item["id"]].verdict(out["text"])
    rec["text"] = out["text"][:1500]
    return rec


# -- the run ----------------------------------------------------------------------------------


def items(args: argparse.Namespace) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    traps = TRAPS[::2] if args.quick else TRAPS
    for i, trap in enumerate(traps):
        out.append({
            "suite": "traps", "id": trap["name"], "category": trap["category"],
            "schema": trap["schema"], "messages": [{"role": "user", "content": trap["prompt"]}],
            "max_new": args.max_new_tokens, "seed": 1000 + i,
        })  # fmt: skip
    if args.per_split > 0 and args.maskbench_data:
        splits = set(QUICK_SPLITS) if args.quick else set()
        files = select_files(str(args.maskbench_data), splits, args.per_split, args.seed)
        for i, path in enumerate(files):
            schema = json.loads(path.read_text())["schema"]
            out.append({
                "suite": "jsonschemabench", "id": path.name, "category": split_of(path.name),
                "schema": schema,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": USER.format(schema=json.dumps(schema))},
                ],
                "max_new": args.jsb_max_new_tokens, "seed": 2000 + i,
            })  # fmt: skip
    return out


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["suite"], r["decoding"], r["engine"])].append(r)
    rows = []
    for (suite, decoding, engine), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        rows.append({
            "suite": suite, "decoding": decoding, "engine": engine, "outputs": len(rs),
            "valid": sum(bool(r.get("valid")) for r in rs),
            "hit_limit": sum(bool(r.get("hit_limit")) for r in ok),
            "dead_end": sum(r.get("dead_end") == "dead" for r in ok),
            "unknown": sum(r.get("dead_end") == "unknown" for r in ok),
            "complete_invalid": sum(not r["hit_limit"] and not r["valid"] for r in ok),
            "errors": sum(r["status"] != "ok" for r in rs),
            "backtracks_per_output": statistics.mean(r["backtracks"] for r in ok) if ok else 0.0,
            "ms_per_token_p50": statistics.median(r["ms_per_token"] for r in ok) if ok else 0.0,
            "tokens_p50": statistics.median(r["new_tokens"] for r in ok) if ok else 0,
        })  # fmt: skip
    order = {e: i for i, e in enumerate(ENGINES)}
    rows.sort(key=lambda r: (r["suite"] != "traps", r["decoding"], order.get(r["engine"], 9)))
    return rows


def heading(argv: list[str], code: str) -> list[str]:
    """The section's title and how it was run (``benchmarks.report`` includes the section)."""
    return [
        "## Dead ends under constraints: trap schemas and JSONSchemaBench (SmolLM2, CPU)",
        "",
        f"Command: `python -m benchmarks.traps {' '.join(argv)}`  ",
        f"{time.strftime('%Y-%m-%d')}, structgen source hash {code}. *dead ends*: the output hit "
        "the token budget inside a value no bytes can complete (judged by the validation grammar "
        "and a bounded completion search; *unknown*: the search ran out); *valid*: jsonschema "
        "accepts it, formats asserted. Peers' processors run inside `model.generate` on the same "
        "prompts; their *errors* are schemas they refuse to compile.",
        "",
        "",
    ]


def markdown(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> str:
    lines = [
        "| suite | decoding | engine | outputs | valid | dead ends | unknown | hit token limit "
        "| complete but invalid | errors | back-ups / output | ms/token p50 | tokens p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['suite']} | {r['decoding']} | {r['engine']} | {r['outputs']} "
            f"| {r['valid']} ({100 * r['valid'] / max(r['outputs'], 1):.0f}%) | {r['dead_end']} "
            f"| {r['unknown']} | {r['hit_limit']} | {r['complete_invalid']} | {r['errors']} "
            f"| {r['backtracks_per_output']:.2f} | {r['ms_per_token_p50']:.0f} "
            f"| {r['tokens_p50']:.0f} |"
        )
    cats: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["suite"] == "traps":
            cats[(r["category"], r["engine"])].append(r)
    engines = [e for e in ENGINES if any(k[1] == e for k in cats)]
    lines += ["", "Valid trap outputs per category (all decodings):", ""]
    lines.append("| category | " + " | ".join(engines) + " |")
    lines.append("|---|" + "---|" * len(engines))
    for cat in dict.fromkeys(k[0] for k in cats):
        cells = []
        for e in engines:
            rs = cats.get((cat, e), [])
            cells.append(f"{sum(bool(r.get('valid')) for r in rs)}/{len(rs)}")
        lines.append(f"| {cat} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rejudge(args: argparse.Namespace) -> int:
    """Recompute the dead-end verdicts and tables of ``args.out/traps.json``."""
    path = args.out / "traps.json"
    data = json.loads(path.read_text())
    by_name = {t["name"]: t["schema"] for t in TRAPS}
    judges: dict[str, Judge] = {}
    for rec in data["records"]:
        if rec["status"] != "ok" or not rec["hit_limit"] or rec["valid"]:
            continue
        if rec["id"] not in judges:
            if rec["suite"] == "traps":
                schema = by_name[rec["id"]]
            else:
                schema = json.loads((args.maskbench_data / rec["id"]).read_text())["schema"]
            judges[rec["id"]] = Judge(schema)
        rec["dead_end"] = judges[rec["id"]].verdict(rec["text"])
    data["summary"] = summarise(data["records"])
    path.write_text(json.dumps(data, indent=1))
    text = markdown(data["summary"], data["records"])
    (args.out / "traps.md").write_text(text + "\n")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--maskbench-data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/traps"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--decodings", default="greedy,sampled")
    p.add_argument("--per-split", type=int, default=1, help="JSONSchemaBench schemas per split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=60)
    p.add_argument("--jsb-max-new-tokens", type=int, default=160)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--timeout-s", type=float, default=240.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="only the first N schemas (smoke runs)")
    p.add_argument("--rejudge", action="store_true", help="recompute DIR/traps.json's verdicts")
    p.add_argument("--whitespace", default="", help="structgen's layout (default: generate's)")
    p.add_argument("--resume", action="store_true",
                   help="keep DIR/traps.json's records and run only what they lack")  # fmt: skip
    args = p.parse_args(argv)
    global WHITESPACE
    WHITESPACE = args.whitespace
    if args.rejudge:
        return rejudge(args)
    engines = [e for e in args.engines.split(",") if e]
    decodings = ["greedy"] if args.quick else [d for d in args.decodings.split(",") if d]
    todo = items(args)[: args.limit or None]
    print(f"[traps] {len(todo)} schemas x {engines} x {decodings}", file=sys.stderr)
    signal.signal(signal.SIGALRM, _on_alarm)
    ctx = Context(engines, args.threads)
    warm = {"suite": "warm", "id": "warm", "category": "warm", "max_new": 4, "seed": 0,
            "schema": {"type": "integer"},
            "messages": [{"role": "user", "content": "1"}]}  # fmt: skip
    judges: dict[str, Judge] = {}
    for engine in engines:
        record(ctx, engine, warm, "greedy", args, judges)
    records: list[dict[str, Any]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    if args.resume and (args.out / "traps.json").exists():  # keep what an earlier run finished
        records = json.loads((args.out / "traps.json").read_text())["records"]
    done = {(r["id"], r["decoding"], r["engine"]) for r in records}
    started = time.time()
    for item in todo:
        for decoding in decodings:
            for engine in engines:
                if (item["id"], decoding, engine) in done:
                    continue
                rec = record(ctx, engine, item, decoding, args, judges)
                records.append(rec)
                print(
                    f"{item['suite'][:5]} {item['id'][:36]:36s} {decoding:7s} {engine:21s} "
                    f"{rec['status']:7s} valid={rec.get('valid')!s:5s} "
                    f"dead={rec.get('dead_end')!s:11s} n={rec.get('new_tokens', 0):3d} "
                    f"bt={rec.get('backtracks', 0)}",
                    flush=True,
                )
        (args.out / "traps.json").write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                        "code": code_hash(), "records": records}, indent=1)  # fmt: skip
        )
    records = [r for r in records if r["engine"] in engines]  # a resumed run's engines only
    rows = summarise(records)
    text = "\n".join(heading(sys.argv[1:] if argv is None else argv, code_hash())) + markdown(
        rows, records
    )
    (args.out / "traps.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "code": code_hash(),
                    "wall_s": time.time() - started, "summary": rows, "records": records},
                   indent=1)  # fmt: skip
    )
    (args.out / "traps.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
