"""Horvitz-Thompson totals and their variance estimators for PPS samples without replacement.

What is estimated
-----------------
The population total ``Y = sum_U y_i`` (for tsmetrics: the day's violating impressions, so that
the prevalence is ``Y / X`` with ``X`` known) from a sample ``s`` of ``n`` distinct units drawn
without replacement with inclusion probabilities ``pi_i`` (e.g. proportional to size), by the
Horvitz-Thompson (HT) estimator::

    Y_hat = sum_s x_i,    x_i = y_i / pi_i      ("x check": the weighted observation).

Its variance is estimated by a quadratic form in the ``x_i``. Writing, as R's ``survey`` package
does (``pps`` vignette, Lumley), the weighted covariance of the sample indicators::

    D_ij = 1 - pi_i pi_j / pi_ij   (i != j),     D_ii = 1 - pi_i,

the two unbiased estimators of ``V(Y_hat)`` given the joint inclusion probabilities ``pi_ij`` are::

    v_HT = sum_{i, j in s} D_ij x_i x_j                          (Horvitz-Thompson)
    v_YG = -1/2 sum_{i != j in s} D_ij (x_i - x_j)^2              (Yates-Grundy-Sen)
         = v_HT - sum_i x_i^2 sum_j D_ij

(``v_YG`` is unbiased for fixed-size designs only and non-negative when ``pi_i pi_j >= pi_ij``).
When the ``pi_ij`` are unknown, the module offers the approximations of R ``survey``:

* :func:`brewer_variance` -- ``svydesign(ids=~1, fpc=~pi, pps="brewer")``::

      v_Br = n/(n-1) sum_s (1 - pi_i) (x_i - xbar)^2,   xbar = Y_hat / n

  (the with-replacement form with each unit's term multiplied by ``1 - pi_i``; "Brewer's
  approximation for PPS without replacement, option 2 of those described by Berger (2004)" in
  survey's ``svydesign`` documentation; Brewer 2002, Chapter 9; the vignette's "Hajek type").
* :func:`hartley_rao_variance` -- ``pps=HR(sum(pi^2)/n)``: the truncated Hartley & Rao (1962)
  approximation ``D_ij = 1 - (n - pi_i - pi_j + sum_U pi_k^2 / n) / (n - 1)``; with
  ``sum_pi_squared=None`` the population sum is estimated by ``sum_s pi_k`` (``pps=HR()``).
* :func:`overton_variance` -- ``pps="overton"``: ``D_ij = 1 - (n - (pi_i + pi_j)/2) / (n - 1)``.
* :func:`with_replacement_variance` -- ``svydesign(ids=~1, probs=~pi)`` without ``fpc``::

      v_WR = n/(n-1) sum_s (x_i - xbar)^2,

  the Hansen-Hurwitz variance estimator of ``n`` draws with single-draw probabilities
  ``pi_i / n``; conservative for a without-replacement design (it ignores the fpc).

All ``D`` based estimators accept ``estimator="ht"`` or ``"yg"`` as ``svydesign(variance=)``
does. Domain totals (``subset()`` in survey) are the totals of ``y_i 1[i in domain]`` with the
full sample's design; pass the zeroed ``y``. Matrices are ``n x n``: memory and time are
``O(n^2)``, meant for samples up to a few thousand units.

References
----------
Horvitz, D. G. and Thompson, D. J. (1952). A generalization of sampling without replacement from
a finite universe. *JASA* 47(260), 663-685.

Yates, F. and Grundy, P. M. (1953). Selection without replacement from within strata with
probability proportional to size. *JRSS B* 15(2), 253-261; Sen, A. R. (1953). On the estimate of
the variance in sampling with varying probabilities. *J. Indian Soc. Agric. Statist.* 5, 119-127.

Hartley, H. O. and Rao, J. N. K. (1962). Sampling with unequal probabilities and without
replacement. *Annals of Mathematical Statistics* 33(2), 350-374.

Brewer, K. R. W. (2002). *Combined Survey Sampling Inference (Weighing Basu's Elephants)*.
Arnold, Chapter 9; Brewer, K. R. W. and Donadio, M. E. (2003). The high entropy variance of the
Horvitz-Thompson estimator. *Survey Methodology* 29(2), 189-196.

Berger, Y. G. (2004). A simple variance estimator for unequal probability sampling without
replacement. *Journal of Applied Statistics* 31, 305-315.

Lumley, T. R package ``survey``: ``svydesign(pps=)``, ``ppsmat``, ``HR`` and the vignette
"Describing PPS designs to R" (``pps.Rnw``); source files ``R/pps.R``, ``R/ht.R``,
``R/multistage.R`` (cran/survey mirror).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "VARIANCE_METHODS",
    "TotalEstimate",
    "brewer_variance",
    "delta_check_from_joint",
    "hartley_rao_delta_check",
    "hartley_rao_variance",
    "horvitz_thompson_total",
    "ht_variance",
    "overton_delta_check",
    "overton_variance",
    "pps_total",
    "quadratic_variance",
    "with_replacement_variance",
    "yates_grundy_variance",
]

FloatArray = npt.NDArray[np.float64]
Estimator = Literal["ht", "yg"]

#: Names accepted by :func:`pps_total` ``method=``.
VARIANCE_METHODS: tuple[str, ...] = (
    "ht",
    "yates_grundy",
    "brewer",
    "hartley_rao",
    "hartley_rao_yg",
    "overton",
    "with_replacement",
)


@dataclass(frozen=True)
class TotalEstimate:
    """Horvitz-Thompson total with a variance estimate.

    Attributes
    ----------
    total : float
        ``Y_hat = sum_s y_i / pi_i``.
    variance : float
        Variance estimate of ``total`` by ``method`` (may be negative for ``"ht"`` with
        joint probabilities or approximations: the HT form is not guaranteed non-negative).
    std_error : float
        ``sqrt(max(variance, 0))``.
    method : str
        Key of :data:`VARIANCE_METHODS`.
    n_units : int
        Sample size ``n`` (distinct units).
    """

    total: float
    variance: float
    std_error: float
    method: str
    n_units: int


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _float_1d(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a 1-d array of numbers, got {values!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got {int(np.sum(~np.isfinite(arr)))}")
    return arr


def _sample(
    y: npt.ArrayLike, inclusion_prob: npt.ArrayLike, min_n: int
) -> tuple[FloatArray, FloatArray]:
    yy = _float_1d("y", y)
    pi = _float_1d("inclusion_prob", inclusion_prob)
    if len(yy) != len(pi):
        raise ValueError(
            f"inputs: expected y and inclusion_prob of equal length (one per sampled unit), "
            f"got {len(yy)} and {len(pi)}"
        )
    if len(yy) < min_n:
        raise ValueError(f"n: expected at least {min_n} sampled units, got {len(yy)}")
    bad = (pi <= 0.0) | (pi > 1.0)
    if np.any(bad):
        raise ValueError(
            f"inclusion_prob: expected values in (0, 1], got {pi[bad][:5].tolist()} "
            f"({int(bad.sum())} out of range)"
        )
    return yy, pi


def _probs(inclusion_prob: npt.ArrayLike, min_n: int) -> FloatArray:
    pi = _float_1d("inclusion_prob", inclusion_prob)
    return _sample(np.zeros_like(pi), pi, min_n)[1]


def _estimator(estimator: str) -> Estimator:
    if estimator == "ht":
        return "ht"
    if estimator == "yg":
        return "yg"
    raise ValueError(f"estimator: expected 'ht' or 'yg', got {estimator!r}")


def _checked_tolerance(tolerance: float) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float | np.floating):
        raise ValueError(f"tolerance: expected a number >= 0, got {tolerance!r}")
    if not math.isfinite(float(tolerance)) or tolerance < 0:
        raise ValueError(f"tolerance: expected a finite number >= 0, got {tolerance!r}")
    return float(tolerance)


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise ValueError(
            f"inclusion_prob: expected probabilities large enough for a finite {what}, "
            f"got {value!r}"
        )
    return value


# --------------------------------------------------------------------------------------------
# Total and D matrices
# --------------------------------------------------------------------------------------------


def horvitz_thompson_total(y: npt.ArrayLike, inclusion_prob: npt.ArrayLike) -> float:
    """Horvitz-Thompson estimator ``Y_hat = sum_s y_i / pi_i`` of the population total.

    Design-unbiased for ``Y = sum_U y_i`` under any design with inclusion probabilities
    ``pi_i > 0`` (Horvitz & Thompson 1952).

    Parameters
    ----------
    y : array_like, shape (n,)
        Values of the sampled units.
    inclusion_prob : array_like, shape (n,)
        Their inclusion probabilities ``pi_i`` in ``(0, 1]``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On shapes that differ, an empty sample, non-finite values or ``pi_i`` outside ``(0, 1]``.
    """
    yy, pi = _sample(y, inclusion_prob, 1)
    with np.errstate(over="ignore"):
        return _finite(float(np.sum(yy / pi)), "total")


def delta_check_from_joint(
    joint_prob: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    *,
    tolerance: float = 0.0,
) -> FloatArray:
    """Weighted covariance of the sample indicators, ``D_ij = 1 - pi_i pi_j / pi_ij``.

    As R ``survey``'s ``ppsmat(jointprob, tolerance)``: ``D_ij = (pi_ij - pi_i pi_j) / pi_ij``
    with ``pi_i = pi_ii`` the diagonal (so ``D_ii = 1 - pi_i``), and entries with
    ``|D_ij| < tolerance`` set to 0 (survey's default ``tolerance`` is ``1e-4``; 0 here, i.e.
    exact).

    Parameters
    ----------
    joint_prob : array_like, shape (n, n)
        Symmetric joint inclusion probabilities of the sampled units, ``pi_ij`` in ``(0, 1]``,
        diagonal ``pi_ii = pi_i``.
    inclusion_prob : array_like, shape (n,)
        ``pi_i``; must equal the diagonal of ``joint_prob`` (relative tolerance ``1e-9``).
    tolerance : float, default 0
        Entries of ``D`` smaller than this in absolute value are set to 0.

    Returns
    -------
    numpy.ndarray, shape (n, n)

    Raises
    ------
    ValueError
        On a non-square, non-symmetric or out-of-range ``joint_prob``, a diagonal different from
        ``inclusion_prob``, or a negative ``tolerance``.
    """
    pi = _float_1d("inclusion_prob", inclusion_prob)
    tol = _checked_tolerance(tolerance)
    try:
        joint = np.asarray(joint_prob, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("joint_prob: expected a square matrix of numbers") from None
    n = len(pi)
    if joint.shape != (n, n):
        raise ValueError(f"joint_prob: expected shape {(n, n)}, got {joint.shape}")
    if not np.all(np.isfinite(joint)) or np.any((joint <= 0.0) | (joint > 1.0)):
        raise ValueError("joint_prob: expected finite values in (0, 1]")
    if not np.allclose(joint, joint.T, rtol=1e-12, atol=0.0):
        raise ValueError("joint_prob: expected a symmetric matrix")
    if not np.allclose(np.diag(joint), pi, rtol=1e-9, atol=0.0):
        raise ValueError("joint_prob: expected its diagonal to equal inclusion_prob (pi_ii = pi_i)")
    d = np.diag(joint)
    delta = (joint - np.outer(d, d)) / joint
    delta[np.abs(delta) < tol] = 0.0
    return delta


def hartley_rao_delta_check(
    inclusion_prob: npt.ArrayLike, *, sum_pi_squared: float | None = None
) -> FloatArray:
    """Truncated Hartley-Rao ``D`` matrix, as R ``survey``'s ``HR()``.

    ``D_ij = 1 - (n - pi_i - pi_j + S / n) / (n - 1)`` for ``i != j`` and ``D_ii = 1 - pi_i``,
    with ``S = sum_U pi_k^2`` over the population (``HR(S / n)`` in survey). With
    ``sum_pi_squared=None`` ``S`` is estimated by its HT estimator ``sum_s pi_k^2 / pi_k =
    sum_s pi_k`` (survey's ``HR()``). It comes from Hartley & Rao's (1962) expansion
    ``pi_ij ~= pi_i pi_j (n - 1) / (n - pi_i - pi_j + S / n)`` for randomised systematic PPS.

    Parameters
    ----------
    inclusion_prob : array_like, shape (n,)
        ``pi_i`` of the sampled units, ``n >= 2``.
    sum_pi_squared : float, optional
        Population ``S = sum_U pi_k^2 >= 0``.

    Returns
    -------
    numpy.ndarray, shape (n, n)
    """
    pi = _probs(inclusion_prob, 2)
    n = len(pi)
    if sum_pi_squared is None:
        s = float(np.sum(pi))
    else:
        s = float(sum_pi_squared)
        if not math.isfinite(s) or s < 0.0:
            raise ValueError(
                f"sum_pi_squared: expected a finite number >= 0, got {sum_pi_squared!r}"
            )
    delta = 1.0 - (n - np.add.outer(pi, pi) + s / n) / (n - 1)
    np.fill_diagonal(delta, 1.0 - pi)
    return delta


def overton_delta_check(inclusion_prob: npt.ArrayLike) -> FloatArray:
    """Overton's ``D`` matrix, as R ``survey``'s ``pps="overton"``.

    ``D_ij = 1 - (n - (pi_i + pi_j) / 2) / (n - 1)`` for ``i != j`` (from Overton's
    ``pi_ij ~= pi_i pi_j (n - 1) / (n - (pi_i + pi_j) / 2)``), ``D_ii = 1 - pi_i``.

    Parameters
    ----------
    inclusion_prob : array_like, shape (n,)
        ``pi_i`` of the sampled units, ``n >= 2``.

    Returns
    -------
    numpy.ndarray, shape (n, n)
    """
    pi = _probs(inclusion_prob, 2)
    n = len(pi)
    delta = 1.0 - (n - np.add.outer(pi, pi) / 2.0) / (n - 1)
    np.fill_diagonal(delta, 1.0 - pi)
    return delta


# --------------------------------------------------------------------------------------------
# Variance estimators
# --------------------------------------------------------------------------------------------


def quadratic_variance(
    y: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    delta_check: npt.ArrayLike,
    *,
    estimator: str = "ht",
) -> float:
    """Variance estimate of the HT total from a ``D`` matrix (survey's ``htvar``/``ygvar``).

    With ``x_i = y_i / pi_i``::

        "ht":  v = sum_ij D_ij x_i x_j
        "yg":  v = sum_ij D_ij x_i x_j - sum_i x_i^2 sum_j D_ij
                 = -1/2 sum_{i != j} D_ij (x_i - x_j)^2

    Parameters
    ----------
    y, inclusion_prob : array_like, shape (n,)
        Sampled values and inclusion probabilities.
    delta_check : array_like, shape (n, n)
        ``D`` (e.g. :func:`delta_check_from_joint`, :func:`hartley_rao_delta_check`).
    estimator : {"ht", "yg"}
        Horvitz-Thompson or Yates-Grundy(-Sen) form.

    Returns
    -------
    float
    """
    yy, pi = _sample(y, inclusion_prob, 1)
    form = _estimator(estimator)
    delta = np.asarray(delta_check, dtype=np.float64)
    n = len(yy)
    if delta.shape != (n, n) or not np.all(np.isfinite(delta)):
        raise ValueError(f"delta_check: expected a finite matrix of shape {(n, n)}")
    with np.errstate(over="ignore", invalid="ignore"):
        x = yy / pi
        v = float(x @ delta @ x)
        if form == "yg":
            v -= float(np.sum(delta @ (x * x)))
    return _finite(v, "variance")


def ht_variance(
    y: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    joint_prob: npt.ArrayLike,
    *,
    tolerance: float = 0.0,
) -> float:
    """Horvitz-Thompson variance estimator with joint inclusion probabilities.

    ``v_HT = sum_{i,j in s} (pi_ij - pi_i pi_j) / pi_ij * y_i / pi_i * y_j / pi_j``, unbiased
    for ``V(Y_hat)`` when every ``pi_ij > 0`` (Horvitz & Thompson 1952); may be negative.
    R: ``svydesign(ids=~1, fpc=~pi, pps=ppsmat(joint_prob))``.

    Parameters
    ----------
    y, inclusion_prob : array_like, shape (n,)
        Sampled values and inclusion probabilities.
    joint_prob : array_like, shape (n, n)
        Joint inclusion probabilities (see :func:`delta_check_from_joint`).
    tolerance : float, default 0
        As ``ppsmat(tolerance=)``.

    Returns
    -------
    float
    """
    delta = delta_check_from_joint(joint_prob, inclusion_prob, tolerance=tolerance)
    return quadratic_variance(y, inclusion_prob, delta, estimator="ht")


def yates_grundy_variance(
    y: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    joint_prob: npt.ArrayLike,
    *,
    tolerance: float = 0.0,
) -> float:
    """Yates-Grundy-Sen variance estimator with joint inclusion probabilities.

    ``v_YG = sum_{i<j in s} (pi_i pi_j - pi_ij) / pi_ij (y_i/pi_i - y_j/pi_j)^2``, unbiased
    for fixed-size designs and non-negative when ``pi_i pi_j >= pi_ij`` (Yates & Grundy 1953,
    Sen 1953). R: ``svydesign(..., pps=ppsmat(joint_prob), variance="YG")``.

    Parameters
    ----------
    y, inclusion_prob : array_like, shape (n,)
        Sampled values and inclusion probabilities.
    joint_prob : array_like, shape (n, n)
        Joint inclusion probabilities (see :func:`delta_check_from_joint`).
    tolerance : float, default 0
        As ``ppsmat(tolerance=)``.

    Returns
    -------
    float
    """
    delta = delta_check_from_joint(joint_prob, inclusion_prob, tolerance=tolerance)
    return quadratic_variance(y, inclusion_prob, delta, estimator="yg")


def hartley_rao_variance(
    y: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    *,
    sum_pi_squared: float | None = None,
    estimator: str = "ht",
) -> float:
    """Variance estimate with the truncated Hartley-Rao approximation of ``pi_ij``.

    :func:`quadratic_variance` with :func:`hartley_rao_delta_check`. R:
    ``svydesign(ids=~1, fpc=~pi, pps=HR(S / n), variance=...)`` (``HR()`` when
    ``sum_pi_squared`` is ``None``).

    Parameters
    ----------
    y, inclusion_prob : array_like, shape (n,)
        Sampled values and inclusion probabilities, ``n >= 2``.
    sum_pi_squared : float, optional
        Population ``sum_U pi_k^2``; estimated by ``sum_s pi_k`` when ``None``.
    estimator : {"ht", "yg"}
        Horvitz-Thompson or Yates-Grundy form.

    Returns
    -------
    float
    """
    delta = hartley_rao_delta_check(inclusion_prob, sum_pi_squared=sum_pi_squared)
    return quadratic_variance(y, inclusion_prob, delta, estimator=estimator)


def overton_variance(
    y: npt.ArrayLike, inclusion_prob: npt.ArrayLike, *, estimator: str = "ht"
) -> float:
    """Variance estimate with Overton's approximation of ``pi_ij`` (``pps="overton"``).

    Parameters
    ----------
    y, inclusion_prob : array_like, shape (n,)
        Sampled values and inclusion probabilities, ``n >= 2``.
    estimator : {"ht", "yg"}
        Horvitz-Thompson or Yates-Grundy form.

    Returns
    -------
    float
    """
    delta = overton_delta_check(inclusion_prob)
    return quadratic_variance(y, inclusion_prob, delta, estimator=estimator)


def brewer_variance(y: npt.ArrayLike, inclusion_prob: npt.ArrayLike) -> float:
    """Brewer's approximation, as R ``survey``'s ``svydesign(ids=~1, fpc=~pi, pps="brewer")``.

    ``v_Br = n/(n-1) sum_s (1 - pi_i) (x_i - xbar)^2`` with ``x_i = y_i / pi_i`` and
    ``xbar = Y_hat / n``. survey obtains it from its with-replacement (one-stage) formula with
    a per-unit finite population correction ``f_i = 1 - pi_i`` (``fpc`` given as the sampling
    fraction ``pi_i``: population size ``n / pi_i``). Always non-negative; needs only the
    sample's ``pi_i``; exact 0 for a census (all ``pi_i = 1``).

    Parameters
    ----------
    y, inclusion_prob : array_like, shape (n,)
        Sampled values and inclusion probabilities, ``n >= 2``.

    Returns
    -------
    float

    References
    ----------
    Brewer (2002), *Combined Survey Sampling Inference*, Chapter 9; Berger (2004), *J. Appl.
    Statist.* 31, 305-315 (option 2); R ``survey`` ``onestrat`` in ``R/multistage.R``.
    """
    yy, pi = _sample(y, inclusion_prob, 2)
    n = len(yy)
    with np.errstate(over="ignore", invalid="ignore"):
        x = yy / pi
        v = n / (n - 1) * float(np.sum((1.0 - pi) * (x - x.mean()) ** 2))
    return _finite(v, "variance")


def with_replacement_variance(y: npt.ArrayLike, inclusion_prob: npt.ArrayLike) -> float:
    """With-replacement approximation, as ``svydesign(ids=~1, probs=~pi)`` without ``fpc``.

    ``v_WR = n/(n-1) sum_s (x_i - xbar)^2`` with ``x_i = y_i / pi_i``, ``xbar = Y_hat / n``:
    the unbiased Hansen-Hurwitz variance estimator if the ``n`` units had been ``n``
    independent draws with single-draw probabilities ``p_i = pi_i / n`` (then ``y_i / p_i =
    n x_i``; see ``estimation.hansen_hurwitz_prevalence``). For a without-replacement design it
    omits the finite population correction and is typically conservative.

    Parameters
    ----------
    y, inclusion_prob : array_like, shape (n,)
        Sampled values and inclusion probabilities, ``n >= 2``.

    Returns
    -------
    float

    References
    ----------
    Hansen & Hurwitz (1943); Cochran (1977), *Sampling Techniques*, Section 9A.
    """
    yy, pi = _sample(y, inclusion_prob, 2)
    n = len(yy)
    with np.errstate(over="ignore", invalid="ignore"):
        x = yy / pi
        v = n / (n - 1) * float(np.sum((x - x.mean()) ** 2))
    return _finite(v, "variance")


def pps_total(
    y: npt.ArrayLike,
    inclusion_prob: npt.ArrayLike,
    *,
    method: str = "brewer",
    joint_prob: npt.ArrayLike | None = None,
    sum_pi_squared: float | None = None,
    tolerance: float = 0.0,
) -> TotalEstimate:
    """HT total with the variance estimator named by ``method``.

    ``method`` (see :data:`VARIANCE_METHODS`): ``"ht"`` / ``"yates_grundy"`` (need
    ``joint_prob``; :func:`ht_variance`, :func:`yates_grundy_variance`), ``"brewer"``
    (:func:`brewer_variance`), ``"hartley_rao"`` / ``"hartley_rao_yg"``
    (:func:`hartley_rao_variance`, HT or YG form, with ``sum_pi_squared``), ``"overton"``
    (:func:`overton_variance`) and ``"with_replacement"``
    (:func:`with_replacement_variance`).

    Parameters
    ----------
    y, inclusion_prob : array_like, shape (n,)
        Sampled values and inclusion probabilities.
    method : str, default "brewer"
        Variance estimator.
    joint_prob : array_like, shape (n, n), optional
        Joint inclusion probabilities, required by ``"ht"`` and ``"yates_grundy"``.
    sum_pi_squared : float, optional
        Population ``sum pi_k^2`` for the Hartley-Rao methods.
    tolerance : float, default 0
        As ``ppsmat(tolerance=)`` for ``"ht"`` and ``"yates_grundy"``.

    Returns
    -------
    TotalEstimate

    Raises
    ------
    ValueError
        On an unknown ``method``, a missing ``joint_prob`` or invalid inputs.
    """
    total = horvitz_thompson_total(y, inclusion_prob)
    if method in ("ht", "yates_grundy"):
        if joint_prob is None:
            raise ValueError(f"joint_prob: required by method={method!r}, got None")
        fn = ht_variance if method == "ht" else yates_grundy_variance
        v = fn(y, inclusion_prob, joint_prob, tolerance=tolerance)
    elif method == "brewer":
        v = brewer_variance(y, inclusion_prob)
    elif method in ("hartley_rao", "hartley_rao_yg"):
        v = hartley_rao_variance(
            y,
            inclusion_prob,
            sum_pi_squared=sum_pi_squared,
            estimator="yg" if method == "hartley_rao_yg" else "ht",
        )
    elif method == "overton":
        v = overton_variance(y, inclusion_prob)
    elif method == "with_replacement":
        v = with_replacement_variance(y, inclusion_prob)
    else:
        raise ValueError(f"method: expected one of {list(VARIANCE_METHODS)}, got {method!r}")
    return TotalEstimate(
        total=total,
        variance=v,
        std_error=math.sqrt(max(v, 0.0)),
        method=method,
        n_units=len(np.asarray(y)),
    )
