"""The shipped Lark grammars (``grammars/*.lark``) driven by real strings, per engine.

Issue 3's targets, on the SmolLM2 (49,152) and DeepSeek (~128k) vocabularies: single-token check
p50 <= 10 us; full mask p50 <= 50 us and p99 <= 5 ms including first visits; compile (time to
first mask) p50 <= 5 ms. Per (engine, tokenizer, grammar), in one worker task:

1. Warm-up, once per worker process: compile a regular and a recursive one-line grammar and
   compute a mask with each, untimed for the grammars (``warmup_us`` is recorded). It pays the
   vocabulary-level setup every engine does once per process (structgen's token trie and lark's
   ``common`` grammar; XGrammar's ``TokenizerInfo`` and llguidance's tokenizer are built before
   it, with the engine). Process-wide caches keyed by regex text are not cleared between grammars.
2. TTFM: compile the grammar (no compile cache), make a matcher, compute the first full mask.
3. Checks, on a second fresh compile (``compile2_us``) that never computes a mask: each string of
   the corpus (``benchmarks.grammar_corpus``) is tokenized with the HF tokenizer
   (``add_special_tokens=False``); on a fresh matcher, before each token the string's own token
   is checked alone (timed: the token an LLM would usually propose), then a token drawn at random
   from the vocabulary (timed apart: usually rejected), then the token is committed; EOS is
   checked at the end (timed and counted apart: llguidance's ``validate_tokens([EOS])`` returns
   0 in some accepting states where ``consume_token(EOS)`` succeeds). One check is, per engine:
   structgen ``Matcher.validate_tokens([t]) == 1`` (what AWRS calls; no state change);
   llguidance ``LLMatcher.validate_tokens([t]) == 1`` (no state change); XGrammar
   ``GrammarMatcher.accept_token(t)``, then ``rollback(1)`` if accepted.
4. Cold masks, on the handle of step 2: every string is walked token by token; before every token,
   and before EOS at the end, the full next-token mask is computed (timed), the token's bit
   checked and the token committed (``harness.judge``). The handle is fresh, so these times
   include the first visit of every parser state. A string that ``lark`` accepts (all of them)
   but the engine rejects is a false reject.
5. Warm masks: the strings finished in step 4 walked again on the same handle (steady state);
   when step 4 was cut short inside a string, the masks it finished there are computed again.

Each phase has a soft deadline: its share of ``--timeout-s`` (compile 20%, checks 20%, cold masks
40%, warm masks 20%) plus what earlier phases left unused. A phase that runs late is cut short,
listed in ``truncated``, and the record keeps what it measured (``status: partial``); a first
mask that runs late leaves ``ttfm_us`` empty and ``ttfm_over_us`` (the phase's limit) set, and the
cold walk then starts on a fresh handle.

    python -m benchmarks.grammars --tokenizer smollm2
    python -m benchmarks.grammars --tokenizer deepseek --engines structgen --grammars json,csv

Output: ``$BENCH_RESULTS/grammars-<engine>-<tokenizer>.jsonl``, one line per grammar (resumable).
``status: timeout`` only when the compile itself runs late (or the worker is killed). The
grammars are read from the checkout's ``grammars/``, not through ``structgen.grammar.shipped``
(which would look next to a frozen copy of the source).
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

from benchmarks.harness import (
    RESULTS,
    TOKENIZERS,
    SoftTimeout,
    done_ids,
    error_record,
    judge,
    log_run,
    start_pool,
)
from benchmarks.maskbench import DEFAULT_DATA

GRAMMAR_ENGINES = ("structgen", "llguidance", "xgrammar")
MAX_FAILS = 5
WARMUP_GRAMMARS = (
    'start: "n=" NUMBER\n%import common.NUMBER\n',
    'start: "(" start ")" | NUMBER\n%import common.NUMBER\n',
)
_warm: dict[str, Any] = {}  # per worker process: the warm-up was done


def _checker(engine: Any) -> Any:
    """``check(matcher, token) -> bool``: one token tested alone, matcher state unchanged."""
    from benchmarks.engines import LLGuidanceEngine, StructgenEngine, XGrammarEngine

    if isinstance(engine, (StructgenEngine, LLGuidanceEngine)):
        return lambda m, t: m.validate_tokens([t]) == 1
    if isinstance(engine, XGrammarEngine):

        def check(m: Any, t: int) -> bool:
            ok = bool(m.accept_token(t))
            if ok:
                m.rollback(1)
            return ok

        return check
    raise ValueError(f"no single-token check for engine {engine.name}")


def _warm_up(engine: Any) -> dict[str, Any]:
    """Once per worker process: compile a regular and a recursive one-line grammar and compute
    a mask with each (vocabulary-level setup paid outside the measured grammars)."""
    from benchmarks.engines import CompileError

    if _warm:
        return {}
    _warm["done"] = True
    t0 = time.perf_counter_ns()
    done = []
    for text in WARMUP_GRAMMARS:
        try:
            handle = engine.compile_grammar(text)
        except CompileError:
            continue
        engine.fill_mask(engine.new_matcher(handle), engine.new_mask())
        done.append(text)
    return {"warmup_us": (time.perf_counter_ns() - t0) // 1000, "warmup_grammars": done}


def _fail(engine: Any, i: int, tokens: list[int], text: str, at: int, why: str) -> dict:
    tok = engine.tokenizer.decode([tokens[at]]) if 0 <= at < len(tokens) else "<EOS>"
    return {"string": i, "at": at, "token": tok, "why": why, "text": text[:300]}


class _Phases:
    """Runs the phases of one grammar, each under its own soft deadline: its share of the task's
    time limit plus what earlier phases left unused. A phase that runs late is cut short and
    listed in ``rec["truncated"]``, and the next phase starts with its own share."""

    SHARES = {"compile": 0.2, "checks": 0.2, "cold masks": 0.4, "warm masks": 0.2}

    def __init__(self, rec: dict[str, Any], limit_s: float) -> None:
        self.rec = rec
        self.limit_s = limit_s
        self.carry = 0.0
        rec["truncated"] = []

    def run(self, name: str, fn: Any) -> bool:
        """``fn()`` under the phase's deadline; False if it was cut short."""
        self.rec["phase"] = name
        allowed = self.SHARES[name] * self.limit_s + self.carry
        t0 = time.monotonic()
        if self.limit_s > 0:
            signal.setitimer(signal.ITIMER_REAL, max(allowed, 0.001))
        try:
            fn()
            return True
        except SoftTimeout:
            self.rec["truncated"].append(name)
            self.rec.setdefault("phase_limits_s", {})[name] = round(allowed, 3)
            return False
        finally:
            if self.limit_s > 0:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.monotonic() - t0
            self.rec.setdefault("phase_s", {})[name] = round(elapsed, 4)
            self.carry = max(0.0, allowed - elapsed)


def process_grammar(engine: Any, task: dict[str, Any]) -> dict[str, Any]:
    """Runs in the worker: the record of one grammar (see the module docstring)."""
    from benchmarks.engines import CompileError

    rec: dict[str, Any] = {"phase": "warmup", **_warm_up(engine)}
    try:
        _run_grammar(engine, task, rec)
    except SoftTimeout:
        rec.update(status="timeout", error=f"time limit reached during {rec['phase']}")
    except CompileError as exc:
        rec.update(
            status="compile_error", error_type=exc.kind, error=str(exc)[:2000], unexpected=False
        )
    return rec


def _run_grammar(engine: Any, task: dict[str, Any], rec: dict[str, Any]) -> None:
    from benchmarks.engines import CompileError

    strings: list[str] = task["strings"]
    clock = time.perf_counter_ns
    tokenized = [engine.tokenizer.encode(s, add_special_tokens=False) for s in strings]
    rec.update(
        n_strings=len(strings),
        n_tokens=sum(len(t) for t in tokenized),
        roundtrip_mismatches=sum(
            1 for s, t in zip(strings, tokenized, strict=True) if engine.tokenizer.decode(t) != s
        ),
    )
    phases = _Phases(rec, float(task.get("_soft_timeout_s", 0)))
    handles: list[Any] = []
    mask = engine.new_mask()

    def ttfm() -> None:  # compile + matcher + first mask on a fresh handle
        t0 = clock()
        handle = engine.compile_grammar(task["lark"])
        t1 = clock()
        rec.update(compile_us=(t1 - t0) // 1000, describe=engine.describe(handle))
        handles.append(handle)
        engine.fill_mask(engine.new_matcher(handle), mask)
        rec["ttfm_us"] = (clock() - t0) // 1000

    try:
        if not phases.run("compile", ttfm):
            if not handles:
                rec.update(status="timeout", error="time limit reached while compiling")
                return
            # the first mask ran late: TTFM is over the limit; later phases go on, and the cold
            # walk gets a fresh handle (the interrupted one may hold half-filled caches)
            rec["ttfm_over_us"] = int(rec["phase_limits_s"]["compile"] * 1e6)
            handles[0] = engine.compile_grammar(task["lark"])
    except CompileError:
        raise
    except Exception as exc:  # noqa: BLE001 - not a deliberate refusal: recorded as unexpected
        rec.update(status="compile_error", unexpected=True, **error_record(exc))
        return
    handle = handles[0]

    # single-token checks, on a second fresh handle that never computes a mask
    check = _checker(engine)
    check_ns: list[int] = []
    random_ns: list[int] = []
    eos_ns: list[int] = []
    check_fails: list[dict[str, Any]] = []
    rec.update(
        check_ns=check_ns,
        check_random_ns=random_ns,
        check_eos_ns=eos_ns,
        check_fails=check_fails,
        check_strings_run=0,
        check_rejects=0,
        eos_check_rejects=0,
        random_accepted=0,
    )
    eos = engine.eos_ids[0]

    def checks() -> None:
        t0 = clock()
        handle2 = engine.compile_grammar(task["lark"])
        rec["compile2_us"] = (clock() - t0) // 1000
        for i, (text, tokens) in enumerate(zip(strings, tokenized, strict=True)):
            rng = random.Random(f"{task['grammar']}:{i}")
            m = engine.new_matcher(handle2)
            for at, t in enumerate(tokens):
                s = clock()
                ok = check(m, t)
                check_ns.append(clock() - s)
                r = rng.randrange(engine.vocab_size)
                s = clock()
                r_ok = check(m, r)
                random_ns.append(clock() - s)
                rec["random_accepted"] += r_ok
                why = "" if ok else "check said no"
                if ok and not engine.commit(m, t):
                    why = "commit refused"
                if why:
                    rec["check_rejects"] += 1
                    if len(check_fails) < MAX_FAILS:
                        check_fails.append(_fail(engine, i, tokens, text, at, why))
                    break
            else:  # EOS, timed apart (llguidance's validate_tokens may refuse it, see above)
                s = clock()
                ok = check(m, eos)
                eos_ns.append(clock() - s)
                if not ok:
                    rec["eos_check_rejects"] += 1
                    if len(check_fails) < MAX_FAILS:
                        why = f"EOS check said no (is_accepting: {engine.is_accepting(m)})"
                        check_fails.append(_fail(engine, i, tokens, text, len(tokens), why))
            rec["check_strings_run"] += 1

    phases.run("checks", checks)

    # cold masks (first visits included), then the same strings again (steady state)
    cold_done: list[int] = []
    fails: list[dict[str, Any]] = []
    rec.update(
        mask_us=[],
        mask_warm_us=[],
        accepted=0,
        false_rejects=0,
        string_errors=0,
        fails=fails,
        warm_accepted=0,
    )

    cut: dict[str, int] = {}  # the string a cut-short walk was in, and its masks finished

    def walk(key: str, which: list[int], done: list[int], count: str) -> None:
        times = rec[key]
        for i in which:
            text, tokens = strings[i], tokenized[i]
            cut.update(string=i, masks_before=len(times))
            try:
                res = judge(engine, handle, tokens, True, mask, times)
            except Exception as exc:  # noqa: BLE001
                done.append(i)
                if count == "accepted":
                    rec["string_errors"] += 1
                    if len(fails) < MAX_FAILS:
                        fails.append({"string": i, "text": text[:300], **error_record(exc)})
                continue
            done.append(i)
            if res["accepted"]:
                rec[count] += 1
            elif count == "accepted":
                rec["false_rejects"] += 1
                if len(fails) < MAX_FAILS:
                    fails.append(_fail(engine, i, tokens, text, res["at"], res["why"]))
        cut.clear()

    def warm_walk() -> None:
        walk("mask_warm_us", cold_done, warm_done, "warm_accepted")
        if not prefix:
            return
        # the prefix of the string the cold walk was cut in: its finished masks' states again
        i, n = prefix
        m = engine.new_matcher(handle)
        for j, t in enumerate(tokenized[i][:n]):
            s = clock()
            engine.fill_mask(m, mask)
            rec["mask_warm_us"].append((clock() - s) // 1000)
            if j < n - 1 and not engine.commit(m, t):
                break
        rec["warm_prefix_masks"] = n

    phases.run(
        "cold masks", lambda: walk("mask_us", list(range(len(strings))), cold_done, "accepted")
    )
    rec["cold_strings_run"] = len(cold_done)
    prefix = (cut["string"], len(rec["mask_us"]) - cut["masks_before"]) if cut else None
    warm_done: list[int] = []
    phases.run("warm masks", warm_walk)
    rec["warm_strings_run"] = len(warm_done)
    rec.update(status="partial" if rec["truncated"] else "ok", phase="done")


def default_out(engine: str, tokenizer: str) -> Path:
    return RESULTS / f"grammars-{engine}-{tokenizer}.jsonl"


def run_engine(engine: str, tasks: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from tqdm import tqdm

    out = (
        Path(args.out.format(engine=engine, tokenizer=args.tokenizer))
        if args.out
        else default_out(engine, args.tokenizer)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_ids(out)
    todo = [t for t in tasks if t["grammar"] not in done]
    print(
        f"[grammars] {engine}/{args.tokenizer}: {len(todo)} grammars to run "
        f"({len(tasks) - len(todo)} already in {out})",
        file=sys.stderr,
    )
    if not todo:
        return
    worker_task = "benchmarks.grammars:process_grammar"
    pool = start_pool("grammars", engine, args.tokenizer, worker_task, args.timeout_s, args.mem_gb)
    if pool is None:
        return
    counts: dict[str, int] = {}
    with pool, out.open("a") as f:
        bar = tqdm(todo, desc=f"{engine}/{args.tokenizer}", unit="grammar", dynamic_ncols=True)
        for task in bar:
            bar.set_postfix_str(task["grammar"], refresh=True)
            rec = pool.run(task)
            rec = {
                "id": task["grammar"],
                "engine": engine,
                "tokenizer": args.tokenizer,
                "structgen_code": pool.code,
                "n_strings": len(task["strings"]),
                **rec,
            }
            f.write(json.dumps(rec) + "\n")
            f.flush()
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    print(f"[grammars] {engine}/{args.tokenizer}: {counts}", file=sys.stderr)


# ------------------------------------------------------------------------------------ report

TARGETS = (  # issue 3: (label, statistic key, percentile, limit in us)
    ("single-token check p50 <= 10 us", "check", 50, 10.0),
    ("full mask p50 <= 50 us (first visits included)", "cold", 50, 50.0),
    ("full mask p99 <= 5 ms (first visits included)", "cold", 99, 5000.0),
    ("compile (TTFM) p50 <= 5 ms", "ttfm", 50, 5000.0),
)


def _samples(recs: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """Per statistic, (measured values in us, lower bounds in us for the ones cut short)."""
    out: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("ttfm", "cold", "warm", "check", "random")
    }
    for r in recs:
        if r.get("ttfm_us") is not None:
            out["ttfm"][0].append(r["ttfm_us"])
        elif r.get("ttfm_over_us"):
            out["ttfm"][1].append(r["ttfm_over_us"])
        for key, field, phase in (
            ("cold", "mask_us", "cold masks"),
            ("warm", "mask_warm_us", "warm masks"),
        ):
            vals = r.get(field) or []
            out[key][0].extend(vals)
            if phase in r.get("truncated", ()):
                # the phase's time not spent in finished masks: about the mask cut short
                cut = 1e6 * r.get("phase_s", {}).get(phase, 0.0) - sum(vals)
                if cut > 0:
                    out[key][1].append(cut)
        out["check"][0].extend(t / 1000 for t in r.get("check_ns") or ())
        out["random"][0].extend(t / 1000 for t in r.get("check_random_ns") or ())
    return out


def _cpct(sample: tuple[list[float], list[float]], q: float) -> tuple[float, bool]:
    """Nearest-rank percentile over measured values and lower bounds; True when it is itself
    only a lower bound (a cut-short value at or below it could be larger)."""
    vals, cens = sample
    allv = [*vals, *cens]
    if not allv:
        return float("nan"), False
    import numpy as np

    p = float(np.percentile(np.asarray(allv, dtype=np.float64), q, method="nearest"))
    return p, any(c <= p for c in cens)


def _fmt(x: float, lower: bool = False) -> str:
    from benchmarks.report_util import fmt_us

    if x != x:
        return "-"
    s = f"{x:.1f} us" if x < 10 else fmt_us(x)
    return f">= {s}" if lower else s


def _cell(sample: tuple[list[float], list[float]], q: float) -> str:
    return _fmt(*_cpct(sample, q))


def _status(r: dict[str, Any]) -> str:
    st = r["status"]
    if st == "partial":
        return "cut: " + ", ".join(r.get("truncated", ()))
    if st == "compile_error":
        return f"compile error: {str(r.get('error', ''))[:80]}"
    if st in ("ok",):
        return st
    return f"{st}: {str(r.get('error', ''))[:80]}"


def _walked(recs: list[dict[str, Any]]) -> str:
    acc = sum(r.get("accepted", 0) for r in recs)
    run = sum(r.get("cold_strings_run", 0) for r in recs)
    total = sum(r.get("n_strings", 0) for r in recs)
    return f"{acc}/{run}" + (f" (of {total})" if run != total else "")


def report_section(groups: Any = None) -> list[str]:
    """The "Shipped grammars" section of BENCHMARKS.md, from ``grammars-*.jsonl``."""
    from benchmarks.report_util import engines_of, load, table

    groups = groups if groups is not None else load("grammars")
    toks = sorted({t for t, _ in groups}, key=lambda t: t != "smollm2")
    if not toks:
        return []
    out = [
        "## Shipped grammars (`grammars/*.lark`, real strings)",
        "",
        "Each shipped grammar compiled per engine and driven by real strings (30 JSON "
        "instances from MaskBench; 30 expressions from Python's standard library for "
        "`python_expr` and `arithmetic`; 20 hand-written strings each for `sql_select` and "
        "`csv`; every one accepted by `lark` itself: `benchmarks/grammar_corpus.py`). Per "
        "grammar: TTFM = compile + matcher + first full mask on a fresh handle (no compile "
        "cache; vocabulary-level setup paid before, by a warm-up grammar); *cold* masks = "
        "every string walked on that fresh handle, a full mask before each token and before "
        "EOS (first visits of every parser state included); *warm* = the same strings again on "
        "the same handle (steady state); *check* = one token tested alone on a matcher that "
        "never computes a mask, the string's own token before it is committed (*random*: a "
        "token drawn at random, usually rejected). A check is `Matcher.validate_tokens([t])` "
        "for structgen (what AWRS calls), `LLMatcher.validate_tokens([t])` for llguidance, "
        "`GrammarMatcher.accept_token(t)` + `rollback(1)` when accepted for XGrammar; "
        "the EOS check at the end of a string is counted apart (llguidance's "
        "`validate_tokens([EOS])` returns 0 in some accepting states). "
        "A false reject is a lark-valid string the engine rejects. Details: "
        "`benchmarks/grammars.py`.",
        "",
        "Each grammar runs under a time limit split into phases (compile 20%, checks 20%, "
        "cold masks 40%, warm 20%; unused time carries forward). A phase cut short is listed "
        "(*cut*); its strings not reached are missing from the percentiles (*accepted/walked "
        "(of total)*), and the mask in flight counts as one value of at least the phase's "
        "unfinished time (shown `>=` where that decides a percentile). Percentiles are "
        "nearest-rank. *Warm-up (setup)*: the two one-line warm-up grammars (compile + one mask "
        "each) on a new worker; for structgen it includes building the token trie, while "
        "XGrammar's and llguidance's tokenizer set-up happens untimed when the engine is made.",
        "",
    ]
    from benchmarks.report import code_warning

    per_tok: dict[str, dict[str, dict[str, Any]]] = {}
    for tok in toks:
        engines = engines_of(groups, tok)
        out += [f"### {tok} tokenizer", ""] + code_warning(groups, tok)
        rows = []
        per_tok[tok] = {}
        for e in engines:
            recs = sorted(groups[(tok, e)], key=lambda r: r["id"])
            s = _samples(recs)
            per_tok[tok][e] = s
            ok = sum(1 for r in recs if r["status"] == "ok")
            cut = sum(1 for r in recs if r["status"] == "partial")
            failed = len(recs) - ok - cut
            warmup = next((r["warmup_us"] for r in recs if r.get("warmup_us")), float("nan"))
            rows.append(
                [
                    f"**{e}**",
                    f"{ok} / {cut} / {failed}",
                    _walked(recs),
                    str(sum(r.get("false_rejects", 0) for r in recs)),
                    f"{sum(r.get('check_rejects', 0) for r in recs)} "
                    f"(EOS: {sum(r.get('eos_check_rejects', 0) for r in recs)})",
                    _cell(s["ttfm"], 50),
                    _cell(s["ttfm"], 100),
                    _cell(s["cold"], 50),
                    _cell(s["cold"], 99),
                    _cell(s["warm"], 50),
                    _cell(s["warm"], 99),
                    _cell(s["check"], 50),
                    _cell(s["check"], 99),
                    _fmt(warmup),
                ]
            )
        out += [
            "All grammars together (one row per engine):",
            "",
            table(
                [
                    "engine",
                    "grammars ok / cut / failed",
                    "strings accepted/walked",
                    "false rejects",
                    "check false rejects (EOS refused)",
                    "TTFM p50",
                    "TTFM max",
                    "cold mask p50",
                    "cold p99",
                    "warm mask p50",
                    "warm p99",
                    "check p50",
                    "check p99",
                    "warm-up (setup)",
                ],
                rows,
            ),
            "",
        ]
        rows = []
        for g in sorted({r["id"] for e in engines for r in groups[(tok, e)]}):
            for e in engines:
                r = next((x for x in groups[(tok, e)] if x["id"] == g), None)
                if r is None:
                    continue
                s = _samples([r])
                rows.append(
                    [
                        g,
                        e,
                        _status(r),
                        _walked([r]),
                        str(r.get("false_rejects", "-")),
                        _cell(s["ttfm"], 50),
                        _cell(s["cold"], 50),
                        _cell(s["cold"], 99),
                        _cell(s["cold"], 100),
                        _cell(s["warm"], 50),
                        _cell(s["warm"], 99),
                        _cell(s["check"], 50),
                        _cell(s["check"], 99),
                        _cell(s["random"], 50),
                    ]
                )
        out += [
            "Per grammar:",
            "",
            table(
                [
                    "grammar",
                    "engine",
                    "status",
                    "accepted/walked",
                    "false rejects",
                    "TTFM",
                    "cold mask p50",
                    "cold p99",
                    "cold max",
                    "warm p50",
                    "warm p99",
                    "check p50",
                    "check p99",
                    "random check p50",
                ],
                rows,
            ),
            "",
        ]
        fails = [
            (e, r["id"], where, f)
            for e in engines
            for r in groups[(tok, e)]
            for where, key in (("mask walk", "fails"), ("check walk", "check_fails"))
            for f in r.get(key) or []
            if not str(f.get("why", "")).startswith("EOS check")  # counted in the table
        ]
        if fails:
            out += ["Rejections of lark-valid strings (first few per grammar and walk):", ""]
            out += [
                f"- {e} / {g}, {where}: string {f.get('string')} at token {f.get('at')} "
                f"{f.get('token', '')!r}: {f.get('why') or f.get('error_type', '')} "
                f"{f.get('error', '')[:100]} — `{f.get('text', '')[:80]!r}`"
                for e, g, where, f in fails[:30]
            ] + [""]
    # the targets, structgen first, peers for comparison
    engines = [
        e for e in ("structgen", "llguidance", "xgrammar") if any(e in per_tok[t] for t in toks)
    ]
    rows = []
    for label, key, q, limit in TARGETS:
        for tok in toks:
            row = [label, tok]
            for e in engines:
                s = per_tok[tok].get(e)
                if s is None:
                    row.append("-")
                    continue
                v, lower = _cpct(s[key], q)
                verdict = "-" if v != v else ("met" if v <= limit and not lower else "not met")
                row.append(f"{_fmt(v, lower)} ({verdict})")
            rows.append(row)
    out += [
        "### Issue 3 targets",
        "",
        table(["target", "tokenizer", *engines], rows),
        "",
        "Over all grammars of a tokenizer: checks and masks pooled (grammars with more "
        "tokens weigh more), TTFM over the grammars. Masks a cut-short phase never computed "
        "are missing, which lowers an engine's pooled percentiles (the in-flight mask counts "
        "once).",
        "",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks.grammar_corpus import GRAMMARS_DIR, load_corpus

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", default=",".join(GRAMMAR_ENGINES))
    p.add_argument("--tokenizer", choices=TOKENIZERS, default="smollm2")
    p.add_argument("--grammars", default="", help="only these grammars (comma-separated)")
    p.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="MaskBench folder (JSON strings for the json grammar)",
    )
    p.add_argument("--rebuild-corpus", action="store_true", help="ignore the cached corpus")
    p.add_argument("--out", default="", help="output path; {engine} and {tokenizer} expand")
    p.add_argument("--timeout-s", type=float, default=120.0, help="per grammar")
    p.add_argument("--mem-gb", type=float, default=16.0, help="address-space cap per worker")
    args = p.parse_args(argv)
    log_run("grammars", ["python", "-m", "benchmarks.grammars", *(argv or sys.argv[1:])])
    corpus = load_corpus(args.data, rebuild=args.rebuild_corpus)
    wanted = [g for g in args.grammars.split(",") if g] or sorted(corpus)
    tasks = []
    for name in wanted:
        if name not in corpus:
            p.error(f"unknown grammar {name!r}; known: {', '.join(sorted(corpus))}")
        lark_text = (GRAMMARS_DIR / f"{name}.lark").read_text(encoding="utf-8")
        tasks.append({"grammar": name, "lark": lark_text, "strings": corpus[name]})
    for engine in [e for e in args.engines.split(",") if e]:
        run_engine(engine, tasks, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
