"""Cell parsers shared by the trace formats: each returns the value or raises ValueError with
the message a bad row reports."""

from __future__ import annotations

import math
from datetime import datetime


def pos_int(text: str, allow_zero: bool = False) -> int:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if not math.isfinite(v) or not v.is_integer():
        raise ValueError(f"expected a whole number, got {text!r}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"expected a number {'>= 0' if allow_zero else '> 0'}, got {text!r}")
    return int(v)


def number(text: str, minimum: float = 0.0, strict: bool = False) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        raise ValueError(f"expected a number {'>' if strict else '>='} {minimum:g}, got {text!r}")
    return v


def timestamp(text: str) -> float:
    """A 'YYYY-MM-DD HH:MM:SS' wall-clock time as POSIX-like seconds (no time zone: the
    traces give none, so a daylight-saving change inside a trace is not corrected)."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a time 'YYYY-MM-DD HH:MM:SS', got {text!r}") from None
    return (t.replace(tzinfo=None) - _EPOCH).total_seconds()


_EPOCH = datetime(1970, 1, 1)
