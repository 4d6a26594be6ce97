"""The exception hierarchy: every error structgen raises on purpose derives from StructgenError.

User errors surface at compile time (``Grammar.from_*`` and ``compile``); during decoding a rejected
token is a return value, never an exception. Each error carries structured data (``location``,
``keyword``, ``hint``) and builds its message from it.
"""

from __future__ import annotations


class StructgenError(Exception):
    """Root of all structgen errors.

    Args:
        message: what went wrong, in one sentence.
        location: where: a JSON pointer (``#/properties/age``) or ``line:column``.
        keyword: the schema keyword or grammar construct involved.
        hint: how to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        keyword: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.location = location
        self.keyword = keyword
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.message
        if self.location is not None:
            text = f"{text} (at {self.location})"
        if self.hint:
            text = f"{text}; hint: {self.hint}"
        return text


class GrammarError(StructgenError):
    """A problem with a grammar, regex or schema given by the user."""


class InvalidGrammar(GrammarError):
    """The grammar or regex is malformed (bad syntax, undefined rule, ...)."""


class InvalidSchema(InvalidGrammar):
    """The JSON schema is malformed (wrong keyword type, dangling ``$ref``, ...)."""


class UnsupportedFeature(GrammarError):
    """The input is valid, but uses a construct structgen does not enforce exactly.

    structgen refuses such input instead of silently dropping the construct.
    """


class VocabularyError(StructgenError):
    """A tokenizer could not be turned into a Vocabulary."""


class IncompatibleVocabulary(VocabularyError):
    """The grammar reaches a live state from which no token of the vocabulary can continue."""


class LimitExceeded(StructgenError):
    """Compilation would exceed a configured time, state or memory limit."""


class ConfigurationError(StructgenError, ValueError):
    """An argument has an invalid value (API misuse)."""


class ConstraintViolation(StructgenError):
    """A token the constraint rejects reached an integration that cannot return it as a value."""


class DeadEnd(ConstraintViolation):
    """No token can continue the text: it is incomplete, and a semantic check refuses every
    completion the grammar would allow (a keyword checked on completion, not in the grammar).

    Args:
        message: what went wrong.
        text: the text generated so far (decoded).
        **kwargs: ``location``, ``keyword``, ``hint`` as for every structgen error.
    """

    def __init__(self, message: str, *, text: str = "", **kwargs: str | None) -> None:
        self.text = text
        super().__init__(message, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def at(cls, text: str, where: str = "") -> DeadEnd:
        """The error for a dead end after ``text`` (``where``: e.g. ``"row 0: "``)."""
        shown = text if len(text) <= 300 else "..." + text[-300:]
        return cls(
            f"{where}dead end: no token can continue the output, a semantic check refuses every "
            f"completion of the value being written; generated so far: {shown!r}",
            text=text,
            hint="generate() backs up over dead ends (recovery='auto'); a schema whose checked "
            "keywords (oneOf, not, dependentRequired...) contradict the rest makes them likely",
        )


class InternalError(StructgenError):
    """A broken invariant inside structgen (e.g. an empty mask in a live state). Please report."""


__all__ = [
    "ConfigurationError",
    "ConstraintViolation",
    "DeadEnd",
    "GrammarError",
    "IncompatibleVocabulary",
    "InternalError",
    "InvalidGrammar",
    "InvalidSchema",
    "LimitExceeded",
    "StructgenError",
    "UnsupportedFeature",
    "VocabularyError",
]
