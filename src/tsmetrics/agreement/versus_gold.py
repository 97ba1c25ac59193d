"""A labeler against gold labels: accuracy with a Wilson interval, confusion matrix with
per-category precision, recall and F1."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from numbers import Real
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tsmetrics.agreement._inputs import _as_categories, _as_label_list, _encode

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
    precision_std_error, recall_std_error : numpy.ndarray of float64
        Binomial standard errors ``sqrt(x (1 - x) / d)`` of precision and recall over their
        denominators ``d`` (items predicted ``k``, items that are ``k``); ``nan`` where the share
        is undefined.
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
    precision_std_error: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float64)
    )
    recall_std_error: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float64)
    )

    def to_frame(self) -> pd.DataFrame:
        """Per-category precision, recall, F1, support and predicted counts as a DataFrame."""
        return pd.DataFrame(
            {
                "precision": self.precision,
                "precision_std_error": self.precision_std_error,
                "recall": self.recall,
                "recall_std_error": self.recall_std_error,
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
    with np.errstate(divide="ignore", invalid="ignore"):
        precision_se = np.sqrt(precision * (1.0 - precision) / predicted)
        recall_se = np.sqrt(recall * (1.0 - recall) / support)
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
        precision_std_error=_read_only(precision_se.astype(np.float64)),
        recall_std_error=_read_only(recall_se.astype(np.float64)),
    )
