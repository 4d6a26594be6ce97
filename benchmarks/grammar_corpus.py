"""Real strings for each shipped grammar (``grammars/*.lark``), chosen deterministically.

- ``json``: instances from the MaskBench data (``tests[].data`` serialised with ``json.dumps``,
  default separators and ``\\uXXXX`` escapes, as the MaskBench runner does), 30 short ones taken
  across the sorted files at an even stride.
- ``python_expr``: whole expressions of statements (``x = <expr>``, ``return <expr>``,
  ``if <expr>:``, ...) in Python's own standard library (``ast.get_source_segment``), at most one
  per top-level module, modules taken at an even stride.
- ``arithmetic``: numeric expressions (numbers, ``+ - * /``, unary minus, parentheses) in the
  standard library and its test suite; the longest ones, leaving out those that are a piece of
  one already taken.
- ``sql_select`` and ``csv``: hand-written, realistic strings (below).

Every string is kept only if ``lark`` itself parses it with the shipped grammar (Earley, start
rule ``start``); at most ``CAP`` strings per grammar, each at most ``MAX_LEN`` characters. The
stdlib strings depend on the Python version that builds the corpus (recorded in the cache).

    python -m benchmarks.grammar_corpus            # build (or read) the corpus and summarise it
    python -m benchmarks.grammar_corpus --show     # print every string

The corpus is cached in ``$BENCH_RESULTS/grammar-corpus.json`` (building it parses ~1,500
stdlib files: about half a minute); ``--rebuild`` ignores the cache.
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import RESULTS
from benchmarks.maskbench import DEFAULT_DATA

CAP = 30
MAX_LEN = 300
GRAMMARS_DIR = Path(__file__).resolve().parents[1] / "grammars"
VERSION = 1  # bump when the selection rules change (invalidates caches)

SQL = [
    "SELECT * FROM users;",
    "SELECT id, name, email FROM users WHERE active = TRUE ORDER BY name",
    "select count(*) from orders where status = 'shipped'",
    "SELECT DISTINCT country FROM customers ORDER BY country ASC",
    "SELECT u.id, u.name, COUNT(o.id) AS order_count FROM users u LEFT JOIN orders o "
    "ON o.user_id = u.id GROUP BY u.id, u.name HAVING COUNT(o.id) > 5 ORDER BY order_count DESC",
    "SELECT product_id, SUM(quantity * unit_price) AS revenue FROM order_items "
    "GROUP BY product_id ORDER BY revenue DESC LIMIT 10",
    "SELECT name FROM employees WHERE salary BETWEEN 50000 AND 80000 "
    "AND department_id IN (3, 5, 7)",
    "SELECT title, release_year FROM films WHERE title LIKE 'The %' AND rating <> 'NC-17'",
    "SELECT e.first_name || ' ' || e.last_name AS full_name, d.name AS department "
    "FROM employees AS e INNER JOIN departments AS d ON e.department_id = d.id",
    "SELECT * FROM events WHERE deleted_at IS NULL AND created_at >= '2024-01-01' "
    "ORDER BY created_at DESC LIMIT 50 OFFSET 100;",
    "SELECT customer_id, AVG(total) FROM invoices GROUP BY customer_id",
    "SELECT p.name, c.name AS category FROM products p CROSS JOIN categories c",
    "SELECT id FROM sessions WHERE expires_at < 1700000000 OR revoked = TRUE",
    "SELECT city, COUNT(DISTINCT customer_id) AS customers FROM addresses "
    "WHERE country = 'DE' GROUP BY city HAVING COUNT(DISTINCT customer_id) >= 10",
    "SELECT name, price * 1.19 AS gross_price FROM products WHERE price > 0 AND NOT discontinued",
    "SELECT a.id, b.id FROM accounts a FULL OUTER JOIN balances b ON a.id = b.account_id "
    "WHERE b.amount IS NOT NULL",
    "SELECT s.name, t.name FROM students s RIGHT JOIN teams t ON s.team_id = t.id "
    "ORDER BY t.name, s.name",
    "SELECT id, email FROM users WHERE email NOT LIKE '%@example.com' AND id NOT IN (1, 2)",
    "SELECT MAX(score) - MIN(score) AS spread, COUNT(*) FROM results WHERE round = 3;",
    "SELECT o.*, c.name FROM public.orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.total % 2 = 0 AND (o.status = 'open' OR o.status = 'pending')",
]

CSV = [
    "id,name,email\n1,Alice,alice@example.com\n2,Bob,bob@example.com\n",
    "date,open,high,low,close,volume\n2024-03-01,182.15,184.20,181.50,183.90,53120400\n"
    "2024-03-04,184.00,185.10,182.33,184.75,48811200\n",
    'name,quote\n"Twain, Mark","The secret of getting ahead is getting started."\n',
    'sku,description,price\nA-100,"Widget, large",19.99\nA-101,"Widget ""deluxe""",24.50\n',
    "city,country,population\r\nTokyo,Japan,37400068\r\nDelhi,India,28514000\r\n",
    "a,b,c\n1,,3\n,,\n4,5,\n",
    "timestamp,level,message\n2024-05-01T12:00:00Z,INFO,service started\n"
    "2024-05-01T12:00:05Z,WARN,disk usage at 85%\n",
    '"first line\nsecond line",x\ny,z',
    "country_code,country_name\nFR,France\nDE,Germany\nIT,Italy\nES,Spain\nPT,Portugal",
    "user_id;score\n17;88\n23;92\n",
    'id,json\n1,"{""a"": 1, ""b"": [1, 2]}"\n',
    "lat,lon,label\n48.8566,2.3522,Paris\n51.5074,-0.1278,London\n40.7128,-74.0060,New York\n",
    "Name, Age, Occupation\nJohn Smith, 42, Engineer\nJane Doe, 37, Physician\n",
    "order_id,customer,total,paid\n1001,ACME Corp,1520.00,true\n1002,Globex,89.90,false\n",
    'title,author,year\n"Goodbye, Mr. Chips",James Hilton,1934\nDune,Frank Herbert,1965\n',
    "x\n1\n2\n3\n4\n5\n",
    "header_only,no_rows\n",
    'path,size\n"C:\\Program Files\\app.exe",102400\n/usr/bin/env,35000\n',
    "emoji,meaning\n\U0001f600,grinning face\n\u2764,red heart\n",
    "k,v\nalpha,1\nbeta,2\ngamma,3\ndelta,4\nepsilon,5\n",
]


# ------------------------------------------------------------------------------- lark checks


def lark_parser(name: str) -> Any:
    """The ``lark`` Earley parser of the shipped grammar ``name`` (start rule ``start``)."""
    import lark

    text = (GRAMMARS_DIR / f"{name}.lark").read_text(encoding="utf-8")
    return lark.Lark(text, parser="earley", start="start")


def lark_accepts(parser: Any, text: str) -> bool:
    import lark

    try:
        parser.parse(text)
    except lark.exceptions.LarkError:
        return False
    return True


def _keep(parser: Any, candidates: Iterable[str], cap: int = CAP) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for s in candidates:
        if s in seen or len(s) > MAX_LEN or not s:
            continue
        seen.add(s)
        if lark_accepts(parser, s):
            out.append(s)
            if len(out) >= cap:
                break
    return out


# ------------------------------------------------------------------------------------- json


def json_strings(data_dir: str | Path = DEFAULT_DATA) -> list[str]:
    """~30 short MaskBench instances (20..300 characters), one per file at an even stride."""
    files = sorted(Path(data_dir).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no MaskBench files in {data_dir}")
    parser = lark_parser("json")

    def candidates() -> Iterator[str]:
        step = max(1, len(files) // (4 * CAP))
        for path in files[::step]:
            tests = json.loads(path.read_text()).get("tests", [])
            for t in tests:
                s = json.dumps(t["data"])
                if 20 <= len(s) <= MAX_LEN:
                    yield s
                    break

    return _keep(parser, candidates())


# ----------------------------------------------------------------------------------- stdlib


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _parse(path: Path) -> tuple[list[bytes], ast.AST] | None:
    """(the source's lines as UTF-8 bytes, its AST), or None when it does not parse."""
    try:
        src = path.read_text(encoding="utf-8")
        return [line.encode() for line in re.split(r"\r\n|\r|\n", src)], ast.parse(src)
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return None


def _segment(lines: list[bytes], node: ast.AST) -> str | None:
    """``ast.get_source_segment`` for a node on one line (None for multi-line nodes), without
    re-splitting the whole source on each call (that made big modules quadratic)."""
    if node.lineno != node.end_lineno or node.end_col_offset is None:
        return None
    return lines[node.lineno - 1][node.col_offset : node.end_col_offset].decode()


_STATEMENT_EXPRS: tuple[tuple[type, str], ...] = (
    (ast.Assign, "value"),
    (ast.AnnAssign, "value"),
    (ast.AugAssign, "value"),
    (ast.Return, "value"),
    (ast.Expr, "value"),
    (ast.If, "test"),
    (ast.While, "test"),
    (ast.Assert, "test"),
)


def python_expr_strings() -> list[str]:
    """Whole statement expressions (20..300 chars, one line) from the top-level stdlib modules,
    at most one per module, modules at an even stride over their sorted names."""
    parser = lark_parser("python_expr")
    modules = sorted(_stdlib().glob("*.py"))
    step = max(1, len(modules) // (2 * CAP))
    out: list[str] = []
    # two sweeps (offset 0, then the modules in between) in case the first leaves gaps
    for start in range(step):
        for path in modules[start::step]:
            parsed = _parse(path)
            if parsed is None:
                continue
            lines, tree = parsed
            cands = []
            for node in ast.walk(tree):
                for kind, field in _STATEMENT_EXPRS:
                    if isinstance(node, kind):
                        expr = getattr(node, field)
                        if isinstance(expr, (ast.Name, ast.Constant)) or expr is None:
                            continue
                        seg = _segment(lines, expr)
                        if seg and 20 <= len(seg) <= MAX_LEN:
                            cands.append((expr.lineno, expr.col_offset, seg))
            cands.sort()
            got = _keep(parser, (s for _, _, s in cands[:40] if s not in out), cap=1)
            out += got
            if len(out) >= CAP:
                return out
    return out


_ARITH_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)


def _is_arith(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub) and _is_arith(node.operand)
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, _ARITH_OPS) and _is_arith(node.left) and _is_arith(node.right)
    return False


def arithmetic_strings() -> list[str]:
    """Numeric ``+ - * /`` expressions (at least one binary operator, one line) from the stdlib
    and its tests: the longest first, none that is a substring of one already taken."""
    parser = lark_parser("arithmetic")
    lib = _stdlib()
    skip = {"site-packages", "idlelib", "turtledemo"}
    found: set[str] = set()
    for path in sorted(lib.rglob("*.py")):
        if skip & set(path.relative_to(lib).parts):
            continue
        parsed = _parse(path)
        if parsed is None:
            continue
        lines, tree = parsed
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and _is_arith(node):
                seg = _segment(lines, node)
                if seg and len(seg) <= MAX_LEN:
                    found.add(seg)
    ordered = sorted(found, key=lambda s: (-len(s), s))
    out: list[str] = []
    for s in ordered:
        if any(s in t for t in out):
            continue
        if lark_accepts(parser, s):
            out.append(s)
            if len(out) >= CAP:
                break
    return out


# ----------------------------------------------------------------------------------- corpus


BUILDERS: dict[str, Callable[..., list[str]]] = {
    "json": json_strings,
    "python_expr": python_expr_strings,
    "arithmetic": arithmetic_strings,
    "sql_select": lambda: _keep(lark_parser("sql_select"), SQL),
    "csv": lambda: _keep(lark_parser("csv"), CSV),
}


def build_corpus(data_dir: str | Path = DEFAULT_DATA) -> dict[str, list[str]]:
    corpus = {}
    for name, build in BUILDERS.items():
        corpus[name] = build(data_dir) if name == "json" else build()
    return corpus


def load_corpus(
    data_dir: str | Path = DEFAULT_DATA, rebuild: bool = False, cache: Path | None = None
) -> dict[str, list[str]]:
    """The corpus ``{grammar: [strings]}``, read from the cache when it matches this Python
    version, the data folder and the selection rules, else built (and cached)."""
    cache = cache or RESULTS / "grammar-corpus.json"
    key = {
        "version": VERSION,
        "python": platform.python_version(),
        "data": str(data_dir),
        "cap": CAP,
        "max_len": MAX_LEN,
    }
    if cache.exists() and not rebuild:
        try:
            stored = json.loads(cache.read_text())
            if stored.get("key") == key:
                return stored["corpus"]
        except (ValueError, KeyError):
            pass
    corpus = build_corpus(data_dir)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "corpus": corpus}, indent=1, ensure_ascii=False))
    return corpus


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder of MaskBench json files")
    p.add_argument("--rebuild", action="store_true", help="ignore the cached corpus")
    p.add_argument("--show", action="store_true", help="print every string")
    args = p.parse_args(argv)
    corpus = load_corpus(args.data, rebuild=args.rebuild)
    for name, strings in corpus.items():
        lens = sorted(len(s) for s in strings)
        med = lens[len(lens) // 2] if lens else 0
        print(f"{name}: {len(strings)} strings, length median {med}, max {max(lens, default=0)}")
        if args.show:
            for s in strings:
                print(f"    {s!r}")
    missing = [n for n, s in corpus.items() if not s]
    if missing:
        print(f"no strings for: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
