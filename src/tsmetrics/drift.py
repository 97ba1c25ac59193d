"""Change detection on daily prevalence estimates that come with standard errors.

Every day and every (policy, surface) cell has a design-based prevalence estimate ``x_t`` and its
standard error ``s_t``. Generic stream detectors (ADWIN, Page-Hinkley) treat the series as raw
data and ignore that each point is itself a noisy estimate whose precision changes from day to
day; the checks here use the standard errors:

* :func:`baseline_change_test` -- z-test of today against the mean of a trailing baseline, with
  the variance of both periods' sampling error (optionally plus between-day variation).
* :func:`benjamini_hochberg` -- the Benjamini-Hochberg (1995) step-up procedure controlling the
  false discovery rate across cells.
* :func:`prevalence_drift_checks` -- the two above across many cells, as
  :class:`~tsmetrics.checks.CheckResult` rows (``check_name="baseline_change"``).

Control charts (CUSUM, EWMA, run lengths) are in :mod:`tsmetrics.control_charts`; the drift of
risk-score distributions (PSI, Jensen-Shannon) in :mod:`tsmetrics.score_drift`.

References
----------
Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
powerful approach to multiple testing. *JRSS B* 57(1), 289-300.

Benjamini, Y. and Yekutieli, D. (2001). The control of the false discovery rate in multiple
testing under dependency. *Annals of Statistics* 29(4), 1165-1188.

DerSimonian, R. and Laird, N. (1986). Meta-analysis in clinical trials. *Controlled Clinical
Trials* 7(3), 177-188.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike
from scipy import stats

from tsmetrics.checks import CheckResult
from tsmetrics.validation import (
    float_array,
    integer_at_least,
    one_of,
    real_in_range,
    require_nonnegative,
)

__all__ = [
    "Alternative",
    "BaselineChangeResult",
    "BenjaminiHochbergResult",
    "BetweenDayVariance",
    "baseline_change_test",
    "benjamini_hochberg",
    "prevalence_drift_checks",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Alternative = Literal["two-sided", "greater", "less"]
BetweenDayVariance = Literal["none", "moment"] | float

_ALTERNATIVES = ("two-sided", "greater", "less")


# --------------------------------------------------------------------------------------------
# Baseline change test
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BaselineChangeResult:
    """Result of :func:`baseline_change_test`; every field has the shape of ``estimate``.

    Scalar inputs give 0-d arrays (``float(result.statistic)``). Cells that could not be tested
    (today's estimate missing, too few valid baseline days, zero variance) hold ``nan`` in
    ``statistic`` and the p-values.

    Attributes
    ----------
    statistic : ndarray of float
        ``z = (x_0 - m) / sqrt(v)``.
    difference : ndarray of float
        ``x_0 - m``, today's estimate minus the baseline mean.
    std_error : ndarray of float
        ``sqrt(v)``, the standard error of ``difference``.
    p_value_two_sided, p_value_greater, p_value_less : ndarray of float
        ``2 (1 - Phi(|z|))``, ``1 - Phi(z)`` (a rise) and ``Phi(z)`` (a fall).
    baseline_mean : ndarray of float
        ``m``, the unweighted mean of the valid baseline estimates.
    baseline_std_error : ndarray of float
        Standard error of ``m``: ``sqrt(sum_i s_i^2 / k^2 + tau^2 / k)``.
    between_day_variance : ndarray of float
        ``tau^2`` used in ``v`` (0 with ``between_day_variance="none"``).
    tau2_moment : ndarray of float
        The method-of-moments estimate ``max(0, S^2 - mean_i s_i^2)`` whatever was used
        (``nan`` when ``k < 2``); a diagnostic.
    overdispersion : ndarray of float
        ``S^2 / mean_i s_i^2``: about 1 when the baseline varies only by sampling error, well
        above 1 when there is real day-to-day variation (``nan`` when ``k < 2`` or all
        ``s_i = 0``).
    n_baseline : ndarray of int
        ``k``, the number of valid baseline days per cell.
    """

    statistic: FloatArray
    difference: FloatArray
    std_error: FloatArray
    p_value_two_sided: FloatArray
    p_value_greater: FloatArray
    p_value_less: FloatArray
    baseline_mean: FloatArray
    baseline_std_error: FloatArray
    between_day_variance: FloatArray
    tau2_moment: FloatArray
    overdispersion: FloatArray
    n_baseline: IntArray

    def p_value(self, alternative: Alternative = "two-sided") -> FloatArray:
        """The p-value for ``alternative`` (``"two-sided"``, ``"greater"`` or ``"less"``)."""
        one_of("alternative", alternative, _ALTERNATIVES)
        return {
            "two-sided": self.p_value_two_sided,
            "greater": self.p_value_greater,
            "less": self.p_value_less,
        }[alternative]


def baseline_change_test(
    estimate: ArrayLike,
    std_error: ArrayLike,
    baseline_estimates: ArrayLike,
    baseline_std_errors: ArrayLike,
    *,
    between_day_variance: BetweenDayVariance = "none",
    min_baseline_days: int = 1,
) -> BaselineChangeResult:
    """z-test of today's estimate against the mean of a trailing baseline.

    With today's estimate ``x_0`` (standard error ``s_0``) and ``k`` baseline days ``x_i``
    (standard errors ``s_i``), all from independent daily samples::

        m   = (1/k) sum_i x_i                                   baseline mean (unweighted)
        v   = s_0^2 + sum_i s_i^2 / k^2 + tau^2 (1 + 1/k)        variance of x_0 - m
        z   = (x_0 - m) / sqrt(v)

    p-values: two-sided ``2 (1 - Phi(|z|))``, rise ``1 - Phi(z)``, fall ``Phi(z)``.

    Model and null distribution. ``x_t = mu_t + e_t`` with sampling error ``e_t ~ N(0, s_t^2)``
    (design-based CLT) and ``mu_t = mu + u_t`` with between-day variation ``u_t`` of variance
    ``tau^2``. Under H0 (today's prevalence is drawn like the baseline days'), ``z ~ N(0, 1)``
    when the standard errors and ``tau^2`` are known; with estimated standard errors it is
    asymptotically N(0, 1).

    Choice of ``tau^2`` (``between_day_variance``):

    * ``"none"`` (default): ``tau^2 = 0``. H0 is "today's prevalence equals the baseline days'
      common prevalence"; only sampling error is allowed for. This is the exact test above and
      is consistent with :func:`tsmetrics.checks.day_over_day_check`. With large daily samples
      it also flags real but ordinary day-to-day movements (weekday effects, news cycles):
      check ``overdispersion``.
    * ``"moment"``: ``tau^2`` estimated from the baseline by the equal-weights method of moments
      (as DerSimonian & Laird 1986 do for meta-analysis): with
      ``S^2 = sum_i (x_i - m)^2 / (k - 1)``, ``E[S^2] = tau^2 + mean_i s_i^2``, so
      ``tau^2 = max(0, S^2 - mean_i s_i^2)``. H0 becomes "today is an ordinary day". The plug-in
      ignores the estimation error of ``tau^2`` (z is then only approximately N(0, 1); with few
      baseline days, say ``k < 14``, it is somewhat anti-conservative when ``tau^2 > 0``, and
      conservative when ``tau^2 = 0`` because of the truncation at 0). Needs ``k >= 2``.
    * a number ``>= 0``: a known ``tau^2`` (e.g. estimated from a long history).

    The baseline mean is unweighted (each day counts once) rather than inverse-variance
    weighted, so a high-volume day does not dominate the baseline when ``tau^2 > 0``. A weekly
    pattern is best removed by the choice of baseline days (e.g. the same weekday of the
    previous 4 weeks) rather than absorbed into ``tau^2``.

    Parameters
    ----------
    estimate, std_error : array_like of float, shape ``S``
        Today's estimate(s) and standard error(s) (``>= 0``), one per cell; scalars allowed.
        ``nan`` marks a missing estimate (the cell is not tested).
    baseline_estimates, baseline_std_errors : array_like of float, shape ``S + (k,)``
        The baseline days along the last axis. A day with a ``nan`` estimate or standard error
        is missing and left out (``k`` may then differ between cells).
    between_day_variance : {"none", "moment"} or float, default "none"
        How ``tau^2`` is set, see above.
    min_baseline_days : int, default 1
        Cells with fewer valid baseline days are not tested (``nan`` results); ``"moment"``
        needs at least 2 in any case.

    Returns
    -------
    BaselineChangeResult

    Raises
    ------
    ValueError
        On mismatched shapes, infinite values, negative standard errors, an invalid
        ``between_day_variance`` or ``min_baseline_days < 1``.

    References
    ----------
    DerSimonian, R. and Laird, N. (1986). Meta-analysis in clinical trials. *Controlled Clinical
    Trials* 7(3), 177-188.
    """
    x0 = float_array("estimate", estimate, allow_nan=True)
    s0 = float_array("std_error", std_error, allow_nan=True)
    xb = float_array("baseline_estimates", baseline_estimates, allow_nan=True, min_ndim=1)
    sb = float_array("baseline_std_errors", baseline_std_errors, allow_nan=True, min_ndim=1)
    if s0.shape != x0.shape:
        raise ValueError(f"std_error: expected shape {x0.shape} (as estimate), got {s0.shape}")
    if xb.shape[:-1] != x0.shape:
        raise ValueError(
            f"baseline_estimates: expected shape {x0.shape} + (k,) (estimate's shape plus a "
            f"days axis), got {xb.shape}"
        )
    if sb.shape != xb.shape:
        raise ValueError(
            f"baseline_std_errors: expected shape {xb.shape} (as baseline_estimates), "
            f"got {sb.shape}"
        )
    require_nonnegative("std_error", s0)
    require_nonnegative("baseline_std_errors", sb)
    min_days = integer_at_least("min_baseline_days", min_baseline_days, minimum=1)
    if isinstance(between_day_variance, str):
        mode = one_of("between_day_variance", between_day_variance, ("none", "moment"))
        fixed_tau2 = 0.0
    else:
        mode = "fixed"
        fixed_tau2 = real_in_range(
            "between_day_variance", between_day_variance, low=0.0, high=math.inf, closed="left"
        )
    if mode == "moment":
        min_days = max(min_days, 2)

    valid = np.isfinite(xb) & np.isfinite(sb)
    k = valid.sum(axis=-1).astype(np.int64)
    kf = k.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, xb, 0.0).sum(axis=-1) / kf
        sum_s2 = np.where(valid, sb * sb, 0.0).sum(axis=-1)
        mean_s2 = sum_s2 / kf
        resid = np.where(valid, xb - mean[..., None], 0.0)
        sample_var = np.where(k >= 2, (resid * resid).sum(axis=-1) / (kf - 1.0), np.nan)
        tau2_moment = np.maximum(sample_var - mean_s2, 0.0)
        overdispersion = np.where(mean_s2 > 0.0, sample_var / mean_s2, np.nan)
        if mode == "moment":
            tau2 = tau2_moment
        else:
            tau2 = np.full(x0.shape, fixed_tau2)
        var_mean = sum_s2 / (kf * kf) + tau2 / kf
        var_diff = s0 * s0 + tau2 + var_mean
        diff = x0 - mean
        testable = (k >= min_days) & np.isfinite(x0) & np.isfinite(s0) & (var_diff > 0.0)
        se_diff = np.sqrt(var_diff)
        z = np.where(testable, diff / se_diff, np.nan)
    return BaselineChangeResult(
        statistic=z,
        difference=np.where(np.isfinite(x0) & (k >= 1), diff, np.nan),
        std_error=np.where(testable, se_diff, np.nan),
        p_value_two_sided=2.0 * stats.norm.sf(np.abs(z)),
        p_value_greater=stats.norm.sf(z),
        p_value_less=stats.norm.cdf(z),
        baseline_mean=mean,
        baseline_std_error=np.sqrt(var_mean),
        between_day_variance=np.asarray(tau2, dtype=np.float64),
        tau2_moment=tau2_moment,
        overdispersion=overdispersion,
        n_baseline=k,
    )


# --------------------------------------------------------------------------------------------
# Benjamini-Hochberg
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BenjaminiHochbergResult:
    """Result of :func:`benjamini_hochberg`.

    Attributes
    ----------
    rejected : ndarray of bool
        Shape of the input; ``True`` for the rejected hypotheses (``False`` for ``nan``).
    adjusted : ndarray of float
        BH-adjusted p-values ("q-values") ``min_{j >= i} min(1, m p_(j) / j)`` in the input's
        order, ``nan`` where the input is ``nan``; ``rejected`` is ``adjusted <= q`` (up to
        rounding at exact ties with the critical values).
    n_rejected : ndarray of int
        Rejections per family (0-d for a single family).
    n_tests : ndarray of int
        ``m``, the non-``nan`` p-values per family.
    p_cutoff : ndarray of float
        ``max(R, 1) q / m``: every rejected p-value is ``<= p_cutoff`` and, when ``R = 0``, every
        p-value is above it (``nan`` when ``m = 0``).
    q : float
        The FDR level.
    """

    rejected: BoolArray
    adjusted: FloatArray
    n_rejected: IntArray
    n_tests: IntArray
    p_cutoff: FloatArray
    q: float


def benjamini_hochberg(
    p_values: ArrayLike, q: float = 0.05, *, axis: int | None = None
) -> BenjaminiHochbergResult:
    """Benjamini-Hochberg (1995) step-up procedure controlling the false discovery rate.

    With the ``m`` p-values of a family sorted, ``p_(1) <= ... <= p_(m)``, let
    ``R = max{i : p_(i) <= i q / m}`` (0 if there is none); reject the hypotheses with the ``R``
    smallest p-values. Adjusted p-values ``p~_(i) = min_{j >= i} min(1, m p_(j) / j)`` (the
    smallest ``q`` at which ``H_(i)`` would be rejected), as in
    :func:`scipy.stats.false_discovery_control`.

    Guarantee: ``FDR = E[V / max(R, 1)] <= q m_0 / m`` (``V`` false rejections, ``m_0`` true
    nulls) when the null p-values are independent of each other and of the non-null ones, or
    positively regression dependent (PRDS, Benjamini & Yekutieli 2001), and each null p-value is
    uniform or stochastically larger (e.g. one-sided p-values of a composite null). When all
    hypotheses are null the FDR is the probability of any rejection, so per family the
    false-alarm probability is ``<= q``.

    Parameters
    ----------
    p_values : array_like of float
        P-values in ``[0, 1]``; ``nan`` means "not tested": ignored, not counted in ``m``.
    q : float, default 0.05
        FDR level in ``(0, 1)``.
    axis : int or None, default None
        ``None``: all p-values form one family. An integer: one family per slice along that
        axis (e.g. ``axis=-1`` on a ``(days, cells)`` array applies BH across cells per day).

    Returns
    -------
    BenjaminiHochbergResult

    Raises
    ------
    ValueError
        On p-values outside ``[0, 1]``, infinite values, ``q`` outside ``(0, 1)`` or an invalid
        ``axis``.

    References
    ----------
    Benjamini & Hochberg (1995), *JRSS B* 57, 289-300; Benjamini & Yekutieli (2001), *Ann.
    Statist.* 29, 1165-1188.
    """
    p = float_array("p_values", p_values, allow_nan=True)
    if np.any((p < 0.0) | (p > 1.0)):
        bad = p[(p < 0.0) | (p > 1.0)]
        raise ValueError(f"p_values: expected values in [0, 1], got {bad[:5].tolist()}")
    level = real_in_range("q", q, low=0.0, high=1.0, closed="neither")
    if axis is None:
        work = p.reshape(1, -1)
    else:
        if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
            raise ValueError(f"axis: expected an integer or None, got {axis!r}")
        if p.ndim == 0 or not -p.ndim <= int(axis) < p.ndim:
            raise ValueError(f"axis: expected an axis of an array of shape {p.shape}, got {axis}")
        moved = np.moveaxis(p, int(axis), -1)
        work = moved.reshape(-1, moved.shape[-1])

    n_fam, width = work.shape
    order = np.argsort(work, axis=1, kind="stable")  # nan sorted last
    ps = np.take_along_axis(work, order, axis=1)
    m = np.isfinite(work).sum(axis=1)
    ranks = np.arange(1, width + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = ps * m[:, None] / ranks  # nan beyond the m-th
        adj_sorted = np.fmin.accumulate(scaled[:, ::-1], axis=1)[:, ::-1]
        adj_sorted = np.where(np.isnan(ps), np.nan, np.minimum(adj_sorted, 1.0))
        below = ps <= ranks * level / m[:, None]  # nan -> False
    n_rej = np.where(below, ranks.astype(np.int64), 0).max(axis=1, initial=0)
    rej_sorted = ranks[None, :] <= n_rej[:, None]
    adjusted = np.empty_like(work)
    rejected = np.empty(work.shape, dtype=bool)
    np.put_along_axis(adjusted, order, adj_sorted, axis=1)
    np.put_along_axis(rejected, order, rej_sorted, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cutoff = np.where(m > 0, np.maximum(n_rej, 1) * level / m, np.nan)

    if axis is None:
        return BenjaminiHochbergResult(
            rejected=rejected.reshape(p.shape),
            adjusted=adjusted.reshape(p.shape),
            n_rejected=np.asarray(n_rej[0] if n_fam else 0, dtype=np.int64),
            n_tests=np.asarray(m[0] if n_fam else 0, dtype=np.int64),
            p_cutoff=np.asarray(cutoff[0] if n_fam else np.nan, dtype=np.float64),
            q=level,
        )
    lead = moved.shape[:-1]
    return BenjaminiHochbergResult(
        rejected=np.moveaxis(rejected.reshape(moved.shape), -1, int(axis)),
        adjusted=np.moveaxis(adjusted.reshape(moved.shape), -1, int(axis)),
        n_rejected=n_rej.astype(np.int64).reshape(lead),
        n_tests=m.astype(np.int64).reshape(lead),
        p_cutoff=cutoff.reshape(lead),
        q=level,
    )


# --------------------------------------------------------------------------------------------
# Drift checks across cells
# --------------------------------------------------------------------------------------------


def _check_cells(cells: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(cells, str | bytes):
        raise ValueError(f"cells: expected a sequence of (policy, surface) pairs, got {cells!r}")
    out: list[tuple[str, str]] = []
    for cell in cells:
        ok = (
            isinstance(cell, tuple | list)
            and len(cell) == 2
            and all(isinstance(part, str) and part for part in cell)
        )
        if not ok:
            raise ValueError(
                f"cells: expected (policy, surface) pairs of non-empty strings, got {cell!r}"
            )
        out.append((cell[0], cell[1]))
    if len(set(out)) != len(out):
        dupes = sorted({c for c in out if out.count(c) > 1})
        raise ValueError(
            f"cells: expected distinct (policy, surface) pairs, got duplicates {dupes}"
        )
    return out


def prevalence_drift_checks(
    cells: Sequence[tuple[str, str]],
    estimates: ArrayLike,
    std_errors: ArrayLike,
    baseline_estimates: ArrayLike,
    baseline_std_errors: ArrayLike,
    *,
    q: float = 0.05,
    alternative: Alternative = "greater",
    between_day_variance: BetweenDayVariance = "none",
    min_baseline_days: int = 1,
) -> list[CheckResult]:
    """Baseline change tests for many (policy, surface) cells with BH across the cells.

    Runs :func:`baseline_change_test` per cell, computes the p-value for ``alternative``
    (``"greater"``: ``1 - Phi(z)``, a rise; ``"less"``: ``Phi(z)``; ``"two-sided"``:
    ``2 (1 - Phi(|z|))``) and applies :func:`benjamini_hochberg` at level ``q`` to the tested
    cells (one family: the day's cells). A cell is a breach when BH rejects it. With the
    default ``"greater"`` the p-values are one-sided, so a rejection is always a rise (a large
    fall has a p-value near 1); ``"two-sided"`` alerts on changes in either direction
    (``details["direction"]`` says which).

    Under the global null (no cell changed) and independent cells, the probability that the
    day raises any alert is ``<= q``; in general the expected share of false alerts among the
    day's alerts is ``<= q``.

    Parameters
    ----------
    cells : sequence of (str, str)
        Distinct ``(policy, surface)`` pairs, one per row of the arrays.
    estimates, std_errors : array_like of float, shape ``(n_cells,)``
        Today's estimate and standard error per cell (``nan``: no estimate).
    baseline_estimates, baseline_std_errors : array_like of float, shape ``(n_cells, k)``
        The trailing baseline days per cell (``nan``: missing day).
    q : float, default 0.05
        FDR level in ``(0, 1)``.
    alternative : {"greater", "two-sided", "less"}, default "greater"
        Which changes alert.
    between_day_variance, min_baseline_days
        Passed to :func:`baseline_change_test`.

    Returns
    -------
    list of CheckResult
        One row per cell, in the order of ``cells``: ``check_name="baseline_change"``,
        ``policy`` the cell's policy, ``statistic = z``, ``p_value`` the raw p-value for
        ``alternative``. ``threshold`` is the critical value of z that BH implied for the day,
        ``Phi^{-1}(1 - c)`` with ``c = details["bh_p_cutoff"]`` (``-Phi^{-1}(1 - c)`` for
        ``"less"``, compared with ``|z|`` at ``c / 2`` for ``"two-sided"``). ``details`` holds the
        surface, the inputs, the baseline summary, the BH-adjusted p-value ``p_adjusted``,
        ``q``, ``n_tests`` and ``direction`` ("rise"/"fall"/"none"). Untestable cells are
        ``"skipped"`` with a ``details["reason"]`` and are not counted in BH's ``m``.

    Raises
    ------
    ValueError
        On invalid cells (not pairs of non-empty strings, duplicates), mismatched lengths and
        the errors of :func:`baseline_change_test` and :func:`benjamini_hochberg`.
    """
    cell_list = _check_cells(cells)
    one_of("alternative", alternative, _ALTERNATIVES)
    alt: Alternative = alternative
    level = real_in_range("q", q, low=0.0, high=1.0, closed="neither")
    x0 = float_array("estimates", estimates, allow_nan=True)
    s0 = float_array("std_errors", std_errors, allow_nan=True)
    if x0.shape != (len(cell_list),):
        raise ValueError(
            f"estimates: expected shape ({len(cell_list)},) (one per cell), got {x0.shape}"
        )
    if s0.shape != x0.shape:
        raise ValueError(
            f"std_errors: expected shape ({len(cell_list)},) (one per cell), got {s0.shape}"
        )
    xb = float_array("baseline_estimates", baseline_estimates, allow_nan=True)
    if xb.ndim != 2:
        raise ValueError(f"baseline_estimates: expected shape (n_cells, k), got {xb.shape}")
    res = baseline_change_test(
        x0,
        s0,
        xb,
        baseline_std_errors,
        between_day_variance=between_day_variance,
        min_baseline_days=min_baseline_days,
    )
    p = res.p_value(alt)
    bh = benjamini_hochberg(p, level)
    m = int(bh.n_tests)
    cutoff = float(bh.p_cutoff)
    if m == 0:
        threshold = math.nan
    elif alt == "greater":
        threshold = float(stats.norm.isf(cutoff))
    elif alt == "less":
        threshold = -float(stats.norm.isf(cutoff))
    else:
        threshold = float(stats.norm.isf(cutoff / 2.0))
    min_days = max(min_baseline_days, 2) if between_day_variance == "moment" else min_baseline_days

    rows: list[CheckResult] = []
    for i, (policy, surface) in enumerate(cell_list):
        z = float(res.statistic[i])
        mean = float(res.baseline_mean[i])
        diff = float(res.difference[i])
        details: dict[str, Any] = {
            "surface": surface,
            "estimate": float(x0[i]),
            "std_error": float(s0[i]),
            "baseline_mean": mean,
            "baseline_std_error": float(res.baseline_std_error[i]),
            "n_baseline": int(res.n_baseline[i]),
            "difference": diff,
            "relative_change": diff / mean if mean != 0.0 else math.nan,
            "between_day_variance": float(res.between_day_variance[i]),
            "overdispersion": float(res.overdispersion[i]),
            "alternative": alt,
            "q": level,
            "n_tests": m,
            "bh_p_cutoff": cutoff,
        }
        if math.isnan(z):
            if math.isnan(float(x0[i])) or math.isnan(float(s0[i])):
                reason = "no estimate for the day (NaN input)"
            elif int(res.n_baseline[i]) < min_days:
                reason = f"fewer than {min_days} valid baseline days"
            else:
                reason = "zero variance (all standard errors 0)"
            rows.append(
                CheckResult(
                    check_name="baseline_change",
                    policy=policy,
                    statistic=math.nan,
                    threshold=threshold,
                    p_value=None,
                    outcome="skipped",
                    details={**details, "reason": reason},
                )
            )
            continue
        rejected = bool(bh.rejected[i])
        direction = "none" if not rejected else ("rise" if z > 0 else "fall")
        rows.append(
            CheckResult(
                check_name="baseline_change",
                policy=policy,
                statistic=z,
                threshold=threshold,
                p_value=float(p[i]),
                outcome="breach" if rejected else "pass",
                details={
                    **details,
                    "p_adjusted": float(bh.adjusted[i]),
                    "direction": direction,
                },
            )
        )
    return rows
