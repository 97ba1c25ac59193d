"""Label adjudication: majority vote and the Dawid-Skene (1979) EM estimator.

Several labelers (human reviewers, SMEs, LLM prompts) label the same sampled items; these
functions turn their labels into one label per item, or a posterior distribution over the true
class of each item.

* :func:`majority_vote` -- the label with the most votes, with a deterministic, configurable
  tie rule, and the vote share of the label chosen.
* :func:`dawid_skene` -- maximum-likelihood estimation of the true class of every item, of each
  labeler's confusion matrix and of the class priors by the EM algorithm of Dawid & Skene
  (1979); optional Laplace smoothing; gold items (e.g. SME labels) can be clamped to their
  known class.

Input: a long table of labels
-----------------------------
One row per label: ``(item_id, labeler_id, label)``. Pass either a :class:`pandas.DataFrame`
(column names given by ``columns``, by default ``("item_id", "labeler_id", "label")``) or a
tuple of three equally long 1-d sequences ``(item_ids, labeler_ids, labels)``. Ids and labels
are any hashable values compared with ``==``. A labeler may label an item more than once (each
row is one independent label, as observer 1 of Dawid & Skene's data). Rows whose label is
missing (``None``, ``NaN``, ``pandas.NA``) are dropped and counted; a missing item or labeler
id is an error. Categories are the labels observed (plus gold labels), sorted when mutually
comparable and in order of first appearance otherwise, unless given explicitly with
``categories`` (then every label must be among them, and categories nobody used are kept).
Items and labelers are ordered the same way; results are indexed by those orders
(``result.items``, ``result.labelers``, ``result.categories``).

Impression-weighted prevalence
------------------------------
For the prevalence ``P = Y / X`` of :mod:`tsmetrics.estimation`, the Dawid-Skene posterior
``P(violating | labels)`` of a sampled unit gives its expected violating impressions
``E[y_i | labels] = x_i P(violating | labels)``; plugging those into the design-based
estimators gives a prevalence estimate that is unbiased *under the Dawid-Skene model* (the
model's conditional-independence assumption is not checked by the sampling design). Hard labels
(majority or posterior mode) instead carry the adjudication error straight into ``Y``.

References
----------
Dawid, A. P. and Skene, A. M. (1979). Maximum likelihood estimation of observer error-rates
using the EM algorithm. *Journal of the Royal Statistical Society, Series C (Applied
Statistics)* 28(1), 20-28.

Dempster, A. P., Laird, N. M. and Rubin, D. B. (1977). Maximum likelihood from incomplete data
via the EM algorithm. *Journal of the Royal Statistical Society, Series B* 39(1), 1-38.

Raykar, V. C., Yu, S., Zhao, L. H., Valadez, G. H., Florin, C., Bogoni, L. and Moy, L. (2010).
Learning from crowds. *Journal of Machine Learning Research* 11, 1297-1322.

Zhang, Y., Chen, X., Zhou, D. and Jordan, M. I. (2016). Spectral methods meet EM: a provably
optimal algorithm for crowdsourcing. *Journal of Machine Learning Research* 17(102), 1-44.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "DEFAULT_COLUMNS",
    "DawidSkeneResult",
    "MajorityVoteResult",
    "TIE_BREAKS",
    "dawid_skene",
    "majority_vote",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
IntpArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

LabelTable: TypeAlias = "pd.DataFrame | tuple[Any, Any, Any]"
"""A long table of labels: a DataFrame, or ``(item_ids, labeler_ids, labels)`` (see above)."""

DEFAULT_COLUMNS: tuple[str, str, str] = ("item_id", "labeler_id", "label")
"""Default column names (item id, labeler id, label) of a DataFrame input."""

TieBreak: TypeAlias = Literal["unresolved", "positive", "accuracy"]
TIE_BREAKS: tuple[str, ...] = ("unresolved", "positive", "accuracy")
"""The tie rules of :func:`majority_vote`."""


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _as_1d(values: Any, name: str) -> npt.NDArray[Any]:
    if isinstance(values, pd.Series | pd.Index):
        arr: npt.NDArray[Any] = values.to_numpy()
    elif isinstance(values, np.ndarray):
        arr = values
    elif isinstance(values, str | bytes):
        raise ValueError(f"{name}: expected a sequence of values, got a single string {values!r}")
    else:
        try:
            seq = list(values)
        except TypeError:
            raise ValueError(
                f"{name}: expected a sequence of values, got {type(values).__name__}"
            ) from None
        arr = np.fromiter(seq, dtype=object, count=len(seq))
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d sequence, got shape {arr.shape}")
    return arr


def _factorize(values: npt.NDArray[Any], name: str) -> tuple[IntpArray, list[Any]]:
    """Codes (-1 where missing) and the distinct values in order of first appearance."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError as exc:
        raise ValueError(
            f"{name}: expected hashable values, got an unhashable one ({exc})"
        ) from None
    uniques_arr = np.asarray(uniques)
    distinct: list[Any] = (
        uniques_arr.tolist() if uniques_arr.dtype.kind in "biufcUS" else list(uniques_arr)
    )
    return np.asarray(codes, dtype=np.intp), distinct


def _canonical_order(distinct: list[Any]) -> list[int]:
    """Sorted order when the values are mutually comparable, first appearance otherwise."""
    try:
        return sorted(range(len(distinct)), key=distinct.__getitem__)
    except TypeError:
        return list(range(len(distinct)))


def _recode(codes: IntpArray, order: list[int]) -> IntpArray:
    if not order:  # every value missing
        return np.full_like(codes, -1)
    remap = np.empty(len(order), dtype=np.intp)
    remap[np.asarray(order, dtype=np.intp)] = np.arange(len(order), dtype=np.intp)
    return np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)


def _ids(values: npt.NDArray[Any], name: str) -> tuple[IntpArray, tuple[Hashable, ...]]:
    codes, distinct = _factorize(values, name)
    if np.any(codes < 0):
        raise ValueError(f"{name}: expected no missing ids, got {int(np.sum(codes < 0))} missing")
    order = _canonical_order(distinct)
    return _recode(codes, order), tuple(distinct[i] for i in order)


def _is_missing_scalar(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _as_categories(categories: Sequence[Hashable]) -> tuple[Hashable, ...]:
    if isinstance(categories, str | bytes):
        raise ValueError(f"categories: expected a sequence of labels, got {categories!r}")
    try:
        cats = tuple(categories)
    except TypeError:
        raise ValueError(f"categories: expected a sequence of labels, got {categories!r}") from None
    if not cats:
        raise ValueError("categories: expected at least 1 category, got 0")
    for cat in cats:
        try:
            hash(cat)
        except TypeError:
            raise ValueError(f"categories: expected hashable labels, got {cat!r}") from None
        if _is_missing_scalar(cat):
            raise ValueError(f"categories: expected non-missing labels, got {cat!r}")
    if len(dict.fromkeys(cats)) != len(cats):
        raise ValueError(f"categories: expected distinct labels, got {list(cats)!r}")
    return cats


@dataclass(frozen=True)
class _Table:
    item: IntpArray  # per kept row: item code
    labeler: IntpArray  # per kept row: labeler code
    label: IntpArray  # per kept row: category code
    items: tuple[Hashable, ...]
    labelers: tuple[Hashable, ...]
    categories: tuple[Hashable, ...]
    gold: IntpArray  # per item: gold category code, -1 when not gold
    n_missing: int


def _read_table(
    data: LabelTable,
    columns: Sequence[str],
    categories: Sequence[Hashable] | None,
    gold: Mapping[Hashable, Hashable] | pd.Series | None = None,
) -> _Table:
    if isinstance(data, pd.DataFrame):
        if isinstance(columns, str) or len(columns) != 3:
            raise ValueError(
                f"columns: expected 3 column names (item id, labeler id, label), got {columns!r}"
            )
        absent = [c for c in columns if c not in data.columns]
        if absent:
            raise ValueError(
                f"data: expected the columns {list(columns)!r}, missing {absent!r} "
                f"(columns present: {list(data.columns)!r})"
            )
        raw = [data[c].to_numpy() for c in columns]
    elif isinstance(data, tuple | list) and len(data) == 3:
        raw = [
            _as_1d(values, name)
            for values, name in zip(data, ("item_ids", "labeler_ids", "labels"), strict=True)
        ]
    else:
        raise ValueError(
            "data: expected a DataFrame or a tuple (item_ids, labeler_ids, labels), "
            f"got {type(data).__name__}"
        )
    item_raw, labeler_raw, label_raw = (np.asarray(a).reshape(-1) for a in raw)
    if not (item_raw.shape == labeler_raw.shape == label_raw.shape):
        raise ValueError(
            "data: expected item ids, labeler ids and labels of the same length, got "
            f"{item_raw.shape[0]}, {labeler_raw.shape[0]} and {label_raw.shape[0]}"
        )

    gold_ids: list[Any] = []
    gold_labels: list[Any] = []
    if gold is not None:
        if isinstance(gold, pd.Series):
            gold_ids, gold_labels = gold.index.tolist(), gold.tolist()
        elif isinstance(gold, Mapping):
            gold_ids, gold_labels = list(gold.keys()), list(gold.values())
        else:
            raise ValueError(
                f"gold: expected a mapping item id -> label or a Series, got {type(gold).__name__}"
            )
        for item_id, value in zip(gold_ids, gold_labels, strict=True):
            try:
                hash(value)
            except TypeError:
                raise ValueError(
                    f"gold: expected hashable labels, got {value!r} for item {item_id!r}"
                ) from None
            if _is_missing_scalar(value):
                raise ValueError(
                    f"gold: expected a label for every gold item, got none for {item_id!r}"
                )
    n_gold = len(gold_labels)

    # Labels of the data and of the gold items are encoded together.
    if n_gold:
        gold_arr = np.fromiter(gold_labels, dtype=object, count=n_gold)
        codes, distinct = _factorize(np.concatenate([label_raw.astype(object), gold_arr]), "labels")
    else:
        codes, distinct = _factorize(label_raw, "labels")
    if categories is None:
        order = _canonical_order(distinct)
        cats = tuple(distinct[i] for i in order)
        codes = _recode(codes, order)
    else:
        cats = _as_categories(categories)
        index = {cat: i for i, cat in enumerate(cats)}
        for item_id, value in zip(gold_ids, gold_labels, strict=True):
            if value not in index:
                raise ValueError(
                    f"gold: expected labels among the categories {list(cats)!r}, "
                    f"got {value!r} for item {item_id!r}"
                )
        remap = np.empty(len(distinct), dtype=np.intp)
        for j, value in enumerate(distinct):
            try:
                remap[j] = index[value]
            except KeyError:
                raise ValueError(
                    f"labels: expected labels among the categories {list(cats)!r}, got {value!r}"
                ) from None
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)] if distinct else -1, -1)
    row_codes, gold_codes = codes[: label_raw.shape[0]], codes[label_raw.shape[0] :]

    keep = row_codes >= 0
    n_missing = int(np.sum(~keep))
    if not keep.any():
        raise ValueError("data: expected at least 1 row with a non-missing label, got none")
    item, items = _ids(item_raw[keep], "item_ids")
    labeler, labelers = _ids(labeler_raw[keep], "labeler_ids")

    gold_per_item = np.full(len(items), -1, dtype=np.intp)
    if n_gold:
        item_index = {item_id: i for i, item_id in enumerate(items)}
        for item_id, code in zip(gold_ids, gold_codes.tolist(), strict=True):
            try:
                gold_per_item[item_index[item_id]] = code
            except KeyError:
                raise ValueError(
                    f"gold: expected gold items among the labelled items, got {item_id!r}"
                ) from None
            except TypeError:
                raise ValueError(f"gold: expected hashable item ids, got {item_id!r}") from None
    label = row_codes[keep]
    # Canonical row order (by item, labeler, label codes): results do not depend on row order.
    rows = np.lexsort((label, labeler, item))
    return _Table(
        item=item[rows],
        labeler=labeler[rows],
        label=label[rows],
        items=items,
        labelers=labelers,
        categories=cats,
        gold=gold_per_item,
        n_missing=n_missing,
    )


def _vote_counts(table: _Table) -> IntArray:
    n, k = len(table.items), len(table.categories)
    counts = np.bincount(table.item * k + table.label, minlength=n * k).reshape(n, k)
    return counts.astype(np.int64)


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.setflags(write=False)
    return array


def _object_array(values: Sequence[Any]) -> ObjectArray:
    return np.fromiter(values, dtype=object, count=len(values))


# --------------------------------------------------------------------------------------------
# Majority vote
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MajorityVoteResult:
    """Majority-vote labels. Arrays are read-only; results compare by identity.

    Attributes
    ----------
    items : tuple of hashable
        Item ids, in the order of the per-item arrays.
    categories : tuple of hashable
        The categories, in the order of the columns of :attr:`counts`.
    labelers : tuple of hashable
        Labeler ids, in the order of :attr:`labeler_accuracy`.
    labels : numpy.ndarray of object, shape (n_items,)
        The adjudicated label per item; ``None`` where unresolved.
    vote_share : numpy.ndarray of float64
        Share of the item's labels that went to the adjudicated label; for an unresolved item,
        the share of each of its tied top labels.
    counts : numpy.ndarray of int64, shape (n_items, n_categories)
        Votes per item and category.
    n_votes : numpy.ndarray of int64
        Labels per item (row sums of :attr:`counts`).
    tied : numpy.ndarray of bool
        Whether two or more categories tied for the most votes (before the tie rule).
    resolved : numpy.ndarray of bool
        Whether the item got a label (``False`` only for ties the rule left open).
    tie_break : str
        The tie rule used (see :func:`majority_vote`).
    labeler_accuracy : numpy.ndarray of float64, shape (n_labelers,)
        The labeler accuracies ranked by the ``"accuracy"`` rule: the ones given, or estimated
        as the share of the labeler's labels that agree with the majority label on untied
        items; ``nan`` when unknown.
    n_missing : int
        Rows dropped because their label was missing.
    """

    items: tuple[Hashable, ...]
    categories: tuple[Hashable, ...]
    labelers: tuple[Hashable, ...]
    labels: ObjectArray
    vote_share: FloatArray
    counts: IntArray
    n_votes: IntArray
    tied: BoolArray
    resolved: BoolArray
    tie_break: str
    labeler_accuracy: FloatArray
    n_missing: int

    def to_frame(self) -> pd.DataFrame:
        """Per-item label, vote share, vote count and tie flags, indexed by item id."""
        return pd.DataFrame(
            {
                "label": self.labels,
                "vote_share": self.vote_share,
                "n_votes": self.n_votes,
                "tied": self.tied,
                "resolved": self.resolved,
            },
            index=pd.Index(list(self.items), name="item_id", dtype=object),
        )


def _accuracy_from_mapping(
    labelers: tuple[Hashable, ...], accuracy: Mapping[Hashable, float] | pd.Series
) -> FloatArray:
    if isinstance(accuracy, pd.Series):
        pairs = dict(zip(accuracy.index.tolist(), accuracy.tolist(), strict=True))
    elif isinstance(accuracy, Mapping):
        pairs = dict(accuracy)
    else:
        raise ValueError(
            "labeler_accuracy: expected a mapping labeler id -> accuracy or a Series, "
            f"got {type(accuracy).__name__}"
        )
    out = np.full(len(labelers), np.nan, dtype=np.float64)
    for j, labeler in enumerate(labelers):
        if labeler in pairs:
            value = pairs[labeler]
            if not (isinstance(value, Real) and 0.0 <= float(value) <= 1.0):
                raise ValueError(
                    f"labeler_accuracy: expected numbers in [0, 1], got {value!r} "
                    f"for labeler {labeler!r}"
                )
            out[j] = float(value)
    return out


def majority_vote(
    data: LabelTable,
    *,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    categories: Sequence[Hashable] | None = None,
    tie_break: TieBreak = "unresolved",
    positive_label: Hashable | None = None,
    labeler_accuracy: Mapping[Hashable, float] | pd.Series | None = None,
) -> MajorityVoteResult:
    """Majority vote per item, with a deterministic tie rule.

    Each label (row) is one vote; a labeler who labelled an item twice votes twice. With
    ``n_ik`` the votes for category ``k`` on item ``i`` and ``n_i = sum_k n_ik``, the item's
    label is ``argmax_k n_ik`` and its vote share ``n_ik / n_i`` (a descriptive measure of
    consensus, not a probability that the label is right; :func:`dawid_skene` gives one under
    its model). When several categories tie for the most votes, ``tie_break`` decides:

    * ``"unresolved"`` (default): no label (``None``), ``resolved`` is ``False``.
    * ``"positive"``: ``positive_label`` (e.g. the violating class) when it is among the tied
      categories -- "when in doubt, count it as violating", which biases a prevalence upward
      by at most the share of tied items; otherwise unresolved.
    * ``"accuracy"``: the label given by the most accurate labeler among those who voted for
      one of the tied categories. Accuracies come from ``labeler_accuracy`` (e.g.
      :func:`tsmetrics.agreement.labeler_accuracy` against gold; labelers absent from the
      mapping rank below all others) or, when not given, are estimated as the share of each
      labeler's labels that agree with the majority label on the untied items. If the top
      accuracy is shared by labelers who voted for different tied categories (or nobody has a
      known accuracy), the item stays unresolved.

    Parameters
    ----------
    data : DataFrame or (item_ids, labeler_ids, labels)
        The long table of labels (see the module docstring).
    columns : sequence of 3 str, default ("item_id", "labeler_id", "label")
        Column names of the item id, labeler id and label when ``data`` is a DataFrame.
    categories : sequence of hashable, optional
        All categories, in the order of the output; default: the labels observed.
    tie_break : {"unresolved", "positive", "accuracy"}, default "unresolved"
        The tie rule, see above.
    positive_label : hashable, optional
        The positive (violating) category; required with ``tie_break="positive"``.
    labeler_accuracy : mapping labeler id -> float in [0, 1], or Series, optional
        Known labeler accuracies for ``tie_break="accuracy"``.

    Returns
    -------
    MajorityVoteResult

    Raises
    ------
    ValueError
        On a malformed table (lengths differ, missing ids, unhashable values, no non-missing
        label), labels outside ``categories``, an unknown ``tie_break``, a missing or unknown
        ``positive_label``, or accuracies outside ``[0, 1]``.
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break: expected one of {list(TIE_BREAKS)!r}, got {tie_break!r}")
    table = _read_table(data, columns, categories)
    k = len(table.categories)
    counts = _vote_counts(table)
    n_votes = counts.sum(axis=1)
    top = counts.max(axis=1)
    is_top = counts == top[:, None]
    tied = is_top.sum(axis=1) > 1
    choice = np.where(tied, -1, np.argmax(counts, axis=1)).astype(np.intp)

    # Labeler accuracies: given, or agreement with the untied majority labels.
    if labeler_accuracy is not None:
        accuracy = _accuracy_from_mapping(table.labelers, labeler_accuracy)
    else:
        untied_row = ~tied[table.item]
        agrees = (table.label == choice[table.item]) & untied_row
        n_rows = np.bincount(table.labeler[untied_row], minlength=len(table.labelers))
        n_agree = np.bincount(table.labeler[agrees], minlength=len(table.labelers))
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.where(n_rows > 0, n_agree / np.maximum(n_rows, 1), np.nan)
        accuracy = accuracy.astype(np.float64)

    if tie_break == "positive":
        if positive_label is None:
            raise ValueError(
                "positive_label: expected the positive category with tie_break='positive'"
            )
        try:
            pos = table.categories.index(positive_label)
        except ValueError:
            raise ValueError(
                f"positive_label: expected one of the categories {list(table.categories)!r}, "
                f"got {positive_label!r}"
            ) from None
        choice = np.where(tied & is_top[:, pos], pos, choice)
    elif tie_break == "accuracy":
        score = np.where(np.isnan(accuracy), -np.inf, accuracy)
        # Rows voting for one of the tied top categories of their item.
        candidate = tied[table.item] & is_top[table.item, table.label]
        row_score = score[table.labeler]
        best = np.full(len(table.items), -np.inf)
        np.maximum.at(best, table.item[candidate], row_score[candidate])
        winner_rows = candidate & (row_score == best[table.item]) & np.isfinite(row_score)
        win_counts = np.bincount(
            table.item[winner_rows] * k + table.label[winner_rows],
            minlength=len(table.items) * k,
        ).reshape(-1, k)
        single = (win_counts > 0).sum(axis=1) == 1
        choice = np.where(tied & single, np.argmax(win_counts, axis=1), choice)

    resolved = choice >= 0
    chosen_votes = np.where(
        resolved, counts[np.arange(len(table.items)), np.maximum(choice, 0)], top
    )
    cats = table.categories
    labels = _object_array([cats[c] if c >= 0 else None for c in choice.tolist()])
    return MajorityVoteResult(
        items=table.items,
        categories=cats,
        labelers=table.labelers,
        labels=_read_only(labels),
        vote_share=_read_only((chosen_votes / n_votes).astype(np.float64)),
        counts=_read_only(counts),
        n_votes=_read_only(n_votes.astype(np.int64)),
        tied=_read_only(tied),
        resolved=_read_only(resolved),
        tie_break=tie_break,
        labeler_accuracy=_read_only(accuracy),
        n_missing=table.n_missing,
    )


# --------------------------------------------------------------------------------------------
# Dawid-Skene
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DawidSkeneResult:
    """Dawid-Skene estimates. Arrays are read-only; results compare by identity.

    Attributes
    ----------
    items : tuple of hashable
        Item ids, in the order of the rows of :attr:`posterior`.
    labelers : tuple of hashable
        Labeler ids, in the order of :attr:`confusion`.
    categories : tuple of hashable
        The classes, in the order of the columns of :attr:`posterior` and of :attr:`priors`.
    posterior : numpy.ndarray of float64, shape (n_items, n_categories)
        ``posterior[i, k] = P(true class of item i = k | labels)`` at the estimates; rows sum
        to 1. Gold items are one-hot on their gold class.
    labels : numpy.ndarray of object, shape (n_items,)
        The posterior mode per item (the first category in :attr:`categories` order on exact
        ties); the gold label for gold items.
    confusion : numpy.ndarray of float64, shape (n_labelers, n_categories, n_categories)
        ``confusion[j, k, l] = P(labeler j says l | true class k)``, the error rates
        ``pi_kl^(j)`` of Dawid & Skene; each row ``confusion[j, k]`` sums to 1.
    priors : numpy.ndarray of float64, shape (n_categories,)
        Class priors ``p_k`` (the prevalence of each class among the items, unweighted).
    log_likelihood : float
        Observed-data log-likelihood at the estimates (complete-data for gold items), without
        the multinomial coefficients and without the smoothing penalty.
    log_likelihood_trace : numpy.ndarray of float64, shape (n_iter,)
        The objective after each EM iteration: the log-likelihood, plus the smoothing penalty
        ``smoothing * (sum_k log p_k + sum_jkl log pi_kl^(j))`` when ``smoothing > 0``. EM never
        decreases it (up to rounding).
    n_iter : int
        EM iterations run (M-step + E-step pairs).
    converged : bool
        Whether the largest change of any prior or error rate in the last iteration was below
        ``tol`` (``False`` when ``max_iter`` stopped it first).
    smoothing : float
        The Laplace smoothing ``alpha`` used.
    is_gold : numpy.ndarray of bool
        Items clamped to a known class.
    n_ratings : int
        Labels (rows) used.
    n_missing : int
        Rows dropped because their label was missing.
    """

    items: tuple[Hashable, ...]
    labelers: tuple[Hashable, ...]
    categories: tuple[Hashable, ...]
    posterior: FloatArray
    labels: ObjectArray
    confusion: FloatArray
    priors: FloatArray
    log_likelihood: float
    log_likelihood_trace: FloatArray
    n_iter: int
    converged: bool
    smoothing: float
    is_gold: BoolArray
    n_ratings: int
    n_missing: int

    @property
    def labeler_accuracy(self) -> FloatArray:
        """Each labeler's model accuracy ``sum_k p_k pi_kk^(j)`` (items drawn like these)."""
        return np.einsum("k,jkk->j", self.priors, self.confusion)

    def to_frame(self) -> pd.DataFrame:
        """Per-item posterior (one column per category), mode label and gold flag."""
        frame = pd.DataFrame(
            self.posterior,
            index=pd.Index(list(self.items), name="item_id", dtype=object),
            columns=pd.Index(list(self.categories), dtype=object),
        )
        frame["label"] = self.labels
        frame["is_gold"] = self.is_gold
        return frame

    def confusion_frame(self) -> pd.DataFrame:
        """The confusion matrices stacked: rows (labeler, true class), columns observed label."""
        j, k = len(self.labelers), len(self.categories)
        index = pd.MultiIndex.from_arrays(
            [
                _object_array([lab for lab in self.labelers for _ in range(k)]),
                _object_array(list(self.categories) * j),
            ],
            names=["labeler_id", "true_label"],
        )
        return pd.DataFrame(
            self.confusion.reshape(j * k, k),
            index=index,
            columns=pd.Index(list(self.categories), name="observed_label", dtype=object),
        )


@dataclass(frozen=True)
class _EMIndex:
    """Flat bincount indices of the rows, computed once for all EM iterations."""

    item: IntpArray  # per row
    cell: IntpArray  # (rows * k,): flat index of (labeler, class c, label), for each class c
    item_class: IntpArray  # (rows * k,): flat index of (item, class c), for each class c
    gold: BoolArray  # per item
    gold_class: IntpArray  # per gold item
    n_items: int
    n_labelers: int
    k: int

    @classmethod
    def build(cls, table: _Table) -> _EMIndex:
        k = len(table.categories)
        classes = np.arange(k, dtype=np.intp)[None, :]
        cell = ((table.labeler[:, None] * k + classes) * k + table.label[:, None]).ravel()
        gold = table.gold >= 0
        return cls(
            item=table.item,
            cell=cell,
            item_class=(table.item[:, None] * k + classes).ravel(),
            gold=gold,
            gold_class=table.gold[gold],
            n_items=len(table.items),
            n_labelers=len(table.labelers),
            k=k,
        )


def _m_step(
    post: FloatArray, ix: _EMIndex, alpha: float, gold_in_priors: bool = True
) -> tuple[FloatArray, FloatArray]:
    """Priors and confusion matrices maximising the expected complete-data (penalised) log-lik.
    Without ``gold_in_priors`` the priors are the class shares of the non-gold items only."""
    n, k = post.shape
    # counts[j, c, l] = sum over rows r of labeler j with label l of post[item_r, c]
    counts = (
        np.bincount(ix.cell, weights=post[ix.item].ravel(), minlength=ix.n_labelers * k * k)
        .astype(np.float64, copy=False)
        .reshape(ix.n_labelers, k, k)
    )
    counts += alpha
    totals = counts.sum(axis=2, keepdims=True)
    # A labeler with no (soft) items of class c: any row maximises; use the uniform one.
    confusion = np.divide(counts, totals, out=np.full_like(counts, 1.0 / k), where=totals > 0)
    if not gold_in_priors and 0 < ix.gold_class.size < n:  # all gold: priors do not matter
        post = post[~ix.gold]
        n = post.shape[0]
    priors = (post.sum(axis=0) + alpha) / (n + k * alpha)
    return priors, confusion


def _e_step(
    priors: FloatArray, confusion: FloatArray, ix: _EMIndex, gold_in_priors: bool = True
) -> tuple[FloatArray, FloatArray]:
    """Posterior class probabilities and per-item log-likelihood contributions (a gold item's
    without its prior term when gold items are not draws from the priors)."""
    n, k = ix.n_items, ix.k
    with np.errstate(divide="ignore"):
        log_conf = np.log(confusion).ravel()
        log_prior = np.log(priors)
    # log_joint[i, c] = log p_c + sum over rows r of item i of log pi[labeler_r, c, label_r]
    log_labels = np.bincount(ix.item_class, weights=log_conf[ix.cell], minlength=n * k).reshape(
        n, k
    )
    log_joint = log_labels + log_prior
    top = log_joint.max(axis=1)
    finite = np.isfinite(top)
    shifted = np.exp(log_joint - np.where(finite, top, 0.0)[:, None])
    total = shifted.sum(axis=1)
    post = np.where(finite[:, None], shifted / np.where(finite, total, 1.0)[:, None], 1.0 / k)
    item_ll = np.where(finite, top + np.log(np.where(finite, total, 1.0)), -np.inf)
    if ix.gold_class.size:
        post[ix.gold] = 0.0
        post[ix.gold, ix.gold_class] = 1.0
        gold_terms = log_joint if gold_in_priors else log_labels
        item_ll[ix.gold] = gold_terms[ix.gold, ix.gold_class]
    return post, item_ll


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def dawid_skene(
    data: LabelTable,
    *,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    categories: Sequence[Hashable] | None = None,
    gold: Mapping[Hashable, Hashable] | pd.Series | None = None,
    smoothing: float = 0.0,
    tol: float = 1e-8,
    max_iter: int = 1000,
    gold_in_priors: bool = True,
) -> DawidSkeneResult:
    """Dawid & Skene (1979) maximum-likelihood adjudication by the EM algorithm.

    Model. Item ``i`` has a latent true class ``T_i`` drawn from the priors ``p_k``; given
    ``T_i = k``, each label of labeler ``j`` on item ``i`` is drawn independently from row
    ``k`` of the labeler's confusion matrix, ``P(label = l | T_i = k) = pi_kl^(j)``. With
    ``n_il^(j)`` the number of times labeler ``j`` labelled item ``i`` as ``l``, the
    likelihood is (Dawid & Skene 1979, eq. 2.7)::

        L(p, pi) = prod_i sum_k p_k prod_j prod_l (pi_kl^(j)) ^ n_il^(j)

    EM (eqs. 2.3-2.5), vectorised over all labels (rows): starting from the soft majority
    vote ``T_ik = sum_j n_ik^(j) / sum_jl n_il^(j)`` (eq. 3.1, each item's vote shares),
    alternate

    * M-step: ``pi_kl^(j) = (sum_i T_ik n_il^(j) + a) / (sum_l sum_i T_ik n_il^(j) + K a)``
      and ``p_k = (sum_i T_ik + a) / (n + K a)``, with ``a = smoothing``;
    * E-step: ``T_ik = p_k prod_jl (pi_kl^(j))^n_il^(j) / sum_c p_c prod_jl
      (pi_cl^(j))^n_il^(j)`` (computed in log space),

    until the largest absolute change of any ``p_k`` or ``pi_kl^(j)`` between two iterations is
    below ``tol``, or ``max_iter`` iterations. With ``smoothing = a > 0`` this is the MAP
    estimate under independent Dirichlet(``1 + a``) priors on every row ``pi_k.^(j)`` and on
    ``p`` (Laplace smoothing: ``a`` pseudo-labels in every cell), which keeps error rates off 0
    and 1 for labelers with few items; ``a = 0`` is the paper's maximum likelihood. A row of a
    labeler who has (softly) no items of class ``k`` is left uniform (it does not enter the
    likelihood).

    Gold items (``gold``: item id -> known class, e.g. SME labels) are clamped: their ``T_i``
    is one-hot on the gold class at every E-step, so they enter the M-step as fully observed
    items. They also enter ``p_k``: if gold items were not drawn like the other items (e.g.
    oversampled violations), the priors are biased toward their classes. With
    ``gold_in_priors=False`` they inform the confusion matrices only: ``p_k`` is the mean
    posterior of the non-gold items and a gold item's likelihood term is
    ``prod_jl (pi_gl^(j))^n_il^(j)`` without ``p_g`` -- the likelihood of a design in which gold
    items are chosen by SMEs, not drawn from the population.

    Standard errors are not provided: the observed information of the EM estimates (Louis
    1982) is unreliable at the boundary (error rates of 0 or 1, common with few items) --
    use a bootstrap over items when intervals are needed. The solution is a local maximum
    reached from the majority-vote start; see ``docs/methods/adjudication.md`` for
    identifiability (label switching, at least 3 conditionally independent labelers).

    Parameters
    ----------
    data : DataFrame or (item_ids, labeler_ids, labels)
        The long table of labels (see the module docstring).
    columns : sequence of 3 str, default ("item_id", "labeler_id", "label")
        Column names of the item id, labeler id and label when ``data`` is a DataFrame.
    categories : sequence of hashable, optional
        All classes, in the order of the output; default: the labels observed (and gold).
    gold : mapping item id -> label, or Series indexed by item id, optional
        Known true classes; every gold item must have at least one label in ``data``.
    gold_in_priors : bool, default True
        Whether gold items count in the class priors (True: they are draws like the other
        items; False: SME-chosen items that inform the confusion matrices only).
    smoothing : float, default 0.0
        Laplace smoothing ``a >= 0`` (pseudo-count per cell), see above.
    tol : float, default 1e-8
        Convergence tolerance on the parameters, ``> 0``.
    max_iter : int, default 1000
        Maximum number of EM iterations, ``>= 1``.

    Returns
    -------
    DawidSkeneResult

    Raises
    ------
    ValueError
        On a malformed table, labels outside ``categories``, gold items without labels or
        with missing gold labels, ``smoothing < 0``, ``tol <= 0`` or ``max_iter < 1``.

    References
    ----------
    Dawid & Skene (1979), *Appl. Statist.* 28, 20-28; Dempster, Laird & Rubin (1977), *JRSS B*
    39, 1-38; Louis, T. A. (1982), Finding the observed information matrix when using the EM
    algorithm, *JRSS B* 44, 226-233.
    """
    if not (isinstance(smoothing, Real) and math.isfinite(float(smoothing)) and smoothing >= 0):
        raise ValueError(f"smoothing: expected a finite number >= 0, got {smoothing!r}")
    if not (isinstance(tol, Real) and math.isfinite(float(tol)) and tol > 0):
        raise ValueError(f"tol: expected a finite number > 0, got {tol!r}")
    n_max = _check_positive_int("max_iter", max_iter)
    alpha = float(smoothing)
    table = _read_table(data, columns, categories, gold)
    k = len(table.categories)

    # Soft majority vote (Dawid & Skene eq. 3.1): each item's vote shares; gold one-hot.
    counts = _vote_counts(table).astype(np.float64)
    post = counts / counts.sum(axis=1, keepdims=True)
    is_gold = table.gold >= 0
    post[is_gold] = 0.0
    post[is_gold, table.gold[is_gold]] = 1.0

    ix = _EMIndex.build(table)
    trace: list[float] = []
    previous: tuple[FloatArray, FloatArray] | None = None
    converged = False
    priors = np.full(k, 1.0 / k)
    confusion = np.full((len(table.labelers), k, k), 1.0 / k)
    log_lik = -math.inf
    for _ in range(n_max):
        priors, confusion = _m_step(post, ix, alpha, gold_in_priors)
        post, item_ll = _e_step(priors, confusion, ix, gold_in_priors)
        log_lik = float(item_ll.sum())
        objective = log_lik
        if alpha > 0:
            objective += alpha * float(np.log(priors).sum() + np.log(confusion).sum())
        trace.append(objective)
        if previous is not None:
            change = max(
                float(np.max(np.abs(priors - previous[0]))),
                float(np.max(np.abs(confusion - previous[1]))),
            )
            if change < tol:
                converged = True
                break
        previous = (priors, confusion)

    mode = np.argmax(post, axis=1)
    cats = table.categories
    return DawidSkeneResult(
        items=table.items,
        labelers=table.labelers,
        categories=cats,
        posterior=_read_only(post),
        labels=_read_only(_object_array([cats[c] for c in mode.tolist()])),
        confusion=_read_only(confusion),
        priors=_read_only(priors),
        log_likelihood=log_lik,
        log_likelihood_trace=_read_only(np.asarray(trace, dtype=np.float64)),
        n_iter=len(trace),
        converged=converged,
        smoothing=alpha,
        is_gold=_read_only(is_gold),
        n_ratings=int(table.item.shape[0]),
        n_missing=table.n_missing,
    )
