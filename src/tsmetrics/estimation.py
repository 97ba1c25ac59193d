"""Design-based prevalence estimators for PPS sampling with replacement.

What is estimated
-----------------
The *prevalence* of a Trust & Safety policy on a day is the share of that day's impressions
(views) that went to units violating the policy::

    P = Y / X,   Y = sum_i y_i,   X = sum_i x_i,

where ``x_i`` are the impressions of unit ``i``, ``y_i = x_i`` if the unit violates the policy
and ``0`` otherwise, and the sums run over every unit of the day's population.

Design
------
Units are drawn with probability proportional to size, *with replacement* (multinomial
draws): ``n`` independent draws, each picking unit ``i`` with single-draw probability
``p_i = size_i / sum_j size_j`` (for tsmetrics ``size_i = x_i * (floor + risk_i)``). All inputs of
the estimators below are *per draw*: a unit drawn twice appears twice, ``y_k``/``x_k``/``p_k``
being the values of the unit picked at draw ``k``.

Estimators
----------
* :func:`hansen_hurwitz_prevalence` -- Hansen-Hurwitz (HH) estimator of ``Y`` divided by the
  exactly known total ``X`` (unbiased).
* :func:`hansen_hurwitz_ratio_prevalence` -- ratio of the HH estimators of ``Y`` and ``X``
  (consistent, bias ``O(1/n)``; useful when ``X`` is not known exactly or to gain precision when
  ``y/p`` and ``x/p`` are correlated).

Confidence intervals are chosen by name from :data:`CI_METHODS` (``"wald"``, ``"wilson_kg"``,
``"clopper_pearson_kg"``, ``"logit"``, ``"beta_kg"`` and the conservative ``"wilson_kg_capped"``,
``"clopper_pearson_kg_capped"``); the ``_kg`` methods apply the Korn & Graubard (1998) effective
sample size ``n_eff = P(1-P)/v`` to the Wilson (1927) score interval and the Clopper-Pearson
(1934) interval. ``"logit"`` and ``"beta_kg"`` follow the definitions of R survey's
``svyciprop(method="logit")`` and ``svyciprop(method="beta")`` (Lumley 2004, 2010), with the
design degrees of freedom ``n - 1`` of ``n`` draws with replacement; see
``docs/methods/survey_references.md`` for the published numbers they are checked against.
``n_eff`` is *not* capped at ``n`` by default: risk-weighted PPS oversamples
likely violators, so its design effect is typically well below 1 (about 0.2-0.3 in the tests'
simulation) and capping would make the intervals about twice too wide (coverage ~100% instead
of 95%).

References
----------
Hansen, M. H. and Hurwitz, W. N. (1943). On the theory of sampling from finite populations.
*Annals of Mathematical Statistics* 14(4), 333-362.

Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed., Wiley. Section 9A (sampling with unequal
probabilities with replacement) and Section 6.4 (variance of the ratio estimator).

Korn, E. L. and Graubard, B. I. (1998). Confidence intervals for proportions with small
expected number of positive counts estimated from survey data. *Survey Methodology* 24(2),
193-201.

Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
*Journal of the American Statistical Association* 22(158), 209-212.

Clopper, C. J. and Pearson, E. S. (1934). The use of confidence or fiducial limits illustrated
in the case of the binomial. *Biometrika* 26(4), 404-413.

Lumley, T. (2004). Analysis of complex survey samples. *Journal of Statistical Software* 9(8);
Lumley, T. (2010). *Complex Surveys: A Guide to Analysis Using R*. Wiley. (R package ``survey``,
function ``svyciprop``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats

__all__ = [
    "CI_METHODS",
    "IntervalFunction",
    "PrevalenceEstimate",
    "beta_kg_interval",
    "check_ci_method",
    "clopper_pearson_kg_interval",
    "effective_sample_size",
    "hansen_hurwitz_prevalence",
    "hansen_hurwitz_ratio_prevalence",
    "interval_function",
    "logit_interval",
    "wald_interval",
    "wilson_kg_interval",
]

ArrayLike = npt.ArrayLike

#: Signature of a confidence-interval function of :data:`CI_METHODS`:
#: ``(estimate, variance, n_draws, confidence) -> (lower, upper)``.
IntervalFunction = Callable[[float, float, int, float], tuple[float, float]]


@dataclass(frozen=True)
class PrevalenceEstimate:
    """Point estimate, standard error and confidence interval of a prevalence.

    Attributes
    ----------
    estimate : float
        Estimated prevalence (share of impressions going to violating units). The
        Hansen-Hurwitz estimate is unbiased but not bounded by 1; it is reported unclipped.
    std_error : float
        Estimated standard error of ``estimate`` (square root of the variance estimator).
    ci_lower, ci_upper : float
        Confidence interval, always within ``[0, 1]``.
    ci_method : str
        Key of :data:`CI_METHODS` used for the interval.
    confidence : float
        Nominal confidence level of the interval, e.g. ``0.95``.
    n_draws : int
        Number of PPS-with-replacement draws ``n`` (a unit drawn twice counts twice).
    n_distinct_units : int or None
        Number of distinct units among the draws, when ``unit_ids`` were given.
    n_positive_draws : int
        Number of draws whose violating impressions are positive.
    effective_sample_size : float
        Korn-Graubard effective sample size ``P(1-P)/v`` (``P`` clipped to ``[0, 1]``, ``v`` the
        variance estimate); ``n_draws`` when ``v == 0`` or the clipped ``P`` is 0 or 1. Not
        capped at ``n_draws`` (only the ``*_capped`` interval methods cap it).
    design_effect : float or None
        Kish design effect ``v / (P(1-P)/n) = n_draws / effective_sample_size``; ``None`` when
        undefined (``v == 0``, the clipped ``P`` is 0 or 1, or ``P(1-P)/v`` underflows to 0).
    event_weight : float or None
        With a gamma interval (``gamma_tcz``, ``gamma_midp``): the weight of one more violating
        unit on the prevalence scale that the interval used (the mean ``x / (pi X)`` of the
        sampled units not taken with certainty); kept so that days can be pooled with the
        same interval (:func:`tsmetrics.pooling.pool_days`). ``None`` when none was given (the
        other methods need none).
    """

    estimate: float
    std_error: float
    ci_lower: float
    ci_upper: float
    ci_method: str
    confidence: float
    n_draws: int
    n_distinct_units: int | None
    n_positive_draws: int
    effective_sample_size: float
    design_effect: float | None
    event_weight: float | None = None


# --------------------------------------------------------------------------------------------
# Confidence intervals
# --------------------------------------------------------------------------------------------


def _check_interval_args(estimate: float, variance: float, n_draws: int, confidence: float) -> None:
    if not np.isfinite(estimate) or estimate < 0:
        raise ValueError(f"estimate: expected a finite number >= 0, got {estimate!r}")
    if not np.isfinite(variance) or variance < 0:
        raise ValueError(f"variance: expected a finite number >= 0, got {variance!r}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
        raise ValueError(f"n_draws: expected an integer >= 1, got {n_draws!r}")
    _check_confidence(confidence)


def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, int | float | np.floating) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")


def _normal_quantile(confidence: float) -> float:
    """Two-sided standard normal critical value ``z_{1 - alpha/2}``, ``alpha = 1 - confidence``."""
    return float(stats.norm.isf((1.0 - confidence) / 2.0))


def effective_sample_size(estimate: float, variance: float, n_draws: int) -> float:
    """Korn-Graubard effective sample size of an estimated proportion.

    Parameters
    ----------
    estimate : float
        Estimated proportion ``P``; clipped to ``[0, 1]`` (a Hansen-Hurwitz estimate may exceed 1).
    variance : float
        Design-based variance estimate ``v`` of ``estimate``.
    n_draws : int
        Number of draws ``n``.

    Returns
    -------
    float
        ``n_eff = P(1-P) / v``, the size of a simple random sample with replacement that would
        give the same variance (Korn & Graubard 1998). When ``v == 0`` (or ``P(1-P)/v``
        overflows) or ``P`` is 0 or 1 the ratio is undefined and ``n_draws`` is returned, so
        that an all-negative sample still gives a non-degenerate interval. The value is not
        capped at ``n_draws``.

    References
    ----------
    Korn, E. L. and Graubard, B. I. (1998). *Survey Methodology* 24(2), 193-201.
    """
    _check_interval_args(estimate, variance, n_draws, 0.5)
    p = min(float(estimate), 1.0)
    pq = p * (1.0 - p)
    n_eff = pq / float(variance) if variance > 0.0 else math.inf
    if pq <= 0.0 or not math.isfinite(n_eff):  # v == 0 (or so small that P(1-P)/v overflows)
        return float(n_draws)
    return n_eff


def _kg_n(estimate: float, variance: float, n_draws: int, cap_at_n_draws: bool) -> float:
    """Effective sample size used by the ``_kg`` intervals.

    ``n_eff`` of :func:`effective_sample_size`, or ``min(n_eff, n_draws)`` when
    ``cap_at_n_draws``. Korn & Graubard also multiply ``n_eff`` by ``(t_{n-1} / t_df)^2``, with
    ``df`` the design degrees of freedom; for ``n`` draws with replacement ``df = n - 1`` and the
    factor is 1, so it is omitted.
    """
    n_eff = effective_sample_size(estimate, variance, n_draws)
    return min(n_eff, float(n_draws)) if cap_at_n_draws else n_eff


def wald_interval(
    estimate: float, variance: float, n_draws: int, confidence: float
) -> tuple[float, float]:
    """Wald (normal approximation) interval, clipped to ``[0, 1]``.

    ``P +/- z_{1-alpha/2} sqrt(v)``, then clipped. Degenerate (zero width) when ``v == 0``, e.g.
    when no draw violates; prefer ``wilson_kg`` for small prevalences.

    Parameters
    ----------
    estimate, variance : float
        Estimated proportion ``P`` and its variance estimate ``v``.
    n_draws : int
        Number of draws (unused, kept for the common signature).
    confidence : float
        Confidence level in ``(0, 1)``.

    Returns
    -------
    tuple of float
        ``(lower, upper)``.
    """
    _check_interval_args(estimate, variance, n_draws, confidence)
    half = _normal_quantile(confidence) * float(np.sqrt(variance))
    lower = min(max(estimate - half, 0.0), 1.0)
    upper = min(max(estimate + half, 0.0), 1.0)
    return lower, upper


def wilson_kg_interval(
    estimate: float,
    variance: float,
    n_draws: int,
    confidence: float,
    *,
    cap_at_n_draws: bool = False,
) -> tuple[float, float]:
    """Wilson score interval on the Korn-Graubard effective sample size.

    With ``p = min(P, 1)``, ``m = n_eff`` (see :func:`effective_sample_size`; ``min(n_eff, n)``
    when ``cap_at_n_draws``) and ``z = z_{1-alpha/2}``::

        centre = (p + z^2 / (2m)) / (1 + z^2 / m)
        half   = z / (1 + z^2 / m) * sqrt(p (1 - p) / m + z^2 / (4 m^2))
        CI     = [centre - half, centre + half]  (within [0, 1])

    For ``P == 0`` (no violating draw) ``m = n`` and the interval is ``[0, z^2 / (n + z^2)]``,
    whose upper bound is strictly positive. With ``v = P(1-P)/n`` (design effect 1) this is the
    classical Wilson (1927) interval for ``n P`` successes out of ``n``.

    Capping ``m`` at ``n`` (truncating the design effect at 1) is a conservative variant used by
    some survey reporting standards. It is *not* the default: the tsmetrics risk-weighted PPS
    design is built to have a design effect well below 1 (oversampling likely violators), and
    the cap then discards that precision -- intervals become up to ``1/sqrt(deff)`` times too
    wide and coverage approaches 100% (see ``tests/test_estimation.py``).

    Relation to R survey: released ``svyciprop`` (CRAN survey <= 4.4-8) has no Wilson method.
    The development version (survey 4.5, R-Forge) adds ``method="wilson"`` on the same
    ``n_eff = P(1-P)/v``; its test compares ``df=Inf`` with the classical Wilson interval of
    DescTools on an SRS, attributing the difference to ``n_eff = n - 1`` -- consistent with
    the Wilson interval at ``n_eff`` with the normal quantile, i.e. this function. Its source
    (finite ``df``) could not be inspected here; the Python package ``svy`` (0.35)
    instead uses ``t_{df}`` for ``z`` and the Korn-Graubard df factor. Keeping ``z`` is
    deliberate: for ``n`` draws with replacement the factor is 1 and ``t_{n-1}`` differs from
    ``z`` only for small ``n``. See ``docs/methods/survey_references.md``.

    Parameters
    ----------
    estimate, variance : float
        Estimated proportion ``P`` and its variance estimate ``v``.
    n_draws : int
        Number of draws ``n``.
    confidence : float
        Confidence level in ``(0, 1)``.
    cap_at_n_draws : bool, default False
        Use ``min(n_eff, n)`` instead of ``n_eff``.

    Returns
    -------
    tuple of float
        ``(lower, upper)``.

    References
    ----------
    Wilson (1927), *JASA* 22, 209-212; Korn & Graubard (1998), *Survey Methodology* 24, 193-201.
    """
    _check_interval_args(estimate, variance, n_draws, confidence)
    p = min(float(estimate), 1.0)
    m = _kg_n(estimate, variance, n_draws, cap_at_n_draws)
    z = _normal_quantile(confidence)
    z2 = z * z
    # The formulas of the docstring multiplied through by m: stable for tiny m (huge variance).
    centre = (p * m + z2 / 2.0) / (m + z2)
    half = z / (m + z2) * float(np.sqrt(p * (1.0 - p) * m + z2 / 4.0))
    lower = 0.0 if p <= 0.0 else min(max(centre - half, 0.0), p)
    upper = 1.0 if p >= 1.0 else max(min(centre + half, 1.0), p)
    return lower, upper


def clopper_pearson_kg_interval(
    estimate: float,
    variance: float,
    n_draws: int,
    confidence: float,
    *,
    cap_at_n_draws: bool = False,
) -> tuple[float, float]:
    """Clopper-Pearson (beta) interval on the Korn-Graubard effective sample size.

    With ``p = min(P, 1)``, ``m = n_eff`` (``min(n_eff, n)`` when ``cap_at_n_draws``) and
    ``x = m p`` (not necessarily an integer)::

        lower = Beta^{-1}(alpha/2;     x,     m - x + 1)   (0 when x == 0)
        upper = Beta^{-1}(1 - alpha/2; x + 1, m - x)       (1 when x == m)

    For ``P == 0`` the interval is ``[0, 1 - (alpha/2)^(1/n)]``. With ``v = P(1-P)/n`` this is
    the classical Clopper-Pearson interval. See :func:`wilson_kg_interval` on the cap.

    Parameters
    ----------
    estimate, variance : float
        Estimated proportion ``P`` and its variance estimate ``v``.
    n_draws : int
        Number of draws ``n``.
    confidence : float
        Confidence level in ``(0, 1)``.
    cap_at_n_draws : bool, default False
        Use ``min(n_eff, n)`` instead of ``n_eff``.

    Returns
    -------
    tuple of float
        ``(lower, upper)``.

    References
    ----------
    Clopper & Pearson (1934), *Biometrika* 26, 404-413; Korn & Graubard (1998), *Survey
    Methodology* 24, 193-201.
    """
    _check_interval_args(estimate, variance, n_draws, confidence)
    p = min(float(estimate), 1.0)
    m = _kg_n(estimate, variance, n_draws, cap_at_n_draws)
    return _beta_bounds(p, m, 1.0 - confidence)


def _beta_bounds(p: float, m: float, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson bounds for ``x = m p`` successes out of ``m`` (not necessarily integers).

    ``p`` in ``[0, 1]``, ``m > 0``; the bounds are clipped to ``[0, p]`` and ``[p, 1]``.
    """
    x = m * p
    if p <= 0.0 or x < np.finfo(np.float64).tiny:
        # no (or a subnormal number of) successes: Beta(x, .) has all its mass at 0, and scipy's
        # beta quantile fails on a subnormal shape
        lower = 0.0
    else:
        lower = float(stats.beta.ppf(alpha / 2.0, x, m - x + 1.0))
        lower = 0.0 if not np.isfinite(lower) else min(max(lower, 0.0), p)
    if p >= 1.0:
        upper = 1.0
    else:
        upper = float(stats.beta.ppf(1.0 - alpha / 2.0, x + 1.0, m - x))
        upper = 1.0 if not np.isfinite(upper) else max(min(upper, 1.0), p)
    return lower, upper


def _check_df(df: float | None) -> None:
    if df is None:
        return
    if isinstance(df, bool) or not isinstance(df, int | float | np.integer | np.floating):
        raise ValueError(f"df: expected None or a number > 0 (inf allowed), got {df!r}")
    if math.isnan(float(df)) or float(df) <= 0.0:
        raise ValueError(f"df: expected None or a number > 0 (inf allowed), got {df!r}")


def _t_quantile(upper_tail: float, df: float) -> float:
    """``q`` with ``P(T_df > q) = upper_tail``; the normal quantile for ``df = inf``."""
    if math.isinf(df):
        return float(stats.norm.isf(upper_tail))
    return float(stats.t.isf(upper_tail, df))


def _design_df(n_draws: int, df: float | None) -> float:
    """Degrees of freedom: ``df`` if given, else ``n_draws - 1`` (``inf`` if ``n_draws == 1``)."""
    if df is not None:
        return float(df)
    return float(n_draws - 1) if n_draws > 1 else math.inf


def _kg_df_factor(n_draws: int, df: float | None, alpha: float) -> float:
    """Korn-Graubard degrees-of-freedom factor ``(t_{n-1, alpha/2} / t_{df, alpha/2})^2``.

    1 when ``df`` is ``None`` (``df = n - 1``) or ``n_draws == 1`` (``t_0`` is undefined).
    """
    if df is None or n_draws < 2:
        return 1.0
    return (_t_quantile(alpha / 2.0, float(n_draws - 1)) / _t_quantile(alpha / 2.0, df)) ** 2


def logit_interval(
    estimate: float,
    variance: float,
    n_draws: int,
    confidence: float,
    *,
    df: float | None = None,
) -> tuple[float, float]:
    """Wald interval on the logit scale, back-transformed (R survey ``svyciprop(method="logit")``).

    With ``p = min(P, 1)`` in ``(0, 1)``, ``v`` the variance estimate of ``P`` and
    ``q = t_{df, 1-alpha/2}``, the delta method gives ``SE(logit P) = sqrt(v) / (p (1 - p))`` and::

        CI = expit(logit(p) -/+ q sqrt(v) / (p (1 - p))),   expit(u) = 1 / (1 + exp(-u)).

    This is exactly ``svyciprop(method="logit")``: it fits the intercept-only quasi-binomial
    ``svyglm``, whose sandwich standard error of the intercept is the delta-method one above,
    and takes the Wald interval with ``ddf = df`` (``t`` quantile), ``df = degf(design)`` by
    default. ``svyciprop(method="xlogit")`` computes the same interval through ``svycontrast``.
    Here ``df`` defaults to ``n_draws - 1``, ``degf`` of ``n`` draws with replacement (one
    stratum, ``n`` PSUs); ``df=math.inf`` gives the normal quantile (Stata ``svy: proportion``
    uses ``t_{df}``, as the default here).

    Degenerate inputs, where ``svyciprop`` returns a zero-width or undefined interval:

    * ``v == 0`` with ``0 < p < 1``: ``v`` is replaced by ``p (1 - p) / n_draws``, i.e. the
      effective sample size falls back to ``n_draws`` as in :func:`effective_sample_size`.
    * ``p == 0`` or ``p == 1`` (logit infinite): the Clopper-Pearson interval with
      ``n_eff = n_draws``, ``[0, 1 - (alpha/2)^(1/n)]`` at 0 and ``[(alpha/2)^(1/n), 1]`` at 1,
      so the upper bound at 0 is strictly positive.

    Parameters
    ----------
    estimate, variance : float
        Estimated proportion ``P`` (clipped to ``[0, 1]``) and its variance estimate ``v``.
    n_draws : int
        Number of draws ``n``.
    confidence : float
        Confidence level in ``(0, 1)``.
    df : float, optional
        Degrees of freedom of the ``t`` quantile, ``> 0`` (``inf`` for the normal quantile).
        Default ``n_draws - 1`` (normal when ``n_draws == 1``).

    Returns
    -------
    tuple of float
        ``(lower, upper)`` within ``[0, 1]``, containing ``p``.

    References
    ----------
    R package ``survey`` (Lumley), ``svyciprop`` (``R/svyttest.R``) and ``confint.svyglm``;
    Lumley, T. (2010). *Complex Surveys: A Guide to Analysis Using R*. Wiley.
    """
    _check_interval_args(estimate, variance, n_draws, confidence)
    _check_df(df)
    p = min(float(estimate), 1.0)
    alpha = 1.0 - confidence
    if p <= 0.0 or p >= 1.0:
        return _beta_bounds(p, float(n_draws), alpha)
    pq = p * (1.0 - p)
    v = float(variance) if variance > 0.0 else pq / n_draws
    q = _t_quantile(alpha / 2.0, _design_df(n_draws, df))
    centre = math.log(p) - math.log1p(-p)
    with np.errstate(over="ignore"):
        half = q * math.sqrt(v) / pq
    lower = float(special.expit(centre - half))
    upper = float(special.expit(centre + half))
    return min(max(lower, 0.0), p), max(min(upper, 1.0), p)


def beta_kg_interval(
    estimate: float,
    variance: float,
    n_draws: int,
    confidence: float,
    *,
    df: float | None = None,
) -> tuple[float, float]:
    """Korn-Graubard beta (Clopper-Pearson) interval (R survey ``svyciprop(method="beta")``).

    With ``p = min(P, 1)``, ``n_eff = p (1 - p) / v`` (:func:`effective_sample_size`) and the
    Korn & Graubard (1998) degrees-of-freedom adjustment::

        m = n_eff * (t_{n-1, alpha/2} / t_{df, alpha/2})^2,    x = m p,
        lower = Beta^{-1}(alpha/2;     x,     m - x + 1)      (0 when p == 0)
        upper = Beta^{-1}(1 - alpha/2; x + 1, m - x)          (1 when p == 1)

    which is ``svyciprop(method="beta")`` line for line, with ``n`` for ``nrow(design)`` and
    ``df`` for ``degf(design)``. ``df`` defaults to ``n_draws - 1``, ``degf`` of ``n`` draws
    with replacement, where the factor is 1 and the interval equals
    :func:`clopper_pearson_kg_interval`. ``n_eff`` is not capped at ``n`` (``svyciprop`` does
    not cap; the NCHS variant does, see ``"clopper_pearson_kg_capped"``).

    Degenerate inputs: ``svyciprop`` gives ``NaN`` when ``v == 0`` (``n_eff = 0/0`` at
    ``p = 0``); here ``n_eff`` falls back to ``n_draws`` when ``v == 0`` or ``p`` is 0 or 1
    (:func:`effective_sample_size`), still multiplied by the df factor, so the interval at
    ``p = 0`` is ``[0, 1 - (alpha/2)^(1/m)]`` with a strictly positive upper bound.

    Parameters
    ----------
    estimate, variance : float
        Estimated proportion ``P`` (clipped to ``[0, 1]``) and its variance estimate ``v``.
    n_draws : int
        Number of draws (observations) ``n``.
    confidence : float
        Confidence level in ``(0, 1)``.
    df : float, optional
        Design degrees of freedom ``> 0`` (``inf`` allowed: normal quantile). Default
        ``n_draws - 1`` (factor 1); the factor is also 1 when ``n_draws == 1``.

    Returns
    -------
    tuple of float
        ``(lower, upper)`` within ``[0, 1]``, containing ``p``.

    References
    ----------
    Korn, E. L. and Graubard, B. I. (1998). *Survey Methodology* 24(2), 193-201, eqs. (2.1),
    (2.2); Clopper & Pearson (1934); R package ``survey``, ``svyciprop``.
    """
    _check_interval_args(estimate, variance, n_draws, confidence)
    _check_df(df)
    p = min(float(estimate), 1.0)
    alpha = 1.0 - confidence
    m = effective_sample_size(estimate, variance, n_draws) * _kg_df_factor(n_draws, df, alpha)
    return _beta_bounds(p, m, alpha)


#: Registry of confidence-interval methods, name -> :data:`IntervalFunction` (read-only).
#: The ``*_capped`` variants use ``min(n_eff, n_draws)`` (design effect truncated at 1).
#: ``"logit"`` and ``"beta_kg"`` (R survey ``svyciprop`` methods) use ``df = n_draws - 1``, the
#: design degrees of freedom of ``n`` draws with replacement (call the functions directly with
#: ``df=`` for another design). Every method but ``"wald"`` has a strictly positive upper bound
#: at ``P = 0``; ``"wald"`` is degenerate there (zero width), as documented.
CI_METHODS: Mapping[str, IntervalFunction] = MappingProxyType(
    {
        "wald": wald_interval,
        "wilson_kg": wilson_kg_interval,
        "clopper_pearson_kg": clopper_pearson_kg_interval,
        "logit": logit_interval,
        "beta_kg": beta_kg_interval,
        "wilson_kg_capped": partial(wilson_kg_interval, cap_at_n_draws=True),
        "clopper_pearson_kg_capped": partial(clopper_pearson_kg_interval, cap_at_n_draws=True),
    }
)


def check_ci_method(ci_method: object) -> str:
    """``ci_method`` if it names an interval of either registry (:data:`CI_METHODS` or
    :data:`tsmetrics.gamma_interval.EVENT_WEIGHT_CI_METHODS`).

    Raises
    ------
    ValueError
        On any other value.
    """
    from tsmetrics.gamma_interval import EVENT_WEIGHT_CI_METHODS

    if isinstance(ci_method, str) and (
        ci_method in CI_METHODS or ci_method in EVENT_WEIGHT_CI_METHODS
    ):
        return ci_method
    raise ValueError(
        f"ci_method: expected one of {sorted([*CI_METHODS, *EVENT_WEIGHT_CI_METHODS])}, "
        f"got {ci_method!r}"
    )


def interval_function(ci_method: str, event_weight: float | None = None) -> IntervalFunction:
    """The interval of ``ci_method`` as an :data:`IntervalFunction`, from either registry.

    ``ci_method`` is a key of :data:`CI_METHODS` (``event_weight`` ignored) or of
    :data:`tsmetrics.gamma_interval.EVENT_WEIGHT_CI_METHODS` (``"gamma_tcz"``, ``"gamma_midp"``),
    whose intervals also need the weight ``w > 0`` of one more event on the prevalence scale
    (e.g. :func:`tsmetrics.gamma_interval.mean_uncertain_weight`); it is bound here, and the
    sample-size argument of the returned function is ignored.

    Raises
    ------
    ValueError
        On an unknown ``ci_method``, or an event-weight method without ``event_weight``.
    """
    from tsmetrics.gamma_interval import EVENT_WEIGHT_CI_METHODS

    check_ci_method(ci_method)
    if ci_method in CI_METHODS:
        return CI_METHODS[ci_method]
    if event_weight is None:
        raise ValueError(f"event_weight: required with ci_method {ci_method!r}, got None")
    weighted = EVENT_WEIGHT_CI_METHODS[ci_method]
    weight = float(event_weight)

    def bound(estimate: float, variance: float, _n: int, confidence: float) -> tuple[float, float]:
        return weighted(estimate, variance, weight, confidence)

    return bound


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _as_1d_float(name: str, values: ArrayLike) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name}: expected a 1-d array of numbers, got {type(values).__name__}"
        ) from exc
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name}: expected finite values, got {int(np.sum(~np.isfinite(arr)))} NaN/inf"
        )
    return arr


def _check_lengths(**arrays: npt.NDArray[Any]) -> int:
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"inputs: expected arrays of equal length (one entry per draw), got {lengths}"
        )
    n = next(iter(lengths.values()))
    if n < 2:
        raise ValueError(f"n_draws: expected at least 2 draws for a variance estimate, got {n}")
    return n


def _check_selection_prob(p: npt.NDArray[np.float64]) -> None:
    bad = (p <= 0.0) | (p > 1.0)
    if np.any(bad):
        raise ValueError(
            f"selection_prob: expected values in (0, 1], got {p[bad][:5].tolist()} "
            f"({int(bad.sum())} out of range)"
        )


def _check_nonnegative(name: str, arr: npt.NDArray[np.float64]) -> None:
    if np.any(arr < 0.0):
        raise ValueError(f"{name}: expected values >= 0, got minimum {float(arr.min())!r}")


def _check_ci_method(ci_method: str) -> IntervalFunction:
    try:
        return CI_METHODS[ci_method]
    except (KeyError, TypeError):
        raise ValueError(
            f"ci_method: expected one of {sorted(CI_METHODS)}, got {ci_method!r}"
        ) from None


def _check_finite_result(total: float, variance: float) -> None:
    if not (math.isfinite(total) and math.isfinite(variance)):
        raise ValueError(
            "selection_prob: expected probabilities large enough for y/p and its variance to be "
            f"finite in float64, got an estimated total {total!r} and variance {variance!r}"
        )


def _distinct_units(
    unit_ids: Sequence[Any] | ArrayLike | None, n: int, **per_draw: npt.NDArray[np.float64]
) -> int | None:
    """Count distinct units; check every draw of a unit carries the same per-unit values."""
    if unit_ids is None:
        return None
    ids = np.asarray(unit_ids, dtype=object)
    if ids.ndim != 1 or len(ids) != n:
        raise ValueError(
            f"unit_ids: expected a 1-d sequence of {n} ids (one per draw), got shape {ids.shape}"
        )
    codes, uniques = pd.factorize(ids, use_na_sentinel=False)
    for name, values in per_draw.items():
        representative = np.empty(len(uniques), dtype=np.float64)
        representative[codes] = values
        if not np.allclose(representative[codes], values, rtol=1e-12, atol=0.0):
            raise ValueError(
                f"{name}: expected identical values for repeated draws of the same unit_id, "
                "got differing values"
            )
    return len(uniques)


def _build(
    estimate: float,
    variance: float,
    *,
    n: int,
    n_distinct: int | None,
    n_positive: int,
    confidence: float,
    interval: IntervalFunction,
    ci_method: str,
) -> PrevalenceEstimate:
    variance = max(variance, 0.0)
    lower, upper = interval(estimate, variance, n, confidence)
    ess = effective_sample_size(estimate, variance, n)
    p = min(estimate, 1.0)
    deff = None if (variance <= 0.0 or p <= 0.0 or p >= 1.0 or ess <= 0.0) else n / ess
    return PrevalenceEstimate(
        estimate=float(estimate),
        std_error=float(np.sqrt(variance)),
        ci_lower=float(lower),
        ci_upper=float(upper),
        ci_method=ci_method,
        confidence=float(confidence),
        n_draws=int(n),
        n_distinct_units=n_distinct,
        n_positive_draws=int(n_positive),
        effective_sample_size=float(ess),
        design_effect=None if deff is None else float(deff),
    )


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------


def hansen_hurwitz_prevalence(
    violating_impressions: ArrayLike,
    selection_prob: ArrayLike,
    total_impressions: float,
    *,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
    unit_ids: Sequence[Any] | ArrayLike | None = None,
) -> PrevalenceEstimate:
    """Hansen-Hurwitz estimate of prevalence with a known total of impressions.

    Estimates ``P = Y / X``, the share of the day's impressions ``X`` (known exactly) that went
    to violating units, from ``n`` PPS draws with replacement.

    With ``z_k = y_k / p_k`` for draw ``k = 1..n``::

        Y_hat = (1/n) sum_k z_k                                   (Hansen-Hurwitz total)
        P_hat = Y_hat / X
        v(Y_hat) = sum_k (z_k - Y_hat)^2 / (n (n - 1))            (unbiased for V(Y_hat))
        SE(P_hat) = sqrt(v(Y_hat)) / X

    ``P_hat`` is design-unbiased for ``P`` and ``v`` is design-unbiased for its variance
    ``V(Y_hat) = (1/n) sum_i p_i (y_i / p_i - Y)^2`` (Cochran 1977, Section 9A).
    ``P_hat`` is not bounded by 1; it is reported unclipped, the interval is in ``[0, 1]``.

    Parameters
    ----------
    violating_impressions : array_like, shape (n,)
        Per draw: impressions of the drawn unit if it violates the policy, else 0 (``y_k >= 0``).
    selection_prob : array_like, shape (n,)
        Per draw: the drawn unit's single-draw selection probability ``p_k`` in ``(0, 1]``.
    total_impressions : float
        Known total impressions ``X > 0`` of the population.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in :data:`CI_METHODS`.
    unit_ids : sequence, optional
        Per draw: id of the drawn unit; used for ``n_distinct_units`` and to check that repeated
        draws of a unit carry identical ``y_k`` and ``p_k``.

    Returns
    -------
    PrevalenceEstimate

    Raises
    ------
    ValueError
        On arrays of different lengths, fewer than 2 draws, ``p_k`` outside ``(0, 1]``,
        negative ``y_k``, non-finite values, ``X <= 0``, ``confidence`` outside ``(0, 1)`` or an
        unknown ``ci_method``.

    References
    ----------
    Hansen & Hurwitz (1943), *Ann. Math. Statist.* 14, 333-362; Cochran (1977), *Sampling
    Techniques*, 3rd ed., Section 9A.
    """
    y = _as_1d_float("violating_impressions", violating_impressions)
    p = _as_1d_float("selection_prob", selection_prob)
    n = _check_lengths(violating_impressions=y, selection_prob=p)
    _check_nonnegative("violating_impressions", y)
    _check_selection_prob(p)
    total = float(total_impressions)
    if not np.isfinite(total) or total <= 0.0:
        raise ValueError(
            f"total_impressions: expected a finite number > 0, got {total_impressions!r}"
        )
    _check_confidence(confidence)
    interval = _check_ci_method(ci_method)
    n_distinct = _distinct_units(unit_ids, n, violating_impressions=y, selection_prob=p)

    with np.errstate(over="ignore", invalid="ignore"):  # overflow reported just below
        z = y / p
        y_hat = float(z.mean())
        variance_total = float(np.sum((z - y_hat) ** 2)) / (n * (n - 1))
    _check_finite_result(y_hat, variance_total)
    return _build(
        y_hat / total,
        variance_total / total**2,
        n=n,
        n_distinct=n_distinct,
        n_positive=int(np.count_nonzero(y > 0.0)),
        confidence=confidence,
        interval=interval,
        ci_method=ci_method,
    )


def hansen_hurwitz_ratio_prevalence(
    violating_impressions: ArrayLike,
    impressions: ArrayLike,
    selection_prob: ArrayLike,
    *,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
    unit_ids: Sequence[Any] | ArrayLike | None = None,
) -> PrevalenceEstimate:
    """Ratio of two Hansen-Hurwitz totals as an estimate of prevalence.

    Estimates ``P = Y / X`` from ``n`` PPS draws with replacement, estimating both totals::

        Y_hat = (1/n) sum_k y_k / p_k,     X_hat = (1/n) sum_k x_k / p_k,
        R_hat = Y_hat / X_hat.

    Variance by linearisation (Taylor series; Cochran 1977, Section 6.4, applied to HH totals):
    ``R_hat - R ~= (Y_hat - R X_hat) / X``, and ``Y_hat - R X_hat`` is the HH estimator of the
    total of the residuals ``y_i - R x_i``. Substituting ``R_hat`` for ``R`` and ``X_hat`` for
    ``X`` in the HH variance estimator, with ``e_k = (y_k - R_hat x_k) / p_k``::

        v(R_hat) = sum_k (e_k - e_bar)^2 / (n (n - 1) X_hat^2),

    where ``e_bar = Y_hat - R_hat X_hat = 0`` exactly, so ``v(R_hat) = sum_k e_k^2 /
    (n (n - 1) X_hat^2)``. ``R_hat`` is consistent with bias of order ``1/n``; as ``y_k <= x_k``
    it always lies in ``[0, 1]``.

    Parameters
    ----------
    violating_impressions : array_like, shape (n,)
        Per draw: impressions of the drawn unit if it violates the policy, else 0.
    impressions : array_like, shape (n,)
        Per draw: impressions ``x_k >= y_k`` of the drawn unit.
    selection_prob : array_like, shape (n,)
        Per draw: the drawn unit's single-draw selection probability ``p_k`` in ``(0, 1]``.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in :data:`CI_METHODS`.
    unit_ids : sequence, optional
        Per draw: id of the drawn unit (see :func:`hansen_hurwitz_prevalence`).

    Returns
    -------
    PrevalenceEstimate

    Raises
    ------
    ValueError
        On arrays of different lengths, fewer than 2 draws, ``p_k`` outside ``(0, 1]``,
        negative values, ``y_k > x_k``, non-finite values, all ``x_k == 0``, ``confidence``
        outside ``(0, 1)`` or an unknown ``ci_method``.

    References
    ----------
    Hansen & Hurwitz (1943), *Ann. Math. Statist.* 14, 333-362; Cochran (1977), *Sampling
    Techniques*, 3rd ed., Sections 6.4 and 9A.
    """
    y = _as_1d_float("violating_impressions", violating_impressions)
    x = _as_1d_float("impressions", impressions)
    p = _as_1d_float("selection_prob", selection_prob)
    n = _check_lengths(violating_impressions=y, impressions=x, selection_prob=p)
    _check_nonnegative("violating_impressions", y)
    _check_nonnegative("impressions", x)
    if np.any(y > x):
        k = int(np.argmax(y > x))
        raise ValueError(
            f"violating_impressions: expected values <= impressions, got {y[k]!r} > {x[k]!r} "
            f"at draw {k}"
        )
    if not np.any(x > 0.0):
        raise ValueError("impressions: expected at least one draw with impressions > 0, got all 0")
    _check_selection_prob(p)
    _check_confidence(confidence)
    interval = _check_ci_method(ci_method)
    n_distinct = _distinct_units(
        unit_ids, n, violating_impressions=y, impressions=x, selection_prob=p
    )

    with np.errstate(over="ignore", invalid="ignore"):  # overflow reported just below
        y_hat = float(np.mean(y / p))
        x_hat = float(np.mean(x / p))
        ratio = min(y_hat / x_hat, 1.0)  # <= 1 mathematically; guard rounding
        e = (y - ratio * x) / p
        variance = float(np.sum((e - e.mean()) ** 2)) / (n * (n - 1) * x_hat**2)
    _check_finite_result(x_hat, variance)
    return _build(
        ratio,
        variance,
        n=n,
        n_distinct=n_distinct,
        n_positive=int(np.count_nonzero(y > 0.0)),
        confidence=confidence,
        interval=interval,
        ci_method=ci_method,
    )
