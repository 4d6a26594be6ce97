"""String ``format`` values the JSON Schema front end enforces, as string-body regexes.

One job: the table of formats whose set of valid strings is exactly regular, with the regex.

Deliberate simplifications:
    * Only ``uuid`` for now (RFC 4122 string form ``8-4-4-4-12`` hex digits, either case). Other
      formats are refused by the front end: most need a semantic check (``date``: February 30) or
      a large grammar (``email``, ``uri``) that is not written yet.
    * A format is enforced as an assertion, although JSON Schema 2020-12 treats ``format`` as an
      annotation by default; a generator should emit well-formed values.
    * The characters are accepted in their plain spelling only (what ``json.dumps`` writes).
"""

from __future__ import annotations

from dataclasses import dataclass

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

__all__ = ["FORMATS", "StringFormat"]
