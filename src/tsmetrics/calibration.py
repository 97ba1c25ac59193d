"""Versioned calibration of a policy's risk score into ``q = P(violating | score)``.

What is estimated
-----------------
For one policy, an enforcement model gives every unit a risk score ``s`` in ``[0, 1]``. The
*calibration* is the function ``q(s) = P(v = 1 | s)``: the share of the population's units with
score ``s`` that violate the policy (unit-weighted, not impression-weighted). tsmetrics uses
``q`` only to *steer* the sample (size measure ``x_i sqrt(q_i) + floor``); every prevalence
estimate stays design-unbiased whatever ``q`` is, so a poor calibration costs precision, never
validity.

Data and weighting
------------------
``q`` is fitted on earlier days' labelled sample units. The sample over-represents high scores
and high impressions, so every fit takes each unit's *design weight* ``w_k`` (``1 / pi_k`` for
Poisson PPS, ``1 / (n p_k)`` for PPS with replacement, summed over a unit's draws) and solves the
weighted (pseudo-likelihood) problem: the estimating equations are Horvitz-Thompson estimates of
the census equations, so the fit is design-consistent for the calibration one would get from
labelling *every* unit of those days (Binder 1983; Pfeffermann 1993). An unweighted fit targets
the sample's own distribution instead, and is biased for ``q`` whenever the selection depends on
anything besides the score that is related to violating (impressions, an earlier calibration
fitted on other features) or the model is misspecified.

Methods (registry :data:`CALIBRATION_METHODS`)
----------------------------------------------
* ``"isotonic"`` -- :func:`fit_isotonic`: weighted isotonic (non-decreasing) least squares by
  pool-adjacent-violators (Ayer et al. 1955; Zadrozny & Elkan 2002), a step function.
* ``"platt"`` -- :func:`fit_platt`: weighted logistic regression of the label on ``logit(s)``
  (Platt 1999, on the log-odds of the score), ridge-penalised towards the identity.
* ``"identity"`` -- :func:`identity_calibration`: ``q = s`` (no labels yet).

:func:`fit_calibration` picks among them by the amount of labelled evidence (fallback rules).
Every calibration predicts ``q`` in ``[eps, 1 - eps]`` (default ``eps = 1e-6``), so ``q`` is
never exactly 0 or 1 for a unit with a score; a missing score (NaN / SQL NULL) gives a missing
``q`` (the caller imputes, as ``sampling.size_measure`` does for risks).

Versioning
----------
:class:`Calibration` carries a deterministic ``version``: ``"<method>-"`` followed by the first
12 hex digits of the SHA-256 of the canonical JSON of the method and its prediction parameters.
Re-fitting the same labelled data (in any row order) gives the same version; any change of a
parameter changes it. :meth:`Calibration.sql_expression` renders the same mapping as a Postgres
expression, so sizes can be computed inside the warehouse with exactly the ``q`` of
:meth:`Calibration.predict`.

References
----------
Ayer, M., Brunk, H. D., Ewing, G. M., Reid, W. T. and Silverman, E. (1955). An empirical
distribution function for sampling with incomplete information. *Annals of Mathematical
Statistics* 26(4), 641-647.

Best, M. J. and Chakravarti, N. (1990). Active set algorithms for isotonic regression; a unifying
framework. *Mathematical Programming* 47, 425-439.

Platt, J. C. (1999). Probabilistic outputs for support vector machines and comparisons to
regularized likelihood methods. In *Advances in Large Margin Classifiers*, MIT Press, 61-74.

Zadrozny, B. and Elkan, C. (2002). Transforming classifier scores into accurate multiclass
probability estimates. *Proceedings of the 8th ACM SIGKDD Conference (KDD '02)*, 694-699.

Niculescu-Mizil, A. and Caruana, R. (2005). Predicting good probabilities with supervised
learning. *Proceedings of the 22nd International Conference on Machine Learning (ICML '05)*,
625-632.

Binder, D. A. (1983). On the variances of asymptotically normal estimators from complex surveys.
*International Statistical Review* 51(3), 279-292.

Pfeffermann, D. (1993). The role of sampling weights when modeling survey data. *International
Statistical Review* 61(2), 317-337.

Kish, L. (1965). *Survey Sampling*. Wiley. (Effective sample size ``(sum w)^2 / sum w^2``.)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import special

__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_EPS",
    "DEFAULT_MIN_POSITIVES_ISOTONIC",
    "DEFAULT_MIN_POSITIVES_PLATT",
    "DEFAULT_RIDGE",
    "Calibration",
    "CalibrationParams",
    "IdentityParams",
    "IsotonicParams",
    "PlattParams",
    "fit_calibration",
    "fit_isotonic",
    "fit_platt",
    "identity_calibration",
    "kish_effective_count",
    "pool_adjacent_violators",
]

FloatArray = npt.NDArray[np.float64]

#: Default bound ``eps``: every prediction lies in ``[eps, 1 - eps]``.
DEFAULT_EPS = 1e-6
#: Default ridge ``lambda`` of :func:`fit_platt` (in units of one average-weight label).
DEFAULT_RIDGE = 0.1
#: Default minimum effective count of the rarer label class for an isotonic fit.
DEFAULT_MIN_POSITIVES_ISOTONIC = 50.0
#: Default minimum effective count of the rarer label class for a Platt fit.
DEFAULT_MIN_POSITIVES_PLATT = 10.0

_VERSION_HEX_DIGITS = 12
_NEWTON_MAX_ITER = 100
_NEWTON_TOL = 1e-10  # relative Newton step; the error after it is ~ its square
# A column reference: dotted identifiers, each plain (letters, digits, _ and $) or double-quoted.
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_COLUMN_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")

# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _float_1d(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a 1-d array of numbers, got {values!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got an array of shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if np.any(bad):
        raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} NaN/inf")
    return arr


def _check_scores(name: str, scores: FloatArray) -> None:
    bad = (scores < 0.0) | (scores > 1.0)
    if np.any(bad):
        raise ValueError(
            f"{name}: expected values in [0, 1], got {scores[bad][:5].tolist()} "
            f"({int(bad.sum())} out of range)"
        )


def _training_data(
    scores: npt.ArrayLike, labels: npt.ArrayLike, weights: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate the labelled data and put it in canonical order (score, label, weight).

    The canonical order makes every fit, hence every version, independent of the row order.
    """
    s = _float_1d("scores", scores)
    y = _float_1d("labels", labels)
    w = _float_1d("weights", weights)
    lengths = {"scores": len(s), "labels": len(y), "weights": len(w)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs: expected arrays of equal length, got {lengths}")
    if len(s) == 0:
        raise ValueError("scores: expected at least one labelled unit, got none")
    _check_scores("scores", s)
    bad = (y != 0.0) & (y != 1.0)
    if np.any(bad):
        raise ValueError(
            f"labels: expected 0/1 (or booleans), got {np.unique(y[bad])[:5].tolist()}"
        )
    if np.any(w <= 0.0):
        raise ValueError(f"weights: expected design weights > 0, got minimum {float(w.min())!r}")
    order = np.lexsort((w, y, s))
    return s[order], y[order], w[order]


def _check_eps(eps: float) -> float:
    if (
        isinstance(eps, bool)
        or not isinstance(eps, int | float | np.floating | np.integer)
        or not (0.0 < float(eps) < 0.5)
    ):
        raise ValueError(f"eps: expected a number in (0, 0.5), got {eps!r}")
    return float(eps)


def _check_nonnegative_number(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.floating | np.integer)
        or not (math.isfinite(float(value)) and float(value) >= 0.0)
    ):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _prediction_scores(scores: npt.ArrayLike) -> FloatArray:
    """Scores to predict for: any shape, values in [0, 1] or NaN (missing)."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"scores: expected numbers, got {scores!r}") from None
    bad = np.isinf(s) | (s < 0.0) | (s > 1.0)  # NaN compares False: allowed (missing score)
    if np.any(bad):
        raise ValueError(
            f"scores: expected values in [0, 1] or NaN, got {s[bad][:5].tolist()} "
            f"({int(bad.sum())} out of range)"
        )
    return s


def _sql_float(value: float) -> str:
    """A float8 literal that Postgres parses to exactly ``value`` (shortest round-trip repr)."""
    return f"'{float(value)!r}'::float8"


def _sql_float_array(values: Sequence[float]) -> str:
    return "'{" + ",".join(repr(float(v)) for v in values) + "}'::float8[]"


def _check_column(column: str) -> str:
    if not isinstance(column, str) or _COLUMN_RE.fullmatch(column) is None:
        raise ValueError(
            "column: expected a column reference (dotted identifiers, plain or double-quoted, "
            f'e.g. score or u."risk score"), got {column!r}'
        )
    return f"({column})::float8"


def kish_effective_count(weights: npt.ArrayLike) -> float:
    """Kish effective number of observations ``(sum w)^2 / sum w^2`` (0 for no weights).

    Equals the count when all weights are equal and is smaller the more the weights vary: the
    number of equally weighted observations carrying the same information about a weighted mean.

    Parameters
    ----------
    weights : array_like, shape (n,)
        Weights ``> 0``.

    Returns
    -------
    float

    References
    ----------
    Kish (1965), *Survey Sampling*, Wiley.
    """
    w = _float_1d("weights", weights)
    if np.any(w <= 0.0):
        raise ValueError(f"weights: expected values > 0, got minimum {float(w.min())!r}")
    if len(w) == 0:
        return 0.0
    scaled = w / w.max()  # scale-free, avoids overflow of the squares
    return float(scaled.sum() ** 2 / np.sum(scaled**2))


# --------------------------------------------------------------------------------------------
# Parameters of each method: prediction in numpy and in SQL
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IsotonicParams:
    """A non-decreasing step function ``q(s) = values[k(s)]``.

    ``k(s)`` is the index of the last threshold ``<= s`` (``np.searchsorted(thresholds, s,
    side="right") - 1``), or 0 when ``s`` is below every threshold: each threshold is the lowest
    training score of a pool-adjacent-violators block, so ``q(s)`` is the fitted value at the
    largest training score ``<= s`` (right-continuous steps, constant extrapolation). In SQL
    ``k(s) + 1 = greatest(width_bucket(s, thresholds), 1)``, the same comparisons.

    Attributes
    ----------
    thresholds : tuple of float
        Strictly increasing scores in ``[0, 1]``.
    values : tuple of float
        Strictly increasing ``q`` values in ``[eps, 1 - eps]``, one per threshold.
    eps : float
        The clipping bound the values were fitted with, in ``(0, 0.5)``.
    """

    method: ClassVar[str] = "isotonic"

    thresholds: tuple[float, ...]
    values: tuple[float, ...]
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        t = np.asarray(self.thresholds, dtype=np.float64)
        v = np.asarray(self.values, dtype=np.float64)
        if t.ndim != 1 or len(t) == 0 or v.shape != t.shape:
            raise ValueError(
                "thresholds, values: expected two non-empty sequences of equal length, got "
                f"lengths {len(self.thresholds)} and {len(self.values)}"
            )
        if not (np.all(np.isfinite(t)) and np.all((t >= 0.0) & (t <= 1.0))):
            raise ValueError(f"thresholds: expected finite scores in [0, 1], got {t.tolist()}")
        if np.any(np.diff(t) <= 0.0):
            raise ValueError("thresholds: expected strictly increasing values")
        eps = _check_eps(self.eps)
        if not (np.all(np.isfinite(v)) and np.all((v >= eps) & (v <= 1.0 - eps))):
            raise ValueError(
                f"values: expected probabilities in [eps, 1 - eps] (eps={eps!r}), got {v.tolist()}"
            )
        object.__setattr__(self, "eps", eps)
        if np.any(np.diff(v) <= 0.0):
            raise ValueError("values: expected strictly increasing values")
        object.__setattr__(self, "thresholds", tuple(float(x) for x in t))
        object.__setattr__(self, "values", tuple(float(x) for x in v))

    def predict(self, scores: FloatArray) -> FloatArray:
        """``q`` for validated scores (NaN stays NaN)."""
        t = np.asarray(self.thresholds)
        v = np.asarray(self.values)
        missing = np.isnan(scores)
        k = np.searchsorted(t, np.where(missing, 0.0, scores), side="right")
        q = v[np.maximum(k, 1) - 1]
        return np.where(missing, np.nan, q)

    def sql(self, score: str) -> str:
        """Postgres expression of ``q`` from the float8 expression ``score`` (not NULL)."""
        bucket = f"width_bucket({score}, {_sql_float_array(self.thresholds)})"
        return f"({_sql_float_array(self.values)})[greatest({bucket}, 1)]"

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": list(self.thresholds), "values": list(self.values), "eps": self.eps}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IsotonicParams:
        return cls(
            thresholds=tuple(data["thresholds"]), values=tuple(data["values"]), eps=data["eps"]
        )


@dataclass(frozen=True)
class PlattParams:
    """Logistic recalibration ``q(s) = 1 / (1 + exp(-z))``, ``z = a + b logit(s)``.

    The score is first clipped to ``[eps, 1 - eps]`` (so ``logit`` is finite) and ``z`` to
    ``[logit(eps), logit(1 - eps)]`` (so ``q`` is in ``[eps, 1 - eps]`` up to rounding and
    Postgres' ``exp`` can neither overflow nor underflow). ``logit(s) = ln(s / (1 - s))``, the
    same operations in numpy and SQL.

    Attributes
    ----------
    a : float
        Intercept.
    b : float
        Slope on the score's log-odds, ``>= 0`` (``q`` non-decreasing in the score).
    eps : float
        Clipping bound in ``(0, 0.5)``.
    """

    method: ClassVar[str] = "platt"

    a: float
    b: float
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.floating | np.integer
            ):
                raise ValueError(f"{name}: expected a finite number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"{name}: expected a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.b < 0.0:
            raise ValueError(f"b: expected a slope >= 0 (q increasing in score), got {self.b!r}")
        object.__setattr__(self, "eps", _check_eps(self.eps))

    def _z_bounds(self) -> tuple[float, float]:
        hi = math.log((1.0 - self.eps) / self.eps)
        return -hi, hi

    def predict(self, scores: FloatArray) -> FloatArray:
        """``q`` for validated scores (NaN stays NaN)."""
        s = np.clip(scores, self.eps, 1.0 - self.eps)
        z = self.a + self.b * np.log(s / (1.0 - s))
        lo, hi = self._z_bounds()
        z = np.clip(z, lo, hi)
        return 1.0 / (1.0 + np.exp(-z))

    def sql(self, score: str) -> str:
        """Postgres expression of ``q`` from the float8 expression ``score`` (not NULL)."""
        s = f"least(greatest({score}, {_sql_float(self.eps)}), {_sql_float(1.0 - self.eps)})"
        z = f"{_sql_float(self.a)} + {_sql_float(self.b)} * ln({s} / (1::float8 - {s}))"
        lo, hi = self._z_bounds()
        z = f"least(greatest({z}, {_sql_float(lo)}), {_sql_float(hi)})"
        return f"1::float8 / (1::float8 + exp(-({z})))"

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "eps": self.eps}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlattParams:
        return cls(a=data["a"], b=data["b"], eps=data["eps"])


@dataclass(frozen=True)
class IdentityParams:
    """No recalibration: ``q(s) = s`` clipped to ``[eps, 1 - eps]``.

    Attributes
    ----------
    eps : float
        Clipping bound in ``(0, 0.5)``.
    """

    method: ClassVar[str] = "identity"

    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", _check_eps(self.eps))

    def predict(self, scores: FloatArray) -> FloatArray:
        """``q`` for validated scores (NaN stays NaN)."""
        return np.clip(scores, self.eps, 1.0 - self.eps)

    def sql(self, score: str) -> str:
        """Postgres expression of ``q`` from the float8 expression ``score`` (not NULL)."""
        return f"least(greatest({score}, {_sql_float(self.eps)}), {_sql_float(1.0 - self.eps)})"

    def to_dict(self) -> dict[str, Any]:
        return {"eps": self.eps}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IdentityParams:
        return cls(eps=data["eps"])


#: Parameters of any calibration method.
CalibrationParams = IsotonicParams | PlattParams | IdentityParams

#: Registry: method name -> its parameter class (read-only).
CALIBRATION_METHODS: Mapping[str, Callable[[Mapping[str, Any]], CalibrationParams]] = (
    MappingProxyType(
        {
            IsotonicParams.method: IsotonicParams.from_dict,
            PlattParams.method: PlattParams.from_dict,
            IdentityParams.method: IdentityParams.from_dict,
        }
    )
)


def _version(method: str, params: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {"method": method, "params": params},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{method}-{digest[:_VERSION_HEX_DIGITS]}"


def _iso_days(fitted_on: Sequence[date | str]) -> tuple[str, ...]:
    if isinstance(fitted_on, str | date):
        raise ValueError(f"fitted_on: expected a sequence of days, got a single {fitted_on!r}")
    days = set()
    for day in fitted_on:
        try:
            days.add(
                day.isoformat() if isinstance(day, date) else date.fromisoformat(day).isoformat()
            )
        except (TypeError, ValueError, AttributeError):
            raise ValueError(
                f"fitted_on: expected dates or ISO strings YYYY-MM-DD, got {day!r}"
            ) from None
    return tuple(sorted(days))


# --------------------------------------------------------------------------------------------
# The versioned calibration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """A fitted, versioned score calibration of one policy.

    Attributes
    ----------
    params : IsotonicParams | PlattParams | IdentityParams
        The mapping ``score -> q`` (all that :meth:`predict` and :meth:`sql_expression` use).
    policy : str or None
        Policy whose score is calibrated.
    fitted_on : tuple of str
        ISO days whose labelled units were used (sorted, distinct; empty for identity).
    n_labels : int
        Number of labelled units used.
    n_positive : int
        Number of those labelled violating (unweighted count).
    effective_positives, effective_negatives : float
        Kish effective counts ``(sum w)^2 / sum w^2`` of the positive and negative labels; the
        smaller one drives the fallback rules of :func:`fit_calibration`.
    weighted_prevalence : float or None
        Design-weighted share of units violating, ``sum w y / sum w``: an estimate of the
        unit-level violation rate of the days fitted on (``None`` without labels).
    method : str
        ``params.method`` (derived).
    version : str
        ``"<method>-<12 hex digits>"``: SHA-256 of the canonical JSON of method and params
        (derived). Equal parameters give equal versions; the metadata above does not enter.
    """

    params: CalibrationParams
    policy: str | None = None
    fitted_on: tuple[str, ...] = ()
    n_labels: int = 0
    n_positive: int = 0
    effective_positives: float = 0.0
    effective_negatives: float = 0.0
    weighted_prevalence: float | None = None
    method: str = field(init=False)
    version: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.params, IsotonicParams | PlattParams | IdentityParams):
            raise ValueError(
                "params: expected IsotonicParams, PlattParams or IdentityParams, got "
                f"{type(self.params).__name__}"
            )
        if self.policy is not None and not isinstance(self.policy, str):
            raise ValueError(f"policy: expected a string or None, got {self.policy!r}")
        object.__setattr__(self, "fitted_on", _iso_days(self.fitted_on))
        for name in ("n_labels", "n_positive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.n_positive > self.n_labels:
            raise ValueError(
                f"n_positive: expected at most n_labels={self.n_labels}, got {self.n_positive}"
            )
        for name in ("effective_positives", "effective_negatives"):
            object.__setattr__(self, name, _check_nonnegative_number(name, getattr(self, name)))
        if self.weighted_prevalence is not None:
            p = _check_nonnegative_number("weighted_prevalence", self.weighted_prevalence)
            if p > 1.0:
                raise ValueError(f"weighted_prevalence: expected a share in [0, 1], got {p!r}")
            object.__setattr__(self, "weighted_prevalence", p)
        object.__setattr__(self, "method", self.params.method)
        object.__setattr__(self, "version", _version(self.method, self.params.to_dict()))

    @property
    def eps(self) -> float:
        """Bound of the predictions: every ``q`` lies in ``[eps, 1 - eps]``."""
        return self.params.eps

    def predict(self, scores: npt.ArrayLike) -> FloatArray:
        """Calibrated ``q = P(violating | score)`` for each score.

        Parameters
        ----------
        scores : array_like
            Risk scores in ``[0, 1]``, any shape; NaN marks a missing score.

        Returns
        -------
        numpy.ndarray
            ``q`` in ``[eps, 1 - eps]`` (NaN where the score is NaN), same shape as ``scores``.

        Raises
        ------
        ValueError
            On scores outside ``[0, 1]`` or infinite.
        """
        s = _prediction_scores(scores)
        return np.asarray(self.params.predict(s), dtype=np.float64)

    def sql_expression(self, column: str) -> str:
        """Postgres expression computing ``q`` from a score column.

        The column is cast to ``double precision``; NULL gives NULL. Isotonic: an array lookup
        ``(values)[greatest(width_bucket(score, thresholds), 1)]``; Platt: the inline clipped
        logistic formula; identity: ``least(greatest(score, eps), 1 - eps)``. Constants are
        written as float8 literals of their shortest round-trip representation, so the
        expression gives exactly the ``q`` of :meth:`predict` (isotonic and identity bit for bit;
        Platt up to the last-bit rounding of ``ln``/``exp`` in libm versus numpy). Scores outside
        ``[0, 1]``, which :meth:`predict` rejects, are clipped (Platt, identity) or extrapolated
        (isotonic) by the expression.

        Parameters
        ----------
        column : str
            Column reference: dotted identifiers, each plain or double-quoted (``score``,
            ``u.risk``, ``"Risk"``); inserted verbatim.

        Returns
        -------
        str
            A parenthesised SQL expression of type ``double precision``.
        """
        score = _check_column(column)
        return f"(CASE WHEN {score} IS NULL THEN NULL ELSE {self.params.sql(score)} END)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (floats kept exact by ``json``'s repr)."""
        return {
            "method": self.method,
            "version": self.version,
            "params": self.params.to_dict(),
            "policy": self.policy,
            "fitted_on": list(self.fitted_on),
            "n_labels": self.n_labels,
            "n_positive": self.n_positive,
            "effective_positives": self.effective_positives,
            "effective_negatives": self.effective_negatives,
            "weighted_prevalence": self.weighted_prevalence,
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys); :meth:`from_json` restores an equal object."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`; checks a stored ``version`` against the parameters."""
        try:
            method = data["method"]
            make_params = CALIBRATION_METHODS[method]
        except (KeyError, TypeError):
            raise ValueError(
                f"method: expected one of {sorted(CALIBRATION_METHODS)}, "
                f"got {data.get('method') if isinstance(data, Mapping) else data!r}"
            ) from None
        try:
            params = make_params(data["params"])
            calibration = cls(
                params=params,
                policy=data.get("policy"),
                fitted_on=tuple(data.get("fitted_on", ())),
                n_labels=data.get("n_labels", 0),
                n_positive=data.get("n_positive", 0),
                effective_positives=data.get("effective_positives", 0.0),
                effective_negatives=data.get("effective_negatives", 0.0),
                weighted_prevalence=data.get("weighted_prevalence"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"params: missing or malformed field {exc}") from None
        stored = data.get("version")
        if stored is not None and stored != calibration.version:
            raise ValueError(
                f"version: expected {calibration.version!r} (hash of method and params), "
                f"got {stored!r}"
            )
        return calibration

    @classmethod
    def from_json(cls, text: str | bytes) -> Calibration:
        """Parse :meth:`to_json` output (checks the stored version)."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"text: expected a JSON object, got invalid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"text: expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)


# --------------------------------------------------------------------------------------------
# Isotonic: weighted pool-adjacent-violators
# --------------------------------------------------------------------------------------------


def pool_adjacent_violators(values: npt.ArrayLike, weights: npt.ArrayLike) -> FloatArray:
    """Weighted isotonic regression of a sequence (pool-adjacent-violators).

    Solves ``min_f sum_k w_k (y_k - f_k)^2`` subject to ``f_1 <= f_2 <= ... <= f_n`` (the
    weighted L2 projection onto non-decreasing sequences). The solution is constant on blocks
    of consecutive indices and equals each block's weighted mean ``sum w y / sum w``.

    Vectorised PAV: each pass computes the blocks' means and merges every maximal run of
    adjacent blocks whose means decrease (``mean_k > mean_{k+1}``) into one block, with
    ``numpy.bincount`` sums. Merging adjacent violators in any order yields the unique solution
    (Best & Chakravarti 1990), and a run of decreasing means is a sequence of such merges. When
    a pass merges fewer than 1/32 of the blocks (slow progress, e.g. a long increasing run
    ended by one very low value) the remaining blocks are finished by the classic sequential
    stack PAV, so the cost stays ``O(n)`` instead of ``O(n^2)`` at worst.

    Parameters
    ----------
    values : array_like, shape (n,)
        ``y_k`` in the order to be made monotone (e.g. labels sorted by score), finite.
    weights : array_like, shape (n,)
        ``w_k > 0``.

    Returns
    -------
    numpy.ndarray, shape (n,)
        The fitted non-decreasing sequence ``f``.

    References
    ----------
    Ayer et al. (1955), *Ann. Math. Statist.* 26, 641-647; Best & Chakravarti (1990),
    *Math. Programming* 47, 425-439.
    """
    y = _float_1d("values", values)
    w = _float_1d("weights", weights)
    if len(y) != len(w):
        raise ValueError(f"values, weights: expected equal lengths, got {len(y)} and {len(w)}")
    if np.any(w <= 0.0):
        raise ValueError(f"weights: expected values > 0, got minimum {float(w.min())!r}")
    if len(y) == 0:
        return np.zeros(0)
    means, starts = _pav_blocks(y, w)
    return np.repeat(means, np.diff(np.append(starts, len(y))))


def _pav_blocks(y: FloatArray, w: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """PAV blocks: (means, start indices); means non-decreasing.

    Vectorised passes while each merges at least 1/32 of the blocks (so the block count shrinks
    geometrically and all passes together cost ``O(n)``), then one sequential stack pass over
    the remaining blocks (``O(#blocks)``). Without the switch, inputs such as a long increasing
    run ended by one very low value would take one pass per element, ``O(n^2)``.
    """
    sum_w = w.copy()
    sum_wy = w * y
    starts = np.arange(len(y), dtype=np.int64)
    means = sum_wy / sum_w
    while True:
        violates = means[:-1] > means[1:]
        n_merged = int(np.count_nonzero(violates))
        if n_merged == 0:
            return means, starts
        if 32 * n_merged < len(means):
            return _pav_stack(sum_w, sum_wy, starts)
        block = np.concatenate(([0], np.cumsum(~violates)))
        sum_w = np.asarray(np.bincount(block, weights=sum_w), dtype=np.float64)
        sum_wy = np.asarray(np.bincount(block, weights=sum_wy), dtype=np.float64)
        starts = starts[np.concatenate(([True], ~violates))]
        means = sum_wy / sum_w


def _pav_stack(
    sum_w: FloatArray, sum_wy: FloatArray, starts: npt.NDArray[np.int64]
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Classic stack PAV over blocks given by their weight sums, weighted sums and starts."""
    stack_w: list[float] = []
    stack_wy: list[float] = []
    stack_start: list[int] = []
    for bw, bwy, bstart in zip(sum_w.tolist(), sum_wy.tolist(), starts.tolist(), strict=True):
        while stack_w and stack_wy[-1] / stack_w[-1] > bwy / bw:
            bw += stack_w.pop()
            bwy += stack_wy.pop()
            bstart = stack_start.pop()
        stack_w.append(bw)
        stack_wy.append(bwy)
        stack_start.append(bstart)
    means = np.asarray(stack_wy) / np.asarray(stack_w)
    return means, np.asarray(stack_start, dtype=np.int64)


def _summary(y: FloatArray, w: FloatArray) -> dict[str, Any]:
    positive = y == 1.0
    return {
        "n_labels": len(y),
        "n_positive": int(np.count_nonzero(positive)),
        "effective_positives": kish_effective_count(w[positive]),
        "effective_negatives": kish_effective_count(w[~positive]),
        "weighted_prevalence": float(min(np.sum(w * y) / np.sum(w), 1.0)),
    }


def fit_isotonic(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    policy: str | None = None,
    fitted_on: Sequence[date | str] = (),
    eps: float = DEFAULT_EPS,
) -> Calibration:
    """Weighted isotonic calibration (Zadrozny & Elkan 2002) with design weights.

    Estimates ``q(s) = P(v = 1 | s)`` as the non-decreasing step function minimising the
    design-weighted squared error ``sum_k w_k (y_k - q(s_k))^2`` over the labelled units: a
    Horvitz-Thompson estimate of the census criterion ``sum_i (v_i - q(s_i))^2`` over all units
    of the days fitted on, so the fit is design-consistent for the census isotonic regression.

    Steps: units with equal scores are pooled (weighted mean label, summed weight; ties must
    get one ``q``), :func:`pool_adjacent_violators` runs on the pooled labels in score order,
    each block's value is clipped to ``[eps, 1 - eps]`` and adjacent blocks with equal clipped
    values are merged. The result is the step function of :class:`IsotonicParams`: ``q(s)`` is
    the fitted value at the largest training score ``<= s`` (the lowest block's value below
    every training score). The fitted values at the training scores are those of
    ``sklearn.isotonic.IsotonicRegression(increasing=True).fit(s, y, sample_weight=w)``
    clipped to ``[eps, 1 - eps]``; between training scores scikit-learn interpolates linearly,
    this step function does not.

    Parameters
    ----------
    scores : array_like, shape (n,)
        Scores in ``[0, 1]`` of the labelled units.
    labels : array_like, shape (n,)
        1 (violating) or 0; booleans accepted.
    weights : array_like, shape (n,)
        Design weights ``w_k > 0`` (``1 / pi_k`` or ``1 / (n p_k)``); only ratios matter.
    policy : str, optional
        Policy name stored on the result.
    fitted_on : sequence of date or str, optional
        Days whose labels are used, stored on the result.
    eps : float, default 1e-6
        Predictions are clipped to ``[eps, 1 - eps]``.

    Returns
    -------
    Calibration
        ``method == "isotonic"``.

    Raises
    ------
    ValueError
        On empty or unequal-length inputs, scores outside ``[0, 1]``, labels other than 0/1,
        weights ``<= 0`` or non-finite values, or ``eps`` outside ``(0, 0.5)``.

    References
    ----------
    Zadrozny & Elkan (2002), KDD '02, 694-699; Ayer et al. (1955); Best & Chakravarti (1990).
    """
    eps = _check_eps(eps)
    s, y, w = _training_data(scores, labels, weights)
    unique_s, tie_group = np.unique(s, return_inverse=True)
    pooled_w = np.asarray(np.bincount(tie_group, weights=w), dtype=np.float64)
    pooled_y = np.asarray(np.bincount(tie_group, weights=w * y), dtype=np.float64) / pooled_w
    means, starts = _pav_blocks(pooled_y, pooled_w)
    values = np.clip(means, eps, 1.0 - eps)
    new_value = np.concatenate(([True], values[1:] != values[:-1]))
    params = IsotonicParams(
        thresholds=tuple(unique_s[starts][new_value].tolist()),
        values=tuple(values[new_value].tolist()),
        eps=eps,
    )
    return Calibration(
        params=params, policy=policy, fitted_on=_iso_days(fitted_on), **_summary(y, w)
    )


# --------------------------------------------------------------------------------------------
# Platt: weighted, ridge-penalised logistic regression on logit(score)
# --------------------------------------------------------------------------------------------


def _penalised_logistic(
    x: FloatArray, y: FloatArray, w: FloatArray, ridge: float, free: npt.NDArray[np.bool_]
) -> FloatArray | None:
    """Newton-Raphson (IRLS) with backtracking for ``theta = (a, b)``; ``None`` if it fails.

    Minimises ``f(theta) = sum_k w_k [log(1 + e^eta_k) - y_k eta_k] + ridge/2 |theta - (0, 1)|^2``
    with ``eta_k = a + b x_k``, over the coordinates in ``free`` (others held at the prior).
    """
    prior = np.array([0.0, 1.0])
    theta = prior.copy()
    design = np.column_stack((np.ones_like(x), x))

    def objective(t: FloatArray) -> float:
        eta = design @ t
        return float(
            np.sum(w * (np.logaddexp(0.0, eta) - y * eta)) + 0.5 * ridge * np.sum((t - prior) ** 2)
        )

    value = objective(theta)
    for _ in range(_NEWTON_MAX_ITER):
        p = special.expit(design @ theta)
        grad = design.T @ (w * (p - y)) + ridge * (theta - prior)
        hess = (design * (w * p * (1.0 - p))[:, None]).T @ design + ridge * np.eye(2)
        g, h = grad[free], hess[np.ix_(free, free)]
        try:
            step_free = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step_free)):
            return None
        step = np.zeros(2)
        step[free] = step_free
        t = 1.0
        decrease = float(g @ step_free)  # Newton decrement g' H^-1 g >= 0
        noise = 1e-14 * abs(value)  # objective differences below this are rounding
        while True:  # Armijo backtracking
            candidate = theta - t * step
            new_value = objective(candidate)
            if new_value <= value - 1e-4 * t * decrease or new_value - value <= noise:
                break
            t *= 0.5
            if t < 1e-12:
                return None
        converged = np.max(np.abs(t * step)) <= _NEWTON_TOL * (1.0 + np.max(np.abs(theta)))
        theta, value = candidate, new_value
        if converged:
            return theta if np.all(np.isfinite(theta)) else None
    return None


def fit_platt(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    policy: str | None = None,
    fitted_on: Sequence[date | str] = (),
    ridge: float = DEFAULT_RIDGE,
    eps: float = DEFAULT_EPS,
) -> Calibration:
    """Weighted Platt scaling on the score's log-odds, with a ridge towards the identity.

    Estimates ``q(s) = 1 / (1 + exp(-(a + b logit(s))))`` (Platt 1999, fitted on the log-odds of
    the score) by maximising the design-weighted, penalised log pseudo-likelihood::

        l(a, b) = sum_k w~_k [y_k eta_k - log(1 + exp(eta_k))] - ridge/2 (a^2 + (b - 1)^2),
        eta_k = a + b x_k,   x_k = logit(clip(s_k, eps, 1 - eps)),
        w~_k = w_k n / sum_j w_j  (weights normalised to mean 1),

    by Newton-Raphson (iteratively reweighted least squares) with backtracking, from the
    identity ``(a, b) = (0, 1)``. Without the penalty the weighted estimating equations are
    Horvitz-Thompson estimates of the census score equations (Binder 1983), so ``(a, b)`` is
    design-consistent for the census logistic fit. The ridge, in units of one average-weight
    label, keeps ``(a, b)`` finite when the labels are separated by the score or all equal,
    shrinking towards ``q = s``; its bias is ``O(ridge / n)``. If the maximiser has ``b < 0``
    (score anti-informative) the fit is redone with ``b = 0`` (the maximiser on ``b >= 0``, as
    ``l`` is concave), so ``q`` never decreases in the score.

    Parameters
    ----------
    scores, labels, weights : array_like, shape (n,)
        As in :func:`fit_isotonic`.
    policy : str, optional
        Policy name stored on the result.
    fitted_on : sequence of date or str, optional
        Days whose labels are used.
    ridge : float, default 0.1
        Penalty ``lambda >= 0``. With 0 the plain weighted maximum-likelihood fit, which does
        not exist (``ValueError``) for separated or single-class labels.
    eps : float, default 1e-6
        Bound of the score and prediction clipping.

    Returns
    -------
    Calibration
        ``method == "platt"``.

    Raises
    ------
    ValueError
        On invalid inputs (see :func:`fit_isotonic`), ``ridge < 0``, or ``ridge == 0`` with no
        finite maximum-likelihood estimate.

    References
    ----------
    Platt (1999), *Advances in Large Margin Classifiers*, 61-74; Niculescu-Mizil & Caruana
    (2005), ICML '05, 625-632; Binder (1983), *Int. Statist. Rev.* 51, 279-292.
    """
    eps = _check_eps(eps)
    ridge = _check_nonnegative_number("ridge", ridge)
    s, y, w = _training_data(scores, labels, weights)
    sc = np.clip(s, eps, 1.0 - eps)
    x = np.log(sc / (1.0 - sc))
    w_norm = w * (len(w) / np.sum(w))
    theta = _penalised_logistic(x, y, w_norm, ridge, np.array([True, True]))
    if theta is not None and theta[1] < 0.0:
        intercept_only = np.array([True, False])
        theta = _penalised_logistic(x * 0.0, y, w_norm, ridge, intercept_only)
        if theta is not None:
            theta[1] = 0.0
    if theta is None or np.max(np.abs(theta)) > 1e6:
        raise ValueError(
            f"ridge: the weighted maximum-likelihood fit does not converge with ridge={ridge!r} "
            "(labels separated by the score or all equal); use ridge > 0"
        )
    params = PlattParams(a=float(theta[0]), b=float(theta[1]), eps=eps)
    return Calibration(
        params=params, policy=policy, fitted_on=_iso_days(fitted_on), **_summary(y, w)
    )


# --------------------------------------------------------------------------------------------
# Identity and fallback rules
# --------------------------------------------------------------------------------------------


def identity_calibration(policy: str | None = None, *, eps: float = DEFAULT_EPS) -> Calibration:
    """The calibration of a policy without labels yet: ``q = clip(score, eps, 1 - eps)``.

    Its version depends only on ``eps`` (``"identity-..."``, the same for every policy).

    Parameters
    ----------
    policy : str, optional
        Policy name stored on the result.
    eps : float, default 1e-6
        Clipping bound.

    Returns
    -------
    Calibration
        ``method == "identity"``, no labels.
    """
    return Calibration(params=IdentityParams(eps=eps), policy=policy)


def fit_calibration(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    policy: str | None = None,
    fitted_on: Sequence[date | str] = (),
    min_positives_isotonic: float = DEFAULT_MIN_POSITIVES_ISOTONIC,
    min_positives_platt: float = DEFAULT_MIN_POSITIVES_PLATT,
    ridge: float = DEFAULT_RIDGE,
    eps: float = DEFAULT_EPS,
) -> Calibration:
    """Fit the richest calibration the labelled evidence supports (fallback rules).

    With ``m = min(effective positives, effective negatives)``, the Kish effective counts
    ``(sum w)^2 / sum w^2`` of the rarer label class (:func:`kish_effective_count`; the design
    weights of rare positives vary a lot, so ``m`` is usually below the raw count):

    * ``m >= min_positives_isotonic`` -> :func:`fit_isotonic` (non-parametric; overfits on
      small calibration sets, Niculescu-Mizil & Caruana 2005);
    * else ``m >= min_positives_platt`` -> :func:`fit_platt` (two parameters);
    * else (including no labels at all) -> :func:`identity_calibration`, still recording the
      label counts and days so that the reason is visible.

    Parameters
    ----------
    scores, labels, weights : array_like, shape (n,)
        As in :func:`fit_isotonic`; may be empty.
    policy : str, optional
        Policy name stored on the result.
    fitted_on : sequence of date or str, optional
        Days whose labels are used.
    min_positives_isotonic : float, default 50
        Minimum ``m`` for an isotonic fit.
    min_positives_platt : float, default 10
        Minimum ``m`` for a Platt fit; at most ``min_positives_isotonic``.
    ridge : float, default 0.1
        Ridge of :func:`fit_platt`.
    eps : float, default 1e-6
        Clipping bound of every method.

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        On invalid inputs or thresholds (negative, or Platt's above isotonic's).
    """
    iso = _check_nonnegative_number("min_positives_isotonic", min_positives_isotonic)
    platt = _check_nonnegative_number("min_positives_platt", min_positives_platt)
    if platt > iso:
        raise ValueError(
            f"min_positives_platt: expected at most min_positives_isotonic={iso!r}, got {platt!r}"
        )
    eps = _check_eps(eps)
    lengths = {
        name: len(_float_1d(name, values))
        for name, values in (("scores", scores), ("labels", labels), ("weights", weights))
    }
    if set(lengths.values()) == {0}:
        return Calibration(
            params=IdentityParams(eps=eps), policy=policy, fitted_on=_iso_days(fitted_on)
        )
    s, y, w = _training_data(scores, labels, weights)
    summary = _summary(y, w)
    m = min(summary["effective_positives"], summary["effective_negatives"])
    if m >= iso and m > 0.0:
        return fit_isotonic(s, y, w, policy=policy, fitted_on=fitted_on, eps=eps)
    if m >= platt and m > 0.0:
        return fit_platt(s, y, w, policy=policy, fitted_on=fitted_on, ridge=ridge, eps=eps)
    return Calibration(
        params=IdentityParams(eps=eps), policy=policy, fitted_on=_iso_days(fitted_on), **summary
    )
