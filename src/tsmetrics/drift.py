"""Drift and change detection on daily prevalence estimates that come with standard errors.

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
* :func:`standardize`, :func:`cusum`, :func:`ewma` -- tabular CUSUM and EWMA control charts on
  standardized values ``z_t = (x_t - mu0) / sigma_t``, with :class:`CusumChart`,
  :class:`EwmaChart` and :func:`average_run_length` (run-length simulation).
* :func:`population_stability_index`, :func:`jensen_shannon_divergence` -- drift of the
  distribution of enforcement-model scores (impression-weighted).

Everything random takes an explicit :class:`numpy.random.Generator`.

References
----------
Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
powerful approach to multiple testing. *JRSS B* 57(1), 289-300.

Benjamini, Y. and Yekutieli, D. (2001). The control of the false discovery rate in multiple
testing under dependency. *Annals of Statistics* 29(4), 1165-1188.

Page, E. S. (1954). Continuous inspection schemes. *Biometrika* 41(1/2), 100-115.

Roberts, S. W. (1959). Control chart tests based on geometric moving averages.
*Technometrics* 1(3), 239-250.

Lucas, J. M. and Saccucci, M. S. (1990). Exponentially weighted moving average control schemes:
properties and enhancements. *Technometrics* 32(1), 1-12.

Montgomery, D. C. (2019). *Introduction to Statistical Quality Control*, 8th ed., Wiley,
chapter 9 (tabular CUSUM, Table 9.3; EWMA, Table 9.11).

Lin, J. (1991). Divergence measures based on the Shannon entropy. *IEEE Transactions on
Information Theory* 37(1), 145-151.

Yurdakul, B. (2018). *Statistical properties of population stability index*. PhD dissertation,
Western Michigan University.
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
from scipy import signal, special, stats

from tsmetrics.checks import CheckResult
from tsmetrics.validation import real_in_range

__all__ = [
    "Alternative",
    "BaselineChangeResult",
    "BenjaminiHochbergResult",
    "CusumChart",
    "CusumResult",
    "EwmaChart",
    "EwmaResult",
    "PSIResult",
    "RunLengthEstimate",
    "Sides",
    "average_run_length",
    "baseline_change_test",
    "benjamini_hochberg",
    "cusum",
    "ewma",
    "jensen_shannon_divergence",
    "population_stability_index",
    "prevalence_drift_checks",
    "standardize",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Alternative = Literal["two-sided", "greater", "less"]
Sides = Literal["both", "upper", "lower"]
BetweenDayVariance = Literal["none", "moment"] | float

_ALTERNATIVES = ("two-sided", "greater", "less")
_SIDES = ("both", "upper", "lower")
_EWMA_LIMITS = ("exact", "asymptotic")


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _integer(name: str, value: Any, *, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _choice(name: str, value: Any, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}")
    return value


def _float_array(name: str, values: ArrayLike, *, allow_nan: bool, min_ndim: int = 0) -> FloatArray:
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


def _check_nonnegative(name: str, arr: FloatArray) -> None:
    if np.any(arr < 0.0):  # NaN compares False
        raise ValueError(f"{name}: expected values >= 0, got minimum {float(np.nanmin(arr))!r}")


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
        _choice("alternative", alternative, _ALTERNATIVES)
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
    x0 = _float_array("estimate", estimate, allow_nan=True)
    s0 = _float_array("std_error", std_error, allow_nan=True)
    xb = _float_array("baseline_estimates", baseline_estimates, allow_nan=True, min_ndim=1)
    sb = _float_array("baseline_std_errors", baseline_std_errors, allow_nan=True, min_ndim=1)
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
    _check_nonnegative("std_error", s0)
    _check_nonnegative("baseline_std_errors", sb)
    min_days = _integer("min_baseline_days", min_baseline_days, minimum=1)
    if isinstance(between_day_variance, str):
        mode = _choice("between_day_variance", between_day_variance, ("none", "moment"))
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
    p = _float_array("p_values", p_values, allow_nan=True)
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
    _choice("alternative", alternative, _ALTERNATIVES)
    alt: Alternative = alternative
    level = real_in_range("q", q, low=0.0, high=1.0, closed="neither")
    x0 = _float_array("estimates", estimates, allow_nan=True)
    s0 = _float_array("std_errors", std_errors, allow_nan=True)
    if x0.shape != (len(cell_list),):
        raise ValueError(
            f"estimates: expected shape ({len(cell_list)},) (one per cell), got {x0.shape}"
        )
    if s0.shape != x0.shape:
        raise ValueError(
            f"std_errors: expected shape ({len(cell_list)},) (one per cell), got {s0.shape}"
        )
    xb = _float_array("baseline_estimates", baseline_estimates, allow_nan=True)
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


# --------------------------------------------------------------------------------------------
# Control charts
# --------------------------------------------------------------------------------------------


def standardize(
    estimates: ArrayLike,
    std_errors: ArrayLike,
    target: ArrayLike,
    *,
    between_day_variance: float = 0.0,
) -> FloatArray:
    """Standardize daily estimates: ``z_t = (x_t - mu0) / sqrt(s_t^2 + tau^2)``.

    Under the in-control model ``x_t ~ N(mu0, s_t^2 + tau^2)`` independently, ``z_t`` is
    i.i.d. N(0, 1), so the charts' textbook run lengths apply whatever the day-to-day precision.
    A shift ``delta`` of the prevalence is a shift of ``delta / sqrt(s_t^2 + tau^2)`` of
    ``z_t``: larger on days with more precise estimates. When ``mu0`` is itself estimated (e.g.
    a baseline mean) the ``z_t`` share its error and the in-control run length is more variable
    than the known-parameter value.

    Parameters
    ----------
    estimates, std_errors : array_like of float
        ``x_t`` and ``s_t`` (``>= 0``), same shape, time along the last axis.
    target : array_like of float
        ``mu0``, broadcast against ``estimates``.
    between_day_variance : float, default 0.0
        ``tau^2 >= 0``, real day-to-day variation of the prevalence to treat as in control.

    Returns
    -------
    ndarray of float

    Raises
    ------
    ValueError
        On non-finite inputs, mismatched shapes, negative standard errors, a zero total
        variance or a negative ``between_day_variance``.
    """
    x = _float_array("estimates", estimates, allow_nan=False)
    s = _float_array("std_errors", std_errors, allow_nan=False)
    mu0 = _float_array("target", target, allow_nan=False)
    if s.shape != x.shape:
        raise ValueError(f"std_errors: expected shape {x.shape} (as estimates), got {s.shape}")
    try:
        np.broadcast_shapes(mu0.shape, x.shape)
    except ValueError:
        raise ValueError(
            f"target: expected a shape broadcastable to {x.shape}, got {mu0.shape}"
        ) from None
    _check_nonnegative("std_errors", s)
    tau2 = real_in_range("between_day_variance", between_day_variance, low=0.0, high=math.inf)
    var = s * s + tau2
    if np.any(var <= 0.0):
        raise ValueError(
            "std_errors: expected positive values (or between_day_variance > 0), got "
            f"{int((var <= 0.0).sum())} zero standard error(s)"
        )
    out: FloatArray = (x - mu0) / np.sqrt(var)
    return out


@dataclass(frozen=True)
class CusumChart:
    """Tabular CUSUM on standardized values (Montgomery ch. 9.1), see :func:`cusum`.

    Attributes
    ----------
    k : float, default 0.5
        Reference value (allowance) in standard deviations, ``>= 0``; ``k = delta / 2`` is
        optimal for detecting a shift of ``delta``.
    h : float, default 5.0
        Decision interval in standard deviations, ``> 0``.
    sides : {"both", "upper", "lower"}, default "both"
        Which side signals: both (two-sided), ``C+`` only (rises) or ``C-`` only (falls).
    """

    k: float = 0.5
    h: float = 5.0
    sides: Sides = "both"

    def __post_init__(self) -> None:
        real_in_range("k", self.k, low=0.0, high=math.inf)
        real_in_range("h", self.h, low=0.0, high=math.inf, closed="right")
        _choice("sides", self.sides, _SIDES)


@dataclass(frozen=True)
class EwmaChart:
    """EWMA chart on standardized values (Roberts 1959; Montgomery ch. 9.2), see :func:`ewma`.

    Attributes
    ----------
    lam : float, default 0.1
        Smoothing constant ``lambda`` in ``(0, 1]``.
    L : float, default 2.814
        Width of the control limits in standard deviations of the EWMA statistic, ``> 0``
        (``lam=0.1, L=2.814`` gives an in-control ARL of about 500 with asymptotic limits,
        Lucas & Saccucci 1990).
    limits : {"exact", "asymptotic"}, default "exact"
        Exact time-varying limits ``L sqrt(lam / (2 - lam) (1 - (1 - lam)^(2t)))`` or their
        limit ``L sqrt(lam / (2 - lam))`` (the ARL tables of Lucas & Saccucci use the latter).
    sides : {"both", "upper", "lower"}, default "both"
        Which limit signals.
    """

    lam: float = 0.1
    L: float = 2.814
    limits: Literal["exact", "asymptotic"] = "exact"
    sides: Sides = "both"

    def __post_init__(self) -> None:
        real_in_range("lam", self.lam, low=0.0, high=1.0, closed="right")
        real_in_range("L", self.L, low=0.0, high=math.inf, closed="right")
        _choice("limits", self.limits, _EWMA_LIMITS)
        _choice("sides", self.sides, _SIDES)


@dataclass(frozen=True, eq=False)
class CusumResult:
    """Result of :func:`cusum`.

    Attributes
    ----------
    upper, lower : ndarray of float
        ``C+_t`` and ``C-_t`` (both ``>= 0``), shape of ``z``.
    first_signal : ndarray of int
        Index along the last axis of the first signal (``C+_t > h`` or ``C-_t > h``, as
        ``sides`` says); ``-1`` when there is none. Shape ``z.shape[:-1]`` (0-d for one
        series; the run length is ``first_signal + 1``).
    chart : CusumChart
        The parameters.
    """

    upper: FloatArray
    lower: FloatArray
    first_signal: IntArray
    chart: CusumChart

    @property
    def signals(self) -> BoolArray:
        """Boolean array (shape of ``z``): where the chart is out of control."""
        return _cusum_signal(self.upper, self.lower, self.chart)


@dataclass(frozen=True, eq=False)
class EwmaResult:
    """Result of :func:`ewma`.

    Attributes
    ----------
    statistic : ndarray of float
        ``w_t``, shape of ``z``.
    limit : ndarray of float
        Control limit ``c_t`` (the limits are ``+-c_t``), shape ``(T,)``.
    first_signal : ndarray of int
        Index along the last axis of the first point outside the limits (per ``sides``),
        ``-1`` when there is none; shape ``z.shape[:-1]``.
    chart : EwmaChart
        The parameters.
    """

    statistic: FloatArray
    limit: FloatArray
    first_signal: IntArray
    chart: EwmaChart

    @property
    def signals(self) -> BoolArray:
        """Boolean array (shape of ``z``): where the statistic is outside the limits."""
        return _ewma_signal(self.statistic, self.limit, self.chart)


def _cusum_block(
    z: FloatArray, k: float, c_plus0: FloatArray, c_minus0: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``C+`` and ``C-`` along the last axis from the starting values ``c_plus0, c_minus0``.

    The recursion ``C_t = max(0, C_{t-1} + y_t)`` (Lindley) unrolls to
    ``C_t = S_t - min(-C_0, min_{1<=s<=t} S_s)`` with ``S_t = y_1 + ... + y_t``; vectorised.
    """
    s_up = np.cumsum(z - k, axis=-1)
    upper = s_up - np.minimum(np.minimum.accumulate(s_up, axis=-1), -c_plus0[..., None])
    s_lo = np.cumsum(-z - k, axis=-1)
    lower = s_lo - np.minimum(np.minimum.accumulate(s_lo, axis=-1), -c_minus0[..., None])
    return upper, lower


def _cusum_signal(upper: FloatArray, lower: FloatArray, chart: CusumChart) -> BoolArray:
    if chart.sides == "upper":
        return upper > chart.h
    if chart.sides == "lower":
        return lower > chart.h
    out: BoolArray = (upper > chart.h) | (lower > chart.h)
    return out


def _ewma_limits(chart: EwmaChart, t0: int, n: int) -> FloatArray:
    """Control limits at times ``t0 + 1, ..., t0 + n``."""
    asym = chart.L * math.sqrt(chart.lam / (2.0 - chart.lam))
    if chart.limits == "asymptotic" or chart.lam == 1.0:
        return np.full(n, asym)
    t = np.arange(t0 + 1, t0 + n + 1, dtype=np.float64)
    # 1 - (1 - lam)^(2t), accurately for small lam.
    frac = -np.expm1(2.0 * t * math.log1p(-chart.lam))
    out: FloatArray = asym * np.sqrt(frac)
    return out


def _ewma_block(z: FloatArray, lam: float, w0: FloatArray) -> FloatArray:
    """``w_t = lam z_t + (1 - lam) w_{t-1}`` along the last axis from ``w0`` (an IIR filter)."""
    out, _ = signal.lfilter(
        [lam], [1.0, -(1.0 - lam)], z, axis=-1, zi=((1.0 - lam) * w0)[..., None]
    )
    return np.asarray(out, dtype=np.float64)


def _ewma_signal(w: FloatArray, limit: FloatArray, chart: EwmaChart) -> BoolArray:
    if chart.sides == "upper":
        return w > limit
    if chart.sides == "lower":
        return w < -limit
    out: BoolArray = np.abs(w) > limit
    return out


def _first_true(signals: BoolArray) -> IntArray:
    first = np.argmax(signals, axis=-1)
    out: IntArray = np.where(signals.any(axis=-1), first, -1).astype(np.int64)
    return out


def _series(name: str, z: ArrayLike) -> FloatArray:
    arr = _float_array(name, z, allow_nan=False, min_ndim=1)
    if arr.shape[-1] == 0:
        raise ValueError(f"{name}: expected at least 1 time point, got shape {arr.shape}")
    return arr


def cusum(z: ArrayLike, k: float = 0.5, h: float = 5.0, *, sides: Sides = "both") -> CusumResult:
    """Tabular (Page 1954) two-sided CUSUM on standardized values.

    With ``z_t = (x_t - mu0) / sigma_t`` (see :func:`standardize`), ``C+_0 = C-_0 = 0``::

        C+_t = max(0, z_t - k + C+_{t-1})
        C-_t = max(0, -z_t - k + C-_{t-1})

    and the chart signals at the first ``t`` with ``C+_t > h`` or ``C-_t > h``. ``C+``
    accumulates evidence of an upward shift of at least about ``2k`` standard deviations, ``C-``
    of a downward one. There is no restart after a signal (the paths go on as defined).

    Null distribution: with ``z_t`` i.i.d. N(0, 1) the run length (``first_signal + 1``) has a
    roughly geometric distribution; its mean (ARL) for ``k = 0.5`` is 168 for ``h = 4`` and 465
    for ``h = 5`` two-sided (Montgomery Table 9.3; about twice that one-sided), and 8.38 / 10.4
    for a 1-sigma shift. See :func:`average_run_length`.

    Parameters
    ----------
    z : array_like of float, shape ``(..., T)``
        Standardized values, time along the last axis (several series at once allowed).
        Finite; drop or impute missing days beforehand.
    k : float, default 0.5
        Reference value, ``>= 0``.
    h : float, default 5.0
        Decision interval, ``> 0``.
    sides : {"both", "upper", "lower"}, default "both"
        Which side counts as a signal (both paths are always returned).

    Returns
    -------
    CusumResult

    Raises
    ------
    ValueError
        On non-finite ``z``, an empty series or invalid parameters.

    References
    ----------
    Page (1954), *Biometrika* 41, 100-115; Montgomery (2019), *Introduction to Statistical
    Quality Control*, 8th ed., section 9.1 and Table 9.3.
    """
    chart = CusumChart(k=k, h=h, sides=sides)
    arr = _series("z", z)
    zeros = np.zeros(arr.shape[:-1])
    upper, lower = _cusum_block(arr, chart.k, zeros, zeros)
    return CusumResult(
        upper=upper,
        lower=lower,
        first_signal=_first_true(_cusum_signal(upper, lower, chart)),
        chart=chart,
    )


def ewma(
    z: ArrayLike,
    lam: float = 0.1,
    L: float = 2.814,
    *,
    limits: Literal["exact", "asymptotic"] = "exact",
    sides: Sides = "both",
) -> EwmaResult:
    """EWMA control chart (Roberts 1959) on standardized values with exact control limits.

    With ``z_t`` standardized (in-control mean 0, variance 1) and ``w_0 = 0``::

        w_t = lam z_t + (1 - lam) w_{t-1}
        c_t = L sqrt(lam / (2 - lam) (1 - (1 - lam)^(2t)))

    ``c_t / L`` is the exact standard deviation of ``w_t`` for i.i.d. unit-variance ``z``, so
    ``w_t / (c_t / L)`` is N(0, 1) at every ``t`` under the null; the chart signals at the first
    ``|w_t| > c_t``. ``limits="asymptotic"`` uses ``c_inf = L sqrt(lam / (2 - lam))``
    throughout, as in the ARL tables.

    Null distribution: for ``lam = 0.1``, ``L = 2.814`` (asymptotic limits) the in-control ARL is
    about 500 and about 10.3 for a 1-sigma shift (Lucas & Saccucci 1990; Montgomery Table 9.11).
    Exact limits are narrower at the start, so false alarms come somewhat earlier and the
    in-control ARL is a little smaller; see :func:`average_run_length`.

    Parameters
    ----------
    z : array_like of float, shape ``(..., T)``
        Standardized values, time along the last axis; finite.
    lam : float, default 0.1
        Smoothing constant in ``(0, 1]`` (``lam = 1`` is a Shewhart chart).
    L : float, default 2.814
        Limit width, ``> 0``.
    limits : {"exact", "asymptotic"}, default "exact"
    sides : {"both", "upper", "lower"}, default "both"

    Returns
    -------
    EwmaResult

    Raises
    ------
    ValueError
        On non-finite ``z``, an empty series or invalid parameters.

    References
    ----------
    Roberts (1959), *Technometrics* 1, 239-250; Lucas & Saccucci (1990), *Technometrics* 32,
    1-12; Montgomery (2019), section 9.2 and Table 9.11.
    """
    chart = EwmaChart(lam=lam, L=L, limits=limits, sides=sides)
    arr = _series("z", z)
    w = _ewma_block(arr, chart.lam, np.zeros(arr.shape[:-1]))
    limit = _ewma_limits(chart, 0, arr.shape[-1])
    return EwmaResult(
        statistic=w,
        limit=limit,
        first_signal=_first_true(_ewma_signal(w, limit, chart)),
        chart=chart,
    )


@dataclass(frozen=True)
class RunLengthEstimate:
    """Result of :func:`average_run_length`.

    Attributes
    ----------
    arl : float
        Mean run length over the simulations (a lower bound when ``n_censored > 0``: censored
        runs count as ``horizon``).
    std_error : float
        Monte Carlo standard error of ``arl``, ``sdrl / sqrt(n_sims)``.
    sdrl : float
        Standard deviation of the run length.
    median : float
        Median run length.
    n_sims : int
        Number of simulated charts.
    n_censored : int
        Runs without a signal within ``horizon`` steps.
    horizon : int
        Longest run simulated.
    shift : float
        Mean of the simulated ``z_t``.
    """

    arl: float
    std_error: float
    sdrl: float
    median: float
    n_sims: int
    n_censored: int
    horizon: int
    shift: float


_SIM_BLOCK_ELEMENTS = 1 << 22  # about 32 MB of normal draws per block


def average_run_length(
    chart: CusumChart | EwmaChart,
    shift: float = 0.0,
    n_sims: int = 10_000,
    horizon: int = 100_000,
    *,
    rng: np.random.Generator,
) -> RunLengthEstimate:
    """Average run length (ARL) of a control chart, by simulation.

    Simulates ``n_sims`` independent charts fed with ``z_t ~ N(shift, 1)`` i.i.d. from ``t = 1``
    (zero-state ARL: the shift is present from the start, the chart starts at 0) and records the
    run length ``RL``, the time of the first signal. ``shift = 0`` gives the in-control ``ARL0``
    (mean time to a false alarm), ``shift = delta`` the out-of-control ``ARL1`` for a shift of
    ``delta`` standard errors. ``arl`` is the mean of ``RL``, with Monte Carlo standard error
    ``sd(RL) / sqrt(n_sims)``; by the CLT ``arl`` is approximately normal around the true ARL.
    Runs longer than ``horizon`` are censored at ``horizon``.

    All charts are advanced together in blocks of time steps (vectorised across simulations and
    time); finished charts are dropped after each block.

    Parameters
    ----------
    chart : CusumChart or EwmaChart
        The chart.
    shift : float, default 0.0
        Mean of the standardized values.
    n_sims : int, default 10_000
        Number of simulated charts, ``>= 2``.
    horizon : int, default 100_000
        Longest run simulated, ``>= 1``.
    rng : numpy.random.Generator
        Source of randomness (results are reproducible for a seeded generator).

    Returns
    -------
    RunLengthEstimate

    Raises
    ------
    ValueError
        On an unknown chart type, a non-finite shift, ``n_sims < 2``, ``horizon < 1`` or
        ``rng`` not a :class:`numpy.random.Generator`.

    References
    ----------
    Brook, D. and Evans, D. A. (1972). An approach to the probability distribution of CUSUM run
    length. *Biometrika* 59(3), 539-549 (the Markov-chain alternative to simulation).
    """
    if not isinstance(chart, CusumChart | EwmaChart):
        raise ValueError(f"chart: expected a CusumChart or an EwmaChart, got {chart!r}")
    delta = real_in_range("shift", shift, low=-math.inf, high=math.inf)
    n = _integer("n_sims", n_sims, minimum=2)
    t_max = _integer("horizon", horizon, minimum=1)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")

    run_length = np.full(n, t_max, dtype=np.int64)
    censored = np.ones(n, dtype=bool)
    active = np.arange(n)
    state_a = np.zeros(n)  # C+ (CUSUM) or w (EWMA)
    state_b = np.zeros(n)  # C- (CUSUM)
    t0 = 0
    block = 16
    while active.size and t0 < t_max:
        b = min(block, t_max - t0, max(16, _SIM_BLOCK_ELEMENTS // active.size))
        x = rng.standard_normal((active.size, b))
        x += delta
        if isinstance(chart, CusumChart):
            upper, lower = _cusum_block(x, chart.k, state_a, state_b)
            sig = _cusum_signal(upper, lower, chart)
            last_a, last_b = upper[:, -1], lower[:, -1]
        else:
            w = _ewma_block(x, chart.lam, state_a)
            sig = _ewma_signal(w, _ewma_limits(chart, t0, b), chart)
            last_a, last_b = w[:, -1], state_b
        first = _first_true(sig)
        hit = first >= 0
        run_length[active[hit]] = t0 + first[hit] + 1
        censored[active[hit]] = False
        keep = ~hit
        active = active[keep]
        state_a = last_a[keep]
        state_b = last_b[keep]
        t0 += b
        block = min(2 * block, 4096)

    rl = run_length.astype(np.float64)
    sdrl = float(rl.std(ddof=1))
    return RunLengthEstimate(
        arl=float(rl.mean()),
        std_error=sdrl / math.sqrt(n),
        sdrl=sdrl,
        median=float(np.median(rl)),
        n_sims=n,
        n_censored=int(censored.sum()),
        horizon=t_max,
        shift=delta,
    )


# --------------------------------------------------------------------------------------------
# Score distribution drift
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PSIResult:
    """Result of :func:`population_stability_index`.

    Attributes
    ----------
    psi : float
        ``sum_b (c_b - a_b) ln(c_b / a_b)`` on the smoothed proportions.
    p_value : float
        Approximate p-value of "same distribution": ``P(chi2_{B-1} > psi / (1/n_a + 1/n_c))``
        with Kish effective sample sizes (see :func:`population_stability_index`).
    edges : ndarray of float
        Inner bin edges (``B - 1`` of them); bins are ``(-inf, e_1], (e_1, e_2], ...,
        (e_{B-1}, inf)``.
    baseline_proportions, current_proportions : ndarray of float
        ``a_b`` and ``c_b``, weighted, smoothed, each summing to 1.
    contributions : ndarray of float
        Per-bin terms ``(c_b - a_b) ln(c_b / a_b)`` (all ``>= 0``).
    n_eff_baseline, n_eff_current : float
        Kish effective sample sizes ``(sum w)^2 / sum w^2``.
    """

    psi: float
    p_value: float
    edges: FloatArray
    baseline_proportions: FloatArray
    current_proportions: FloatArray
    contributions: FloatArray
    n_eff_baseline: float
    n_eff_current: float


def _scores_and_weights(
    name: str, scores: ArrayLike, weights_name: str, weights: ArrayLike | None
) -> tuple[FloatArray, FloatArray]:
    x = _float_array(name, scores, allow_nan=False, min_ndim=1)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d array, got shape {x.shape}")
    if weights is None:
        return x, np.ones_like(x)
    w = _float_array(weights_name, weights, allow_nan=False, min_ndim=1)
    if w.shape != x.shape:
        raise ValueError(f"{weights_name}: expected shape {x.shape} (as {name}), got {w.shape}")
    _check_nonnegative(weights_name, w)
    if not w.sum() > 0.0:
        raise ValueError(f"{weights_name}: expected a positive total weight, got {w.sum()!r}")
    return x, w


def _weighted_quantile_edges(x: FloatArray, w: FloatArray, n_bins: int) -> FloatArray:
    """Inner edges at the weighted quantiles ``j / n_bins`` (inverted CDF), deduplicated."""
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order])
    probs = np.arange(1, n_bins) / n_bins
    idx = np.searchsorted(cw, probs * cw[-1], side="left")
    edges: FloatArray = np.unique(xs[np.minimum(idx, xs.size - 1)])
    # The top edge at the maximum would leave an empty last bin for the baseline.
    return edges[edges < xs[-1]]


def population_stability_index(
    baseline_scores: ArrayLike,
    current_scores: ArrayLike,
    bins: int | ArrayLike = 10,
    *,
    baseline_weights: ArrayLike | None = None,
    current_weights: ArrayLike | None = None,
    epsilon: float = 1e-4,
) -> PSIResult:
    """Population stability index of a score distribution, impression-weighted.

    Bins are fixed on the baseline: with ``bins=B`` the inner edges are the weighted
    ``1/B, ..., (B-1)/B`` quantiles of the baseline scores (so each bin holds about ``1/B`` of
    the baseline impressions; tied scores can merge bins), or the given edges. Bins are
    ``(-inf, e_1], (e_1, e_2], ..., (e_{B-1}, inf)`` so every current score falls in one.
    With ``a_b`` and ``c_b`` the weighted shares of the baseline and current impressions in bin
    ``b``, empty bins are floored at ``epsilon`` and the shares renormalised, then::

        PSI = sum_b (c_b - a_b) ln(c_b / a_b)

    i.e. the symmetrised Kullback-Leibler (Jeffreys) divergence ``KL(c||a) + KL(a||c)`` of the
    binned distributions. Rule of thumb (Siddiqi 2006): < 0.1 stable, 0.1-0.25 moderate shift,
    > 0.25 major shift -- but PSI also grows with sampling noise on small samples.

    Null distribution: for two independent samples from the same distribution, of sizes
    ``n_a`` and ``n_c``, ``PSI / (1/n_a + 1/n_c)`` is asymptotically chi-square with ``B - 1``
    degrees of freedom (Yurdakul 2018), also with baseline-quantile bins. With weights, ``n``
    is replaced by Kish's effective size ``(sum w)^2 / sum w^2`` (an approximation, fair for
    weights unrelated to the scores); the p-value ignores the ``epsilon`` floor, so it is only
    meaningful when the bins are well filled.

    Parameters
    ----------
    baseline_scores, current_scores : array_like of float, 1-d
        Scores of the baseline and current periods (finite).
    bins : int or array_like of float, default 10
        Number of baseline-quantile bins (``>= 2``) or the inner edges (strictly increasing).
    baseline_weights, current_weights : array_like of float, optional
        Impressions per score (``>= 0``, positive total); unweighted when omitted.
    epsilon : float, default 1e-4
        Floor for empty bins' shares, in ``(0, 0.01]``.

    Returns
    -------
    PSIResult

    Raises
    ------
    ValueError
        On empty or non-finite scores, bad weights, fewer than 2 bins (e.g. a constant
        baseline), non-increasing edges or an invalid ``epsilon``.

    References
    ----------
    Siddiqi, N. (2006). *Credit Risk Scorecards*. Wiley. Yurdakul (2018), PhD dissertation,
    Western Michigan University. Kish, L. (1965). *Survey Sampling*. Wiley.
    """
    xa, wa = _scores_and_weights(
        "baseline_scores", baseline_scores, "baseline_weights", baseline_weights
    )
    xc, wc = _scores_and_weights(
        "current_scores", current_scores, "current_weights", current_weights
    )
    eps = real_in_range("epsilon", epsilon, low=0.0, high=0.01, closed="right")
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        n_bins = _integer("bins", bins, minimum=2)
        edges = _weighted_quantile_edges(xa, wa, n_bins)
        if edges.size == 0:
            raise ValueError(
                "bins: expected at least 2 distinct baseline-quantile bins, got 1 "
                "(the baseline scores are constant)"
            )
    else:
        edges = _float_array("bins", bins, allow_nan=False, min_ndim=1)
        if edges.ndim != 1 or edges.size == 0 or np.any(np.diff(edges) <= 0.0):
            raise ValueError(
                f"bins: expected an integer >= 2 or strictly increasing 1-d edges, got {bins!r}"
            )
    n_total = edges.size + 1

    def shares(x: FloatArray, w: FloatArray) -> FloatArray:
        hist = np.bincount(np.searchsorted(edges, x, side="left"), weights=w, minlength=n_total)
        prop = np.maximum(hist / hist.sum(), eps)
        out: FloatArray = prop / prop.sum()
        return out

    a = shares(xa, wa)
    c = shares(xc, wc)
    contributions = (c - a) * np.log(c / a)
    psi = float(contributions.sum())
    n_a = float(wa.sum() ** 2 / (wa * wa).sum())
    n_c = float(wc.sum() ** 2 / (wc * wc).sum())
    p_value = float(stats.chi2.sf(psi / (1.0 / n_a + 1.0 / n_c), n_total - 1))
    return PSIResult(
        psi=psi,
        p_value=p_value,
        edges=edges,
        baseline_proportions=a,
        current_proportions=c,
        contributions=contributions,
        n_eff_baseline=n_a,
        n_eff_current=n_c,
    )


def jensen_shannon_divergence(p: ArrayLike, q: ArrayLike) -> float:
    """Jensen-Shannon divergence (base 2) of two discrete distributions, in ``[0, 1]``.

    With ``M = (P + Q) / 2``::

        JSD(P, Q) = KL(P || M) / 2 + KL(Q || M) / 2 = H(M) - (H(P) + H(Q)) / 2

    in bits (``0 log 0 = 0``). Symmetric, 0 iff ``P = Q``, 1 iff the supports are disjoint;
    its square root is a metric, :func:`scipy.spatial.distance.jensenshannon` with ``base=2``.

    Null distribution: for proportions estimated from two independent samples of sizes ``n_p``
    and ``n_q`` from the same distribution over ``B`` categories, ``8 ln(2) JSD / (1/n_p + 1/n_q)``
    is asymptotically chi-square with ``B - 1`` degrees of freedom (near ``P = Q``, ``JSD`` in nats
    is about an eighth of the Jeffreys divergence, i.e. of the PSI).

    Parameters
    ----------
    p, q : array_like of float, 1-d
        Non-negative weights over the same categories (e.g. the binned shares of
        :class:`PSIResult`); each is normalised to sum to 1.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On mismatched lengths, negative or non-finite entries or a zero total.

    References
    ----------
    Lin (1991), *IEEE Trans. Inf. Theory* 37, 145-151.
    """
    pa = _float_array("p", p, allow_nan=False, min_ndim=1)
    qa = _float_array("q", q, allow_nan=False, min_ndim=1)
    if pa.ndim != 1 or pa.size == 0:
        raise ValueError(f"p: expected a non-empty 1-d array, got shape {pa.shape}")
    if qa.shape != pa.shape:
        raise ValueError(f"q: expected shape {pa.shape} (as p), got {qa.shape}")
    for name, arr in (("p", pa), ("q", qa)):
        _check_nonnegative(name, arr)
        if not arr.sum() > 0.0:
            raise ValueError(f"{name}: expected a positive total, got {arr.sum()!r}")
    pn = pa / pa.sum()
    qn = qa / qa.sum()
    mid = 0.5 * (pn + qn)
    nats = 0.5 * (special.rel_entr(pn, mid).sum() + special.rel_entr(qn, mid).sum())
    return float(min(max(nats / math.log(2.0), 0.0), 1.0))
