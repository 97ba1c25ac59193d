"""Argument validation shared by the statistics modules: ValueError naming the argument, what was
expected and what was given (never ``assert``)."""

from __future__ import annotations

import math
import numbers
from typing import Any


def real_in_range(name: str, value: Any, *, low: float, high: float, closed: str = "both") -> float:
    """A finite real number in ``[low, high]`` (``closed``: ``both``, ``left``, ``right`` or
    ``neither`` end included); bool is rejected."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not math.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    out = float(value)
    lo_ok = out >= low if closed in ("both", "left") else out > low
    hi_ok = out <= high if closed in ("both", "right") else out < high
    if not (lo_ok and hi_ok):
        left = "[" if closed in ("both", "left") else "("
        right = "]" if closed in ("both", "right") else ")"
        raise ValueError(f"{name}: expected a number in {left}{low}, {high}{right}, got {value!r}")
    return out
