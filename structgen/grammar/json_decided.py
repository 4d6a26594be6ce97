"""Checked values with few texts, decided at compile time: the texts that pass, as literals.

One job: where a subschema's keywords are enforced by a check (``not``, ``oneOf``, ``if``/``then``/
``else``, ``uniqueItems``...) and its grammar allows at most ``MAX_DECIDED_TEXTS`` texts
(``ir_strings.finite_strings``: ``enum``s, booleans, short patterns, small arrays of those), run
the check on each text now and keep the ones it accepts, as an alternation of literals. The
language is the same (the texts the grammar allows and the check accepts), but every prefix is
decided as it is written: under ``{"enum": ["a", "ab", "b"], "not": {"const": "a"}}`` the prefix
``"a`` continues only as ``"ab"`` (its closing quote is refused), and no check runs at
completion. Where no text passes, the subschema is unsatisfiable (``NoText``; the caller treats
it as a contradiction: ``json_contradictions``).

Deliberate simplifications: values with more texts keep the check at completion; so does the
``pretty`` layout (its whitespace is a placeholder until the rules are finished).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from structgen.errors import InternalError
from structgen.grammar.ir import Check, Expr, Lit, alt
from structgen.grammar.ir_strings import finite_strings

if TYPE_CHECKING:
    from structgen.grammar.json_types import TypeLowering

__all__ = ["MAX_DECIDED_TEXTS", "NoText", "decided"]

MAX_DECIDED_TEXTS = 256
"""Checked values whose grammar allows more texts than this keep their check."""


@dataclass(frozen=True)
class NoText:
    """The check refuses every one of the ``count`` texts the grammar allows."""

    count: int


def decided(low: TypeLowering, checked: Check) -> Expr | NoText | None:
    """The texts of ``checked`` (a value and its check) as literals; ``NoText`` if none pass;
    None where the value has too many texts (or the layout is ``pretty``)."""
    if low.options.whitespace_mode == "pretty":
        return None
    pending = frozenset(name for name, _, _ in low._pending_refs)
    allowed = finite_strings(checked.item, low.rules, MAX_DECIDED_TEXTS, pending)
    if allowed is None:
        return None
    try:
        texts = sorted(t for t in allowed if checked.predicate(t))
    except InternalError:  # a value the check cannot judge: it is left to run time, as before
        return None
    if not texts:
        return NoText(len(allowed))
    return alt(*(Lit(t) for t in texts))
