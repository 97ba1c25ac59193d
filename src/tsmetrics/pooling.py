"""Pooling daily prevalence estimates over a window, and small-cell publication rules.

What is estimated
-----------------
For a policy (and optionally a domain, e.g. ``surface=search``) and a window of days
``d = 1..D`` (typically the 7 days ending on the reported day), the *pooled* prevalence is the
share of the window's impressions that went to violating units::

    P_pool = sum_d Y_d / sum_d X_d,

with ``Y_d`` the violating impressions of day ``d`` and ``X_d`` that day's impressions, known
exactly. It is an impression-weighted average of the daily prevalences, ``sum_d X_d P_d / sum_d
X_d``, not their plain mean.

Design
------
Each day is sampled independently (for PPS with replacement: ``n_d`` multinomial draws from the
day's units; for Poisson PPS: the day enters the hash key, so the days' selections are
independent). The window is therefore a sample *stratified by day*: strata are days, each with
its own design and sample size, and the daily estimators are independent.

Estimator
---------
With ``Y_d_hat = P_d_hat X_d`` the daily design-unbiased estimator of ``Y_d`` (Hansen-Hurwitz or
Horvitz-Thompson, as written by ``measure.estimate_day``) and ``v_d = SE(P_d_hat)^2 X_d^2`` its
variance estimate::

    P_pool_hat = sum_d Y_d_hat / sum_d X_d = sum_d X_d P_d_hat / X_W,      X_W = sum_d X_d
    v(P_pool_hat) = sum_d v_d / X_W^2 = sum_d X_d^2 SE_d^2 / X_W^2.

This is the stratified estimator of a total divided by its known denominator (Cochran 1977,
Section 5.3 for the stratified total; Section 9A for the within-day HH variance): unbiased,
with an unbiased variance estimator because the days are independent. For a domain the same
formula applies with the domain's daily estimates and known domain impressions ``X_{S,d}``.

The confidence interval is ``estimation.interval_function(ci_method, w_W)(P_pool_hat, v, n,
confidence)``. For the gamma intervals (``gamma_tcz``, ``gamma_midp``; Fay & Feuer 1997, Fay &
Kim 2017) the weight of one more violating unit on the window's prevalence scale is::

    w_W = (1 / D) sum_d w_d X_d / X_W,

with ``w_d`` the day's weight (the mean ``x_i / (pi_i X_d)`` of its uncertain sampled units,
:func:`tsmetrics.gamma_interval.mean_uncertain_weight`): a unit's weight on the window scale is
``x_i / (pi_i X_W)``, and the days, sampled to the same expected size, count equally. For the
other methods ``n = sum_d n_d`` draws, i.e. the Korn & Graubard (1998) effective sample size
``P(1-P)/v`` of the pooled estimate for the ``_kg`` methods. (Korn & Graubard also multiply by
``(t_{n-1}/t_{df})^2`` with ``df = n - D`` design degrees of freedom for ``D`` strata; for daily
samples of hundreds of draws this factor is within 1e-3 of 1 and is omitted, as in
:mod:`tsmetrics.estimation`.)

Small cells
-----------
:func:`classify_cell` decides what is published for one day's cell (policy x domain):
``"report"`` (the day's estimate and CI), ``"flag"`` (the day's upper bound only: the day had no
violating draw), ``"pool"`` (the window's pooled estimate instead of the day's, because the day's
cell is too small or too imprecise) or ``"suppress"`` (even the pooled cell is too small: only an
upper bound "<= U" of the day's prevalence is published). A zero estimate is never published as
a bare ``0``.

References
----------
Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed., Wiley. Chapter 5 (stratified random
sampling) and Section 9A (sampling with unequal probabilities with replacement).

Korn, E. L. and Graubard, B. I. (1998). Confidence intervals for proportions with small
expected number of positive counts estimated from survey data. *Survey Methodology* 24(2),
193-201.

Parker, J. D., Talih, M., Malec, D. J. et al. (2017). National Center for Health Statistics
data presentation standards for proportions. *Vital and Health Statistics* 2(175). (Effective
sample size and CI-width rules for suppressing or flagging survey proportions, and combining
survey cycles to reach an adequate sample.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal, Protocol

import numpy as np

from tsmetrics.estimation import (
    PrevalenceEstimate,
    check_ci_method,
    effective_sample_size,
    interval_function,
)
from tsmetrics.gamma_interval import EVENT_WEIGHT_CI_METHODS

__all__ = [
    "CELL_STATUSES",
    "CellStatus",
    "DayRecord",
    "EstimateLike",
    "PooledEstimate",
    "classify_cell",
    "pool_cells",
    "pool_days",
    "pooled_event_weight",
    "relative_half_width",
]

CellStatusName = Literal["report", "flag", "pool", "suppress"]

#: The possible :attr:`CellStatus.status` values, from best to worst.
CELL_STATUSES: tuple[CellStatusName, ...] = ("report", "flag", "pool", "suppress")


# --------------------------------------------------------------------------------------------
# Input records
# --------------------------------------------------------------------------------------------


def _finite_nonnegative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    out = float(value)
    if not math.isfinite(out) or out < 0.0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return out


def _integer(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class DayRecord:
    """One day's published estimate of one cell (policy x domain), the input of pooling.

    Attributes
    ----------
    estimate : float
        Daily prevalence estimate ``P_d_hat = Y_d_hat / X_d >= 0`` (design-unbiased for ``P_d``,
        e.g. Hansen-Hurwitz with known ``X_d``).
    std_error : float
        Its estimated standard error ``SE_d >= 0``.
    total_impressions : float
        Known impressions ``X_d > 0`` of the cell on that day (the domain's, for a domain).
    n_draws : int
        Number of draws (or selected units) ``n_d >= 1`` behind the estimate.
    n_positive_draws : int
        Number of those draws with violating impressions, ``0 <= . <= n_d``.
    day : datetime.date or None
        The day; required by :func:`pool_cells` and for duplicate detection.
    policy : str or None
        Policy name (grouping key of :func:`pool_cells`).
    domain : str
        Domain name, ``"all"`` for the whole population (grouping key of :func:`pool_cells`).
    event_weight : float or None
        The day's weight of one more violating unit on its prevalence scale (the gamma
        intervals' ``w_d``, :attr:`tsmetrics.estimation.PrevalenceEstimate.event_weight`);
        required to pool with ``gamma_tcz`` or ``gamma_midp``.
    """

    estimate: float
    std_error: float
    total_impressions: float
    n_draws: int
    n_positive_draws: int
    day: date | None = None
    policy: str | None = None
    domain: str = "all"
    event_weight: float | None = None

    def __post_init__(self) -> None:
        _finite_nonnegative("estimate", self.estimate)
        _finite_nonnegative("std_error", self.std_error)
        total = _finite_nonnegative("total_impressions", self.total_impressions)
        if total <= 0.0:
            raise ValueError(
                f"total_impressions: expected a finite number > 0, got {self.total_impressions!r}"
            )
        n = _integer("n_draws", self.n_draws, 1)
        k = _integer("n_positive_draws", self.n_positive_draws, 0)
        if k > n:
            raise ValueError(
                f"n_positive_draws: expected at most n_draws = {n}, got {self.n_positive_draws!r}"
            )
        if self.day is not None and not isinstance(self.day, date):
            raise ValueError(f"day: expected a datetime.date or None, got {self.day!r}")
        if (
            self.event_weight is not None
            and _finite_nonnegative("event_weight", self.event_weight) <= 0.0
        ):
            raise ValueError(f"event_weight: expected a number > 0, got {self.event_weight!r}")

    @classmethod
    def from_estimate(
        cls,
        estimate: PrevalenceEstimate,
        total_impressions: float,
        *,
        day: date | None = None,
        policy: str | None = None,
        domain: str = "all",
    ) -> DayRecord:
        """Record of a :class:`~tsmetrics.estimation.PrevalenceEstimate` and its known total."""
        return cls(
            estimate=estimate.estimate,
            std_error=estimate.std_error,
            total_impressions=total_impressions,
            n_draws=estimate.n_draws,
            n_positive_draws=estimate.n_positive_draws,
            day=day,
            policy=policy,
            domain=domain,
            event_weight=estimate.event_weight,
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DayRecord:
        """Record of a ``tsm.estimates`` row (a mapping with the table's column names).

        Uses ``event_date``, ``policy``, ``domain``, ``estimate``, ``std_error``,
        ``total_impressions``, ``n_draws``, ``n_positive_draws`` and, when present and not
        null, ``event_weight``.
        """
        try:
            return cls(
                estimate=float(row["estimate"]),
                std_error=float(row["std_error"]),
                total_impressions=float(row["total_impressions"]),
                n_draws=int(row["n_draws"]),
                n_positive_draws=int(row["n_positive_draws"]),
                day=row.get("event_date"),
                policy=row.get("policy"),
                domain=str(row.get("domain", "all")),
                event_weight=None
                if row.get("event_weight") is None
                else float(row["event_weight"]),
            )
        except KeyError as exc:
            raise ValueError(f"row: expected a tsm.estimates column {exc.args[0]!r}") from None


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PooledEstimate:
    """Pooled prevalence of one cell over a window of independently sampled days.

    Attributes
    ----------
    prevalence : estimation.PrevalenceEstimate
        The pooled estimate ``sum_d X_d P_d / sum_d X_d``, its standard error, interval,
        ``n_draws = sum_d n_d``, ``n_positive_draws = sum_d k_d``, Korn-Graubard effective
        sample size and design effect. ``n_distinct_units`` is ``None``.
    total_impressions : float
        ``X_W = sum_d X_d``.
    n_days : int
        Number of days pooled.
    first_day, last_day : datetime.date or None
        Earliest and latest day pooled (``None`` when the records carry no day).
    policy : str or None
        Policy of the records (``None`` when they carry none).
    domain : str
        Domain of the records.
    """

    prevalence: PrevalenceEstimate
    total_impressions: float
    n_days: int
    first_day: date | None
    last_day: date | None
    policy: str | None
    domain: str

    # Forwarded so that a PooledEstimate is an EstimateLike for classify_cell.
    @property
    def estimate(self) -> float:
        """Pooled prevalence estimate."""
        return self.prevalence.estimate

    @property
    def std_error(self) -> float:
        """Standard error of the pooled estimate."""
        return self.prevalence.std_error

    @property
    def ci_lower(self) -> float:
        """Lower confidence bound of the pooled estimate."""
        return self.prevalence.ci_lower

    @property
    def ci_upper(self) -> float:
        """Upper confidence bound of the pooled estimate."""
        return self.prevalence.ci_upper

    @property
    def n_draws(self) -> int:
        """Total draws of the window."""
        return self.prevalence.n_draws

    @property
    def n_positive_draws(self) -> int:
        """Total positive draws of the window."""
        return self.prevalence.n_positive_draws

    @property
    def effective_sample_size(self) -> float:
        """Korn-Graubard effective sample size of the pooled estimate."""
        return self.prevalence.effective_sample_size


def _check_method(ci_method: str, confidence: float) -> None:
    if not (
        isinstance(confidence, int | float | np.floating)
        and not isinstance(confidence, bool)
        and 0.0 < confidence < 1.0
    ):
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    check_ci_method(ci_method)


def pooled_event_weight(records: Sequence[DayRecord]) -> float:
    """The gamma intervals' weight of one more violating unit on the window's prevalence scale,
    ``w_W = (1 / D) sum_d w_d X_d / X_W`` (see the module docstring).

    Raises
    ------
    ValueError
        When a record has no ``event_weight``.
    """
    missing = [rec.day for rec in records if rec.event_weight is None]
    if missing:
        raise ValueError(
            f"event_weight: required on every record to pool with a gamma interval, missing on "
            f"{len(missing)} of {len(records)} (days {missing})"
        )
    total = sum(rec.total_impressions for rec in records)
    return sum(float(rec.event_weight or 0.0) * rec.total_impressions for rec in records) / (
        len(records) * total
    )


def pool_days(
    records: Sequence[DayRecord],
    *,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
) -> PooledEstimate:
    """Pool independent daily estimates of one cell into one impression-weighted prevalence.

    With ``P_d``, ``SE_d``, ``X_d`` (known), ``n_d`` and ``k_d`` the estimate, standard error,
    impressions, draws and positive draws of day ``d``::

        P_pool = sum_d X_d P_d / X_W,               X_W = sum_d X_d
        v      = sum_d X_d^2 SE_d^2 / X_W^2          (days sampled independently)
        n      = sum_d n_d,   k = sum_d k_d
        CI     = interval_function(ci_method, w_W)(P_pool, v, n, confidence)
        w_W    = (1 / D) sum_d w_d X_d / X_W      (gamma intervals only)

    ``P_pool`` is the stratified-by-day estimator of ``sum_d Y_d`` divided by the known
    ``X_W``: unbiased for the window's prevalence when each ``P_d`` is unbiased for ``P_d``, and
    ``v`` is unbiased for its variance when each ``SE_d^2`` is (Cochran 1977, Chapter 5). With a
    single record the result equals that day's estimate (same interval, effective sample size
    and design effect). For a domain pass the domain's daily records (their ``X_d`` are the
    domain's impressions).

    Parameters
    ----------
    records : sequence of DayRecord
        At least one record, all of the same ``policy`` and ``domain``, at most one per ``day``.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in ``estimation.CI_METHODS`` or
        ``gamma_interval.EVENT_WEIGHT_CI_METHODS`` (then every record needs its
        ``event_weight``).

    Returns
    -------
    PooledEstimate

    Raises
    ------
    ValueError
        On no records, records of different policies or domains, two records of the same day,
        ``confidence`` outside ``(0, 1)``, an unknown ``ci_method``, or a gamma interval with
        a record that has no ``event_weight``.

    References
    ----------
    Cochran (1977), *Sampling Techniques*, 3rd ed., Chapter 5 and Section 9A; Korn & Graubard
    (1998), *Survey Methodology* 24, 193-201; Fay & Feuer (1997), *Statistics in Medicine* 16,
    791-801.
    """
    _check_method(ci_method, confidence)
    recs = list(records)
    if not recs:
        raise ValueError("records: expected at least one DayRecord, got none")
    for rec in recs:
        if not isinstance(rec, DayRecord):
            raise ValueError(f"records: expected DayRecord items, got {type(rec).__name__}")
    keys = {(rec.policy, rec.domain) for rec in recs}
    if len(keys) > 1:
        raise ValueError(
            f"records: expected one policy and domain, got {sorted(keys, key=repr)}; "
            "use pool_cells to pool several cells"
        )
    days = [rec.day for rec in recs if rec.day is not None]
    if len(days) != len(set(days)):
        dup = sorted({d for d in days if days.count(d) > 1})
        raise ValueError(f"records: expected at most one record per day, got repeats of {dup}")

    p = np.array([rec.estimate for rec in recs], dtype=np.float64)
    se = np.array([rec.std_error for rec in recs], dtype=np.float64)
    x = np.array([rec.total_impressions for rec in recs], dtype=np.float64)
    total = float(x.sum())
    estimate = float(np.dot(x, p)) / total
    variance = float(np.dot(x * x, se * se)) / (total * total)
    n = int(sum(rec.n_draws for rec in recs))
    k = int(sum(rec.n_positive_draws for rec in recs))

    weight = pooled_event_weight(recs) if ci_method in EVENT_WEIGHT_CI_METHODS else None
    lower, upper = interval_function(ci_method, weight)(estimate, variance, n, float(confidence))
    ess = effective_sample_size(estimate, variance, n)
    clipped = min(estimate, 1.0)
    deff = None if (variance <= 0.0 or clipped <= 0.0 or clipped >= 1.0 or ess <= 0.0) else n / ess
    prevalence = PrevalenceEstimate(
        estimate=estimate,
        std_error=math.sqrt(variance),
        ci_lower=float(lower),
        ci_upper=float(upper),
        ci_method=ci_method,
        confidence=float(confidence),
        n_draws=n,
        n_distinct_units=None,
        n_positive_draws=k,
        effective_sample_size=float(ess),
        design_effect=None if deff is None else float(deff),
        event_weight=weight,
    )
    policy, domain = next(iter(keys))
    return PooledEstimate(
        prevalence=prevalence,
        total_impressions=total,
        n_days=len(recs),
        first_day=min(days) if days else None,
        last_day=max(days) if days else None,
        policy=policy,
        domain=domain,
    )


def pool_cells(
    records: Iterable[DayRecord],
    *,
    end_day: date | None = None,
    window_days: int = 7,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
) -> dict[tuple[str | None, str], PooledEstimate]:
    """Pool every (policy, domain) cell over the window of days ending on ``end_day``.

    Records are grouped by ``(policy, domain)`` and each group is pooled with
    :func:`pool_days`. With ``end_day`` only records with ``end_day - window_days < day <=
    end_day`` are used (every record must then carry a ``day``); without it every record is
    used. A cell with fewer than ``window_days`` days in the window (missing days) is still
    pooled; its :attr:`PooledEstimate.n_days` says how many days it covers.

    Parameters
    ----------
    records : iterable of DayRecord
        Daily records of any number of cells.
    end_day : datetime.date, optional
        Last day of the window.
    window_days : int, default 7
        Window length in days, ``>= 1``.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        As in :func:`pool_days`.

    Returns
    -------
    dict
        ``(policy, domain) -> PooledEstimate``, for cells with at least one record in the
        window.

    Raises
    ------
    ValueError
        On ``window_days < 1``, a record without ``day`` when ``end_day`` is given, two records
        of one cell on the same day, or invalid ``confidence``/``ci_method``.
    """
    length = _integer("window_days", window_days, 1)
    _check_method(ci_method, confidence)
    if end_day is not None and not isinstance(end_day, date):
        raise ValueError(f"end_day: expected a datetime.date or None, got {end_day!r}")
    groups: dict[tuple[str | None, str], list[DayRecord]] = {}
    for rec in records:
        if not isinstance(rec, DayRecord):
            raise ValueError(f"records: expected DayRecord items, got {type(rec).__name__}")
        if end_day is not None:
            if rec.day is None:
                raise ValueError("records: expected every record to carry a day with end_day")
            if not (end_day - timedelta(days=length) < rec.day <= end_day):
                continue
        groups.setdefault((rec.policy, rec.domain), []).append(rec)
    return {
        key: pool_days(group, confidence=confidence, ci_method=ci_method)
        for key, group in groups.items()
    }


# --------------------------------------------------------------------------------------------
# Small-cell rules
# --------------------------------------------------------------------------------------------


class EstimateLike(Protocol):
    """What :func:`classify_cell` reads: a ``PrevalenceEstimate`` or a ``PooledEstimate``."""

    @property
    def estimate(self) -> float: ...
    @property
    def ci_lower(self) -> float: ...
    @property
    def ci_upper(self) -> float: ...
    @property
    def effective_sample_size(self) -> float: ...
    @property
    def n_positive_draws(self) -> int: ...


@dataclass(frozen=True)
class CellStatus:
    """What to publish for one day's cell, and why.

    Attributes
    ----------
    status : {"report", "flag", "pool", "suppress"}
        ``"report"``: the day's estimate and CI. ``"flag"``: the day had no violating draw;
        only its upper bound is published. ``"pool"``: the window's pooled estimate and CI
        replace the day's. ``"suppress"``: only the day's upper bound ``<= U`` is published.
    reason : str
        Human-readable reason, naming the rule and the numbers that triggered it.
    basis : {"day", "window"}
        Which estimate the published numbers come from.
    estimate : float or None
        Published point estimate; ``None`` when only an upper bound is published.
    ci_lower : float or None
        Published lower bound; ``None`` when only an upper bound is published.
    ci_upper : float
        Published upper bound (always present).
    display : str
        The text ops see, e.g. ``"0.0312% [0.0201%, 0.0455%]"``,
        ``"0.0290% [0.0230%, 0.0361%] (7-day pooled)"`` or ``"<= 0.0455%"``.
    """

    status: CellStatusName
    reason: str
    basis: Literal["day", "window"]
    estimate: float | None
    ci_lower: float | None
    ci_upper: float
    display: str


def relative_half_width(estimate: EstimateLike) -> float:
    """Relative half-width of the confidence interval, ``(U - L) / (2 P)``.

    ``math.inf`` when ``P == 0``. For the symmetric Wald interval this is ``z SE / P``, the
    quantity targeted by :mod:`tsmetrics.planning`; for the (asymmetric) Wilson and
    Clopper-Pearson intervals it is the average of the two relative half-widths.
    """
    p = float(estimate.estimate)
    if p <= 0.0:
        return math.inf
    return (float(estimate.ci_upper) - float(estimate.ci_lower)) / (2.0 * p)


def _pct(value: float) -> str:
    return f"{100.0 * value:.3g}%"


def _shortfalls(
    est: EstimateLike, min_effective_n: float, max_relative_half_width: float | None
) -> list[str]:
    out = []
    if est.effective_sample_size < min_effective_n:
        out.append(f"effective sample size {est.effective_sample_size:.3g} < {min_effective_n:g}")
    if max_relative_half_width is not None:
        rhw = relative_half_width(est)
        if rhw > max_relative_half_width:
            shown = "infinite (estimate 0)" if math.isinf(rhw) else f"{rhw:.3g}"
            out.append(f"relative CI half-width {shown} > {max_relative_half_width:g}")
    return out


def classify_cell(
    estimate: EstimateLike,
    min_effective_n: float = 10.0,
    max_relative_half_width: float | None = None,
    *,
    pooled: EstimateLike | None = None,
    window_label: str = "7-day pooled",
) -> CellStatus:
    """Publication rule for one day's cell (policy x domain): report, flag, pool or suppress.

    A cell estimate is *adequate* when its Korn-Graubard effective sample size
    ``n_eff = P(1-P)/v`` is at least ``min_effective_n`` and, when ``max_relative_half_width``
    is given, its relative CI half-width ``(U - L) / (2P)`` is at most that threshold (an
    estimate of 0 has an infinite relative half-width). Then:

    1. day adequate, ``P_day > 0`` -> ``"report"``: publish ``P_day [L, U]``.
    2. day adequate, ``P_day == 0`` (no violating draw; only possible without a relative
       half-width rule) -> ``"flag"``: publish ``<= U_day`` only, never a bare 0.
    3. day inadequate, ``pooled`` given and adequate -> ``"pool"``: publish the window's
       ``P_pool [L, U]`` labelled ``window_label`` (``<= U_pool`` when ``P_pool == 0``).
    4. otherwise -> ``"suppress"``: publish ``<= U_day`` only. The day's upper bound is a valid
       one-sided bound for the day at confidence ``1 - alpha/2`` even when the day's cell is
       tiny; the point estimate is withheld because it is too unstable to show.

    ``n_eff`` for a zero estimate is ``n_draws`` (the convention of
    ``estimation.effective_sample_size``), so a zero day passes the effective-sample-size rule
    when it has enough draws; its upper bound ``U`` is then roughly ``z^2 / n`` (Wilson) or
    ``1 - (alpha/2)^(1/n)`` (Clopper-Pearson).

    Parameters
    ----------
    estimate : EstimateLike
        The day's estimate of the cell (e.g. ``estimation.PrevalenceEstimate``).
    min_effective_n : float, default 10
        Minimum Korn-Graubard effective sample size, ``> 0``. (NCHS uses 30 for survey
        proportions; 10 suits daily monitoring where pooling is the next step.)
    max_relative_half_width : float, optional
        Maximum relative CI half-width, ``> 0``, e.g. ``0.5``; no precision rule when ``None``.
    pooled : EstimateLike, optional
        The pooled estimate of the same cell over the window ending on that day (e.g. a
        :class:`PooledEstimate` from :func:`pool_days`). Without it an inadequate day is
        suppressed.
    window_label : str, default "7-day pooled"
        Label appended to the display of pooled cells.

    Returns
    -------
    CellStatus

    Raises
    ------
    ValueError
        On ``min_effective_n <= 0`` or ``max_relative_half_width <= 0`` (or non-finite).
    """
    if not (
        isinstance(min_effective_n, int | float | np.integer | np.floating)
        and not isinstance(min_effective_n, bool)
        and math.isfinite(min_effective_n)
        and min_effective_n > 0
    ):
        raise ValueError(f"min_effective_n: expected a finite number > 0, got {min_effective_n!r}")
    if max_relative_half_width is not None and not (
        isinstance(max_relative_half_width, int | float | np.integer | np.floating)
        and not isinstance(max_relative_half_width, bool)
        and math.isfinite(max_relative_half_width)
        and max_relative_half_width > 0
    ):
        raise ValueError(
            "max_relative_half_width: expected a finite number > 0 or None, "
            f"got {max_relative_half_width!r}"
        )
    day_problems = _shortfalls(estimate, min_effective_n, max_relative_half_width)
    day_upper = float(estimate.ci_upper)
    bound_only = f"<= {_pct(day_upper)}"

    if not day_problems:
        p = float(estimate.estimate)
        if p > 0.0:
            return CellStatus(
                status="report",
                reason="day cell meets the effective sample size and precision rules",
                basis="day",
                estimate=p,
                ci_lower=float(estimate.ci_lower),
                ci_upper=day_upper,
                display=f"{_pct(p)} [{_pct(float(estimate.ci_lower))}, {_pct(day_upper)}]",
            )
        return CellStatus(
            status="flag",
            reason=(
                "no violating draw among the day's draws "
                f"(n_eff {estimate.effective_sample_size:.3g}); upper bound only"
            ),
            basis="day",
            estimate=None,
            ci_lower=None,
            ci_upper=day_upper,
            display=bound_only,
        )

    day_reason = "day cell: " + "; ".join(day_problems)
    if pooled is not None:
        pool_problems = _shortfalls(pooled, min_effective_n, max_relative_half_width)
        if not pool_problems:
            pp = float(pooled.estimate)
            pool_upper = float(pooled.ci_upper)
            if pp > 0.0:
                display = (
                    f"{_pct(pp)} [{_pct(float(pooled.ci_lower))}, {_pct(pool_upper)}] "
                    f"({window_label})"
                )
                return CellStatus(
                    status="pool",
                    reason=f"{day_reason}; pooled cell meets the rules",
                    basis="window",
                    estimate=pp,
                    ci_lower=float(pooled.ci_lower),
                    ci_upper=pool_upper,
                    display=display,
                )
            return CellStatus(
                status="pool",
                reason=f"{day_reason}; pooled cell meets the rules but has no violating draw",
                basis="window",
                estimate=None,
                ci_lower=None,
                ci_upper=pool_upper,
                display=f"<= {_pct(pool_upper)} ({window_label})",
            )
        reason = f"{day_reason}; pooled cell: " + "; ".join(pool_problems)
    else:
        reason = f"{day_reason}; no pooled estimate available"
    return CellStatus(
        status="suppress",
        reason=reason + "; upper bound of the day only",
        basis="day",
        estimate=None,
        ci_lower=None,
        ci_upper=day_upper,
        display=bound_only,
    )
