"""Stratified simple random sampling by risk strata, Neyman allocation, stratified estimator.

What is estimated
-----------------
The impression-weighted prevalence ``P = Y / X`` of a day: ``Y = sum_i y_i`` with
``y_i = x_i v_i`` (``x_i`` the unit's impressions, ``v_i = 1`` if it violates the policy) and
``X = sum_i x_i`` known exactly. For a domain ``d`` (e.g. a surface) ``P_d = Y_d / X_d`` with
``Y_d = sum_{i in d} y_i`` and ``X_d`` the domain's known impressions.

Design
------
1. *Strata* on a (calibrated) risk score: cut points ``c_0 < c_1 < ... < c_{H-2}``, stratum
   ``h`` holding the scores in ``(c_{h-1}, c_h]`` (``c_{-1} = -inf``, ``c_{H-1} = +inf``):
   :func:`stratum_of`. :func:`weighted_quantile_boundaries` gives cut points that split the
   day's impressions into ``H`` nearly equal parts. Scores must be complete: units without a
   score get an imputed one from the caller *before* stratification (for instance the
   impression-weighted mean score, as ``sampling.size_measure`` does for risks). Any imputation
   keeps the estimator unbiased (strata only need to be fixed before selection); a poor one
   only costs precision.
2. *Allocation* of ``n`` units to the strata: :func:`neyman_allocation` (``n_h`` proportional to
   ``N_h S_h``, Cochran 1977, Sec. 5.5) with a minimum per stratum, take-all strata and exact
   integer rounding, or :func:`proportional_allocation`. ``S_h`` comes from earlier days' labelled
   samples (:func:`stratum_sd_from_sample`) or from a calibrated model
   (:func:`stratum_sd_from_model`).
3. *Selection*: in every stratum a simple random sample without replacement of ``n_h`` of the
   ``N_h`` units, independently across strata. In production :func:`stratified_hash_select`
   takes the ``n_h`` units of smallest ``u_i = tsm.hash_uniform(seed:day:unit_id)``
   (``sampling.hash_uniforms``): reproducible and the same as SQL's
   ``row_number() over (partition by stratum order by u, unit_id) <= n_h``. Simulations use
   :func:`stratified_random_select`.

Estimator
---------
:func:`stratified_total` / :func:`stratified_prevalence` (Cochran 1977, Ch. 5)::

    Y_hat   = sum_h N_h ybar_h,                          P_hat = Y_hat / X
    v(Y_hat) = sum_h N_h^2 (1 - f_h) s_h^2 / n_h,         f_h = n_h / N_h

with ``ybar_h`` and ``s_h^2`` (divisor ``n_h - 1``) the sample mean and variance of ``y`` in
stratum ``h``. ``Y_hat`` is unbiased for ``Y`` and ``v`` unbiased for ``V(Y_hat)``. Every unit
of stratum ``h`` carries the design weight ``N_h / n_h`` (:func:`design_weights`); the weights
of the sample add up to ``N``.

References
----------
Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed., Wiley. Chapter 5 (stratified random
sampling; Sec. 5.5 optimum allocation, and allocation requiring ``n_h > N_h``) and Ch. 5A
(further aspects: one unit per stratum, collapsed strata).

Neyman, J. (1934). On the two different aspects of the representative method. *Journal of the
Royal Statistical Society* 97(4), 558-625.

Lohr, S. L. (2010). *Sampling: Design and Analysis*, 2nd ed., Brooks/Cole. Chapter 3.

Sarndal, C.-E., Swensson, B. and Wretman, J. (1992). *Model Assisted Survey Sampling*.
Springer. Ch. 3 (stratified sampling) and Ch. 10 (domains).

Isaki, C. T. and Fuller, W. A. (1982). Survey design under the regression superpopulation model.
*Journal of the American Statistical Association* 77(377), 89-96.

Wolter, K. M. (2007). *Introduction to Variance Estimation*, 2nd ed., Springer. (Collapsed
strata.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from tsmetrics.estimation import PrevalenceEstimate, effective_sample_size, interval_function
from tsmetrics.sampling import hash_uniforms

__all__ = [
    "SINGLE_UNIT_STRATA",
    "StratifiedTotal",
    "design_weights",
    "event_weight",
    "neyman_allocation",
    "proportional_allocation",
    "stratified_hash_select",
    "stratified_prevalence",
    "stratified_random_select",
    "stratified_total",
    "stratified_variance",
    "stratum_of",
    "stratum_sd_from_model",
    "stratum_sd_from_sample",
    "weighted_quantile_boundaries",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Ways :func:`stratified_total` handles a stratum with one sampled unit out of ``N_h > 1``.
SINGLE_UNIT_STRATA = ("error", "collapse")

# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _float_1d(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of numbers, got {values!r:.80}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if np.any(bad):
        raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} NaN/inf")
    return arr


def _nonnegative(name: str, arr: FloatArray) -> None:
    if np.any(arr < 0.0):
        raise ValueError(f"{name}: expected values >= 0, got minimum {float(arr.min())!r}")


def _int_1d(name: str, values: npt.ArrayLike, *, minimum: int = 0) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name}: expected integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name}: expected integers, got non-integral values")
    out = arr.astype(np.int64)
    if np.any(out < minimum):
        raise ValueError(f"{name}: expected integers >= {minimum}, got minimum {int(out.min())}")
    return out


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _strata(name: str, stratum: npt.ArrayLike, n_strata: int) -> IntArray:
    s = _int_1d(name, stratum)
    if np.any(s >= n_strata):
        raise ValueError(
            f"{name}: expected stratum indices in [0, {n_strata}) (one per stratum of the "
            f"population sizes), got maximum {int(s.max())}"
        )
    return s


def _population_sizes(stratum_sizes: npt.ArrayLike) -> IntArray:
    sizes = _int_1d("stratum_sizes", stratum_sizes)
    if len(sizes) == 0 or sizes.sum() == 0:
        raise ValueError("stratum_sizes: expected at least one stratum with N_h >= 1, got none")
    return sizes


def _same_length(**arrays: npt.NDArray[np.generic]) -> int:
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs: expected arrays of equal length (one per unit), got {lengths}")
    return next(iter(lengths.values()))


# --------------------------------------------------------------------------------------------
# Strata
# --------------------------------------------------------------------------------------------


def _boundaries(boundaries: npt.ArrayLike) -> FloatArray:
    b = _float_1d("boundaries", boundaries)
    if len(b) > 1 and np.any(np.diff(b) <= 0.0):
        raise ValueError(f"boundaries: expected strictly increasing cut points, got {b.tolist()}")
    return b


def stratum_of(score: npt.ArrayLike, boundaries: npt.ArrayLike) -> IntArray:
    """Stratum index of every unit from its score and the cut points.

    With cut points ``c_0 < ... < c_{H-2}`` unit ``i`` is in stratum
    ``h = #{k : c_k < score_i}``, i.e. stratum ``h`` holds the scores in ``(c_{h-1}, c_h]``
    (``c_{-1} = -inf``, ``c_{H-1} = +inf``); ``H = len(boundaries) + 1`` strata, ordered by
    risk. In SQL: ``(select count(*) from unnest(:cuts) c where c < score)``.

    Scores must be complete: impute missing scores *before* calling (e.g. with the
    impression-weighted mean score of the scored units). Whatever the imputation, the stratified
    estimator stays unbiased as long as the strata are fixed before selection.

    Parameters
    ----------
    score : array_like, shape (N,)
        Finite scores (typically calibrated probabilities of violation).
    boundaries : array_like, shape (H - 1,)
        Strictly increasing finite cut points (may be empty: one stratum).

    Returns
    -------
    numpy.ndarray of int64
        Stratum index in ``[0, H)`` per unit.

    Raises
    ------
    ValueError
        On non-finite (e.g. missing) scores or cut points not strictly increasing.
    """
    s = _float_1d("score", score)
    b = _boundaries(boundaries)
    return np.searchsorted(b, s, side="left").astype(np.int64)


def weighted_quantile_boundaries(
    score: npt.ArrayLike, impressions: npt.ArrayLike, n_strata: int
) -> FloatArray:
    """Cut points at the impression-weighted ``k / H`` quantiles of the score.

    With units sorted by score and ``F(c)`` the share of the day's impressions on units with
    score ``<= c``, cut point ``k`` (``k = 1..H-1``) is the smallest score ``c`` with
    ``F(c) >= k / H``. With :func:`stratum_of` the first ``k`` strata then hold at least ``k/H``
    of the impressions and the units with score below ``c_k`` less than ``k/H``: equal shares up
    to the impressions of the units tied at a cut point. Duplicate cut points (a heavy unit or a
    mass of tied scores spans several quantiles) and cut points at the largest score are dropped,
    so no stratum of this population is empty and *fewer than* ``H - 1`` cut points may come back.

    Equal impression shares put strata boundaries where reach accumulates; combined with Neyman
    allocation the high-risk strata still get most of the sample.

    Parameters
    ----------
    score : array_like, shape (N,)
        Finite scores (impute missing ones first, see :func:`stratum_of`).
    impressions : array_like, shape (N,)
        Impressions ``x_i >= 0``, not all 0.
    n_strata : int
        Requested number of strata ``H >= 1``.

    Returns
    -------
    numpy.ndarray
        Strictly increasing cut points, at most ``H - 1``.
    """
    s = _float_1d("score", score)
    x = _float_1d("impressions", impressions)
    _nonnegative("impressions", x)
    _same_length(score=s, impressions=x)
    h = _count("n_strata", n_strata, 1)
    total = float(x.sum())
    if total <= 0.0:
        raise ValueError("impressions: expected a positive total, got 0")
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    cum = np.cumsum(x[order])
    targets = total * np.arange(1, h, dtype=np.float64) / h
    idx = np.minimum(np.searchsorted(cum, targets, side="left"), len(s) - 1)
    cuts = np.unique(sorted_s[idx])
    return cuts[cuts < sorted_s[-1]].astype(np.float64)


# --------------------------------------------------------------------------------------------
# Allocation
# --------------------------------------------------------------------------------------------


def _water_fill(a: FloatArray, lo: FloatArray, hi: FloatArray, n: float) -> FloatArray:
    """``x_h = clip(lam a_h, lo_h, hi_h)`` with ``sum x_h = n`` (all ``a_h > 0``).

    ``g(lam) = sum clip(lam a_h, lo_h, hi_h)`` is continuous, non-decreasing and linear between
    the breakpoints ``lo_h / a_h`` and ``hi_h / a_h``; the root is found on the breakpoint grid
    and interpolated exactly. This is the KKT solution of ``min sum a_h^2 / x_h`` subject to
    ``sum x_h = n`` and ``lo <= x <= hi``.
    """
    if len(a) == 0:
        return np.zeros(0, dtype=np.float64)
    a = a / float(a.max())
    grid = np.unique(np.concatenate([lo / a, hi / a]))
    g = np.clip(np.outer(grid, a), lo, hi).sum(axis=1)
    k = int(np.searchsorted(g, n, side="left"))
    if k == 0:
        lam = float(grid[0])
    elif k >= len(grid):
        lam = float(grid[-1])
    else:
        lam = float(grid[k - 1] + (n - g[k - 1]) * (grid[k] - grid[k - 1]) / (g[k] - g[k - 1]))
    return np.clip(lam * a, lo, hi)


def _largest_remainder(x: FloatArray, lo: IntArray, hi: IntArray, n: int) -> IntArray:
    """Integers ``floor(x_h)`` or ``floor(x_h) + 1`` within ``[lo, hi]`` adding up to ``n``."""
    base = np.clip(np.floor(x).astype(np.int64), lo, hi)
    remaining = n - int(base.sum())
    if remaining < 0:  # float round-off on a sum that is n exactly; take from the smallest parts
        frac = x - base
        order = np.lexsort((np.arange(len(x)), frac))
        order = order[base[order] > lo[order]]
        base[order[:-remaining]] -= 1
        return base
    frac = x - base
    eligible = np.flatnonzero(base < hi)
    order = eligible[np.lexsort((eligible, -frac[eligible]))]
    if remaining > len(order):  # impossible when sum(hi) >= n
        raise ValueError(f"n_total: cannot place {n} units within the stratum sizes")
    base[order[:remaining]] += 1
    return base


def neyman_allocation(
    N_h: npt.ArrayLike,  # noqa: N803 (textbook notation)
    S_h: npt.ArrayLike,  # noqa: N803
    n_total: int,
    min_per_stratum: int = 2,
) -> IntArray:
    """Neyman (optimum) allocation of ``n`` units to strata, in integers.

    Minimises ``V(Y_hat) = sum_h N_h^2 (1 - n_h/N_h) S_h^2 / n_h`` subject to
    ``sum_h n_h = n`` and ``min(m, N_h) <= n_h <= N_h`` (``m = min_per_stratum``). Without the
    bounds the optimum is ``n_h = n N_h S_h / sum_k N_k S_k`` (Neyman 1934; Cochran 1977,
    Sec. 5.5). With them it is ``n_h = clip(lam N_h S_h, min(m, N_h), N_h)`` with ``lam``
    solving ``sum n_h = n`` (the KKT conditions of this convex problem): strata whose Neyman
    share exceeds ``N_h`` are taken whole and the rest re-allocated among the others, repeatedly
    (Cochran 1977, Ch. 5), and strata below the minimum are raised to it. That fixed point is
    computed exactly, then rounded by largest remainder: every ``n_h`` is the floor or the
    ceiling of its real optimum, within the bounds, and ``sum n_h = n`` exactly (ties go to the
    lower stratum index).

    Strata with ``S_h = 0`` get only the minimum; should the other strata be exhausted (all
    taken whole), the remaining units go to them proportionally to ``N_h``. An estimated
    ``S_h = 0`` (no violation seen in earlier samples of a low-risk stratum) is usually an
    underestimate: floor ``S_h`` or take it from the model (:func:`stratum_sd_from_model`).

    Parameters
    ----------
    N_h : array_like of int, shape (H,)
        Population sizes ``N_h >= 0`` of the strata (units of the day in each stratum).
    S_h : array_like, shape (H,)
        Within-stratum standard deviations ``S_h >= 0`` of ``y_i = x_i v_i`` (estimates).
    n_total : int
        Total sample size ``n``.
    min_per_stratum : int, default 2
        Minimum sample size ``m >= 1`` of a stratum (all of it when ``N_h < m``); 2 keeps
        every stratum's variance estimable.

    Returns
    -------
    numpy.ndarray of int64
        ``n_h``, shape (H,).

    Raises
    ------
    ValueError
        On lengths that differ, negative or non-integral ``N_h``, negative or non-finite
        ``S_h``, ``min_per_stratum < 1``, or ``n_total`` outside
        ``[sum_h min(m, N_h), sum_h N_h]`` (fewer than ``m`` per stratum, or more than ``N``).

    References
    ----------
    Neyman (1934), *JRSS* 97, 558-625; Cochran (1977), *Sampling Techniques*, Secs. 5.5, 5.8.
    """
    sizes = _int_1d("N_h", N_h)
    sd = _float_1d("S_h", S_h)
    _nonnegative("S_h", sd)
    _same_length(N_h=sizes, S_h=sd)
    m = _count("min_per_stratum", min_per_stratum, 1)
    n = _count("n_total", n_total, 1)
    lo = np.minimum(sizes, m)
    hi = sizes
    if n < int(lo.sum()):
        raise ValueError(
            f"n_total: expected at least min_per_stratum x strata = {int(lo.sum())} "
            f"(min_per_stratum={m}, {len(sizes)} strata, capped at N_h), got {n}"
        )
    if n > int(hi.sum()):
        raise ValueError(f"n_total: expected at most N = {int(hi.sum())} units, got {n}")
    lo_f = lo.astype(np.float64)
    hi_f = hi.astype(np.float64)
    a = sizes.astype(np.float64) * sd
    free = (a > 0.0) & (hi > lo)
    x = lo_f.copy()
    capacity = float(hi_f[free].sum() + lo_f[~free].sum())
    if n <= capacity:
        x[free] = _water_fill(a[free], lo_f[free], hi_f[free], n - float(lo_f[~free].sum()))
    else:  # every stratum with S_h > 0 taken whole: the rest proportional to N_h
        x[free] = hi_f[free]
        rest = ~free & (hi > lo)
        x[rest] = _water_fill(
            sizes[rest].astype(np.float64), lo_f[rest], hi_f[rest], n - float(x[~rest].sum())
        )
    return _largest_remainder(x, lo, hi, n)


def proportional_allocation(
    N_h: npt.ArrayLike,  # noqa: N803
    n_total: int,
    min_per_stratum: int = 2,
) -> IntArray:
    """Proportional allocation ``n_h ~ n N_h / N`` with the bounds and rounding of Neyman.

    Same as :func:`neyman_allocation` with equal ``S_h``: ``n_h = clip(lam N_h, min(m, N_h),
    N_h)`` rounded by largest remainder, ``sum n_h = n``. It is optimal when the within-stratum
    standard deviations are equal (Cochran 1977, Ch. 5).
    """
    sizes = _int_1d("N_h", N_h)
    return neyman_allocation(sizes, np.ones(len(sizes)), n_total, min_per_stratum)


def stratified_variance(
    N_h: npt.ArrayLike,  # noqa: N803
    S_h: npt.ArrayLike,  # noqa: N803
    n_h: npt.ArrayLike,
) -> float:
    """Design variance of ``Y_hat`` of stratified SRS: ``sum_h N_h^2 (1 - n_h/N_h) S_h^2 / n_h``.

    ``S_h^2`` is the population variance of ``y`` in stratum ``h`` with divisor ``N_h - 1``
    (Cochran 1977, Ch. 5). With estimated ``S_h`` it is the anticipated variance of a
    planned allocation (for ``V(P_hat)`` divide by ``X^2``). Strata with ``N_h = 0``, or taken
    whole (``n_h = N_h``), contribute 0.

    Raises
    ------
    ValueError
        On lengths that differ, ``n_h > N_h`` or ``n_h = 0 < N_h`` (no unbiased estimator).
    """
    sizes = _int_1d("N_h", N_h)
    sd = _float_1d("S_h", S_h)
    _nonnegative("S_h", sd)
    n = _int_1d("n_h", n_h)
    _same_length(N_h=sizes, S_h=sd, n_h=n)
    if np.any(n > sizes):
        raise ValueError(f"n_h: expected n_h <= N_h, got n_h={n.tolist()}, N_h={sizes.tolist()}")
    if np.any((n == 0) & (sizes > 0)):
        raise ValueError(f"n_h: expected n_h >= 1 in every non-empty stratum, got {n.tolist()}")
    used = sizes > 0
    nf = n[used].astype(np.float64)
    big = sizes[used].astype(np.float64)
    return float(np.sum(big * big * (1.0 - nf / big) * sd[used] ** 2 / nf))


# --------------------------------------------------------------------------------------------
# Within-stratum standard deviations for the allocation
# --------------------------------------------------------------------------------------------


def stratum_sd_from_sample(
    values: npt.ArrayLike,
    stratum: npt.ArrayLike,
    weight: npt.ArrayLike,
    n_strata: int,
) -> FloatArray:
    """Within-stratum standard deviations ``S_h`` of ``y`` from earlier days' labelled samples.

    Pass the units of one or more earlier days' samples, each with its violating impressions
    ``y_i = x_i v_i``, the stratum it falls in under the *current* cut points (:func:`stratum_of`
    on its score) and its design weight ``w_i`` in its own day's design (``1 / pi_i``, or
    ``N_h / n_h`` for a stratified sample). With ``m_h`` sampled units in stratum ``h``::

        ybar_wh = sum_h w_i y_i / sum_h w_i
        S_h^2   = m_h / (m_h - 1) * sum_h w_i (y_i - ybar_wh)^2 / sum_h w_i

    a weighted (Hajek-type) estimate of the population variance of ``y`` in the stratum,
    consistent under the earlier designs; with equal weights it is the usual sample variance
    (divisor ``m_h - 1``), unbiased for ``S_h^2`` under SRS. Weights are only relative within a
    stratum: scaling them changes nothing.

    Parameters
    ----------
    values : array_like, shape (m,)
        ``y_i >= 0`` of the earlier sampled units.
    stratum : array_like of int, shape (m,)
        Current stratum of each unit, in ``[0, n_strata)``.
    weight : array_like, shape (m,)
        Design weights ``w_i > 0``.
    n_strata : int
        Number of strata ``H``.

    Returns
    -------
    numpy.ndarray, shape (H,)
        ``S_h``; NaN for strata with fewer than 2 units (fill those, e.g. from
        :func:`stratum_sd_from_model`, before :func:`neyman_allocation`, which rejects NaN).
    """
    y = _float_1d("values", values)
    _nonnegative("values", y)
    w = _float_1d("weight", weight)
    h_count = _count("n_strata", n_strata, 1)
    s = _strata("stratum", stratum, h_count)
    _same_length(values=y, stratum=s, weight=w)
    if np.any(w <= 0.0):
        raise ValueError(f"weight: expected values > 0, got minimum {float(w.min())!r}")
    m = np.bincount(s, minlength=h_count).astype(np.float64)
    sw = np.bincount(s, weights=w, minlength=h_count)
    swy = np.bincount(s, weights=w * y, minlength=h_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = swy / sw
        dev = y - mean[s]
        ss = np.bincount(s, weights=w * dev * dev, minlength=h_count)
        var = m / (m - 1.0) * ss / sw
    return np.where(m >= 2, np.sqrt(np.maximum(var, 0.0)), np.nan)


def stratum_sd_from_model(
    impressions: npt.ArrayLike,
    prob: npt.ArrayLike,
    stratum: npt.ArrayLike,
    n_strata: int,
) -> FloatArray:
    """Model-anticipated ``S_h`` from calibrated violation probabilities of the day's units.

    Under the model ``v_i ~ Bernoulli(q_i)`` independently (``q_i`` a calibrated probability),
    ``y_i = x_i v_i`` and the anticipated (model-expected) population variance in stratum ``h``
    (divisor ``N_h - 1``) is exactly::

        E S_h^2 = [ sum x_i^2 q_i - ((sum x_i q_i)^2 + sum x_i^2 q_i (1 - q_i)) / N_h ] / (N_h - 1)

    which is ``mean_h(x^2 q) - mean_h(x q)^2`` up to terms of order ``1 / N_h``. Neyman
    allocation with ``S_h = sqrt(E S_h^2)`` minimises the anticipated variance
    ``E sum N_h^2 (1 - f_h) S_h^2 / n_h`` (Isaki & Fuller 1982). Strata with ``N_h <= 1`` get
    0 (they are taken whole or empty).

    Parameters
    ----------
    impressions : array_like, shape (N,)
        Impressions ``x_i >= 0`` of every unit of the population (the day).
    prob : array_like, shape (N,)
        Calibrated ``q_i`` in ``[0, 1]`` (impute missing ones first).
    stratum : array_like of int, shape (N,)
        Stratum of each unit, in ``[0, n_strata)``.
    n_strata : int
        Number of strata ``H``.

    Returns
    -------
    numpy.ndarray, shape (H,)
        ``sqrt(E S_h^2)``.
    """
    x = _float_1d("impressions", impressions)
    _nonnegative("impressions", x)
    q = _float_1d("prob", prob)
    if np.any((q < 0.0) | (q > 1.0)):
        raise ValueError(
            f"prob: expected values in [0, 1], got range [{float(q.min())!r}, {float(q.max())!r}]"
        )
    h_count = _count("n_strata", n_strata, 1)
    s = _strata("stratum", stratum, h_count)
    _same_length(impressions=x, prob=q, stratum=s)
    big_n = np.bincount(s, minlength=h_count).astype(np.float64)
    s2 = np.bincount(s, weights=x * x * q, minlength=h_count)
    s1 = np.bincount(s, weights=x * q, minlength=h_count)
    sv = np.bincount(s, weights=x * x * q * (1.0 - q), minlength=h_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - (s1 * s1 + sv) / big_n) / (big_n - 1.0)
    return np.where(big_n >= 2, np.sqrt(np.maximum(var, 0.0)), 0.0)


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def _select_smallest(
    stratum: IntArray, n_h: IntArray, u: FloatArray, tie_break: npt.NDArray[np.str_] | None
) -> IntArray:
    """Indices of the ``n_h`` units of smallest ``u`` in each stratum (ties by ``tie_break``)."""
    counts = np.bincount(stratum, minlength=len(n_h))
    if np.any(n_h > counts):
        raise ValueError(
            f"n_h: expected at most the stratum's population, got n_h={n_h.tolist()} for "
            f"N_h={counts.tolist()}"
        )
    by_u = np.argsort(u)  # ties are resolved just below
    if tie_break is not None and np.any(np.diff(u[by_u]) == 0.0):  # a hash collision
        by_u = np.lexsort((tie_break, u))
    key = stratum[by_u].astype(np.int16) if len(n_h) <= 2**15 else stratum[by_u]  # radix sort
    order = by_u[np.argsort(key, kind="stable")]  # by stratum, then u
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_strata = stratum[order]
    rank = np.arange(len(order)) - starts[sorted_strata]
    return np.sort(order[rank < n_h[sorted_strata]]).astype(np.int64)


def stratified_hash_select(
    unit_ids: Sequence[str],
    stratum: npt.ArrayLike,
    n_h: npt.ArrayLike,
    day: date | str,
    seed: int | str,
) -> IntArray:
    """Deterministic stratified SRS: in each stratum the ``n_h`` units of smallest hash uniform.

    ``u_i = sampling.hash_uniforms(unit_ids, day, seed)`` (bit-identical to
    ``tsm.hash_uniform(seed || ':' || day || ':' || unit_id)``) are i.i.d. uniform for the
    design, so the ``n_h`` smallest within a stratum are a simple random sample without
    replacement of ``n_h`` of its ``N_h`` units, independently across strata: every unit of
    stratum ``h`` has inclusion probability ``n_h / N_h``. Ties of ``u`` (a 52-bit collision)
    are broken by ``unit_id`` in code-point order (``COLLATE "C"`` in SQL). The warehouse
    equivalent is ``row_number() over (partition by stratum order by u, unit_id collate "C")
    <= n_h``. Use a seed distinct from the other designs of the day (the same ``u`` would make
    the selections dependent).

    Parameters
    ----------
    unit_ids : sequence of str
        Unique unit ids of the population (the day's frame).
    stratum : array_like of int, shape (N,)
        Stratum of each unit, in ``[0, len(n_h))``.
    n_h : array_like of int, shape (H,)
        Sample size per stratum (e.g. :func:`neyman_allocation`), ``n_h <= N_h``.
    day : datetime.date or str
        The day (``YYYY-MM-DD``).
    seed : int or str
        Design seed.

    Returns
    -------
    numpy.ndarray of int64
        Sorted indices of the selected units.

    Raises
    ------
    ValueError
        On duplicate ids, lengths that differ, stratum indices out of range or ``n_h > N_h``.
    """
    sizes = _int_1d("n_h", n_h)
    s = _strata("stratum", stratum, len(sizes))
    if isinstance(unit_ids, str) or len(unit_ids) != len(s):
        raise ValueError(f"unit_ids: expected {len(s)} ids (one per stratum entry)")
    u = hash_uniforms(unit_ids, day, seed)  # validates the ids, day and seed
    ids = np.asarray(list(unit_ids), dtype=str)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("unit_ids: expected unique ids, got duplicates")
    return _select_smallest(s, sizes, u, ids)


def stratified_random_select(
    stratum: npt.ArrayLike, n_h: npt.ArrayLike, rng: np.random.Generator | int
) -> IntArray:
    """Stratified SRS without replacement with a numpy Generator (for simulations).

    Same design as :func:`stratified_hash_select` with ``u_i`` drawn from ``rng``.

    Returns
    -------
    numpy.ndarray of int64
        Sorted indices of the selected units.
    """
    sizes = _int_1d("n_h", n_h)
    s = _strata("stratum", stratum, len(sizes))
    if isinstance(rng, bool) or not isinstance(rng, np.random.Generator | int | np.integer):
        raise ValueError(f"rng: expected a numpy Generator or an integer seed, got {rng!r}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))
    return _select_smallest(s, sizes, gen.random(len(s)), None)


# --------------------------------------------------------------------------------------------
# Estimation
# --------------------------------------------------------------------------------------------


def _sample_sizes(stratum: IntArray, sizes: IntArray) -> IntArray:
    n = np.bincount(stratum, minlength=len(sizes)).astype(np.int64)
    over = np.flatnonzero(n > sizes)
    if len(over):
        h = int(over[0])
        raise ValueError(
            f"stratum: expected at most N_h sampled units per stratum, got n_h={int(n[h])} > "
            f"N_h={int(sizes[h])} in stratum {h}"
        )
    empty = np.flatnonzero((n == 0) & (sizes > 0))
    if len(empty):
        raise ValueError(
            f"stratum: expected at least one sampled unit in every stratum with N_h > 0, got "
            f"none in strata {empty.tolist()} (their total cannot be estimated)"
        )
    return n


def design_weights(stratum: npt.ArrayLike, stratum_sizes: npt.ArrayLike) -> FloatArray:
    """Design weight ``N_h / n_h`` of every sampled unit (``n_h`` counted from ``stratum``).

    ``sum_i w_i = sum_h n_h (N_h / n_h) = N``: the weights of a stratified SRS reproduce the
    population size (and the stratum sizes) exactly.

    Parameters
    ----------
    stratum : array_like of int, shape (n,)
        Stratum of each sampled unit.
    stratum_sizes : array_like of int, shape (H,)
        Population sizes ``N_h``.
    """
    sizes = _population_sizes(stratum_sizes)
    s = _strata("stratum", stratum, len(sizes))
    n = _sample_sizes(s, sizes)
    return sizes[s].astype(np.float64) / n[s].astype(np.float64)


@dataclass(frozen=True)
class StratifiedTotal:
    """Stratified estimate of a population total and its variance estimate.

    Attributes
    ----------
    total : float
        ``Y_hat = sum_h N_h ybar_h``.
    variance : float
        ``v(Y_hat) = sum_h N_h^2 (1 - f_h) s_h^2 / n_h`` (collapsed groups: see
        :func:`stratified_total`).
    stratum_totals : numpy.ndarray, shape (H,)
        ``N_h ybar_h`` (0 for empty strata).
    stratum_variances : numpy.ndarray, shape (H,)
        ``N_h^2 (1 - f_h) s_h^2 / n_h``; 0 for strata taken whole or empty; NaN for strata
        whose variance is only estimated jointly, in a collapsed group.
    stratum_sizes : numpy.ndarray of int64, shape (H,)
        ``N_h``.
    sample_sizes : numpy.ndarray of int64, shape (H,)
        ``n_h``.
    variance_groups : numpy.ndarray of int64, shape (H,)
        Variance group of each stratum: its own index, the index of the first stratum of its
        collapsed group, or -1 for strata without variance (empty or taken whole).
    """

    total: float
    variance: float
    stratum_totals: FloatArray
    stratum_variances: FloatArray
    stratum_sizes: IntArray
    sample_sizes: IntArray
    variance_groups: IntArray

    @property
    def std_error(self) -> float:
        """``sqrt(v(Y_hat))``."""
        return math.sqrt(self.variance)


def _variance_groups(n: IntArray, sizes: IntArray, single_unit_strata: str) -> IntArray:
    """Group label per stratum for the variance (-1: no variance), collapsing lonely strata."""
    groups = np.full(len(sizes), -1, dtype=np.int64)
    varying = np.flatnonzero((n >= 1) & (n < sizes))
    lonely = n[varying] == 1
    if not lonely.any():
        groups[varying] = varying
        return groups
    if single_unit_strata == "error":
        raise ValueError(
            f"stratum: strata {varying[lonely].tolist()} have a single sampled unit out of "
            "N_h > 1, so their variance cannot be estimated; add units, or pass "
            "single_unit_strata='collapse' to pool each with its neighbouring stratum"
        )
    if len(varying) < 2:
        raise ValueError(
            f"stratum: stratum {varying.tolist()} has a single sampled unit and no other "
            "sampled stratum to collapse it with"
        )
    label = np.zeros(len(varying), dtype=np.int64)
    for j in range(1, len(varying)):  # a lonely stratum joins the group of its predecessor
        label[j] = label[j - 1] if lonely[j] else label[j - 1] + 1
    if lonely[0] and np.count_nonzero(label == 0) == 1:  # first one alone: join the next group
        label[label == label[1]] = 0
        label[label > 0] -= 1
    first = {int(g): int(varying[np.argmax(label == g)]) for g in np.unique(label)}
    groups[varying] = [first[int(g)] for g in label]
    return groups


def stratified_total(
    values: npt.ArrayLike,
    stratum: npt.ArrayLike,
    stratum_sizes: npt.ArrayLike,
    *,
    single_unit_strata: str = "error",
) -> StratifiedTotal:
    """Stratified SRS estimate of a total ``Y = sum_i y_i`` and its unbiased variance estimate.

    One entry per sampled unit (``n_h`` = number of entries of stratum ``h``)::

        Y_hat    = sum_h N_h ybar_h
        v(Y_hat) = sum_h N_h^2 (1 - n_h / N_h) s_h^2 / n_h

    with ``ybar_h`` the sample mean and ``s_h^2`` the sample variance (divisor ``n_h - 1``) of
    stratum ``h`` (Cochran 1977, Ch. 5: ``Y_hat`` unbiased, ``v`` unbiased for
    ``V(Y_hat)``). Strata taken whole (``n_h = N_h``) contribute no variance; empty strata
    (``N_h = 0``) nothing.

    A stratum with ``n_h = 1 < N_h`` (e.g. labels missing for all but one selected unit) has no
    variance estimate. ``single_unit_strata="error"`` (default) raises; ``"collapse"`` pools it
    with its neighbour in risk order (the preceding sampled stratum, or the next one for the
    first) and estimates the group's variance as if it were one stratum (Cochran 1977,
    Ch. 5A; Wolter 2007): with ``z_i = (N_h / n_h) y_i``, ``n_g`` units and ``N_g``
    population units in group ``g``::

        v_g = (1 - n_g / N_g) n_g / (n_g - 1) sum_{i in g} (z_i - zbar_g)^2

    which is the formula above for a single stratum. Across strata of different means it adds
    ``n_g / (n_g - 1) sum_i (E z_i - mean E z)^2 >= 0`` in expectation: conservative
    (ignoring the finite-population corrections). The point estimate is unchanged.

    Parameters
    ----------
    values : array_like, shape (n,)
        ``y_i`` of the sampled units (any finite values).
    stratum : array_like of int, shape (n,)
        Stratum of each sampled unit, in ``[0, H)``.
    stratum_sizes : array_like of int, shape (H,)
        Population sizes ``N_h`` of the strata.
    single_unit_strata : {"error", "collapse"}, default "error"
        Handling of strata with one sampled unit out of ``N_h > 1``.

    Returns
    -------
    StratifiedTotal

    Raises
    ------
    ValueError
        On lengths that differ, non-finite values, stratum indices out of range, ``n_h > N_h``,
        a stratum with ``N_h > 0`` and no sampled unit, or a single-unit stratum with
        ``single_unit_strata="error"`` (or nothing to collapse it with).
    """
    y = _float_1d("values", values)
    sizes = _population_sizes(stratum_sizes)
    s = _strata("stratum", stratum, len(sizes))
    _same_length(values=y, stratum=s)
    if single_unit_strata not in SINGLE_UNIT_STRATA:
        raise ValueError(
            f"single_unit_strata: expected one of {list(SINGLE_UNIT_STRATA)}, "
            f"got {single_unit_strata!r}"
        )
    n = _sample_sizes(s, sizes)
    h_count = len(sizes)
    nf = n.astype(np.float64)
    big = sizes.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.bincount(s, weights=y, minlength=h_count) / nf, 0.0)
        dev = y - mean[s]
        ss = np.bincount(s, weights=dev * dev, minlength=h_count)
        s2 = np.where(n >= 2, ss / (nf - 1.0), 0.0)
        stratum_var = np.where(n >= 1, big * big * (1.0 - nf / big) * s2 / nf, 0.0)
    stratum_totals = big * mean
    groups = _variance_groups(n, sizes, single_unit_strata)
    stratum_var = np.where(groups >= 0, stratum_var, 0.0)
    variance = 0.0
    for g in np.unique(groups[groups >= 0]):
        members = np.flatnonzero(groups == g)
        if len(members) == 1:
            variance += float(stratum_var[members[0]])
            continue
        stratum_var[members] = np.nan
        in_group = np.isin(s, members)
        z = big[s[in_group]] / nf[s[in_group]] * y[in_group]
        n_g = float(n[members].sum())
        f_g = n_g / float(sizes[members].sum())
        variance += (1.0 - f_g) * n_g / (n_g - 1.0) * float(np.sum((z - z.mean()) ** 2))
    total = float(stratum_totals.sum())
    if not (math.isfinite(total) and math.isfinite(variance)):
        raise ValueError(
            f"values: expected values small enough for a finite total and variance, got total "
            f"{total!r} and variance {variance!r}"
        )
    return StratifiedTotal(
        total=total,
        variance=max(variance, 0.0),
        stratum_totals=stratum_totals,
        stratum_variances=stratum_var,
        stratum_sizes=sizes,
        sample_sizes=n,
        variance_groups=groups,
    )


def stratified_prevalence(
    violating_impressions: npt.ArrayLike,
    stratum: npt.ArrayLike,
    stratum_sizes: npt.ArrayLike,
    total_impressions: float,
    *,
    domain: npt.ArrayLike | None = None,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
    single_unit_strata: str = "error",
    event_weight: float | None = None,
) -> PrevalenceEstimate:
    """Stratified estimate of prevalence ``P = Y / X`` (or of a domain's ``P_d = Y_d / X_d``).

    One entry per sampled (and labelled) unit, ``y_i = x_i`` if it violates, else 0::

        P_hat    = sum_h N_h ybar_h / X
        v(P_hat) = sum_h N_h^2 (1 - n_h / N_h) s_h^2 / n_h / X^2

    (:func:`stratified_total`; unbiased, with an unbiased variance estimator). For a domain
    ``d`` (a subpopulation not used as stratifier, e.g. a surface) ``y_i`` is set to 0 for the
    sampled units outside ``d`` in every stratum, ``N_h`` and ``n_h`` stay those of the design,
    and the denominator is the domain's known impressions ``X_d``: ``P_hat_d = Y_hat_d / X_d``
    is unbiased and the same variance formula applies to the zero-filled ``y`` (Cochran 1977,
    Ch. 2 and 5A; Sarndal et al. 1992, Ch. 10). The interval is
    ``estimation.interval_function(ci_method, event_weight)(P_hat, v(P_hat), n, confidence)``
    with ``n`` the total sample size.

    Parameters
    ----------
    violating_impressions : array_like, shape (n,)
        Per sampled unit: its impressions if it violates the policy, else 0.
    stratum : array_like of int, shape (n,)
        Stratum of each sampled unit, in ``[0, H)``.
    stratum_sizes : array_like of int, shape (H,)
        Population sizes ``N_h`` of the design's strata.
    total_impressions : float
        ``X > 0``, the day's known impressions; with ``domain``, the domain's ``X_d``.
    domain : array_like of bool, shape (n,), optional
        Membership of each sampled unit in the domain.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in ``estimation.CI_METHODS`` or
        ``gamma_interval.EVENT_WEIGHT_CI_METHODS``.
    single_unit_strata : {"error", "collapse"}, default "error"
        See :func:`stratified_total`.
    event_weight : float, optional
        Required with the gamma intervals: the weight of one more violating unit on the
        prevalence scale, e.g. :func:`event_weight` (the mean ``(N_h / n_h) x_i / X`` of the
        sampled units of the strata not taken whole).

    Returns
    -------
    estimation.PrevalenceEstimate
        ``n_draws`` and ``n_distinct_units`` are the sample size ``n``; ``n_positive_draws``
        the sampled units (of the domain) with ``y_i > 0``.

    Raises
    ------
    ValueError
        As :func:`stratified_total`, and on negative ``y_i``, ``X <= 0``, a ``domain`` that is
        not one boolean per unit, ``confidence`` outside ``(0, 1)`` or an unknown ``ci_method``.
    """
    y = _float_1d("violating_impressions", violating_impressions)
    _nonnegative("violating_impressions", y)
    if domain is not None:
        member = np.asarray(domain)
        if member.dtype != np.bool_ or member.shape != y.shape:
            raise ValueError(
                f"domain: expected {len(y)} booleans (one per sampled unit), got dtype "
                f"{member.dtype} and shape {member.shape}"
            )
        y = np.where(member, y, 0.0)
    total = float(total_impressions)
    if not math.isfinite(total) or total <= 0.0:
        raise ValueError(
            f"total_impressions: expected a finite number > 0, got {total_impressions!r}"
        )
    if not (isinstance(confidence, int | float | np.floating) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    interval = interval_function(ci_method, event_weight)
    result = stratified_total(y, stratum, stratum_sizes, single_unit_strata=single_unit_strata)
    n = len(y)
    estimate = result.total / total
    variance = max(result.variance / total**2, 0.0)
    lower, upper = interval(estimate, variance, n, float(confidence))
    ess = effective_sample_size(estimate, variance, n)
    p = min(estimate, 1.0)
    deff = None if (variance <= 0.0 or p <= 0.0 or p >= 1.0 or ess <= 0.0) else n / ess
    return PrevalenceEstimate(
        estimate=float(estimate),
        std_error=float(math.sqrt(variance)),
        ci_lower=float(lower),
        ci_upper=float(upper),
        ci_method=ci_method,
        confidence=float(confidence),
        n_draws=n,
        n_distinct_units=n,
        n_positive_draws=int(np.count_nonzero(y > 0.0)),
        effective_sample_size=float(ess),
        design_effect=None if deff is None else float(deff),
        event_weight=None if event_weight is None else float(event_weight),
    )


def event_weight(
    impressions: npt.ArrayLike,
    stratum: npt.ArrayLike,
    stratum_sizes: npt.ArrayLike,
    total_impressions: float,
) -> float:
    """Weight of one more violating unit for the gamma intervals of a stratified SRS.

    The mean of ``(N_h / n_h) x_i / X`` over the sampled units of the strata not taken whole
    (``n_h < N_h``; over all sampled units when every stratum is taken whole): the analogue for a
    stratified sample of :func:`tsmetrics.gamma_interval.mean_uncertain_weight` (``1 / pi_i =
    N_h / n_h``). For a domain pass the domain's ``X_d``; ``1 / X`` when no sampled unit has
    impressions.
    """
    x = _float_1d("impressions", impressions)
    _nonnegative("impressions", x)
    sizes = _population_sizes(stratum_sizes)
    s = _strata("stratum", stratum, len(sizes))
    _same_length(impressions=x, stratum=s)
    n = _sample_sizes(s, sizes)
    total = float(total_impressions)
    if not math.isfinite(total) or total <= 0.0:
        raise ValueError(
            f"total_impressions: expected a finite number > 0, got {total_impressions!r}"
        )
    weights = sizes[s].astype(np.float64) / n[s].astype(np.float64) * x / total
    uncertain = n[s] < sizes[s]
    keep = uncertain if uncertain.any() else np.ones_like(uncertain)
    weight = float(np.mean(weights[keep]))
    return weight if math.isfinite(weight) and weight > 0.0 else 1.0 / total
