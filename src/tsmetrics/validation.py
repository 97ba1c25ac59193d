"""Argument validation shared by the statistics modules: ValueError naming the argument, what was
expected and what was given (never ``assert``)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike


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


def integer_at_least(name: str, value: Any, *, minimum: int) -> int:
    """An integer (not bool) ``>= minimum``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def one_of(name: str, value: Any, options: Sequence[str]) -> str:
    """One of the string ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}")
    return value


def float_array(
    name: str, values: ArrayLike, *, allow_nan: bool, min_ndim: int = 0
) -> npt.NDArray[np.float64]:
    """``values`` as a float array with at least ``min_ndim`` dimensions, no infinities and,
    unless ``allow_nan``, no NaN."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name}: expected an array of numbers, got {type(values).__name__}"
        ) from exc
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name}: expected an array with >= {min_ndim} dimension(s), got {arr.shape}"
        )
    if np.any(np.isinf(arr)):
        raise ValueError(f"{name}: expected finite values, got {int(np.isinf(arr).sum())} inf")
    if not allow_nan and np.any(np.isnan(arr)):
        raise ValueError(f"{name}: expected finite values, got {int(np.isnan(arr).sum())} NaN")
    return arr


def require_nonnegative(name: str, arr: npt.NDArray[np.float64]) -> None:
    """Raise unless every non-NaN entry of ``arr`` is ``>= 0``."""
    if np.any(arr < 0.0):  # NaN compares False
        raise ValueError(f"{name}: expected values >= 0, got minimum {float(np.nanmin(arr))!r}")
