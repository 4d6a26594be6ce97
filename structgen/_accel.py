"""Which implementation runs the hot loops: the C extension ``structgen._native`` or the
pure-Python reference.

The extension is optional: ``pip install`` builds it with the machine's C compiler when it can
(``setup.py``, ``optional=True``), and everything falls back to the pure-Python code otherwise.
``STRUCTGEN_PURE_PYTHON=1`` forces the reference path. Both paths give bit-for-bit equal masks
and token verdicts (tests compare them on the same inputs); only speed differs.

The choice is made when an automaton or index is built (``native()`` is consulted then), so
objects of both kinds can live in one process (the differential tests rely on that).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

ABI = 6  # must equal NATIVE_ABI in _native.c: a stale build is ignored, not half-used


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("STRUCTGEN_PURE_PYTHON", "").strip() not in ("", "0"):
        return None, "pure Python (STRUCTGEN_PURE_PYTHON is set)"
    try:
        from structgen import _native  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"pure Python (the C extension is not built: {exc})"
    if getattr(_native, "ABI", None) != ABI:
        return None, (
            f"pure Python (the C extension is stale: ABI {getattr(_native, 'ABI', None)}, "
            f"expected {ABI}; reinstall with pip install -e .)"
        )
    from structgen.errors import LimitExceeded

    _native._set_errors(LimitExceeded)
    return _native, "C extension (structgen._native)"


_NATIVE, _REASON = _load()
_enabled = True


def native() -> ModuleType | None:
    """The C extension module, or None when the pure-Python path is in use."""
    return _NATIVE if _enabled else None


def describe() -> str:
    """Which implementation is active, and why."""
    if _NATIVE is not None and not _enabled:
        return "pure Python (forced by structgen._accel.pure_python())"
    return _REASON


@contextmanager
def pure_python() -> Iterator[None]:
    """Objects built inside this block use the pure-Python reference (tests, benchmarks)."""
    global _enabled
    before = _enabled
    _enabled = False
    try:
        yield
    finally:
        _enabled = before


__all__ = ["ABI", "describe", "native", "pure_python"]
