"""Inter-rater agreement and labeler accuracy for nominal categories.

Agreement among raters
----------------------
* :func:`cohen_kappa` -- Cohen's (1960) kappa for two raters, with the Fleiss, Cohen & Everitt
  (1969) standard error.
* :func:`percent_agreement` -- raw pairwise agreement among any number of raters.
* :func:`fleiss_kappa` -- Fleiss' (1971) kappa for a fixed number of ratings per item, with the
  standard error under the null of Fleiss, Nee & Landis (1979).
* :func:`krippendorff_alpha_nominal` -- Krippendorff's alpha, nominal metric, from the
  coincidence matrix (Krippendorff 2011); missing ratings allowed.
* :func:`gwet_ac1` -- Gwet's (2008) AC1 with its linearised variance; missing ratings allowed.
* :func:`bootstrap_ci` -- percentile bootstrap interval of any of these, resampling items.

The multi-rater functions take an *items x raters* matrix (rows are items, columns raters): a 2-d
:class:`numpy.ndarray`, a :class:`pandas.DataFrame` or a sequence of equally long rows. Cells
hold hashable labels compared with ``==``; ``None``, ``NaN``, ``pandas.NA`` and ``NaT`` mark a
missing rating. Items that nobody rated are dropped. All of them treat the items as a simple
random sample from a large population of items and the raters as fixed.

Labeler versus gold (e.g. an LLM versus human reviewers)
--------------------------------------------------------
* :func:`labeler_accuracy` -- share of items on which a labeler matches the gold label, with a
  Wilson (1927) score interval.
* :func:`confusion` -- confusion matrix with per-category (per-policy) precision, recall and F1.

References
----------
Cohen, J. (1960). A coefficient of agreement for nominal scales. *Educational and Psychological
Measurement* 20(1), 37-46.

Fleiss, J. L., Cohen, J. and Everitt, B. S. (1969). Large sample standard errors of kappa and
weighted kappa. *Psychological Bulletin* 72(5), 323-327.

Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. *Psychological
Bulletin* 76(5), 378-382.

Fleiss, J. L., Nee, J. C. M. and Landis, J. R. (1979). Large sample variance of kappa in the case
of different sets of raters. *Psychological Bulletin* 86(5), 974-977.

Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for
Communication, University of Pennsylvania, departmental paper 43.

Gwet, K. L. (2008). Computing inter-rater reliability and its variance in the presence of high
agreement. *British Journal of Mathematical and Statistical Psychology* 61(1), 29-48.

Gwet, K. L. (2014). *Handbook of Inter-Rater Reliability*, 4th ed. Advanced Analytics, LLC.

Efron, B. and Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall,
chapter 13 (the percentile interval).

Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
*Journal of the American Statistical Association* 22(158), 209-212.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from numbers import Real
from statistics import NormalDist
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "AccuracyResult",
    "AlphaResult",
    "BootstrapResult",
    "ConfusionResult",
    "FleissKappaResult",
    "GwetAC1Result",
    "KappaResult",
    "PercentAgreementResult",
    "bootstrap_ci",
    "cohen_kappa",
    "confusion",
    "fleiss_kappa",
    "gwet_ac1",
    "krippendorff_alpha_nominal",
    "labeler_accuracy",
    "percent_agreement",
]

Ratings: TypeAlias = "npt.NDArray[Any] | pd.DataFrame | Sequence[Sequence[Hashable]]"
"""An items x raters matrix of labels (see the module docstring)."""


@dataclass(frozen=True)
class KappaResult:
    """Cohen's kappa with its large-sample standard error.

    Attributes
    ----------
    kappa : float
        ``(p_o - p_e) / (1 - p_e)``; ``nan`` when ``p_e == 1`` (undefined, see
        :func:`cohen_kappa`).
    std_error : float
        Large-sample standard error under the alternative (Fleiss, Cohen & Everitt 1969);
        ``nan`` when ``kappa`` is undefined.
    percent_agreement : float
        Observed agreement ``p_o``, the share of items both raters labelled alike, in ``[0, 1]``
        (a proportion, despite the name).
    expected_agreement : float
        Chance agreement ``p_e = sum_c p_{c.} p_{.c}`` from the raters' marginal distributions.
    n_items : int
        Number of items rated by both raters.
    """

    kappa: float
    std_error: float
    percent_agreement: float
    expected_agreement: float
    n_items: int


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


def cohen_kappa(labels_a: Iterable[Hashable], labels_b: Iterable[Hashable]) -> KappaResult:
    """Cohen's (1960) kappa for two raters labelling the same items on a nominal scale.

    Estimates chance-corrected agreement between two raters. With ``p_ij`` the share of items
    labelled ``i`` by rater A and ``j`` by rater B, ``p_i.`` and ``p_.j`` the marginal shares::

        p_o   = sum_i p_ii
        p_e   = sum_i p_i. p_.i
        kappa = (p_o - p_e) / (1 - p_e)

    Standard error: the large-sample variance *under the alternative* (not under the null
    ``kappa = 0``) of Fleiss, Cohen & Everitt (1969), which corrects Cohen's (1960)
    approximation ``p_o (1 - p_o) / (n (1 - p_e)^2)``::

        A = sum_i p_ii [1 - (p_i. + p_.i)(1 - kappa)]^2
        B = (1 - kappa)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
        C = [kappa - p_e (1 - kappa)]^2
        var(kappa) = (A + B - C) / (n (1 - p_e)^2)

    Items are treated as a simple random sample; categories are the union of the labels used
    by either rater (categories used by nobody do not affect kappa).

    Parameters
    ----------
    labels_a, labels_b : sequence of hashable
        Labels of raters A and B, aligned by item (``labels_a[k]`` and ``labels_b[k]`` refer to
        the same item). Labels are compared with ``==``/hashing; ``NaN`` is not a safe label.

    Returns
    -------
    KappaResult
        When ``p_e == 1`` (both raters gave every item one and the same label) kappa is ``0/0``
        and undefined: ``kappa`` and ``std_error`` are ``nan`` while ``percent_agreement`` and
        ``expected_agreement`` are 1. Perfect agreement with ``p_e < 1`` gives kappa 1, SE 0.

    Raises
    ------
    ValueError
        When the sequences differ in length, are empty, are not 1-d or hold unhashable labels.

    References
    ----------
    Cohen (1960), *Educ. Psychol. Meas.* 20, 37-46; Fleiss, Cohen & Everitt (1969), *Psychol.
    Bull.* 72, 323-327.
    """
    a = _as_label_list("labels_a", labels_a)
    b = _as_label_list("labels_b", labels_b)
    if len(a) != len(b):
        raise ValueError(f"labels_b: expected the same length as labels_a ({len(a)}), got {len(b)}")
    n = len(a)
    if n == 0:
        raise ValueError("n_items: expected at least 1 item, got 0")

    categories = {label: code for code, label in enumerate(dict.fromkeys(a + b))}
    k = len(categories)
    codes_a = np.fromiter((categories[label] for label in a), dtype=np.intp, count=n)
    codes_b = np.fromiter((categories[label] for label in b), dtype=np.intp, count=n)
    table = np.zeros((k, k), dtype=np.float64)
    np.add.at(table, (codes_a, codes_b), 1.0)
    probs = table / n
    row = probs.sum(axis=1)  # p_i. (rater A)
    col = probs.sum(axis=0)  # p_.j (rater B)
    # From integer counts (exact), so that p_o and p_e do not depend on the category order.
    p_o = float(np.trace(table)) / n
    p_e = float(np.dot(table.sum(axis=1), table.sum(axis=0))) / (float(n) * n)

    if p_e >= 1.0 - 1e-12:
        # Both raters constant and equal: 0/0, kappa undefined.
        return KappaResult(
            kappa=float("nan"),
            std_error=float("nan"),
            percent_agreement=p_o,
            expected_agreement=p_e,
            n_items=n,
        )

    kappa = (p_o - p_e) / (1.0 - p_e)
    one_minus = 1.0 - kappa
    diag = np.diag(probs)
    term_a = float(np.sum(diag * (1.0 - (row + col) * one_minus) ** 2))
    off = probs * (col[:, None] + row[None, :]) ** 2  # p_ij (p_.i + p_j.)^2
    np.fill_diagonal(off, 0.0)
    term_b = one_minus**2 * float(off.sum())
    term_c = (kappa - p_e * one_minus) ** 2
    numerator = term_a + term_b - term_c
    # A + B - C cancels to 0 in degenerate tables (e.g. one rater constant); drop rounding noise.
    if numerator <= 64.0 * np.finfo(np.float64).eps * (term_a + term_b + term_c):
        numerator = 0.0
    variance = numerator / (n * (1.0 - p_e) ** 2)
    return KappaResult(
        kappa=float(kappa),
        std_error=float(np.sqrt(variance)),
        percent_agreement=p_o,
        expected_agreement=p_e,
        n_items=n,
    )


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


# --------------------------------------------------------------------------------------------
# Percent agreement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PercentAgreementResult:
    """Pairwise percent agreement among raters.

    Attributes
    ----------
    agreement : float
        Mean over items (with at least 2 ratings) of the share of pairs of distinct ratings of
        the item that agree, in ``[0, 1]`` (a proportion, despite the name).
    std_error : float
        Linearised standard error (Gwet 2014); ``nan`` with fewer than 2 rated items.
    n_items : int
        Items with at least 2 ratings (those averaged).
    n_raters : int
        Number of raters (columns of the ratings matrix).
    """

    agreement: float
    std_error: float
    n_items: int
    n_raters: int

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`agreement` (used by :func:`bootstrap_ci`)."""
        return self.agreement


def percent_agreement(ratings: Ratings) -> PercentAgreementResult:
    """Pairwise percent agreement of an items x raters matrix; missing ratings allowed.

    Estimand: the probability that two distinct ratings of the same item, drawn at random from
    the ratings of a random item, are equal. With ``r_ik`` the number of ratings of item ``i``
    in category ``k``, ``r_i = sum_k r_ik`` and ``n'`` the number of items with ``r_i >= 2``::

        p_a,i = sum_k r_ik (r_ik - 1) / (r_i (r_i - 1))
        p_a   = (1 / n') sum_{i: r_i >= 2} p_a,i

    For two raters without missing ratings this is the share of items on which they agree
    (Cohen's ``p_o``). It is the ``p_a`` of Fleiss (1971) and Gwet (2008, 2014).

    Standard error (Gwet 2014, the variance of ``p_a`` in his ``pa.coeff.raw``), over the ``n``
    items with at least one rating, setting ``p_a,i* = (n / n') p_a,i`` (0 for single-rated
    items)::

        var(p_a) = sum_i (p_a,i* - p_a)^2 / (n (n - 1))

    (the usual ``s^2 / n`` when every item has 2 or more ratings).

    Parameters
    ----------
    ratings : items x raters matrix
        See the module docstring; ``None``/``NaN`` mark a missing rating.

    Returns
    -------
    PercentAgreementResult

    Raises
    ------
    ValueError
        When ``ratings`` is not a 2-d matrix with at least 2 columns, holds unhashable labels,
        or no item has 2 or more ratings.

    References
    ----------
    Fleiss (1971), *Psychol. Bull.* 76, 378-382; Gwet (2014), *Handbook of Inter-Rater
    Reliability*, 4th ed.
    """
    table = _count_table(ratings)
    counts = table.counts
    _require_pairable(counts)
    n = counts.shape[0]
    pairable = counts.sum(axis=1) >= 2
    n_pairable = int(pairable.sum())
    per_item = _pairwise_agreement_per_item(counts)
    p_a = float(per_item[pairable].sum()) / n_pairable
    terms = per_item * (n / n_pairable)
    return PercentAgreementResult(
        agreement=p_a,
        std_error=_std_error_from_item_terms(terms, p_a),
        n_items=n_pairable,
        n_raters=table.n_raters,
    )


# --------------------------------------------------------------------------------------------
# Fleiss' kappa
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleissKappaResult:
    """Fleiss' (1971) kappa with its standard error under the null (Fleiss, Nee & Landis 1979).

    Attributes
    ----------
    kappa : float
        ``(P_bar - P_e) / (1 - P_e)``; ``nan`` when ``P_e == 1`` (every rating in one category).
    std_error : float
        Standard error *under the null hypothesis* ``kappa = 0`` (Fleiss, Nee & Landis 1979),
        for testing; it is not a standard error for a confidence interval (use
        :func:`bootstrap_ci`). ``nan`` when ``kappa`` is.
    z : float
        ``kappa / std_error``.
    p_value : float
        Two-sided p-value of ``z`` under the standard normal.
    observed_agreement : float
        ``P_bar``, the mean pairwise agreement per item (see :func:`percent_agreement`).
    expected_agreement : float
        ``P_e = sum_j p_j^2`` from the pooled category shares ``p_j``.
    categories : tuple of hashable
        Category labels, in the order of :attr:`category_kappa`.
    category_kappa : tuple of float
        Kappa of each category against all others (Fleiss 1971); ``nan`` for a category
        that was never or always used.
    category_std_error : float
        Standard error under the null of every category kappa,
        ``sqrt(2 / (N n (n - 1)))`` (Fleiss, Nee & Landis 1979).
    n_items : int
        Number of rated items ``N``.
    n_ratings_per_item : int
        Number ``n`` of ratings of every item.
    """

    kappa: float
    std_error: float
    z: float
    p_value: float
    observed_agreement: float
    expected_agreement: float
    categories: tuple[Hashable, ...]
    category_kappa: tuple[float, ...]
    category_std_error: float
    n_items: int
    n_ratings_per_item: int

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`kappa` (used by :func:`bootstrap_ci`)."""
        return self.kappa


def fleiss_kappa(ratings: Ratings) -> FleissKappaResult:
    """Fleiss' (1971) kappa for ``n`` ratings per item, any raters, nominal categories.

    Estimand: chance-corrected agreement among ratings of the same item, where chance is the
    agreement expected if ratings were assigned at random with the pooled category shares.
    Raters need not be the same for every item, but every rated item must have the same number
    ``n >= 2`` of ratings (cells marked missing are allowed as long as that holds). With
    ``n_ij`` the number of ratings of item ``i`` in category ``j`` and ``N`` items::

        p_j   = sum_i n_ij / (N n)
        P_i   = (sum_j n_ij^2 - n) / (n (n - 1))
        P_bar = (1 / N) sum_i P_i,       P_e = sum_j p_j^2
        kappa = (P_bar - P_e) / (1 - P_e)

    For two raters this is Scott's (1955) pi. The category kappas are
    ``kappa_j = 1 - sum_i n_ij (n - n_ij) / (N n (n - 1) p_j q_j)`` with ``q_j = 1 - p_j``.

    Standard error under the null ``kappa = 0`` (Fleiss, Nee & Landis 1979, correcting Fleiss
    1971), for testing only::

        var0(kappa) = 2 / (N n (n - 1))
                      * [(sum_j p_j q_j)^2 - sum_j p_j q_j (q_j - p_j)] / (sum_j p_j q_j)^2
        var0(kappa_j) = 2 / (N n (n - 1))

    Parameters
    ----------
    ratings : items x raters matrix
        See the module docstring. Items without any rating are dropped.

    Returns
    -------
    FleissKappaResult
        ``kappa``, ``std_error``, ``z`` and ``p_value`` are ``nan`` when every rating falls in
        one category (``P_e == 1``: kappa is ``0/0``).

    Raises
    ------
    ValueError
        When ``ratings`` is not a 2-d matrix with at least 2 columns, holds unhashable labels,
        or the rated items do not all have the same number (at least 2) of ratings.

    References
    ----------
    Fleiss (1971), *Psychol. Bull.* 76, 378-382; Fleiss, Nee & Landis (1979), *Psychol. Bull.*
    86, 974-977.
    """
    table = _count_table(ratings)
    counts = table.counts
    per_item = counts.sum(axis=1)
    n_lo, n_hi = int(per_item.min()), int(per_item.max())
    if n_lo != n_hi:
        raise ValueError(
            "ratings: expected the same number of non-missing ratings on every rated item "
            f"(Fleiss' kappa), got between {n_lo} and {n_hi}"
        )
    if n_lo < 2:
        raise ValueError(f"ratings: expected at least 2 ratings per item, got {n_lo}")
    n_items, n = counts.shape[0], n_lo
    total = n_items * n
    totals = counts.sum(axis=0)
    p = totals / total
    # From integer counts (exact), so that the value does not depend on item or category order.
    p_bar = float((counts * counts).sum() - total) / (total * (n - 1.0))
    p_e = float(np.dot(totals, totals)) / (float(total) * total)
    pq = p * (1.0 - p)
    denominator = n_items * n * (n - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        disagreeing = (counts * (n - counts)).sum(axis=0)
        category_kappa = np.where(pq > 0, 1.0 - disagreeing / (denominator * pq), np.nan)
    if p_e >= 1.0 - 1e-12:
        kappa = se = z = p_value = float("nan")
    else:
        kappa = (p_bar - p_e) / (1.0 - p_e)
        s = float(pq.sum())
        var0 = 2.0 / denominator * (s * s - float(np.sum(pq * (1.0 - 2.0 * p)))) / (s * s)
        se = math.sqrt(max(var0, 0.0))
        z = kappa / se if se > 0 else float("nan")
        # Two-sided normal tail: 2 * (1 - Phi(|z|)) = erfc(|z| / sqrt(2)).
        p_value = math.erfc(abs(z) / math.sqrt(2.0)) if math.isfinite(z) else float("nan")
    return FleissKappaResult(
        kappa=float(kappa),
        std_error=float(se),
        z=float(z),
        p_value=p_value,
        observed_agreement=p_bar,
        expected_agreement=p_e,
        categories=table.categories,
        category_kappa=tuple(float(v) for v in category_kappa),
        category_std_error=math.sqrt(2.0 / denominator),
        n_items=n_items,
        n_ratings_per_item=n,
    )


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha (nominal)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaResult:
    """Krippendorff's alpha for nominal data.

    Attributes
    ----------
    alpha : float
        ``1 - D_o / D_e``; ``nan`` when ``D_e == 0`` (all pairable values in one category).
    std_error : float
        Linearised standard error of Gwet (2014), conditional on the raters; ``nan`` with
        fewer than 2 pairable items or when ``alpha`` is ``nan``. Krippendorff recommends the
        bootstrap instead (see :func:`bootstrap_ci`).
    observed_disagreement : float
        ``D_o``, the off-diagonal share of the coincidence matrix.
    expected_disagreement : float
        ``D_e``, the disagreement expected from the pooled values.
    n_items : int
        Pairable items (items with at least 2 ratings).
    n_pairable : int
        Number ``n..`` of pairable values (ratings of pairable items).
    """

    alpha: float
    std_error: float
    observed_disagreement: float
    expected_disagreement: float
    n_items: int
    n_pairable: int

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`alpha` (used by :func:`bootstrap_ci`)."""
        return self.alpha


def krippendorff_alpha_nominal(ratings: Ratings) -> AlphaResult:
    """Krippendorff's alpha for nominal categories, from the coincidence matrix.

    Estimand: ``1 - D_o / D_e``, one minus the ratio of the observed to the chance-expected
    disagreement among pairable values (values of items with at least 2 ratings); missing
    ratings allowed. With ``n_uc`` the number of ratings of item ``u`` in category ``c`` and
    ``m_u = sum_c n_uc >= 2`` (Krippendorff 2011)::

        o_ck = sum_u n_uc (n_uk - [c == k]) / (m_u - 1)      (coincidence matrix)
        n_c  = sum_k o_ck,   n.. = sum_c n_c
        D_o  = sum_{c != k} o_ck / n..
        D_e  = sum_{c != k} n_c n_k / (n.. (n.. - 1))
        alpha = 1 - D_o / D_e = 1 - (n.. - 1) sum_{c != k} o_ck / sum_{c != k} n_c n_k

    For two raters and no missing ratings ``alpha = pi + (1 - pi) / (2 N)`` with Scott's pi
    (:func:`fleiss_kappa`) and ``N`` items, so it approaches pi as ``N`` grows.

    Standard error: alpha has no standard closed form and Krippendorff recommends the
    bootstrap (:func:`bootstrap_ci`). ``std_error`` is Gwet's (2014) linearisation,
    conditional on the raters, as published with his R package irrCAC 1.0
    (``krippen.alpha.raw``): with ``n`` pairable items, ``r_bar`` their mean number of
    ratings, ``pi_c = n_c / n..``, ``p_e = sum_c pi_c^2``, ``p_a' = 1 - D_o``,
    ``alpha' = (p_a' - p_e) / (1 - p_e)`` and ``p_a = (1 - 1/n..) p_a' + 1/n..`` (so that
    ``alpha = (p_a - p_e) / (1 - p_e)``)::

        p_a,u = sum_c n_uc (n_uc - 1) / (r_bar (m_u - 1)) - p_a (m_u - r_bar) / r_bar
        p_e,u = sum_c n_uc pi_c / r_bar - p_e (m_u - r_bar) / r_bar
        a_u   = (p_a,u - p_e) / (1 - p_e) - 2 (1 - alpha') (p_e,u - p_e) / (1 - p_e)
        var(alpha) = sum_u (a_u - alpha')^2 / (n (n - 1))

    (Later irrCAC code uses ``p_a'`` for ``p_a`` in ``p_a,u``; the two differ by ``O(1/n..)``
    and agree when every item has the same number of ratings, where ``var`` is that of
    Gwet's Fleiss-kappa linearisation.)

    Parameters
    ----------
    ratings : items x raters matrix
        See the module docstring; ``None``/``NaN`` mark a missing rating.

    Returns
    -------
    AlphaResult

    Raises
    ------
    ValueError
        When ``ratings`` is not a 2-d matrix with at least 2 columns, holds unhashable labels,
        or no item has 2 or more ratings.

    References
    ----------
    Krippendorff (2011), *Computing Krippendorff's Alpha-Reliability*; Gwet (2014),
    *Handbook of Inter-Rater Reliability*, 4th ed.
    """
    counts_all = _count_table(ratings).counts
    _require_pairable(counts_all)
    m_all = counts_all.sum(axis=1)
    counts = counts_all[m_all >= 2]
    m_u = counts.sum(axis=1)
    n_items = counts.shape[0]
    n_pairable = int(m_u.sum())
    n_c = counts.sum(axis=0)
    # Diagonal of the coincidence matrix, per unit: sum_c n_uc (n_uc - 1) / (m_u - 1).
    agree_u = (counts * (counts - 1)).sum(axis=1) / (m_u - 1.0)
    observed_agreement = float(agree_u.sum()) / n_pairable
    d_o = 1.0 - observed_agreement
    sum_sq = float(np.dot(n_c, n_c))
    d_e = (float(n_pairable) * n_pairable - sum_sq) / (n_pairable * (n_pairable - 1.0))
    if d_e <= 1e-12:
        return AlphaResult(
            alpha=float("nan"),
            std_error=float("nan"),
            observed_disagreement=d_o,
            expected_disagreement=d_e,
            n_items=n_items,
            n_pairable=n_pairable,
        )
    alpha = 1.0 - d_o / d_e

    # Gwet's (2014) linearised variance.
    r_bar = n_pairable / n_items
    pi = n_c / n_pairable
    p_e = sum_sq / (float(n_pairable) * n_pairable)
    alpha_prime = (observed_agreement - p_e) / (1.0 - p_e)
    p_a = (1.0 - 1.0 / n_pairable) * observed_agreement + 1.0 / n_pairable
    p_a_u = agree_u / r_bar - p_a * (m_u - r_bar) / r_bar
    p_e_u = (counts @ pi) / r_bar - p_e * (m_u - r_bar) / r_bar
    terms = (p_a_u - p_e) / (1.0 - p_e) - 2.0 * (1.0 - alpha_prime) * (p_e_u - p_e) / (1.0 - p_e)
    return AlphaResult(
        alpha=float(alpha),
        std_error=_std_error_from_item_terms(terms, alpha_prime),
        observed_disagreement=d_o,
        expected_disagreement=d_e,
        n_items=n_items,
        n_pairable=n_pairable,
    )


# --------------------------------------------------------------------------------------------
# Gwet's AC1
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GwetAC1Result:
    """Gwet's AC1 with its linearised standard error.

    Attributes
    ----------
    ac1 : float
        ``(p_a - p_e) / (1 - p_e)``; ``nan`` with fewer than 2 categories.
    std_error : float
        Linearised standard error (Gwet 2008, 2014), conditional on the raters; ``nan`` with
        fewer than 2 rated items or when ``ac1`` is ``nan``.
    observed_agreement : float
        ``p_a``, as in :func:`percent_agreement`.
    expected_agreement : float
        ``p_e = sum_k pi_k (1 - pi_k) / (q - 1)``.
    categories : tuple of hashable
        The ``q`` categories used for ``p_e``.
    n_items : int
        Rated items (items with at least one rating).
    n_raters : int
        Number of raters (columns of the ratings matrix).
    """

    ac1: float
    std_error: float
    observed_agreement: float
    expected_agreement: float
    categories: tuple[Hashable, ...]
    n_items: int
    n_raters: int

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`ac1` (used by :func:`bootstrap_ci`)."""
        return self.ac1


def gwet_ac1(ratings: Ratings, *, categories: Iterable[Hashable] | None = None) -> GwetAC1Result:
    """Gwet's (2008) AC1 for any number of raters and nominal categories; missing allowed.

    Estimand: agreement corrected for the chance agreement of raters who rate at random only
    on hard-to-classify items; unlike kappa it does not collapse when one category dominates.
    With ``r_ik`` the ratings of item ``i`` in category ``k``, ``r_i = sum_k r_ik``, ``n`` the
    items with ``r_i >= 1``, ``n'`` those with ``r_i >= 2`` and ``q`` categories::

        p_a  = (1 / n') sum_{i: r_i >= 2} sum_k r_ik (r_ik - 1) / (r_i (r_i - 1))
        pi_k = (1 / n) sum_i r_ik / r_i
        p_e  = sum_k pi_k (1 - pi_k) / (q - 1)
        AC1  = (p_a - p_e) / (1 - p_e)

    ``q`` counts the categories *available* to the raters: pass ``categories`` when some were
    not used, otherwise only the observed ones count (this changes ``p_e``).

    Standard error (Gwet 2008; Gwet 2014 as in his ``gwet.ac1.raw``), linearised, conditional
    on the raters, items a simple random sample, no finite-population correction::

        p_a,i  = sum_k r_ik (r_ik - 1) / (r_i (r_i - 1))        (0 if r_i < 2)
        p_e,i  = sum_k (r_ik / r_i) (1 - pi_k) / (q - 1)
        ac1_i  = (n / n') (p_a,i - p_e [r_i >= 2]) / (1 - p_e)
                 - 2 (1 - AC1) (p_e,i - p_e) / (1 - p_e)
        var(AC1) = sum_i (ac1_i - AC1)^2 / (n (n - 1))

    Parameters
    ----------
    ratings : items x raters matrix
        See the module docstring; ``None``/``NaN`` mark a missing rating.
    categories : sequence of hashable, optional
        All categories available to the raters; every label must be among them.

    Returns
    -------
    GwetAC1Result
        ``ac1`` and ``std_error`` are ``nan`` when ``q < 2`` (``p_e`` is ``0/0``).

    Raises
    ------
    ValueError
        When ``ratings`` is not a 2-d matrix with at least 2 columns, holds unhashable labels or
        labels outside ``categories``, or no item has 2 or more ratings.

    References
    ----------
    Gwet (2008), *Br. J. Math. Stat. Psychol.* 61, 29-48; Gwet (2014), *Handbook of
    Inter-Rater Reliability*, 4th ed.
    """
    table = _count_table(ratings, categories)
    counts = table.counts
    _require_pairable(counts)
    n, q = counts.shape
    r = counts.sum(axis=1).astype(np.float64)
    pairable = r >= 2
    n_pairable = int(pairable.sum())
    per_item = _pairwise_agreement_per_item(counts)
    p_a = float(per_item[pairable].sum()) / n_pairable
    if q < 2:
        return GwetAC1Result(
            ac1=float("nan"),
            std_error=float("nan"),
            observed_agreement=p_a,
            expected_agreement=float("nan"),
            categories=table.categories,
            n_items=n,
            n_raters=table.n_raters,
        )
    shares = counts / r[:, None]
    pi = shares.mean(axis=0)
    p_e = float(np.sum(pi * (1.0 - pi))) / (q - 1)
    ac1 = (p_a - p_e) / (1.0 - p_e)
    p_e_i = (shares @ (1.0 - pi)) / (q - 1)
    ac1_i = (n / n_pairable) * (per_item - p_e * pairable) / (1.0 - p_e)
    terms = ac1_i - 2.0 * (1.0 - ac1) * (p_e_i - p_e) / (1.0 - p_e)
    return GwetAC1Result(
        ac1=float(ac1),
        std_error=_std_error_from_item_terms(terms, ac1),
        observed_agreement=p_a,
        expected_agreement=p_e,
        categories=table.categories,
        n_items=n,
        n_raters=table.n_raters,
    )


# --------------------------------------------------------------------------------------------
# Bootstrap over items
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap interval of an agreement statistic.

    Attributes
    ----------
    estimate : float
        The statistic on the original ratings.
    low, high : float
        Percentile interval ``[(1 - confidence) / 2, (1 + confidence) / 2]`` quantiles of the
        valid (non-``nan``) bootstrap replicates; ``nan`` when none is valid.
    confidence : float
        Nominal coverage of ``[low, high]``.
    std_error : float
        Standard deviation of the valid replicates (``ddof=1``); ``nan`` with fewer than 2.
    n_resamples : int
        Number of bootstrap resamples drawn.
    n_valid : int
        Resamples whose statistic was not ``nan`` (e.g. kappa is undefined on a resample that
        holds one category only); the interval uses these alone.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    std_error: float
    n_resamples: int
    n_valid: int


def _metric_value(value: object) -> float:
    if isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    estimate = getattr(value, "estimate", None)
    if isinstance(estimate, Real) and not isinstance(estimate, bool):
        return float(estimate)
    raise ValueError(
        "metric: expected a function returning a number or a result with a numeric "
        f"'estimate' attribute, got {type(value).__name__}"
    )


def bootstrap_ci(
    metric: Callable[[npt.NDArray[Any]], object],
    ratings: Ratings,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator,
) -> BootstrapResult:
    """Percentile bootstrap confidence interval of an agreement statistic, resampling items.

    Estimand: the interval aims to cover the population value of ``metric`` for a population
    of items rated by these raters (raters held fixed). Each of ``n_resamples`` resamples draws
    ``N`` rows of ``ratings`` with replacement (``N`` = number of rows) and evaluates ``metric``
    on them; the interval is the pair of ``(1 -/+ confidence) / 2`` quantiles of the replicates
    (Efron & Tibshirani 1993, ch. 13; linear interpolation between order statistics). Replicates
    that are ``nan`` are left out and counted in ``n_valid``. The standard error reported is the
    standard deviation of the replicates.

    Parameters
    ----------
    metric : callable
        Called with a 2-d numpy array of rows of ``ratings`` (labels as given, missing cells
        kept); returns a number or a result with an ``estimate`` attribute, e.g.
        :func:`fleiss_kappa`, :func:`krippendorff_alpha_nominal`, :func:`gwet_ac1` or
        :func:`percent_agreement`. For :func:`gwet_ac1` fix the categories with
        ``functools.partial(gwet_ac1, categories=...)``, or a resample missing a rare category
        would change ``q``.
    ratings : items x raters matrix
        See the module docstring.
    n_resamples : int, default 2000
        Number of bootstrap resamples, at least 1.
    confidence : float, default 0.95
        Nominal coverage, in ``(0, 1)``.
    rng : numpy.random.Generator
        Source of randomness; the same seed gives the same interval.

    Returns
    -------
    BootstrapResult

    Raises
    ------
    ValueError
        On an invalid ``ratings`` matrix, ``n_resamples``, ``confidence``, ``rng`` or
        ``metric`` return value; errors raised by ``metric`` propagate.

    References
    ----------
    Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise ValueError(f"n_resamples: expected an integer >= 1, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples: expected an integer >= 1, got {n_resamples!r}")
    if not (isinstance(confidence, Real) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    if not callable(metric):
        raise ValueError(f"metric: expected a callable, got {type(metric).__name__}")
    arr = _as_ratings_matrix(ratings)
    n = arr.shape[0]
    estimate = _metric_value(metric(arr))
    replicates = np.empty(int(n_resamples), dtype=np.float64)
    for b in range(int(n_resamples)):
        replicates[b] = _metric_value(metric(arr[rng.integers(0, n, size=n)]))
    valid = replicates[~np.isnan(replicates)]
    tail = (1.0 - float(confidence)) / 2.0
    if valid.size:
        low, high = (float(v) for v in np.quantile(valid, [tail, 1.0 - tail]))
    else:
        low = high = float("nan")
    return BootstrapResult(
        estimate=estimate,
        low=low,
        high=high,
        confidence=float(confidence),
        std_error=float(np.std(valid, ddof=1)) if valid.size >= 2 else float("nan"),
        n_resamples=int(n_resamples),
        n_valid=int(valid.size),
    )


# --------------------------------------------------------------------------------------------
# Labeler versus gold
# --------------------------------------------------------------------------------------------


def _paired_label_array(name: str, labels: Iterable[Hashable]) -> npt.NDArray[Any]:
    out = _as_label_list(name, labels)
    return np.fromiter(out, dtype=object, count=len(out))


@dataclass(frozen=True)
class AccuracyResult:
    """Accuracy of a labeler against gold labels, with a Wilson score interval.

    Attributes
    ----------
    accuracy : float
        Share of scored items on which the labeler matches gold, in ``[0, 1]``.
    std_error : float
        Binomial standard error ``sqrt(a (1 - a) / n)``.
    low, high : float
        Wilson (1927) score interval at ``confidence``.
    confidence : float
        Nominal coverage of ``[low, high]``.
    n_correct : int
        Items on which labeler and gold agree.
    n_items : int
        Scored items (both labels present).
    n_missing : int
        Items left out because the labeler's or the gold label is missing.
    """

    accuracy: float
    std_error: float
    low: float
    high: float
    confidence: float
    n_correct: int
    n_items: int
    n_missing: int

    @property
    def estimate(self) -> float:
        """The point estimate, :attr:`accuracy`."""
        return self.accuracy


def _wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    z2n = z * z / n
    center = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def labeler_accuracy(
    labels: Iterable[Hashable], gold: Iterable[Hashable], *, confidence: float = 0.95
) -> AccuracyResult:
    """Accuracy of a labeler (e.g. an LLM) against gold labels (e.g. human reviewers).

    Estimand: the probability that the labeler gives an item its gold label, for items drawn
    like these. With ``x`` matches among ``n`` scored items, ``a = x / n`` and binomial
    standard error ``sqrt(a (1 - a) / n)``; the interval is Wilson's (1927) score interval
    with ``z = Phi^-1((1 + confidence) / 2)``::

        (a + z^2 / (2n) -/+ z sqrt(a (1 - a) / n + z^2 / (4 n^2))) / (1 + z^2 / n)

    Items whose label or gold label is missing (``None``/``NaN``) are not scored and are
    counted in ``n_missing``: an abstention is *not* an error. To count abstentions as errors
    encode them as a label of their own (e.g. ``"abstain"``).

    Parameters
    ----------
    labels, gold : sequence of hashable
        Labeler's and gold labels, aligned by item.
    confidence : float, default 0.95
        Coverage of the Wilson interval, in ``(0, 1)``.

    Returns
    -------
    AccuracyResult

    Raises
    ------
    ValueError
        When the sequences differ in length, are not 1-d, hold unhashable labels, no item has
        both labels, or ``confidence`` is not in ``(0, 1)``.

    References
    ----------
    Wilson (1927), *J. Am. Stat. Assoc.* 22, 209-212; Newcombe, R. G. (1998), Two-sided
    confidence intervals for the single proportion, *Statistics in Medicine* 17, 857-872.
    """
    if not (isinstance(confidence, Real) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    pred = _paired_label_array("labels", labels)
    ref = _paired_label_array("gold", gold)
    if pred.shape != ref.shape:
        raise ValueError(
            f"gold: expected the same length as labels ({pred.shape[0]}), got {ref.shape[0]}"
        )
    codes, _ = _encode(np.concatenate([pred, ref]), "labels", None)
    code_pred, code_ref = codes[: pred.shape[0]], codes[pred.shape[0] :]
    scored = (code_pred >= 0) & (code_ref >= 0)
    n = int(scored.sum())
    if n == 0:
        raise ValueError("labels: expected at least 1 item with both labels present, got 0")
    correct = int(np.sum(code_pred[scored] == code_ref[scored]))
    accuracy = correct / n
    low, high = _wilson_interval(correct, n, float(confidence))
    return AccuracyResult(
        accuracy=accuracy,
        std_error=math.sqrt(accuracy * (1.0 - accuracy) / n),
        low=low,
        high=high,
        confidence=float(confidence),
        n_correct=correct,
        n_items=n,
        n_missing=int(pred.shape[0] - n),
    )


@dataclass(frozen=True, eq=False)
class ConfusionResult:
    """Confusion matrix with per-category precision, recall and F1.

    Arrays are read-only and indexed like :attr:`categories`. Results compare by identity
    (numpy arrays have no single truth value).

    Attributes
    ----------
    categories : tuple of hashable
        The categories (e.g. policies), in the order of the rows and columns.
    matrix : numpy.ndarray of int64, shape (q, q)
        ``matrix[i, j]`` = items with reference label ``categories[i]`` and predicted label
        ``categories[j]`` (rows: reference, columns: prediction).
    precision : numpy.ndarray of float64
        ``matrix[k, k] / matrix[:, k].sum()``: of the items predicted ``k``, the share that are
        ``k``; ``nan`` when nothing was predicted ``k``.
    recall : numpy.ndarray of float64
        ``matrix[k, k] / matrix[k, :].sum()``: of the items that are ``k``, the share predicted
        ``k``; ``nan`` when no item is ``k``.
    f1 : numpy.ndarray of float64
        Harmonic mean of precision and recall; 0 when both are 0, ``nan`` when either is.
    support : numpy.ndarray of int64
        Items per reference category (row sums).
    accuracy : float
        ``trace(matrix) / n_items``.
    n_items : int
        Scored items (both labels present).
    n_missing : int
        Items left out because a label was missing.
    """

    categories: tuple[Hashable, ...]
    matrix: npt.NDArray[np.int64]
    precision: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]
    f1: npt.NDArray[np.float64]
    support: npt.NDArray[np.int64]
    accuracy: float
    n_items: int
    n_missing: int

    def to_frame(self) -> pd.DataFrame:
        """Per-category precision, recall, F1, support and predicted counts as a DataFrame."""
        return pd.DataFrame(
            {
                "precision": self.precision,
                "recall": self.recall,
                "f1": self.f1,
                "support": self.support,
                "predicted": self.matrix.sum(axis=0),
            },
            index=pd.Index(list(self.categories), name="category", dtype=object),
        )


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.setflags(write=False)
    return array


def confusion(
    labels_pred: Iterable[Hashable],
    labels_ref: Iterable[Hashable],
    categories: Iterable[Hashable],
) -> ConfusionResult:
    """Confusion matrix of predicted versus reference labels, per-category precision/recall.

    Estimands, for each category ``k`` (e.g. a policy) and items drawn like these: precision
    ``P(ref = k | pred = k)`` and recall ``P(pred = k | ref = k)``, each estimated by the
    corresponding share of the confusion matrix ``C`` (rows: reference, columns: prediction)::

        precision_k = C_kk / sum_i C_ik,   recall_k = C_kk / sum_j C_kj
        f1_k        = 2 precision_k recall_k / (precision_k + recall_k)

    Each is a binomial proportion over its denominator ``d`` (standard error
    ``sqrt(x (1 - x) / d)``); :func:`labeler_accuracy` gives intervals for the overall
    accuracy. Items with a missing (``None``/``NaN``) label are left out and counted in
    ``n_missing``.

    Parameters
    ----------
    labels_pred : sequence of hashable
        Predicted labels (e.g. an LLM's).
    labels_ref : sequence of hashable
        Reference labels (e.g. human reviewers'), aligned by item with ``labels_pred``.
    categories : sequence of hashable
        All categories, in the order of the output; every non-missing label must be among them.

    Returns
    -------
    ConfusionResult

    Raises
    ------
    ValueError
        When the sequences differ in length, are not 1-d, hold unhashable labels or labels
        outside ``categories``, ``categories`` is empty, repeats or holds a missing value, or no
        item has both labels.

    References
    ----------
    Wilson (1927) for intervals on the shares; any text on classifier evaluation for the
    definitions.
    """
    cats = _as_categories(categories)
    pred = _paired_label_array("labels_pred", labels_pred)
    ref = _paired_label_array("labels_ref", labels_ref)
    if pred.shape != ref.shape:
        raise ValueError(
            f"labels_ref: expected the same length as labels_pred ({pred.shape[0]}), "
            f"got {ref.shape[0]}"
        )
    code_pred, _ = _encode(pred, "labels_pred", cats)
    code_ref, _ = _encode(ref, "labels_ref", cats)
    scored = (code_pred >= 0) & (code_ref >= 0)
    n = int(scored.sum())
    if n == 0:
        raise ValueError("labels_pred: expected at least 1 item with both labels present, got 0")
    q = len(cats)
    matrix = (
        np.bincount(code_ref[scored] * q + code_pred[scored], minlength=q * q)
        .reshape(q, q)
        .astype(np.int64)
    )
    diag = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, diag / predicted, np.nan)
        recall = np.where(support > 0, diag / support, np.nan)
        f1 = np.where(precision + recall > 0, 2.0 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
    return ConfusionResult(
        categories=cats,
        matrix=_read_only(matrix),
        precision=_read_only(precision.astype(np.float64)),
        recall=_read_only(recall.astype(np.float64)),
        f1=_read_only(f1.astype(np.float64)),
        support=_read_only(support.astype(np.int64)),
        accuracy=float(diag.sum()) / n,
        n_items=n,
        n_missing=int(pred.shape[0] - n),
    )
