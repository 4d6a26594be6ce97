"""The ``structgen`` command line: ``generate`` output under a constraint, ``check`` a schema.

Errors print as one line (``error: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from structgen.errors import StructgenError

STDIN = "-"
"""The file name that stands for standard input (``--schema -``)."""


def _read_text(path: str) -> str:
    """The UTF-8 text of file ``path`` (standard input for ``-``)."""
    name = "<stdin>" if path == STDIN else path
    try:
        data = sys.stdin.buffer.read() if path == STDIN else Path(path).read_bytes()
    except OSError as exc:
        raise StructgenError(f"cannot read {name}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StructgenError(f"{name} is not valid UTF-8: {exc}") from exc


def _read_json(path: str) -> Any:
    """The JSON value in file ``path`` (standard input for ``-``)."""
    text = _read_text(path)
    name = "<stdin>" if path == STDIN else path
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StructgenError(f"{name} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise StructgenError(f"{name} is nested too deeply to read as JSON") from exc
    except ValueError as exc:  # an integer past Python's int-string conversion limit
        raise StructgenError(f"{name} cannot be read as JSON: {exc}") from exc


def _cmd_generate(args: argparse.Namespace) -> int:
    from structgen.grammar.ir import Grammar
    from structgen.integrations.generate import generate
    from structgen.models import load_model

    # read and lower the constraint first: a bad one is reported before the model loads (seconds)
    kwargs: dict[str, Any] = {}
    if args.schema is not None:
        schema = _read_json(args.schema)
        Grammar.from_json_schema(schema)  # errors only: generate() lowers it again, cheaply
        kwargs["schema"] = schema  # so that generate() validates the output with jsonschema
    elif args.grammar is not None:
        kwargs["grammar"] = Grammar.from_lark(_read_text(args.grammar))
    else:
        kwargs["grammar"] = Grammar.from_regex(args.regex)
    model, tokenizer = load_model(args.model)
    prompt: Any = args.prompt
    if not args.raw_prompt and getattr(tokenizer, "chat_template", None):
        prompt = [{"role": "user", "content": args.prompt}]
    result = generate(
        model,
        tokenizer,
        prompt,
        sampler=args.sampler,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        **kwargs,
    )
    print(result.text)
    if not result.complete:
        print(f"error: output incomplete ({result.reason})", file=sys.stderr)
        return 1
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from structgen.grammar.ir import Grammar

    schema = _read_json(args.schema)
    grammar = Grammar.from_json_schema(schema, best_effort=True)
    refused = [k for k in grammar.report if k.status == "refused"]
    for item in grammar.report:
        note = f"  ({item.note})" if item.note else ""
        print(f"{item.status:10} {item.pointer}{note}")
    for note in grammar.notes:
        print(f"note: {note}")
    if refused:
        print(f"error: {len(refused)} keyword(s) cannot be enforced exactly", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="structgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate text under a schema, grammar or regex")
    src = gen.add_mutually_exclusive_group(required=True)
    src.add_argument("--schema", help="JSON schema file ('-': standard input)")
    src.add_argument("--grammar", help="Lark grammar file ('-': standard input)")
    src.add_argument("--regex", help="regex the whole output must match")
    gen.add_argument("--prompt", required=True, help="the prompt (sent as a user chat message)")
    gen.add_argument("--raw-prompt", action="store_true", help="do not apply the chat template")
    gen.add_argument("--model", default=None, help="local HF model directory or .gguf file")
    gen.add_argument("--sampler", choices=["awrs", "masked"], default="awrs")
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--max-new-tokens", type=int, default=256)
    gen.set_defaults(func=_cmd_generate)
    chk = sub.add_parser("check", help="print how each keyword of a schema is enforced")
    chk.add_argument("--schema", required=True, help="JSON schema file ('-': standard input)")
    chk.set_defaults(func=_cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``structgen`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (StructgenError, ImportError, OSError) as exc:
        _error(str(exc))
    except RecursionError:
        _error("the input is nested too deeply")
    return 2


def _error(message: str) -> None:
    """Print ``error: message`` on one line of standard error."""
    print("error: " + " ".join(message.splitlines()), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
