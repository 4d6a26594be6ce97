"""The Lark grammars shipped with structgen, in the repository's ``grammars/`` directory.

Its one job: find and read those files. ``grammars/`` sits next to the ``structgen/`` package
directory, so it is found relative to this file, which works from a checkout and from an
editable install. Deliberate simplification: the grammars are not package data, so a wheel
install has no ``grammars/``; ``load_shipped`` then says so instead of guessing another place.
"""

from __future__ import annotations

import re
from pathlib import Path

from structgen.errors import ConfigurationError

GRAMMARS_DIR = Path(__file__).resolve().parent.parent.parent / "grammars"

_NAME = re.compile(r"[A-Za-z0-9_]+")


def _grammars_dir() -> Path:
    if not GRAMMARS_DIR.is_dir():
        raise FileNotFoundError(
            f"the shipped grammars directory {GRAMMARS_DIR} is missing; it sits next to the "
            "structgen package in a checkout or an editable install"
        )
    return GRAMMARS_DIR


def shipped_names() -> list[str]:
    """The names of the shipped grammars (file names without ``.lark``), sorted."""
    return sorted(path.stem for path in _grammars_dir().glob("*.lark"))


def load_shipped(name: str) -> str:
    """The Lark text of the shipped grammar ``name`` (``"json"`` or ``"json.lark"``).

    Raises:
        ConfigurationError: no shipped grammar has that name.
        FileNotFoundError: the ``grammars/`` directory is missing (e.g. a non-editable install).
    """
    stem = name[: -len(".lark")] if isinstance(name, str) and name.endswith(".lark") else name
    if not isinstance(stem, str) or not _NAME.fullmatch(stem):
        raise ConfigurationError(f"invalid shipped grammar name {name!r}")
    path = _grammars_dir() / f"{stem}.lark"
    if not path.is_file():
        raise ConfigurationError(
            f"no shipped grammar {stem!r}; available: {', '.join(shipped_names())}"
        )
    return path.read_text(encoding="utf-8")


__all__ = ["GRAMMARS_DIR", "load_shipped", "shipped_names"]
