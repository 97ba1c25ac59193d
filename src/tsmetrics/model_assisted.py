"""Model-assisted prevalence estimators: the difference estimator and PPI++ label correction.

What is estimated
-----------------
The impression-weighted prevalence ``P = Y / X`` of a policy on a day, ``Y = sum_U y_i`` with
``y_i = x_i`` (impressions) when unit ``i`` violates and ``0`` otherwise, ``X = sum_U x_i`` known
exactly (see :mod:`tsmetrics.estimation`). Two ways of using a model to estimate it better than
the plain Horvitz-Thompson / Hansen-Hurwitz estimators, both *design-based*: their validity rests
on the known selection probabilities, never on the model being right.

1. Difference estimator (:func:`difference_prevalence_poisson`,
   :func:`difference_prevalence_pps_wr`). Every unit of the population has a calibrated
   probability of violating ``qhat_i`` (from its risk scores), hence an auxiliary value
   ``m_i = x_i qhat_i`` whose population total ``M = sum_U m_i`` the warehouse computes. The
   estimator adds to ``M`` the design estimate of the total of the residuals ``e_i = y_i - m_i``
   (Sarndal, Swensson & Wretman 1992, Section 6.3); it is design-unbiased whatever ``qhat`` is,
   and its variance is that of the design estimator applied to ``e`` instead of ``y``: small
   when ``m`` tracks ``y``.
2. PPI++ label-error correction (:func:`ppi_prevalence_poisson`, :func:`ppi_prevalence_pps_wr`).
   Every sampled unit has an LLM label ``f_i``; a random validation subsample of the sampled
   units also has a human (gold) label ``h_i``, taken as the truth. The LLM-only ("naive")
   estimate is biased by the LLM's errors; the prediction-powered estimator of Angelopoulos et
   al. (2023), with the power-tuning ``lambda`` of PPI++ (Angelopoulos, Duchi & Zrnic 2023),
   corrects it with the validation subsample. Here it is written for the two-phase design
   (phase 1: the PPS sample, phase 2: the validation subsample; Sarndal et al. 1992, Chapter 9)
   instead of PPI's independent labeled / unlabeled i.i.d. samples, and the tuned ``lambda``
   is applied leave-one-out by default, which makes the tuned estimator exactly unbiased under
   Bernoulli validation (the plug-in PPI++ ``lambda`` is available as ``lam_method``).

Designs
-------
* Poisson PPS (inclusion probability ``pi_i``, independent selections) -- the ``*_poisson``
  functions, the model-assisted counterparts of
  :func:`tsmetrics.sampling.horvitz_thompson_prevalence`.
* PPS with replacement (``n`` draws, single-draw probability ``p_k``) -- the ``*_pps_wr``
  functions, counterparts of :func:`tsmetrics.estimation.hansen_hurwitz_prevalence`; all
  inputs are per draw.

All functions return :class:`tsmetrics.estimation.PrevalenceEstimate` objects whose confidence
interval comes from :data:`tsmetrics.estimation.CI_METHODS` (default ``"wilson_kg"``). Unlike the
HT/HH estimators these estimators can be negative (a difference or a correction is subtracted);
the estimate is reported unclipped, and the interval and Korn-Graubard effective sample size
are computed at ``max(P_hat, 0)``.

References
----------
Sarndal, C.-E., Swensson, B. and Wretman, J. (1992). *Model Assisted Survey Sampling*.
Springer. Section 6.3 (the difference estimator), Chapter 9, Section 9.3 (two-phase sampling,
the pi* estimator and its variance).

Angelopoulos, A. N., Bates, S., Fannjiang, C., Jordan, M. I. and Zrnic, T. (2023).
Prediction-powered inference. *Science* 382(6671), 669-674.

Angelopoulos, A. N., Duchi, J. C. and Zrnic, T. (2023). PPI++: Efficient prediction-powered
inference. arXiv:2311.01453.

Horvitz, D. G. and Thompson, D. J. (1952). *JASA* 47, 663-685. Hansen, M. H. and Hurwitz, W. N.
(1943). *Ann. Math. Statist.* 14, 333-362.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tsmetrics.estimation import (
    CI_METHODS,
    IntervalFunction,
    PrevalenceEstimate,
    effective_sample_size,
    hansen_hurwitz_prevalence,
)
from tsmetrics.sampling import horvitz_thompson_prevalence

__all__ = [
    "LAMBDA_METHODS",
    "VALIDATION_DESIGNS",
    "LambdaMethod",
    "LabelCorrectedEstimate",
    "ValidationDesign",
    "difference_prevalence_poisson",
    "difference_prevalence_pps_wr",
    "ppi_prevalence_poisson",
    "ppi_prevalence_pps_wr",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Designs of the validation (phase-2) subsample: ``"bernoulli"`` -- each sampled unit (draw) is
#: validated independently with its own known probability ``r_i``; ``"srs"`` -- a simple random
#: sample without replacement of fixed size ``n_v`` of the ``n`` sampled units (draws).
ValidationDesign = Literal["bernoulli", "srs"]
VALIDATION_DESIGNS: tuple[str, ...] = ("bernoulli", "srs")

#: How a tuned ``lambda`` is used: ``"leave_one_out"`` -- unit ``i`` gets ``lambda_(-i)``,
#: estimated without its own validation term (exactly unbiased under Bernoulli validation);
#: ``"plug_in"`` -- one ``lambda_hat`` for every unit (the PPI++ / ``ppi_py`` estimator).
LambdaMethod = Literal["leave_one_out", "plug_in"]
LAMBDA_METHODS: tuple[str, ...] = ("leave_one_out", "plug_in")

# Relative slack allowed when checking model_total <= total_impressions (warehouse rounding).
_TOTAL_SLACK = 1e-9


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _float_1d(name: str, values: npt.ArrayLike, *, allow_nan: bool = False) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a 1-d array of numbers, got {values!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got an array of shape {arr.shape}")
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if np.any(bad):
        raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} NaN/inf")
    return arr


def _same_length(n: int, **arrays: npt.NDArray[np.generic]) -> None:
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if any(length != n for length in lengths.values()):
        raise ValueError(
            f"inputs: expected arrays of equal length (one entry per sampled unit or draw), "
            f"got {lengths}"
        )


def _in_range(name: str, arr: FloatArray, *, low_open: bool, expected: str) -> None:
    bad = ((arr <= 0.0) if low_open else (arr < 0.0)) | (arr > 1.0)
    if np.any(bad):
        raise ValueError(
            f"{name}: expected values in {expected}, got {arr[bad][:5].tolist()} "
            f"({int(bad.sum())} out of range)"
        )


def _nonnegative(name: str, arr: FloatArray) -> None:
    if np.any(arr < 0.0):
        raise ValueError(f"{name}: expected values >= 0, got minimum {float(arr.min())!r}")


def _positive_total(name: str, value: float) -> float:
    try:
        total = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(total) or total <= 0.0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return total


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not (
        isinstance(confidence, int | float | np.floating) and 0.0 < confidence < 1.0
    ):
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    return float(confidence)


def _interval_function(ci_method: str) -> IntervalFunction:
    try:
        return CI_METHODS[ci_method]
    except (KeyError, TypeError):
        raise ValueError(
            f"ci_method: expected one of {sorted(CI_METHODS)}, got {ci_method!r}"
        ) from None


def _violating_within_impressions(y: FloatArray, x: FloatArray) -> None:
    if np.any(y > x):
        k = int(np.argmax(y > x))
        raise ValueError(
            f"violating_impressions: expected values <= impressions, got {y[k]!r} > {x[k]!r} "
            f"at position {k}"
        )


def _domain_mask(domain: npt.ArrayLike | None, n: int) -> FloatArray:
    if domain is None:
        return np.ones(n, dtype=np.float64)
    d = _float_1d("domain", domain)
    if len(d) != n:
        raise ValueError(f"domain: expected {n} indicators (one per sampled unit), got {len(d)}")
    if not np.all((d == 0.0) | (d == 1.0)):
        raise ValueError("domain: expected 0/1 (or boolean) indicators, got other values")
    return d


def _finite_result(total: float, variance: float, prob_name: str) -> None:
    if not (math.isfinite(total) and math.isfinite(variance)):
        raise ValueError(
            f"{prob_name}: expected probabilities large enough for the expanded values and "
            f"their variance to be finite, got an estimated total {total!r} and variance "
            f"{variance!r}"
        )


def _estimate(
    estimate: float,
    variance: float,
    *,
    n: int,
    n_distinct: int | None,
    n_positive: int,
    confidence: float,
    ci_method: str,
) -> PrevalenceEstimate:
    """Assemble a PrevalenceEstimate; interval and n_eff at ``max(estimate, 0)``."""
    variance = max(float(variance), 0.0)
    interval = CI_METHODS[ci_method]
    at = max(float(estimate), 0.0)
    lower, upper = interval(at, variance, n, confidence)
    ess = effective_sample_size(at, variance, n)
    p = min(at, 1.0)
    deff = None if (variance <= 0.0 or p <= 0.0 or p >= 1.0 or ess <= 0.0) else n / ess
    return PrevalenceEstimate(
        estimate=float(estimate),
        std_error=float(math.sqrt(variance)),
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
# Difference estimator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DifferenceInputs:
    y: FloatArray  # domain-masked violating impressions
    e: FloatArray  # domain-masked residuals y - m
    prob: FloatArray
    total: float
    model_total: float
    n: int


def _difference_inputs(
    violating_impressions: npt.ArrayLike,
    impressions: npt.ArrayLike,
    predicted_prob: npt.ArrayLike,
    prob: npt.ArrayLike,
    prob_name: str,
    total_impressions: float,
    model_total: float,
    domain: npt.ArrayLike | None,
    min_n: int,
) -> _DifferenceInputs:
    y = _float_1d("violating_impressions", violating_impressions)
    x = _float_1d("impressions", impressions)
    q = _float_1d("predicted_prob", predicted_prob)
    p = _float_1d(prob_name, prob)
    n = len(y)
    _same_length(n, violating_impressions=y, impressions=x, predicted_prob=q, **{prob_name: p})
    if n < min_n:
        raise ValueError(
            f"n: expected at least {min_n} sampled units/draws"
            f"{' for a variance estimate' if min_n > 1 else ''}, got {n}"
        )
    _nonnegative("violating_impressions", y)
    _nonnegative("impressions", x)
    _violating_within_impressions(y, x)
    _in_range("predicted_prob", q, low_open=False, expected="[0, 1]")
    _in_range(prob_name, p, low_open=True, expected="(0, 1]")
    total = _positive_total("total_impressions", total_impressions)
    try:
        m_total = float(model_total)
    except (TypeError, ValueError):
        raise ValueError(
            f"model_total: expected a finite number >= 0, got {model_total!r}"
        ) from None
    if isinstance(model_total, bool) or not math.isfinite(m_total) or m_total < 0.0:
        raise ValueError(f"model_total: expected a finite number >= 0, got {model_total!r}")
    if m_total > total * (1.0 + _TOTAL_SLACK):
        raise ValueError(
            f"model_total: expected at most total_impressions = {total!r} "
            f"(M = sum x_i qhat_i <= sum x_i), got {model_total!r}"
        )
    d = _domain_mask(domain, n)
    return _DifferenceInputs(
        y=d * y, e=d * (y - x * q), prob=p, total=total, model_total=m_total, n=n
    )


def difference_prevalence_poisson(
    violating_impressions: npt.ArrayLike,
    impressions: npt.ArrayLike,
    predicted_prob: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    total_impressions: float,
    model_total: float,
    *,
    domain: npt.ArrayLike | None = None,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
) -> PrevalenceEstimate:
    """Difference estimator of prevalence from a Poisson PPS sample (model-assisted HT).

    Estimates ``P = Y / X`` using the auxiliary ``m_i = x_i qhat_i``, with ``qhat_i`` a
    calibrated probability that unit ``i`` violates, known for *every* unit of the population,
    and its population total ``M = sum_U m_i``. One entry per selected unit, with residual
    ``e_i = y_i - m_i``::

        Y_hat = M + sum_S e_i / pi_i                        (difference estimator)
        P_hat = Y_hat / X
        v(Y_hat) = sum_S (1 - pi_i) e_i^2 / pi_i^2,         SE(P_hat) = sqrt(v) / X

    Under any design with inclusion probabilities ``pi_i``, ``E(Y_hat) = M + sum_U e_i = Y``:
    ``Y_hat`` is design-unbiased *whatever* ``qhat`` is (a poor model costs precision, not
    validity). Its variance is the HT variance of the residual total,
    ``V = sum_U (1 - pi_i) e_i^2 / pi_i`` under Poisson sampling, and ``v`` is its unbiased
    estimator (Sarndal, Swensson & Wretman 1992, Section 6.3). It is smaller than the HT
    variance ``sum_U (1 - pi_i) y_i^2 / pi_i`` when ``m`` tracks ``y``. With ``m = 0``
    (``qhat = 0``, ``M = 0``) this is exactly the HT estimator of
    :func:`tsmetrics.sampling.horvitz_thompson_prevalence`.

    Domains: with ``domain`` (indicator ``d_i`` per selected unit, e.g. one surface), the
    domain's ``y`` and ``m`` are ``d_i y_i`` and ``d_i m_i`` and ``total_impressions`` and
    ``model_total`` must be the domain's ``X_d`` and ``M_d``; the estimate is then
    ``P_d = Y_d / X_d``, ``Y_d_hat = M_d + sum_S d_i e_i / pi_i`` with the same variance formula
    on ``d_i e_i`` (units outside the domain contribute zeros; all selected units are kept).

    Parameters
    ----------
    violating_impressions : array_like, shape (n,)
        Per selected unit: its impressions if it violates the policy, else 0.
    impressions : array_like, shape (n,)
        Per selected unit: impressions ``x_i >= violating_impressions``.
    predicted_prob : array_like, shape (n,)
        Per selected unit: the calibrated violation probability ``qhat_i`` in ``[0, 1]`` used
        for ``M``.
    inclusion_prob : array_like, shape (n,)
        Per selected unit: ``pi_i`` in ``(0, 1]``.
    total_impressions : float
        Known ``X > 0`` (``X_d`` with ``domain``).
    model_total : float
        Known ``M = sum_U x_i qhat_i`` over the whole population (``M_d`` with ``domain``),
        ``0 <= M <= X``.
    domain : array_like of bool or 0/1, shape (n,), optional
        Domain indicator per selected unit.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in ``estimation.CI_METHODS``.

    Returns
    -------
    estimation.PrevalenceEstimate
        ``n_draws = n_distinct_units =`` number of selected units (all of them, also with
        ``domain``); ``n_positive_draws`` counts violating units (in the domain). The estimate
        may be negative; the interval is computed at ``max(P_hat, 0)``.

    Raises
    ------
    ValueError
        On arrays of different lengths, an empty sample, non-finite values, ``y_i < 0``,
        ``y_i > x_i``, ``qhat_i`` outside ``[0, 1]``, ``pi_i`` outside ``(0, 1]``, ``X <= 0``,
        ``M`` outside ``[0, X]``, a non-0/1 ``domain``, ``confidence`` outside ``(0, 1)`` or an
        unknown ``ci_method``.

    References
    ----------
    Sarndal, Swensson & Wretman (1992), *Model Assisted Survey Sampling*, Section 6.3 (and
    Chapter 3 for Poisson sampling).
    """
    data = _difference_inputs(
        violating_impressions,
        impressions,
        predicted_prob,
        inclusion_prob,
        "inclusion_prob",
        total_impressions,
        model_total,
        domain,
        min_n=1,
    )
    conf = _check_confidence(confidence)
    _interval_function(ci_method)
    pi = data.prob
    with np.errstate(over="ignore", invalid="ignore"):
        z = data.e / pi
        y_hat = data.model_total + float(z.sum())
        v_total = float(np.sum((1.0 - pi) * z * z))
    _finite_result(y_hat, v_total, "inclusion_prob")
    return _estimate(
        y_hat / data.total,
        v_total / data.total**2,
        n=data.n,
        n_distinct=data.n,
        n_positive=int(np.count_nonzero(data.y > 0.0)),
        confidence=conf,
        ci_method=ci_method,
    )


def difference_prevalence_pps_wr(
    violating_impressions: npt.ArrayLike,
    impressions: npt.ArrayLike,
    predicted_prob: npt.ArrayLike,
    selection_prob: npt.ArrayLike,
    total_impressions: float,
    model_total: float,
    *,
    domain: npt.ArrayLike | None = None,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
) -> PrevalenceEstimate:
    """Difference estimator of prevalence from PPS draws with replacement (model-assisted HH).

    As :func:`difference_prevalence_poisson` with Hansen-Hurwitz expansion. Per draw ``k``
    (a unit drawn twice appears twice), ``e_k = y_k - m_k``, ``m_k = x_k qhat_k`` and
    ``z_k = e_k / p_k``::

        Y_hat = M + (1/n) sum_k z_k
        P_hat = Y_hat / X
        v(Y_hat) = sum_k (z_k - z_bar)^2 / (n (n - 1)),     SE(P_hat) = sqrt(v) / X

    The ``z_k`` are i.i.d. with mean ``sum_U e_i = Y - M``, so ``Y_hat`` is unbiased for ``Y``
    whatever ``qhat`` is, with variance ``V = (1/n) sum_U p_i (e_i / p_i - (Y - M))^2`` (the
    HH variance of the residual total) and ``v`` unbiased for ``V`` (Cochran 1977, 9A;
    Sarndal et al. 1992, Section 6.3). With ``m = 0`` this is exactly
    :func:`tsmetrics.estimation.hansen_hurwitz_prevalence`. ``domain``: as in
    :func:`difference_prevalence_poisson` (``d_k`` per draw; ``X_d``, ``M_d`` given; every
    draw is kept, outside the domain with ``z_k = 0``).

    Parameters
    ----------
    violating_impressions, impressions, predicted_prob : array_like, shape (n,)
        Per draw: ``y_k``, ``x_k >= y_k`` and ``qhat_k`` in ``[0, 1]`` of the drawn unit.
    selection_prob : array_like, shape (n,)
        Per draw: the drawn unit's single-draw probability ``p_k`` in ``(0, 1]``.
    total_impressions : float
        Known ``X > 0`` (``X_d`` with ``domain``).
    model_total : float
        Known ``M = sum_U x_i qhat_i`` (``M_d`` with ``domain``), ``0 <= M <= X``.
    domain : array_like of bool or 0/1, shape (n,), optional
        Domain indicator per draw.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in ``estimation.CI_METHODS``.

    Returns
    -------
    estimation.PrevalenceEstimate
        ``n_draws = n`` (all draws); ``n_distinct_units`` is ``None``. The estimate may be
        negative; the interval is computed at ``max(P_hat, 0)``.

    Raises
    ------
    ValueError
        As :func:`difference_prevalence_poisson`, and on fewer than 2 draws.

    References
    ----------
    Hansen & Hurwitz (1943); Cochran (1977), *Sampling Techniques*, 3rd ed., Section 9A;
    Sarndal, Swensson & Wretman (1992), Section 6.3.
    """
    data = _difference_inputs(
        violating_impressions,
        impressions,
        predicted_prob,
        selection_prob,
        "selection_prob",
        total_impressions,
        model_total,
        domain,
        min_n=2,
    )
    conf = _check_confidence(confidence)
    _interval_function(ci_method)
    n = data.n
    with np.errstate(over="ignore", invalid="ignore"):
        z = data.e / data.prob
        z_bar = float(z.mean())
        y_hat = data.model_total + z_bar
        v_total = float(np.sum((z - z_bar) ** 2)) / (n * (n - 1))
    _finite_result(y_hat, v_total, "selection_prob")
    return _estimate(
        y_hat / data.total,
        v_total / data.total**2,
        n=n,
        n_distinct=None,
        n_positive=int(np.count_nonzero(data.y > 0.0)),
        confidence=conf,
        ci_method=ci_method,
    )


# --------------------------------------------------------------------------------------------
# PPI++ label-error correction (two-phase)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelCorrectedEstimate:
    """LLM-only, human-only and PPI++-corrected prevalence estimates from one two-phase sample.

    Attributes
    ----------
    corrected : estimation.PrevalenceEstimate
        The prediction-powered estimate ``Y_hat(lambda) / X`` (unbiased for fixed ``lambda``).
        ``n_draws`` is the number of validated units (draws) ``n_v``: human labels, the only
        truth, exist for those alone, so the interval methods that use the sample size (the
        ``*_capped`` ones and the fallback when ``P_hat <= 0`` or ``v == 0``) must not count
        the LLM-only units. ``n_distinct_units`` is the phase-1 sample size ``n`` (Poisson) or
        ``None`` (PPS-WR); ``n_positive_draws`` counts the validated units (draws) with a
        positive human label and impressions.
    naive : estimation.PrevalenceEstimate
        The LLM-only estimate: HT (Poisson) or HH (PPS-WR) on ``x_i f_i`` over the whole
        sample (``n_draws = n``). Biased by the LLM's errors: its expectation is
        ``sum_U x_i f_i / X``, not ``P``.
    human_only : estimation.PrevalenceEstimate
        The two-phase estimate from human labels alone (``lambda = 0``); ``n_draws`` is
        ``n_v``.
    lam : float
        The plug-in ``lambda_hat`` (tuned and clipped to ``[0, 1]``), or the given ``lam``.
    lam_tuned : bool
        Whether ``lam`` was estimated (power tuning) rather than given.
    lam_method : str
        ``"leave_one_out"`` or ``"plug_in"`` (how the tuned value was used), ``"fixed"`` when
        ``lam`` was given.
    n_validated : int
        Number of validated units (draws) ``n_v``.
    validation_design : str
        ``"bernoulli"`` or ``"srs"`` (see :data:`VALIDATION_DESIGNS`).
    """

    corrected: PrevalenceEstimate
    naive: PrevalenceEstimate
    human_only: PrevalenceEstimate
    lam: float
    lam_tuned: bool
    lam_method: str
    n_validated: int
    validation_design: str


@dataclass(frozen=True)
class _PpiInputs:
    a_check: FloatArray  # x h / prob (0 where not validated)
    b_check: FloatArray  # x f / prob
    b: FloatArray  # x f (violating impressions according to the LLM)
    prob: FloatArray
    validated: BoolArray
    r: FloatArray  # phase-2 inclusion probability of every sampled unit / draw
    total: float
    n: int
    n_v: int
    n_positive: int  # validated with x h > 0


def _ppi_inputs(
    impressions: npt.ArrayLike,
    llm_label: npt.ArrayLike,
    human_label: npt.ArrayLike,
    validated: npt.ArrayLike,
    prob: npt.ArrayLike,
    prob_name: str,
    total_impressions: float,
    validation_prob: npt.ArrayLike | float | None,
    validation_design: str,
    min_n: int,
) -> _PpiInputs:
    if validation_design not in VALIDATION_DESIGNS:
        raise ValueError(
            f"validation_design: expected one of {list(VALIDATION_DESIGNS)}, "
            f"got {validation_design!r}"
        )
    x = _float_1d("impressions", impressions)
    f = _float_1d("llm_label", llm_label)
    h_raw = _float_1d("human_label", human_label, allow_nan=True)
    v_raw = _float_1d("validated", validated)
    p = _float_1d(prob_name, prob)
    n = len(x)
    _same_length(
        n, impressions=x, llm_label=f, human_label=h_raw, validated=v_raw, **{prob_name: p}
    )
    if n < min_n:
        raise ValueError(f"n: expected at least {min_n} sampled units/draws, got {n}")
    _nonnegative("impressions", x)
    _in_range("llm_label", f, low_open=False, expected="[0, 1]")
    _in_range(prob_name, p, low_open=True, expected="(0, 1]")
    if not np.all((v_raw == 0.0) | (v_raw == 1.0)):
        raise ValueError("validated: expected 0/1 (or boolean) indicators, got other values")
    is_v = v_raw == 1.0
    h_v = h_raw[is_v]
    if not np.all((h_v == 0.0) | (h_v == 1.0)):
        raise ValueError(
            "human_label: expected 0/1 (or boolean) labels for every validated entry, got "
            f"{int(np.sum((h_v != 0.0) & (h_v != 1.0)))} other values (NaN or not 0/1)"
        )
    h = np.where(is_v, np.nan_to_num(h_raw, nan=0.0), 0.0)
    n_v = int(is_v.sum())
    if validation_design == "bernoulli":
        if n_v < 1:
            raise ValueError("validated: expected at least 1 validated unit/draw, got 0")
        if validation_prob is None:
            raise ValueError(
                "validation_prob: expected the phase-2 probability r_i of every sampled unit "
                "for validation_design='bernoulli', got None"
            )
        if np.ndim(validation_prob) == 0:  # one probability for every unit
            r = _float_1d("validation_prob", np.repeat(np.asarray([validation_prob]), n))
        else:
            r = _float_1d("validation_prob", validation_prob)
            _same_length(n, impressions=x, validation_prob=r)
        _in_range("validation_prob", r, low_open=True, expected="(0, 1]")
    else:
        if validation_prob is not None:
            raise ValueError(
                "validation_prob: expected None for validation_design='srs' (the phase-2 "
                f"probability is n_v / n), got {validation_prob!r}"
            )
        if n_v < 2:
            raise ValueError(
                f"validated: expected at least 2 validated units/draws for "
                f"validation_design='srs', got {n_v}"
            )
        r = np.full(n, n_v / n, dtype=np.float64)
    total = _positive_total("total_impressions", total_impressions)
    with np.errstate(over="ignore", invalid="ignore"):
        a_check = x * h / p
        b_check = x * f / p
    if not (np.all(np.isfinite(a_check)) and np.all(np.isfinite(b_check))):
        raise ValueError(
            f"{prob_name}: expected probabilities large enough for x / {prob_name} to be finite"
        )
    return _PpiInputs(
        a_check=a_check,
        b_check=b_check,
        b=x * f,
        prob=p,
        validated=is_v,
        r=r,
        total=total,
        n=n,
        n_v=n_v,
        n_positive=int(np.count_nonzero(is_v & (x * h > 0.0))),
    )


def _check_lam(lam: float | None) -> float | None:
    if lam is None:
        return None
    if isinstance(lam, bool) or not isinstance(lam, int | float | np.integer | np.floating):
        raise ValueError(f"lam: expected a finite number or None (tune), got {lam!r}")
    if not math.isfinite(float(lam)):
        raise ValueError(f"lam: expected a finite number or None (tune), got {lam!r}")
    return float(lam)


@dataclass(frozen=True)
class _Lambdas:
    """The plug-in ``lambda_hat``, the per-unit values used, and ``coupling``: the estimated
    phase-2 variance that the per-unit leave-one-out values add through their dependence on the
    other validated units (:func:`_tuned_lambdas`; 0 for a fixed, plug-in or clipped
    ``lambda`` and for SRS validation)."""

    plug_in: float
    per_unit: FloatArray
    coupling: float = 0.0


def _tuned_lambdas(data: _PpiInputs, validation_design: str, lam_method: str) -> _Lambdas:
    """Power-tuned ``lambda``: the plug-in value, the per-unit values actually used and, for
    leave-one-out under Bernoulli validation, the coupling variance.

    The phase-2 conditional variance is a quadratic form ``Q(a' - lambda b') = Q(a') - 2 lambda
    Q(a', b') + lambda^2 Q(b')`` in the expanded values. ``Q(b')`` involves LLM labels only and
    is computed exactly on the whole phase-1 sample; ``Q(a', b')`` is estimated unbiasedly from
    the validation subsample. Plug-in: ``lambda_hat = Q_hat(a', b') / Q(b')`` clipped to
    ``[0, 1]``; 0 when ``Q(b') == 0`` (no LLM positive, or every sampled unit validated: then
    ``lambda`` has no effect). Leave-one-out: unit ``i`` uses ``lambda_(-i)``, the same with
    unit ``i``'s own term removed from ``Q_hat(a', b')``.

    Coupling (Bernoulli, leave-one-out). With ``e_i = I_i / r_i - 1`` (``Var e_i = (1 - r_i) /
    r_i``), ``Y_hat - sum_s a'_i = sum_s e_i (a'_i - lambda_(-i) b'_i)`` and
    ``lambda_(-i) = sum_{k != i} (1 + e_k) c_k`` with ``c_k = (1 - r_k) a'_k b'_k / (r_k Q(b'))``.
    As ``lambda_(-i)`` does not involve ``e_i``, the variance estimator with the realised
    ``lambda_(-i)`` is unbiased for ``sum_s Var(e_i) E(a'_i - lambda_(-i) b'_i)^2`` -- the
    variability of the tuned ``lambda`` included -- and the exact conditional variance adds only
    the pairs ``i != j`` in which ``e_j`` enters ``lambda_(-i)`` and ``e_i`` enters
    ``lambda_(-j)``::

        C = sum_{i != j} g_i g_j = (sum_s g_i)^2 - sum_s g_i^2,   g_i = Var(e_i) b'_i c_i

    estimated unbiasedly by ``(sum_v g_i / r_i)^2 - sum_v (g_i / r_i)^2`` (``g_i`` needs
    ``a'_i``, known on ``v``). Exact while no ``lambda_(-i)`` is clipped; 0 when the plug-in
    value is clipped.
    """
    n = data.n
    v = data.validated
    a_v, b_v = data.a_check[v], data.b_check[v]
    zero = _Lambdas(0.0, np.zeros(n, dtype=np.float64))
    loo = np.zeros(n, dtype=np.float64)  # Q_hat(a', b') without unit i (filled below)
    if validation_design == "bernoulli":
        r = data.r
        terms = (1.0 - r[v]) * a_v * b_v / r[v] ** 2
        q_ab = float(np.sum(terms))
        q_bb = float(np.sum((1.0 - r) * data.b_check**2 / r))
        loo[:] = q_ab
        loo[v] = q_ab - terms
    else:
        n_v = data.n_v
        if n_v >= n:
            return zero
        q_ab = float(np.sum((a_v - a_v.mean()) * (b_v - b_v.mean()))) / (n_v - 1)
        q_bb = float(np.var(data.b_check, ddof=1))
        loo[:] = q_ab
        if n_v >= 3:  # covariance of the n_v - 1 other validated units
            s_a, s_b, s_ab = float(a_v.sum()), float(b_v.sum()), float(np.sum(a_v * b_v))
            rest = n_v - 1
            loo[v] = (s_ab - a_v * b_v - (s_a - a_v) * (s_b - b_v) / rest) / (rest - 1)
        else:
            loo[v] = 0.0
    if not (q_bb > 0.0 and math.isfinite(q_bb) and math.isfinite(q_ab)):
        return zero
    raw = q_ab / q_bb
    lam_hat = min(max(raw, 0.0), 1.0)
    if lam_method == "plug_in":
        return _Lambdas(lam_hat, np.full(n, lam_hat, dtype=np.float64))
    coupling = 0.0
    if validation_design == "bernoulli" and 0.0 < raw < 1.0:
        r_v = data.r[v]
        g_over_r = (1.0 - r_v) ** 2 * a_v * b_v**2 / (r_v**3 * q_bb)
        coupling = float(np.sum(g_over_r)) ** 2 - float(np.sum(g_over_r**2))
    return _Lambdas(lam_hat, np.clip(loo / q_bb, 0.0, 1.0), coupling)


def _ppi_poisson_total(data: _PpiInputs, lam: FloatArray, design: str) -> tuple[float, float]:
    """Two-phase estimate of ``Y`` and its variance estimate, Poisson phase 1 (``lam`` per unit)."""
    v = data.validated
    pi_v, r_v = data.prob[v], data.r[v]
    a_v, b_v = data.a_check[v], data.b_check[v]
    u_v = a_v - lam[v] * b_v
    n, n_v = data.n, data.n_v
    imputed = float(np.sum(lam * data.b_check))
    with np.errstate(over="ignore", invalid="ignore"):
        if design == "bernoulli":
            total = imputed + float(np.sum(u_v / r_v))
            variance = float(np.sum((1.0 - pi_v) * a_v**2 / r_v + (1.0 - r_v) * u_v**2 / r_v**2))
        else:
            frac = n_v / n
            total = imputed + float(u_v.sum()) / frac
            variance = (
                float(np.sum((1.0 - pi_v) * a_v**2)) / frac
                + n * n * (1.0 - frac) * float(np.var(u_v, ddof=1)) / n_v
            )
    return total, variance


def _ppi_pps_wr_total(data: _PpiInputs, lam: FloatArray, design: str) -> tuple[float, float]:
    """Two-phase estimate of ``Y`` and its variance estimate, PPS-WR phase 1 (``lam`` per draw)."""
    v = data.validated
    n, n_v = data.n, data.n_v
    with np.errstate(over="ignore", invalid="ignore"):
        if design == "bernoulli":
            u = data.a_check - lam * data.b_check
            z = lam * data.b_check + np.where(v, u / data.r, 0.0)
            total = float(z.mean())
            variance = float(np.var(z, ddof=1)) / n
        else:
            a_v, b_v = data.a_check[v], data.b_check[v]
            u_v = a_v - lam[v] * b_v
            frac = n_v / n
            total = float(np.mean(lam * data.b_check)) + float(u_v.mean())
            variance = (
                float(np.var(a_v, ddof=1)) / n + (1.0 - frac) * float(np.var(u_v, ddof=1)) / n_v
            )
    return total, variance


def _lambdas(
    data: _PpiInputs, lam: float | None, validation_design: str, lam_method: str
) -> _Lambdas:
    if lam_method not in LAMBDA_METHODS:
        raise ValueError(f"lam_method: expected one of {list(LAMBDA_METHODS)}, got {lam_method!r}")
    fixed = _check_lam(lam)
    if fixed is None:
        return _tuned_lambdas(data, validation_design, lam_method)
    return _Lambdas(fixed, np.full(data.n, fixed, dtype=np.float64))


def ppi_prevalence_poisson(
    impressions: npt.ArrayLike,
    llm_label: npt.ArrayLike,
    human_label: npt.ArrayLike,
    validated: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    total_impressions: float,
    *,
    validation_prob: npt.ArrayLike | float | None = None,
    validation_design: ValidationDesign = "bernoulli",
    lam: float | None = None,
    lam_method: LambdaMethod = "leave_one_out",
    lambda_variance: bool = True,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
) -> LabelCorrectedEstimate:
    """PPI++ (prediction-powered, power-tuned) prevalence from a two-phase Poisson PPS sample.

    Phase 1: Poisson PPS sample ``s`` (inclusion probability ``pi_i``); every sampled unit has
    an LLM label ``f_i``. Phase 2: a random validation subsample ``v`` of ``s`` with human
    labels ``h_i`` (the truth); ``r_i`` is the phase-2 inclusion probability given ``s``. With
    ``a_i = x_i h_i`` (true violating impressions), ``b_i = x_i f_i`` (LLM's), the expanded
    values ``a'_i = a_i / pi_i``, ``b'_i = b_i / pi_i`` and ``u'_i = a'_i - lambda b'_i``::

        Y_hat(lambda) = lambda HT_1(x f) + HT_2(x h - lambda x f)
                      = lambda sum_s b'_i + sum_v u'_i / r_i
        P_hat = Y_hat / X

    ``E(Y_hat | s) = sum_s a'_i`` (the HT estimator if every sampled unit had a human label),
    so ``Y_hat(lambda)`` is design-unbiased for ``Y`` for every fixed ``lambda``: the LLM's
    errors are corrected on the validation subsample. ``lambda = 0`` is the human-only
    two-phase estimator ``sum_v a'_i / r_i`` (Bernoulli phase 2: the HT estimator with
    inclusion probabilities ``pi_i r_i``); ``lambda = 1`` is the original PPI estimator.

    Variance (two-phase, Sarndal et al. 1992, Section 9.3: phase-1 variance of the
    phase-2-expanded quantity plus the expected phase-2 variance)::

        V = V_1(sum_s a'_i) + E_1 V_2(Y_hat | s)
        V_1 = sum_U (1 - pi_i) a_i^2 / pi_i                     (Poisson; free of lambda)

    * ``validation_design="bernoulli"`` (unit ``i`` of ``s`` validated independently with
      probability ``r_i``)::

          V_2(Y_hat | s) = sum_s (1 - r_i) u'_i^2 / r_i
          v = sum_v [ (1 - pi_i) a'_i^2 / r_i + (1 - r_i) u'_i^2 / r_i^2 ]

      (each term of ``v`` is the ``1 / r_i``-expansion over ``v`` of the corresponding
      ``s``-level unbiased estimator, hence unbiased for ``V``; at ``lambda = 0`` it equals
      the HT variance estimator with probabilities ``pi_i r_i``.)
    * ``validation_design="srs"`` (``n_v`` of the ``n`` sampled units by simple random
      sampling without replacement, ``r = n_v / n``; ``S^2_s`` is the variance with divisor
      ``n - 1`` over ``s``, ``s^2_v`` the one with divisor ``n_v - 1`` over ``v``)::

          Y_hat = lambda sum_s b'_i + (n / n_v) sum_v u'_i
          V_2(Y_hat | s) = n^2 (1 - n_v / n) S^2_s(u') / n_v
          v = (n / n_v) sum_v (1 - pi_i) a'_i^2 + n^2 (1 - n_v / n) s^2_v(u') / n_v

    Power tuning (PPI++): ``V_1`` does not depend on ``lambda`` and ``V_2`` is a quadratic
    ``Q(a') - 2 lambda Q(a', b') + lambda^2 Q(b')``; its minimiser ``Q(a', b') / Q(b')`` is
    estimated with ``Q(b')`` computed exactly on ``s`` (the LLM label is known for every
    sampled unit -- the analogue of PPI++'s use of all predictions) and ``Q(a', b')`` estimated
    on ``v``::

        bernoulli: lambda_hat = sum_v (1 - r_i) a'_i b'_i / r_i^2  /  sum_s (1 - r_i) b'_i^2 / r_i
        srs:       lambda_hat = s_v(a', b')  /  S^2_s(b')

    clipped to ``[0, 1]`` (0 when the denominator is 0). In PPI's equal-probability setting this
    is the PPI++ rule ``Cov(Y, f) / ((1 + n/N) Var(f))`` once PPI's unlabeled set is taken to be
    the sampled units that were not validated (see the tests and the methods doc). As
    ``lambda = 0`` is allowed, the tuned estimator's variance is asymptotically never above the
    human-only one.

    Using ``lambda_hat`` for every unit (``lam_method="plug_in"``, the PPI++ estimator) leaves
    an ``O(1/n_v)`` bias, because ``lambda_hat`` is correlated with the validation subsample it
    corrects (-2.6% of ``P``, 3.4 simulation SEs, with 400 validated units and an accurate
    LLM in the tests' simulation). The default ``lam_method="leave_one_out"`` gives unit ``i``
    the value ``lambda_(-i)`` computed without unit ``i``'s own term of ``Q_hat(a', b')``
    (and clipped); as ``lambda_(-i)`` does not depend on whether unit ``i`` was validated, each
    term of ``Y_hat`` has conditional expectation ``a'_i`` and the estimator is *exactly* unbiased
    under Bernoulli validation (under SRS validation it is not exact: both variants have an
    ``O(1/n_v)`` bias there, of opposite signs in the tests' tiny enumerations).
    The variance formula is then applied with the per-unit ``lambda_i``. Because
    ``lambda_(-i)`` does not involve unit ``i``'s own validation indicator, each squared
    residual ``(a'_i - lambda_(-i) b'_i)^2`` already carries the variability of the tuned
    ``lambda``; what the formula misses is the coupling between units (``e_j`` moves
    ``lambda_(-i)`` while ``e_i`` moves ``lambda_(-j)``), a sum over pairs that is added by
    default (``lambda_variance=True``, Bernoulli validation; formula in ``_tuned_lambdas``).
    With it ``E_2(v)`` equals the exact conditional variance (checked by enumeration in the
    tests while no ``lambda_(-i)`` is clipped); PPI++ and ``ppi_py`` treat the tuned
    ``lambda`` as fixed. In the design study (2% prevalence, 25% validation) the coupling
    raises the mean variance estimate from 0.93 to 0.97 of the estimator's simulated variance.
    The plug-in and SRS-validation variants get no such term. The ``lam``
    attribute of the result is the plug-in ``lambda_hat``.

    The naive LLM-only estimate is the HT estimator on ``b_i`` (see
    :func:`tsmetrics.sampling.horvitz_thompson_prevalence`), whose expectation is
    ``sum_U x_i f_i / X``, not ``P``.

    Parameters
    ----------
    impressions : array_like, shape (n,)
        Per sampled unit (draw): impressions ``x_i >= 0``.
    llm_label : array_like, shape (n,)
        Per sampled unit (draw): LLM label ``f_i``, 0/1 (a probability in ``[0, 1]`` is also
        accepted).
    human_label : array_like, shape (n,)
        Per sampled unit (draw): human (gold) label ``h_i`` in ``{0, 1}`` for validated
        entries; ignored (may be NaN) elsewhere.
    validated : array_like of bool or 0/1, shape (n,)
        Whether the unit (draw) was selected into the validation subsample. Only the random
        phase-2 design may decide this: a selected unit whose human label is missing is
        *non-response*, which these estimators do not handle.
    inclusion_prob : array_like, shape (n,)
        Per sampled unit: phase-1 inclusion probability ``pi_i`` in ``(0, 1]``.
    total_impressions : float
        Known total impressions ``X > 0`` of the population.
    validation_prob : float or array_like, shape (n,), optional
        ``validation_design="bernoulli"``: the phase-2 inclusion probability ``r_i`` in
        ``(0, 1]`` of every sampled unit (draw), or one number for all. Must be ``None`` for
        ``"srs"`` (``r = n_v / n``).
    validation_design : {"bernoulli", "srs"}, default "bernoulli"
        Design of the validation subsample (see :data:`VALIDATION_DESIGNS`).
    lam : float, optional
        Fixed ``lambda`` (any finite number; the estimator is unbiased for every fixed value).
        ``None`` (default) tunes it (PPI++ power tuning, clipped to ``[0, 1]``).
    lam_method : {"leave_one_out", "plug_in"}, default "leave_one_out"
        How a tuned ``lambda`` is used (see :data:`LAMBDA_METHODS`); ignored with ``lam``.
    lambda_variance : bool, default True
        Add the coupling variance of the leave-one-out ``lambda`` under Bernoulli validation
        (see above; no effect with a fixed ``lam``, ``lam_method="plug_in"`` or SRS
        validation). ``False`` treats the tuned ``lambda`` as fixed, as PPI++ does.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in ``estimation.CI_METHODS``.

    Returns
    -------
    LabelCorrectedEstimate
        ``corrected``, ``naive``, ``human_only`` side by side, and ``lam``. Estimates may be
        negative; intervals are computed at ``max(P_hat, 0)``.

    Raises
    ------
    ValueError
        On arrays of different lengths, an empty sample, non-finite values, negative impressions,
        ``llm_label`` outside ``[0, 1]``, a validated entry whose human label is not 0/1,
        non-0/1 ``validated``, probabilities outside ``(0, 1]``, a missing (bernoulli) or
        superfluous (srs) ``validation_prob``, no validated unit (fewer than 2 for srs),
        ``X <= 0``, a non-finite ``lam``, ``confidence`` outside ``(0, 1)`` or an unknown
        ``ci_method`` / ``validation_design`` / ``lam_method``.

    References
    ----------
    Angelopoulos, Bates, Fannjiang, Jordan & Zrnic (2023), *Science* 382, 669-674;
    Angelopoulos, Duchi & Zrnic (2023), PPI++, arXiv:2311.01453; Sarndal, Swensson & Wretman
    (1992), *Model Assisted Survey Sampling*, Section 9.3.
    """
    data = _ppi_inputs(
        impressions,
        llm_label,
        human_label,
        validated,
        inclusion_prob,
        "inclusion_prob",
        total_impressions,
        validation_prob,
        validation_design,
        min_n=1,
    )
    conf = _check_confidence(confidence)
    _interval_function(ci_method)
    lambdas = _lambdas(data, lam, validation_design, lam_method)
    lam_used = lambdas.plug_in
    total_c, var_c = _ppi_poisson_total(data, lambdas.per_unit, validation_design)
    if lambda_variance:
        var_c += lambdas.coupling
    total_h, var_h = _ppi_poisson_total(data, np.zeros(data.n), validation_design)
    _finite_result(total_c, var_c, "inclusion_prob")
    _finite_result(total_h, var_h, "inclusion_prob")
    x_total = data.total
    corrected = _estimate(
        total_c / x_total,
        var_c / x_total**2,
        n=data.n_v,
        n_distinct=data.n,
        n_positive=data.n_positive,
        confidence=conf,
        ci_method=ci_method,
    )
    human_only = _estimate(
        total_h / x_total,
        var_h / x_total**2,
        n=data.n_v,
        n_distinct=data.n_v,
        n_positive=data.n_positive,
        confidence=conf,
        ci_method=ci_method,
    )
    naive = horvitz_thompson_prevalence(
        data.b, data.prob, x_total, confidence=conf, ci_method=ci_method
    )
    return LabelCorrectedEstimate(
        corrected=corrected,
        naive=naive,
        human_only=human_only,
        lam=float(lam_used),
        lam_tuned=lam is None,
        lam_method=lam_method if lam is None else "fixed",
        n_validated=data.n_v,
        validation_design=validation_design,
    )


def ppi_prevalence_pps_wr(
    impressions: npt.ArrayLike,
    llm_label: npt.ArrayLike,
    human_label: npt.ArrayLike,
    validated: npt.ArrayLike,
    selection_prob: npt.ArrayLike,
    total_impressions: float,
    *,
    validation_prob: npt.ArrayLike | float | None = None,
    validation_design: ValidationDesign = "bernoulli",
    lam: float | None = None,
    lam_method: LambdaMethod = "leave_one_out",
    lambda_variance: bool = True,
    confidence: float = 0.95,
    ci_method: str = "wilson_kg",
) -> LabelCorrectedEstimate:
    """PPI++ prevalence from PPS draws with replacement and a validation subsample of draws.

    Draw-level analogue of :func:`ppi_prevalence_poisson`. Phase 1: ``n`` PPS draws with
    replacement (single-draw probability ``p_k``), each with an LLM label. Phase 2: a random
    subsample ``v`` of the *draws* gets human labels (a unit drawn twice is two draws; each
    draw's validation is decided by the phase-2 design, not by the unit). With
    ``a'_k = x_k h_k / p_k``, ``b'_k = x_k f_k / p_k`` and ``u'_k = a'_k - lambda b'_k``:

    * ``validation_design="bernoulli"`` (draw ``k`` validated independently with probability
      ``r_k``, ``I_k`` its indicator)::

          z_k = lambda b'_k + I_k u'_k / r_k
          Y_hat(lambda) = (1/n) sum_k z_k            (= lambda HH_1(x f) + HH_2(x h - lambda x f))
          v = sum_k (z_k - z_bar)^2 / (n (n - 1))

      The pairs (draw, ``I_k``) are i.i.d., so the ``z_k`` are i.i.d. with mean ``Y`` and
      variance ``sum_U p_i (a_i/p_i - Y)^2 + sum_U p_i (1 - r_i) u_i^2 / (p_i^2 r_i)``: the
      two-phase decomposition ``V_1 + E V_2`` (Sarndal et al. 1992, Section 9.3) with the HH
      phase-1 variance; ``v`` is unbiased for ``V(Y_hat)``.
    * ``validation_design="srs"`` (``n_v`` of the ``n`` draws by SRS without replacement)::

          Y_hat(lambda) = lambda (1/n) sum_k b'_k + (1/n_v) sum_v u'_k
          v = s^2_v(a') / n + (1 - n_v / n) s^2_v(u') / n_v

      (``V_1 = sigma^2(a') / n`` of the HH estimator of the full-label sample, estimated by
      ``s^2_v(a')``, unbiased for it as ``v`` is an SRS of i.i.d. draws; the second term is
      the SRS variance of the phase-2 mean of ``u'``). At ``lambda = 0`` this is the HH
      estimator on the ``n_v`` validated draws, with its variance estimator.

    Power tuning as in :func:`ppi_prevalence_poisson` with ``p_k`` in place of ``pi_i``
    (bernoulli: ``lambda_hat = sum_v (1 - r_k) a'_k b'_k / r_k^2 / sum_k (1 - r_k) b'_k^2 /
    r_k``; srs: ``s_v(a', b') / S^2(b')`` over all draws), clipped to ``[0, 1]``, used per draw
    as leave-one-out ``lambda_(-k)`` by default (exactly unbiased under Bernoulli validation,
    as the ``z_k`` terms' conditional expectations are ``a'_k``) or as one plug-in value. The naive
    estimate is :func:`tsmetrics.estimation.hansen_hurwitz_prevalence` on ``x_k f_k``.

    Parameters
    ----------
    impressions : array_like, shape (n,)
        Per sampled unit (draw): impressions ``x_i >= 0``.
    llm_label : array_like, shape (n,)
        Per sampled unit (draw): LLM label ``f_i``, 0/1 (a probability in ``[0, 1]`` is also
        accepted).
    human_label : array_like, shape (n,)
        Per sampled unit (draw): human (gold) label ``h_i`` in ``{0, 1}`` for validated
        entries; ignored (may be NaN) elsewhere.
    validated : array_like of bool or 0/1, shape (n,)
        Whether the unit (draw) was selected into the validation subsample. Only the random
        phase-2 design may decide this: a selected unit whose human label is missing is
        *non-response*, which these estimators do not handle.
    selection_prob : array_like, shape (n,)
        Per draw: the drawn unit's single-draw probability ``p_k`` in ``(0, 1]``.
    total_impressions : float
        Known total impressions ``X > 0`` of the population.
    validation_prob : float or array_like, shape (n,), optional
        ``validation_design="bernoulli"``: the phase-2 inclusion probability ``r_i`` in
        ``(0, 1]`` of every sampled unit (draw), or one number for all. Must be ``None`` for
        ``"srs"`` (``r = n_v / n``).
    validation_design : {"bernoulli", "srs"}, default "bernoulli"
        Design of the validation subsample (see :data:`VALIDATION_DESIGNS`).
    lam : float, optional
        Fixed ``lambda`` (any finite number; the estimator is unbiased for every fixed value).
        ``None`` (default) tunes it (PPI++ power tuning, clipped to ``[0, 1]``).
    lam_method : {"leave_one_out", "plug_in"}, default "leave_one_out"
        How a tuned ``lambda`` is used (see :data:`LAMBDA_METHODS`); ignored with ``lam``.
    lambda_variance : bool, default True
        Add the coupling variance of the leave-one-out ``lambda`` under Bernoulli validation
        (as in :func:`ppi_prevalence_poisson`, over ``n^2`` for the mean of the draws; no effect
        with a fixed ``lam``, ``lam_method="plug_in"`` or SRS validation). ``False`` treats the
        tuned ``lambda`` as fixed, as PPI++ does.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    ci_method : str, default "wilson_kg"
        Name of a method in ``estimation.CI_METHODS``.

    Returns
    -------
    LabelCorrectedEstimate
        ``corrected``, ``naive``, ``human_only`` side by side, and ``lam``. Estimates may be
        negative; intervals are computed at ``max(P_hat, 0)``.

    Raises
    ------
    ValueError
        On arrays of different lengths, fewer than 2 draws, non-finite values, negative impressions,
        ``llm_label`` outside ``[0, 1]``, a validated entry whose human label is not 0/1,
        non-0/1 ``validated``, probabilities outside ``(0, 1]``, a missing (bernoulli) or
        superfluous (srs) ``validation_prob``, no validated unit (fewer than 2 for srs),
        ``X <= 0``, a non-finite ``lam``, ``confidence`` outside ``(0, 1)`` or an unknown
        ``ci_method`` / ``validation_design`` / ``lam_method``.

    References
    ----------
    Angelopoulos, Bates, Fannjiang, Jordan & Zrnic (2023), *Science* 382, 669-674;
    Angelopoulos, Duchi & Zrnic (2023), PPI++, arXiv:2311.01453; Sarndal, Swensson & Wretman
    (1992), *Model Assisted Survey Sampling*, Section 9.3.
    """
    data = _ppi_inputs(
        impressions,
        llm_label,
        human_label,
        validated,
        selection_prob,
        "selection_prob",
        total_impressions,
        validation_prob,
        validation_design,
        min_n=2,
    )
    conf = _check_confidence(confidence)
    _interval_function(ci_method)
    lambdas = _lambdas(data, lam, validation_design, lam_method)
    lam_used = lambdas.plug_in
    total_c, var_c = _ppi_pps_wr_total(data, lambdas.per_unit, validation_design)
    if lambda_variance:
        var_c += lambdas.coupling / data.n**2  # Y_hat is the mean of the n draws' z_k
    total_h, var_h = _ppi_pps_wr_total(data, np.zeros(data.n), validation_design)
    _finite_result(total_c, var_c, "selection_prob")
    _finite_result(total_h, var_h, "selection_prob")
    x_total = data.total
    corrected = _estimate(
        total_c / x_total,
        var_c / x_total**2,
        n=data.n_v,
        n_distinct=None,
        n_positive=data.n_positive,
        confidence=conf,
        ci_method=ci_method,
    )
    human_only = _estimate(
        total_h / x_total,
        var_h / x_total**2,
        n=data.n_v,
        n_distinct=None,
        n_positive=data.n_positive,
        confidence=conf,
        ci_method=ci_method,
    )
    naive = hansen_hurwitz_prevalence(
        data.b, data.prob, x_total, confidence=conf, ci_method=ci_method
    )
    return LabelCorrectedEstimate(
        corrected=corrected,
        naive=naive,
        human_only=human_only,
        lam=float(lam_used),
        lam_tuned=lam is None,
        lam_method=lam_method if lam is None else "fixed",
        n_validated=data.n_v,
        validation_design=validation_design,
    )
