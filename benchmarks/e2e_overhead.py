"""End-to-end cost of constraints with the real SmolLM2-135M-Instruct on CPU (greedy decoding).

For N MaskBench schemas (Github_easy / Glaiveai2K, ones structgen compiles), the model is asked
for a JSON instance of the schema and decodes greedily, max_new_tokens=160, in these modes:

    unconstrained-generate   plain ``model.generate``
    unconstrained-loop       a minimal KV-cached greedy loop (the shape of structgen.generate)
    structgen-awrs           ``structgen.generate`` (AWRS sampler, fast-forward on)
    structgen-processor      ``StructgenLogitsProcessor`` inside ``model.generate``
    llguidance-processor     a minimal processor over ``llguidance.LLMatcher`` in ``model.generate``
    xgrammar-processor       ``xgrammar.contrib.hf.LogitsProcessor`` in ``model.generate``

Compilation is timed separately and excluded from ms/token. Outputs are checked with json.loads +
jsonschema. Output: ``benchmarks/results/e2e.jsonl`` (one line per schema and mode).

    python -m benchmarks.e2e_overhead --n 20
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.e2e_common import check, greedy_loop, load_peers, make_processor
from benchmarks.harness import RESULTS, SoftTimeout, _on_alarm, log_run, save_engine_info
from benchmarks.maskbench import DEFAULT_DATA, split_of

MODES = ("unconstrained-generate", "unconstrained-loop", "structgen-awrs",
         "structgen-processor", "llguidance-processor", "xgrammar-processor")


def prompt_for(schema: Any) -> list[dict[str, str]]:
    return [{"role": "user", "content": "Write one JSON value that is valid under this JSON "
             f"Schema. Reply with the JSON only.\n\n{json.dumps(schema)}"}]


def pick_schemas(n: int, seed: int, vocab: Any) -> list[tuple[str, Any]]:
    import structgen as sg

    files = sorted(f for f in Path(DEFAULT_DATA).glob("*.json")
                   if split_of(f.name) in ("Github_easy", "Glaiveai2K"))
    random.Random(seed).shuffle(files)
    out = []
    for f in files:
        schema = json.loads(f.read_text())["schema"]
        try:
            sg.compile(sg.Grammar.from_json_schema(schema), vocab)
        except Exception:  # noqa: BLE001 - refusals and unexpected errors alike: pick another
            continue
        out.append((f.name, schema))
        if len(out) == n:
            break
    return out


def run_mode(mode: str, model: Any, tok: Any, vocab: Any, schema: Any, ids: list[int],
             peers: dict[str, Any], max_new: int) -> dict[str, Any]:
    import torch

    import structgen as sg

    rec: dict[str, Any] = {"mode": mode}
    eos = sorted(vocab.eos_token_ids)
    inputs = torch.tensor([ids])
    kwargs = {"max_new_tokens": max_new, "do_sample": False, "eos_token_id": eos,
              "pad_token_id": eos[0], "attention_mask": torch.ones_like(inputs)}
    if mode.startswith("structgen"):
        from structgen.compiler import clear_cache

        clear_cache()  # pick_schemas compiled it already: time a cold compile
    t0 = time.perf_counter()
    if mode == "structgen-awrs":
        res = sg.generate(model, tok, prompt_for(schema), schema=schema, max_new_tokens=max_new)
        wall = time.perf_counter() - t0 - res.stats.compile_s
        n = res.stats.new_tokens
        rec.update(text=res.text, compile_s=res.stats.compile_s, forced=res.stats.forced_tokens,
                   checks_per_token=res.stats.constraint_checks / max(n, 1),
                   full_masks=res.stats.full_masks)
    elif mode == "unconstrained-loop":
        out_ids = greedy_loop(model, ids, eos, max_new)
        wall, n = time.perf_counter() - t0, len(out_ids)
        rec["text"] = tok.decode(out_ids)
    else:
        procs: list[Any] = []
        if mode != "unconstrained-generate":
            tc = time.perf_counter()
            procs = [make_processor(mode, schema, vocab, peers)]
            rec["compile_s"] = time.perf_counter() - tc
            t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(inputs, logits_processor=procs, **kwargs)
        wall = time.perf_counter() - t0
        new = [int(t) for t in out[0, len(ids):] if int(t) not in eos]
        n = len(new)
        rec["text"] = tok.decode(new)
    rec.update(new_tokens=n, wall_s=wall, ms_per_token=1000 * wall / max(n, 1),
               hit_limit=n >= max_new, valid=check(rec["text"], schema))
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20, help="number of schemas")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--timeout-s", type=float, default=120.0, help="per schema and mode")
    args = p.parse_args(argv)
    log_run("e2e", ["python", "-m", "benchmarks.e2e_overhead", *(argv or sys.argv[1:])])
    import torch

    import structgen as sg
    from structgen.integrations.generate import prompt_ids
    from structgen.models import load_default_model

    torch.set_num_threads(args.threads)
    signal.signal(signal.SIGALRM, _on_alarm)
    model, tok = load_default_model()
    model.eval()
    width = int(model.get_output_embeddings().weight.shape[0])
    vocab = sg.Vocabulary.from_tokenizer(tok, vocab_size=width)
    modes = [m for m in args.modes.split(",") if m]
    peers = load_peers(tok, vocab, modes)
    for name in ("llguidance", "xgrammar"):
        if name in peers:
            from benchmarks.engines import _version

            save_engine_info(f"{name} (e2e)", "smollm2", {"version": _version(name),
                             "settings": "default JSON options, HF logits processor"})
    schemas = pick_schemas(args.n, args.seed, vocab)
    out_path = RESULTS / "e2e.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    with out_path.open("w") as f:
        warm = schemas[0][1]
        for mode in modes:  # warm-up (first calls are slow), not recorded
            signal.setitimer(signal.ITIMER_REAL, args.timeout_s)
            try:
                run_mode(mode, model, tok, vocab, warm, prompt_ids(tok, prompt_for(warm)), peers,
                         24)
            except (SoftTimeout, Exception):  # noqa: BLE001 - the measured run will say
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        for name, schema in tqdm(schemas, desc="e2e", unit="schema"):
            ids = prompt_ids(tok, prompt_for(schema))
            for mode in modes:
                signal.setitimer(signal.ITIMER_REAL, args.timeout_s)
                try:
                    rec = run_mode(mode, model, tok, vocab, schema, ids, peers,
                                   args.max_new_tokens)
                except SoftTimeout:
                    rec = {"mode": mode, "error": f"timeout: over {args.timeout_s:g} s",
                           "ms_per_token": None, "new_tokens": 0, "valid": False}
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    rec = {"mode": mode, "error": f"{type(exc).__name__}: {exc}"[:500],
                           "ms_per_token": None, "new_tokens": 0, "valid": False}
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                rec.update(id=name, vocab_size=vocab.vocab_size, prompt_tokens=len(ids))
                f.write(json.dumps(rec) + "\n")
                f.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
