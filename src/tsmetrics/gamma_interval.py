"""Gamma confidence intervals for a weighted sum of rare events (Fay-Feuer; mid-p, Fay-Kim).

Why
---
At 0.05% prevalence a day's sample of 2,000 labels holds about four violating units whatever the
design (``tsmetrics.design_study``). The estimate is then a weighted sum of a handful of rare
events, ``P_hat = sum_s w_i v_i`` with ``w_i = x_i / (pi_i X)``, and the normal-theory and
Korn-Graubard intervals under-cover: a day that happens to miss the violators with small
``pi_i`` has both a low estimate and a low variance estimate (coverage 0.75-0.80 for nominal 0.95
under the calibrated design in the design study).

The gamma interval (``gamma_tcz``)
----------------------------------
Fay & Feuer (1997) treat ``Y = sum_i w_i N_i`` with independent Poisson counts ``N_i`` and
approximate its distribution by a gamma distribution with the estimate's mean and variance. With
``y`` the estimate, ``v`` its variance estimate and ``w`` the weight of one more event, let
``G_L = Gamma(shape = y^2 / v, scale = v / y)`` (a point mass at ``y`` when ``v = 0``; at 0 when
``y = 0``) and ``G_U = Gamma(shape = (y + w)^2 / (v + w^2), scale = (v + w^2) / (y + w))``::

    lower = G_L^-1(alpha / 2),        upper = G_U^-1(1 - alpha / 2)

The upper limit adds one event of weight ``w`` -- the same continuity idea as the exact Poisson
(Garwood) limit, to which the interval reduces when all weights are equal. Fay & Feuer take
``w`` = the largest weight, which is very conservative when weights vary; Tiwari, Clegg & Zou
(2006) studied the mean weight. tsmetrics uses the mean weight of the sampled units that were
not selected with certainty (``pi_i < 1``): the average contribution of one more violating unit
of the kind the design samples (:func:`mean_uncertain_weight`). This is ``wmtype = "mean"`` of
R ``asht::wspoissonTest`` (``y* = y + mean(w)``, ``v* = v + mean(w)^2``); asht's ``"tcz"``
adds ``mean(w^2)`` to ``v`` instead, a slightly wider upper limit. At ``y = 0`` the upper limit
is ``w (-ln(alpha/2))`` (``3.69 w`` at 95%): a real upper bound, never a zero-width interval.

The mid-p gamma interval (``gamma_midp``)
-----------------------------------------
Fay & Kim (2017) replace the two one-sided gamma quantiles by the quantiles of their equal
mixture, the *mid-p confidence distribution* ``F_mid(t) = (G_L(t) + G_U(t)) / 2``::

    lower = F_mid^-1(alpha / 2),      upper = F_mid^-1(1 - alpha / 2)

(R ``asht::wspoissonTest(x, w, midp = TRUE)``, exact calculation by ``uniroot``; its Monte Carlo
variant draws ``T = B G_L + (1 - B) G_U`` with ``B ~ Bernoulli(1/2)``). For equal weights
``G_L = Gamma(k, w)`` and ``G_U = Gamma(k + 1, w)`` with ``k`` the number of events, and
``(G_L(mu) + G_U(mu)) / 2 = P(N > k) + P(N = k) / 2`` for ``N ~ Poisson(mu / w)``: the interval
is then exactly the mid-p exact Poisson interval (Lancaster 1961; Berry & Armitage 1995), as the
gamma interval is the Garwood one. At ``y = 0`` (``G_L`` a point mass at 0, so
``F_mid(0) = 1/2``) the lower limit is 0 and the upper limit is ``G_U^-1(1 - alpha)``, i.e.
``w (-ln alpha)`` (``3.00 w`` at 95%, the mid-p Poisson limit at zero events): a real, positive
upper bound. ``F_mid`` is increasing in ``t`` and the root of ``F_mid(t) = p`` lies between the
``p``-quantiles of ``G_L`` and ``G_U``, so it is found by bisection on that bracket (vectorised,
:func:`gamma_midp_bounds`).

Both intervals are clipped to ``[0, 1]`` and always contain the (non-negative) estimate. Coverage
under the default design is measured in ``docs/design_study.md``; formulas, references and the
differences from R ``asht`` are in ``docs/methods/gamma_intervals.md``.

References
----------
Fay, M. P. and Feuer, E. J. (1997). Confidence intervals for directly standardized rates: a
method based on the gamma distribution. *Statistics in Medicine* 16(7), 791-801.

Fay, M. P. and Kim, S. (2017). Confidence intervals for directly standardized rates using mid-p
gamma intervals. *Biometrical Journal* 59(2), 377-387.

Tiwari, R. C., Clegg, L. X. and Zou, Z. (2006). Efficient interval estimation for age-adjusted
cancer rates. *Statistical Methods in Medical Research* 15(6), 547-569.

Fay, M. P. R package ``asht`` (Applied Statistical Hypothesis Tests), function
``wspoissonTest``.

Lancaster, H. O. (1961). Significance tests in discrete distributions. *Journal of the
American Statistical Association* 56(294), 223-234.

Berry, G. and Armitage, P. (1995). Mid-P confidence intervals: a brief review. *Journal of the
Royal Statistical Society D* 44(4), 417-423.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from scipy import special, stats

__all__ = [
    "EVENT_WEIGHT_CI_METHODS",
    "GAMMA_METHOD",
    "GAMMA_MIDP_METHOD",
    "EventWeightInterval",
    "gamma_interval",
    "gamma_midp_bounds",
    "gamma_midp_interval",
    "mean_uncertain_weight",
    "model_event_scale",
    "model_violator_weight",
]

FloatArray = npt.NDArray[np.float64]

#: ``ci_method`` name of the Fay-Feuer gamma interval with the mean weight.
GAMMA_METHOD = "gamma_tcz"
#: ``ci_method`` name of the Fay-Kim mid-p gamma interval with the mean weight.
GAMMA_MIDP_METHOD = "gamma_midp"

#: Signature of an interval that needs the weight of one more event:
#: ``(estimate, variance, event_weight, confidence) -> (lower, upper)``.
EventWeightInterval = Callable[[float, float, float, float], tuple[float, float]]

_BISECTION_STEPS = 200


def _check_arguments(
    estimate: float, variance: float, event_weight: float, confidence: float
) -> None:
    for name, value in (("estimate", estimate), ("variance", variance)):
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if variance < 0:
        raise ValueError(f"variance: expected a number >= 0, got {variance!r}")
    if not (math.isfinite(event_weight) and event_weight > 0):
        raise ValueError(f"event_weight: expected a finite number > 0, got {event_weight!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")


def gamma_interval(
    estimate: float, variance: float, event_weight: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Fay-Feuer gamma interval with the mean weight ``event_weight`` (``gamma_tcz``).

    Parameters
    ----------
    estimate : float
        Estimated prevalence ``y >= 0`` (a negative estimate is treated as 0).
    variance : float
        Its variance estimate ``v >= 0``.
    event_weight : float
        Weight ``w > 0`` of one more event on the prevalence scale (``x_i / (pi_i X)``).
    confidence : float
        Confidence level in ``(0, 1)``.

    Returns
    -------
    (float, float)
        ``(lower, upper)`` clipped to ``[0, 1]``; ``upper > 0`` always.
    """
    _check_arguments(estimate, variance, event_weight, confidence)
    alpha = 1.0 - confidence
    y = max(float(estimate), 0.0)
    v = float(variance)
    if y > 0.0 and v > 0.0:
        lower = float(stats.gamma.ppf(alpha / 2.0, y * y / v, scale=v / y))
    else:
        lower = y if v == 0.0 else 0.0
    w = float(event_weight)
    upper = float(
        stats.gamma.ppf(1.0 - alpha / 2.0, (y + w) ** 2 / (v + w * w), scale=(v + w * w) / (y + w))
    )
    return max(0.0, min(lower, y, 1.0)), min(max(upper, y), 1.0)


def _mixture_cdf(
    t: FloatArray,
    y: FloatArray,
    degenerate: npt.NDArray[np.bool_],
    shape_l: FloatArray,
    scale_l: FloatArray,
    shape_u: FloatArray,
    scale_u: FloatArray,
) -> FloatArray:
    """``(G_L(t) + G_U(t)) / 2``; ``G_L`` is the point mass at ``y`` where ``degenerate``."""
    g_l = np.where(degenerate, (t >= y).astype(np.float64), special.gammainc(shape_l, t / scale_l))
    g_u = special.gammainc(shape_u, t / scale_u)
    out: FloatArray = 0.5 * (g_l + g_u)
    return out


def gamma_midp_bounds(
    estimate: npt.ArrayLike,
    variance: npt.ArrayLike,
    event_weight: npt.ArrayLike,
    confidence: float = 0.95,
) -> tuple[FloatArray, FloatArray]:
    """Fay-Kim mid-p gamma limits for arrays of estimates (vectorised ``gamma_midp``).

    ``lower`` and ``upper`` solve ``F_mid(t) = alpha/2`` and ``1 - alpha/2`` with
    ``F_mid = (G_L + G_U) / 2`` (module docstring), by bisection on the bracket between the two
    gammas' quantiles (``F_mid`` is increasing, so the root is inside; a point-mass ``G_L`` puts
    the bracket's lower end at 0). ``estimate < 0`` is treated as 0. Limits are clipped to
    ``[0, 1]`` and to contain the estimate.

    Parameters
    ----------
    estimate, variance, event_weight : array_like
        Broadcastable arrays: ``y`` (finite), ``v >= 0`` (finite) and ``w > 0`` (finite).
    confidence : float
        Confidence level in ``(0, 1)``.

    Returns
    -------
    (ndarray, ndarray)
        Lower and upper limits, of the broadcast shape.
    """
    y_in, v, w = np.broadcast_arrays(
        np.asarray(estimate, dtype=np.float64),
        np.asarray(variance, dtype=np.float64),
        np.asarray(event_weight, dtype=np.float64),
    )
    if not (np.all(np.isfinite(y_in)) and np.all(np.isfinite(v))):
        raise ValueError("estimate, variance: expected finite numbers, got NaN/inf")
    if np.any(v < 0):
        raise ValueError(f"variance: expected numbers >= 0, got minimum {float(v.min())!r}")
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise ValueError("event_weight: expected finite numbers > 0")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    y = np.maximum(y_in, 0.0)
    degenerate = (y <= 0.0) | (v <= 0.0)
    safe_y = np.where(degenerate, 1.0, y)
    safe_v = np.where(degenerate, 1.0, v)
    shape_l, scale_l = safe_y * safe_y / safe_v, safe_v / safe_y
    shape_u, scale_u = (y + w) ** 2 / (v + w * w), (v + w * w) / (y + w)
    alpha = 1.0 - confidence
    limits = []
    for p in (alpha / 2.0, 1.0 - alpha / 2.0):
        q_l = np.where(degenerate, y, special.gammaincinv(shape_l, p) * scale_l)
        q_u = special.gammaincinv(shape_u, p) * scale_u
        lo = np.where(degenerate, 0.0, np.minimum(q_l, q_u))
        hi = np.maximum(q_l, q_u)
        if p < 0.5:  # at y = 0, F_mid(0) = 1/2 > p: the lower limit is 0
            hi = np.where(y <= 0.0, 0.0, hi)
        for _ in range(_BISECTION_STEPS):
            if np.all(hi - lo <= 1e-14 * hi):
                break
            mid = 0.5 * (lo + hi)
            below = _mixture_cdf(mid, y, degenerate, shape_l, scale_l, shape_u, scale_u) < p
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        limits.append(hi)  # the smallest t with F_mid(t) >= p, to the tolerance
    lower = np.clip(np.minimum(limits[0], y), 0.0, 1.0)
    upper = np.minimum(np.maximum(limits[1], y), 1.0)
    return lower, upper


def gamma_midp_interval(
    estimate: float, variance: float, event_weight: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Fay-Kim mid-p gamma interval with the mean weight ``event_weight`` (``gamma_midp``).

    Parameters and return value as :func:`gamma_interval`; the limits are the ``alpha/2`` and
    ``1 - alpha/2`` quantiles of the mid-p confidence distribution ``(G_L + G_U) / 2``
    (:func:`gamma_midp_bounds`). ``upper > 0`` always: ``w (-ln alpha)`` at ``y = v = 0``.
    """
    _check_arguments(estimate, variance, event_weight, confidence)
    lower, upper = gamma_midp_bounds(estimate, variance, event_weight, confidence)
    return float(lower), float(upper)


#: Registry of the intervals that need the weight of one more event, name ->
#: :data:`EventWeightInterval` (read-only). The estimators bind the weight and use them like
#: :data:`tsmetrics.estimation.CI_METHODS` (:func:`tsmetrics.estimation.interval_function`).
EVENT_WEIGHT_CI_METHODS: Mapping[str, EventWeightInterval] = MappingProxyType(
    {GAMMA_METHOD: gamma_interval, GAMMA_MIDP_METHOD: gamma_midp_interval}
)


def mean_uncertain_weight(
    impressions: npt.ArrayLike, inclusion_prob: npt.ArrayLike, total_impressions: float
) -> float:
    """Mean of ``x_i / (pi_i X)`` over the sampled units with ``pi_i < 1`` (all sampled units
    when every one is a certainty unit), the ``event_weight`` of the gamma intervals."""
    x = np.asarray(impressions, dtype=np.float64)
    pi = np.asarray(inclusion_prob, dtype=np.float64)
    if x.shape != pi.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError("impressions, inclusion_prob: expected non-empty 1-d arrays of one shape")
    uncertain = pi < 1.0
    keep = uncertain if uncertain.any() else np.ones_like(uncertain)
    weight = float(np.mean(x[keep] / pi[keep])) / float(total_impressions)
    if not (math.isfinite(weight) and weight > 0):
        # a sample of units without impressions: one event can move nothing; use 1/X
        weight = 1.0 / float(total_impressions)
    return weight


def model_event_scale(
    event_weights: npt.ArrayLike, certain: npt.ArrayLike, qhat: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """The gamma scale the calibration model expects, ``sum q w^2 / sum q w``, per policy.

    Under the model each sampled unit ``i`` (weight ``w_i = x_i / (pi_i X)``, calibrated
    probability ``qhat_i`` of violating) is an event with probability ``qhat_i``; the
    compound-Poisson approximation of the estimate then has mean ``sum_s qhat w`` and variance
    ``sum_s qhat w^2``, hence the Fay-Feuer gamma scale ``sum_s qhat w^2 / sum_s qhat w``: the
    size of one event in the gamma's own units (``w`` itself when all weights are equal; the
    size-biased mean weight of the units the model expects to violate). Sums over the uncertain
    units (``certain`` false); an alternative ``event_weight`` for the gamma intervals that the
    design study compares with :func:`mean_uncertain_weight` (its fallback when the model
    expects no event). With an uninformative model (constant ``qhat``) it is
    ``sum w^2 / sum w >= mean(w)``.

    Parameters
    ----------
    event_weights : array_like, shape (n,)
        ``w_i > 0`` of the sampled units.
    certain : array_like of bool, shape (n,)
        Units selected with certainty (left out).
    qhat : array_like, shape (n,) or (n, P)
        Calibrated probabilities, one column per policy.

    Returns
    -------
    numpy.ndarray, shape () or (P,)
    """
    _, first, second, fallback = _model_weight_moments(event_weights, certain, qhat)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(first > 0.0, second / first, fallback)
    out: npt.NDArray[np.float64] = np.where(np.isfinite(scale) & (scale > 0), scale, fallback)
    return out


def model_violator_weight(
    event_weights: npt.ArrayLike, certain: npt.ArrayLike, qhat: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """``sum qhat w / sum qhat`` over the uncertain sampled units, per policy: the mean weight
    of a violating sampled unit under the calibration model (the mean weight where the model
    expects no event). Arguments as :func:`model_event_scale`, which is its size-biased
    counterpart (``>=`` it, by Cauchy-Schwarz); another candidate ``event_weight`` of the
    event-weight study (``tsmetrics.design_study_event_weight``)."""
    mass, first, _, fallback = _model_weight_moments(event_weights, certain, qhat)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: npt.NDArray[np.float64] = np.where(mass > 0.0, first / mass, fallback)
    return out


def _model_weight_moments(
    event_weights: npt.ArrayLike, certain: npt.ArrayLike, qhat: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """``(sum q, sum q w, sum q w^2, mean w)`` over the uncertain units (all units when every
    one is certain), per policy column of ``qhat``."""
    w = np.asarray(event_weights, dtype=np.float64)
    sure = np.asarray(certain, dtype=bool)
    q = np.asarray(qhat, dtype=np.float64)
    if w.ndim != 1 or sure.shape != w.shape or q.shape[:1] != w.shape or len(w) == 0:
        raise ValueError("event_weights, certain, qhat: expected non-empty arrays of n rows")
    keep = ~sure if (~sure).any() else np.ones_like(sure)
    wk, qk = w[keep], q[keep]
    if q.ndim == 2:
        wk = wk[:, None]
    return qk.sum(0), (qk * wk).sum(0), (qk * wk * wk).sum(0), float(np.mean(wk))
