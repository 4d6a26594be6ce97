"""Whitespace layouts of the JSON Schema lowering: ``compact``, ``flexible`` and ``pretty``.

The lowering places one whitespace expression (``LoweringBase.ws``) at every point JSON allows
whitespace between tokens: after ``{``/``[``, before ``}``/``]``, around ``,`` and ``:``. For
``compact`` it is empty, for ``flexible`` it is ``json_strings.BOUNDED_WHITESPACE``. ``pretty``
is the layout of ``json.dumps(value, indent=2)``, which depends on the nesting depth: the lowering
first places the marker ``PRETTY_MARK`` everywhere, then ``pretty_layout`` rewrites the finished
rule table, deciding each marker's role from its neighbours in its sequence (the lowering always
writes ``{``/``[`` and ``,``/``:`` as literals next to it) and specialising every rule that
contains a marker once per depth it is used at:

    after ``{``/``[`` (non-empty container)   a line break and the indentation of depth + 1
    before ``}``/``]``                        a line break and the indentation of the depth
    between ``{`` and ``}`` / ``[`` and ``]``  nothing (``{}``, ``[]``)
    before ``,`` or ``:``                      nothing
    after ``,``                                a line break and the indentation of the depth
    after ``:``                                one space

Depth is bounded: values nested deeper than ``MAX_PRETTY_DEPTH`` containers (only recursive
schemas reach them) fall back to the flexible whitespace there, so the rule table grows at most
``MAX_PRETTY_DEPTH + 1`` times. A marker whose role cannot be read from its neighbours (none is
known today) also stays flexible whitespace: the marker *is* that regex, written differently so it
can be recognised, so a marker left in place is still correct.
"""

from __future__ import annotations

from collections.abc import Sequence

from structgen.grammar.ir import Alt, Check, Expr, Lit, Ref, Regex, Repeat, Seq, alt, lit, seq
from structgen.grammar.json_strings import BOUNDED_WHITESPACE

__all__ = [
    "GENERATION_WHITESPACE",
    "MAX_PRETTY_DEPTH",
    "PRETTY_INDENT",
    "PRETTY_MARK",
    "WHITESPACE_MODES",
    "pretty_layout",
]

GENERATION_WHITESPACE = "flexible"
"""The layout ``generate`` asks for when ``schema_options`` names none. Measured
(``benchmarks/whitespace.py``, BENCHMARKS.md, 2026-12-03): SmolLM2 on 21 JSONSchemaBench schemas,
greedy, 160 tokens: valid 14 (compact) / 10 (flexible) / 9 (pretty), fewer outputs out of
tokens with compact. But compact fails two of the real-model tests that flexible passes
(issue 11's ``uniqueItems`` tags case: SmolLM2 wants ``", "`` between items and, refused the
space, writes the separator inside a string; and a free-form object it nests forever): the
sample is too small to trade those for. The default stays flexible until a larger measurement,
including json.dumps' own default layout (one space after ``,`` and ``:``), decides."""

WHITESPACE_MODES = ("compact", "flexible", "pretty")
"""The values of the ``whitespace`` option (``"bounded"`` is accepted as the old name of
``"flexible"``)."""

PRETTY_INDENT = 2
"""Spaces per nesting level in the ``pretty`` layout (``json.dumps(indent=2)``)."""

MAX_PRETTY_DEPTH = 12
"""Containers nested deeper than this get flexible whitespace in the ``pretty`` layout."""

PRETTY_MARK = Regex(f"(?:{BOUNDED_WHITESPACE})")
"""Placeholder for whitespace in the ``pretty`` layout: the flexible whitespace regex (so a marker
left in place stays correct), spelled with an extra group so it is recognisable."""

_FLEXIBLE = Regex(BOUNDED_WHITESPACE)
_OPEN = (b"{", b"[")
_CLOSE = (b"}", b"]")


def _indent(depth: int) -> Expr:
    return lit("\n" + " " * (PRETTY_INDENT * depth))


class _Layout:
    def __init__(self, rules: Sequence[tuple[str, Expr]]) -> None:
        self.rules = dict(rules)
        self.order = [name for name, _ in rules]
        self.out: dict[str, Expr] = {}
        self.memo: dict[tuple[int, int], Expr] = {}
        self.keep: list[Expr] = []  # keeps memo keys (ids) alive
        self.has_mark: dict[int, bool] = {}
        self.rule_marks = self._rule_marks()

    # -- which rules contain a marker (directly or through references) ---------------------------

    def _direct(self, expr: Expr, refs: set[str]) -> bool:
        """Whether ``expr`` contains a marker itself; collects the rules it references."""
        found = False
        seen: set[int] = set()
        todo = [expr]
        while todo:
            node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node == PRETTY_MARK:
                found = True
            elif isinstance(node, (Seq, Alt)):
                todo.extend(node.items)
            elif isinstance(node, (Repeat, Check)):
                todo.append(node.item)
            elif isinstance(node, Ref):
                refs.add(node.name)
        return found

    def _rule_marks(self) -> set[str]:
        refs: dict[str, set[str]] = {}
        marked: set[str] = set()
        for name, expr in self.rules.items():
            refs[name] = set()
            if self._direct(expr, refs[name]):
                marked.add(name)
        changed = True
        while changed:
            changed = False
            for name, out in refs.items():
                if name not in marked and any(r in marked for r in out):
                    marked.add(name)
                    changed = True
        return marked

    def _needs(self, expr: Expr) -> bool:
        """Whether ``expr`` contains a marker or references a rule that does."""
        hit = self.has_mark.get(id(expr))
        if hit is not None:
            return hit
        if expr == PRETTY_MARK:
            verdict = True
        elif isinstance(expr, Ref):
            verdict = expr.name in self.rule_marks
        elif isinstance(expr, (Seq, Alt)):
            verdict = any(self._needs(item) for item in expr.items)
        elif isinstance(expr, (Repeat, Check)):
            verdict = self._needs(expr.item)
        else:
            verdict = False
        self.has_mark[id(expr)] = verdict
        self.keep.append(expr)
        return verdict

    # -- specialisation ---------------------------------------------------------------------------

    def rule(self, name: str, depth: int) -> str:
        """The name of ``name`` specialised to ``depth`` (-1: deeper than the bound)."""
        if name not in self.rule_marks:
            return name
        new = f"{name}@{depth}" if depth >= 0 else f"{name}@deep"
        if new not in self.out:
            self.out[new] = _FLEXIBLE  # placeholder while the body is built (recursion)
            self.out[new] = self.expr(self.rules[name], depth)
        return new

    def expr(self, expr: Expr, depth: int) -> Expr:
        if not self._needs(expr):
            return expr
        key = (id(expr), depth)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        if expr == PRETTY_MARK:
            out: Expr = _FLEXIBLE  # a marker alone: its role is unknown
        elif isinstance(expr, Ref):
            out = Ref(self.rule(expr.name, depth))
        elif isinstance(expr, Seq):
            out = self._seq(expr.items, depth)
        elif isinstance(expr, Alt):
            out = alt(*(self.expr(item, depth) for item in expr.items))
        elif isinstance(expr, Repeat):
            out = Repeat(self.expr(expr.item, depth), expr.min, expr.max)
        elif isinstance(expr, Check):
            out = Check(self.expr(expr.item, depth), expr.predicate)
        else:  # pragma: no cover - _needs is False for every other node
            out = expr
        self.memo[key] = out
        self.keep.append(expr)
        return out

    def _seq(self, items: tuple[Expr, ...], depth: int) -> Expr:
        out: list[Expr] = []
        for i, item in enumerate(items):
            if item != PRETTY_MARK:
                out.append(self.expr(item, depth))
                continue
            prev = items[i - 1] if i else None
            nxt = items[i + 1] if i + 1 < len(items) else None
            prev_bytes = prev.value if isinstance(prev, Lit) else None
            next_bytes = nxt.value if isinstance(nxt, Lit) else None
            opens = prev_bytes is not None and prev_bytes.endswith(_OPEN)
            closes = next_bytes is not None and next_bytes.startswith(_CLOSE)
            if depth < 0:  # deeper than the bound: flexible whitespace, depth no longer counted
                out.append(_FLEXIBLE)
            elif opens and closes:
                continue  # an empty container: {} and []
            elif opens:
                depth = depth + 1 if depth < MAX_PRETTY_DEPTH else -1
                out.append(_indent(depth) if depth >= 0 else _FLEXIBLE)
            elif closes:
                depth -= 1
                out.append(_indent(depth))
            elif next_bytes is not None and next_bytes.startswith((b",", b":")):
                continue
            elif prev_bytes is not None and prev_bytes.endswith(b","):
                out.append(_indent(depth))
            elif prev_bytes is not None and prev_bytes.endswith(b":"):
                out.append(lit(" "))
            else:
                out.append(_FLEXIBLE)
        return seq(*out)


def pretty_layout(
    rules: Sequence[tuple[str, Expr]], start: str = "start"
) -> list[tuple[str, Expr]]:
    """``rules`` (a finished rule table whose whitespace is ``PRETTY_MARK``) with the markers
    replaced by the ``json.dumps(indent=2)`` layout, rules specialised per depth (see the module
    docstring). The start rule keeps its name; unreachable rules are dropped."""
    layout = _Layout(rules)
    out = [(start, layout.expr(layout.rules[start], 0))]
    # unmarked rules keep their names (they reference unmarked rules only)
    out.extend(
        (name, expr)
        for name, expr in layout.rules.items()
        if name != start and name not in layout.rule_marks
    )
    out.extend(layout.out.items())
    return out
