"""Argument validation shared by every config and entry point.

Each helper raises ``ValueError`` with a message that names the offending value and what was
expected, so that bad input fails at the call that gave it rather than deep inside a loop.
Booleans are rejected where a number is expected: ``True`` is an ``int`` in Python, but a
learning rate of ``True`` is always a mistake.
"""
from __future__ import annotations

import math
import numbers

from torch.utils.data import DataLoader

__all__ = ["is_int", "is_number", "check_int", "check_number", "check_choice", "require",
           "require_nonempty"]


def is_int(value) -> bool:
    """True for an integer (Python or NumPy) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for a finite real number (Python or NumPy) that is not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and type(value).__name__ != "bool_" and math.isfinite(value))


def check_int(name: str, value, *, low: int | None = None, allow_none: bool = False) -> int | None:
    """Return ``value`` if it is an integer ≥ ``low`` (or None when allowed); else raise."""
    if value is None and allow_none:
        return None
    if not is_int(value) or (low is not None and value < low):
        bound = "" if low is None else f" ≥ {low}"
        none = "None or " if allow_none else ""
        raise ValueError(f"{name}={value!r}; expected {none}an integer{bound}.")
    return int(value)


def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 strict: bool = False, allow_none: bool = False, hint: str = "") -> float | None:
    """Return ``float(value)`` if it is a finite number in range; else raise.

    ``strict`` makes the lower bound exclusive (``> low`` instead of ``≥ low``). ``hint`` is
    appended to the message, for a bound that needs explaining.
    """
    if value is None and allow_none:
        return None
    ok = is_number(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        parts = []
        if low is not None:
            parts.append(f"{'>' if strict else '≥'} {low}")
        if high is not None:
            parts.append(f"≤ {high}")
        none = "None or " if allow_none else ""
        rng = (" " + " and ".join(parts)) if parts else ""
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name}={value!r}; expected {none}a finite number{rng}{extra}.")
    return float(value)


def check_choice(name: str, value, choices) -> object:
    """Return ``value`` if it is one of ``choices``; else raise, listing them."""
    if value not in tuple(choices):
        raise ValueError(f"{name}={value!r}; expected one of {tuple(choices)}.")
    return value


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)


def require_nonempty(loader: DataLoader, what: str) -> None:
    """Refuse an empty loader up front: cycling over one would loop forever."""
    if len(loader.dataset) == 0 or len(loader) == 0:
        raise ValueError(f"The {what} loader is empty; expected at least one batch.")
