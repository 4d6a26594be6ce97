"""String ``format`` values the JSON Schema front end enforces: by regex, or by a format checker.

One job: the table of formats whose set of valid strings is exactly regular, with the regex; and
the format checker the semantic checks assert every other format with.

Deliberate simplifications:
    * Only ``uuid`` for now (RFC 4122 string form ``8-4-4-4-12`` hex digits, either case). Other
      formats are refused by the front end: most need a semantic check (``date``: February 30) or
      a large grammar (``email``, ``uri``) that is not written yet.
    * A format is enforced as an assertion, although JSON Schema 2020-12 treats ``format`` as an
      annotation by default; a generator should emit well-formed values.
    * The characters are accepted in their plain spelling only (what ``json.dumps`` writes).
    * For generation, every format that *some* JSON Schema draft defines is asserted, whatever
      draft the document declares: ``date`` in a draft-4 document is checked (jsonschema's draft-4
      checker has no ``date``, so a validator of that draft would let ``"Hello, World!"`` pass).
      ``format_checker`` gives the document's own draft's checker for each name it knows, and
      the newest draft's that knows the name otherwise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jsonschema

_HEX = "[0-9a-fA-F]"


@dataclass(frozen=True)
class StringFormat:
    """A format as a string-body regex, with the lengths (in characters) of its strings."""

    name: str
    regex: str
    min_length: int
    max_length: int


FORMATS: dict[str, StringFormat] = {
    "uuid": StringFormat(
        "uuid", f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}", 36, 36
    ),
}
"""The formats enforced by the grammar, by name."""

SPEC_FORMATS = frozenset(
    "date-time date time duration email idn-email hostname idn-hostname ipv4 ipv6 uri "
    "uri-reference iri iri-reference uuid uri-template json-pointer relative-json-pointer "
    "regex".split()
)
"""The formats JSON Schema 2020-12 defines (a superset of drafts 4 to 2019-09's)."""

DRAFT3_FORMATS = frozenset(
    "date-time date time utc-millisec regex color style phone uri email ip-address ipv6 "
    "host-name".split()
)
"""The formats draft 3 defines."""

ANY_DRAFT_FORMATS = SPEC_FORMATS | DRAFT3_FORMATS
"""Every format name some draft defines; any other name (``url``) is an annotation."""

_NEWEST_FIRST = (
    jsonschema.Draft202012Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft4Validator,
    jsonschema.Draft3Validator,
)


@functools.cache
def format_checker(dialect: Any) -> jsonschema.FormatChecker:
    """The format checker for a document of ``dialect`` (a ``jsonschema`` validator class): the
    dialect's own checker for each format it knows, then the newest draft's that knows it."""
    checker = jsonschema.FormatChecker(formats=())
    for cls in (dialect, *_NEWEST_FIRST):
        for name, check in cls.FORMAT_CHECKER.checkers.items():
            checker.checkers.setdefault(name, check)
    return checker


def dialect_formats(dialect: Any) -> frozenset[str]:
    """The format names the document's own draft defines."""
    return DRAFT3_FORMATS if dialect is jsonschema.Draft3Validator else SPEC_FORMATS


__all__ = [
    "ANY_DRAFT_FORMATS",
    "DRAFT3_FORMATS",
    "FORMATS",
    "SPEC_FORMATS",
    "StringFormat",
    "dialect_formats",
    "format_checker",
]
