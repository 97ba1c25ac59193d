"""Input handling shared by the agreement coefficients (labels, items x raters matrices)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

Ratings: TypeAlias = "npt.NDArray[Any] | pd.DataFrame | Sequence[Sequence[Hashable]]"
"""An items x raters matrix of labels (see the module docstring)."""


def _as_label_list(name: str, labels: Iterable[Hashable]) -> list[Hashable]:
    is_single_string = isinstance(labels, str | bytes)
    if is_single_string:
        raise ValueError(f"{name}: expected a sequence of labels, got a single string {labels!r}")
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1:
            raise ValueError(f"{name}: expected a 1-d sequence of labels, got shape {labels.shape}")
        out: list[Hashable] = labels.tolist()
    else:
        try:
            out = list(labels)
        except TypeError as exc:
            raise ValueError(f"{name}: expected a sequence of labels, got {labels!r}") from exc
    for item in out:
        try:
            hash(item)
        except TypeError:
            raise ValueError(f"{name}: expected hashable labels, got {item!r}") from None
    return out


# --------------------------------------------------------------------------------------------
# Multi-rater agreement: shared input handling
# --------------------------------------------------------------------------------------------


def _is_missing_scalar(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _as_ratings_matrix(ratings: Ratings, name: str = "ratings") -> npt.NDArray[Any]:
    """The ratings as a 2-d numpy array (items x raters), labels untouched."""
    if isinstance(ratings, pd.DataFrame):
        arr: npt.NDArray[Any] = ratings.to_numpy()
    elif isinstance(ratings, np.ndarray):
        arr = ratings
    elif isinstance(ratings, str | bytes):
        raise ValueError(
            f"{name}: expected a 2-d items x raters matrix, got a single string {ratings!r}"
        )
    else:
        try:
            rows = list(ratings)
        except TypeError:
            raise ValueError(
                f"{name}: expected a 2-d items x raters matrix, got {type(ratings).__name__}"
            ) from None
        cells: list[list[Any]] = []
        for row in rows:
            if isinstance(row, str | bytes):
                raise ValueError(
                    f"{name}: expected each item to be a sequence of ratings, got {row!r}"
                )
            try:
                cells.append(list(row))
            except TypeError:
                raise ValueError(
                    f"{name}: expected a 2-d items x raters matrix (a sequence of rows), "
                    f"got the row {row!r}"
                ) from None
        n_rows = len(cells)
        n_cols = len(cells[0]) if cells else 0
        for row_cells in cells:
            if len(row_cells) != n_cols:
                raise ValueError(
                    f"{name}: expected every item to have the same number of raters ({n_cols}; "
                    f"mark a missing rating with None), got a row of length {len(row_cells)}"
                )
        arr = np.fromiter(chain.from_iterable(cells), dtype=object, count=n_rows * n_cols).reshape(
            n_rows, n_cols
        )
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d items x raters matrix, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least 1 item (row), got 0")
    if arr.shape[1] < 2:
        raise ValueError(f"{name}: expected at least 2 raters (columns), got {arr.shape[1]}")
    return arr


def _as_categories(categories: Iterable[Hashable]) -> tuple[Hashable, ...]:
    cats = _as_label_list("categories", categories)
    for cat in cats:
        if _is_missing_scalar(cat):
            raise ValueError(f"categories: expected non-missing labels, got {cat!r}")
    if len(dict.fromkeys(cats)) != len(cats):
        raise ValueError(f"categories: expected distinct labels, got {cats!r}")
    if not cats:
        raise ValueError("categories: expected at least 1 category, got 0")
    return tuple(cats)


def _encode(
    values: npt.NDArray[Any], name: str, categories: tuple[Hashable, ...] | None
) -> tuple[npt.NDArray[np.intp], tuple[Hashable, ...]]:
    """Integer codes of a 1-d array of labels (-1 where missing) and the category labels.

    Without ``categories`` the categories are the labels observed, sorted when they are
    mutually comparable and in order of first appearance otherwise.
    """
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError as exc:
        raise ValueError(
            f"{name}: expected hashable labels, got an unhashable one ({exc})"
        ) from None
    codes = np.asarray(codes, dtype=np.intp)
    uniques_arr = np.asarray(uniques)
    # list[Any]: the labels are hashable; sorting them is attempted below.
    labels: list[Any] = (
        uniques_arr.tolist() if uniques_arr.dtype.kind in "biufcUS" else list(uniques_arr)
    )
    if categories is None:
        try:
            order = sorted(range(len(labels)), key=labels.__getitem__)
        except TypeError:
            order = list(range(len(labels)))
        cats = tuple(labels[i] for i in order)
        remap = np.empty(len(labels), dtype=np.intp)
        remap[np.asarray(order, dtype=np.intp)] = np.arange(len(labels), dtype=np.intp)
    else:
        cats = categories
        index = {cat: i for i, cat in enumerate(cats)}
        remap = np.empty(len(labels), dtype=np.intp)
        for j, label in enumerate(labels):
            try:
                remap[j] = index[label]
            except KeyError:
                raise ValueError(
                    f"{name}: expected labels among the categories {list(cats)!r}, got {label!r}"
                ) from None
    if labels:
        codes = np.where(codes >= 0, remap[codes], -1)
    return codes, cats


@dataclass(frozen=True)
class _CountTable:
    counts: npt.NDArray[np.int64]  # rated items x categories: ratings of item i in category k
    categories: tuple[Hashable, ...]
    n_raters: int


def _count_table(
    ratings: Ratings, categories: Iterable[Hashable] | None = None, name: str = "ratings"
) -> _CountTable:
    """Per-item category counts of an items x raters matrix; items nobody rated are dropped."""
    arr = _as_ratings_matrix(ratings, name)
    cats_in = None if categories is None else _as_categories(categories)
    n, m = arr.shape
    codes, cats = _encode(arr.reshape(-1), name, cats_in)
    codes = codes.reshape(n, m)
    valid = codes >= 0
    if not valid.any():
        raise ValueError(f"{name}: expected at least 1 non-missing rating, got none")
    q = len(cats)
    item = np.broadcast_to(np.arange(n, dtype=np.intp)[:, None], (n, m))[valid]
    counts = np.bincount(item * q + codes[valid], minlength=n * q).reshape(n, q)
    counts = counts[counts.sum(axis=1) > 0].astype(np.int64)
    return _CountTable(counts=counts, categories=cats, n_raters=m)


def _require_pairable(counts: npt.NDArray[np.int64], name: str = "ratings") -> None:
    if not (counts.sum(axis=1) >= 2).any():
        raise ValueError(f"{name}: expected at least 1 item with 2 or more ratings, got none")


def _pairwise_agreement_per_item(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Share of agreeing ordered pairs of distinct ratings per item (0 when < 2 ratings)."""
    r = counts.sum(axis=1)
    pairs = (r * (r - 1)).astype(np.float64)
    agreeing = (counts * (counts - 1)).sum(axis=1).astype(np.float64)
    return np.divide(agreeing, pairs, out=np.zeros_like(pairs), where=pairs > 0)


def _std_error_from_item_terms(terms: npt.NDArray[np.float64], center: float) -> float:
    """``sqrt(sum_i (t_i - center)^2 / (n (n - 1)))``; ``nan`` for fewer than 2 items."""
    n = terms.shape[0]
    if n < 2 or not math.isfinite(center):
        return float("nan")
    return float(np.sqrt(np.sum((terms - center) ** 2) / (n * (n - 1.0))))
