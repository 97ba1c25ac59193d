"""Sample-size planning: labels needed per policy for a target relative precision, and the
allocation of a daily label budget.

What is planned
---------------
For a policy with (anticipated) impression-weighted prevalence ``p`` the target is a relative
confidence-interval half-width ``r`` at confidence ``1 - alpha``: the half-width
``z_{1-alpha/2} SE(P_hat)`` should be at most ``r p`` (e.g. ``r = 0.2``: +/-20% of the
prevalence at 95%).

Simple route (design effect)
----------------------------
With ``V(P_hat) = deff p (1-p) / n`` (``deff`` the design effect of the design, ``n`` the
labels) the target ``z sqrt(V) = r p`` gives Cochran's (1977, Section 4.4) sample size for a
proportion with relative error ``r`` (``d = r p``), multiplied by the design effect::

    n = deff z^2 (1 - p) / (r^2 p),       r(n) = z sqrt(deff (1 - p) / (n p)).

With ``deff = 1`` the expected number of positive labels is ``n p = z^2 (1-p) / r^2``; for
``r = 0.2`` at 95% that is ``96.04 (1 - p)``, i.e. "about 100 positive labels for a relative
error of 20%", the rule of thumb of the Google Data Science blog (Liu 2019).

Design route (Poisson PPS on calibrated violation probabilities)
-----------------------------------------------------------------
With calibrated violation probabilities ``q_i`` (a model for ``y_i = x_i B_i``,
``B_i ~ Bernoulli(q_i)`` independent), a Poisson PPS design with::

    pi_i = min(1, c x_i sqrt(q_i) + floor),     c >= 0 such that sum_i pi_i = n,

and the Horvitz-Thompson estimator ``P_hat = sum_S y_i / pi_i / X``, the *anticipated variance*
(model expectation of the design variance ``sum_i y_i^2 (1 - pi_i) / pi_i / X^2``) is::

    AV(n) = sum_i x_i^2 q_i (1 - pi_i) / pi_i / X^2,      X = sum_i x_i,

and the anticipated prevalence is ``p = sum_i x_i q_i / X``. ``pi_i`` proportional to
``x_i sqrt(q_i)`` minimises ``AV`` for a given expected sample size (Sarndal, Swensson &
Wretman 1992, Chapter 12; the ``floor`` keeps every unit selectable). ``AV(n)`` decreases
with ``n``; the planner solves ``z sqrt(AV(n)) / p = r`` for the expected sample size ``n`` by
bisection on ``n`` (each step solving exactly for ``c``), between ``n = N floor`` (``c = 0``)
and the size at which every unit with ``x_i q_i > 0`` is a certainty unit (``AV = 0``).

Budget allocation
-----------------
:func:`plan_labels` turns per-policy needs into a daily plan within a label budget ``B``:

* one shared multi-policy sample (every drawn unit is labelled for every policy): the shared
  ``n = min(max_k n_k, B)`` (Cochran 1977, Section 4.8: with several items, the largest
  requirement decides); policies whose ``n_k`` exceeds it miss their target;
* one sample per policy: ``n_k`` each when ``sum_k n_k <= B``; otherwise every ``n_k`` is scaled
  by ``B / sum_k n_k`` and rounded down, so the total never exceeds ``B``.

References
----------
Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed., Wiley. Chapter 4 (the estimation of
sample size; Section 4.4 proportions, Section 4.8 several items).

Kish, L. (1965). *Survey Sampling*. Wiley. (The design effect.)

Sarndal, C.-E., Swensson, B. and Wretman, J. (1992). *Model Assisted Survey Sampling*.
Springer. Chapter 12 (anticipated variance and optimal inclusion probabilities) and
Chapter 3 (Poisson sampling).

Liu, Y. (2019). Estimating the prevalence of rare events -- theory and practice. *The Unofficial
Google Data Science Blog*, 27 August 2019. ("To obtain a relative error of no more than 20%,
we need roughly 100 positive labels.")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import stats

from tsmetrics.sampling import poisson_pps_inclusion

__all__ = [
    "DesignTarget",
    "LabelPlan",
    "PolicyPlan",
    "SimpleTarget",
    "anticipated_variance",
    "design_labels_needed",
    "design_relative_half_width",
    "labels_needed",
    "plan_labels",
    "relative_half_width_at",
    "sqrt_q_inclusion",
]

FloatArray = npt.NDArray[np.float64]

# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return out


def _positive(name: str, value: object) -> float:
    out = _number(name, value)
    if out <= 0.0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return out


def _open_unit(name: str, value: object) -> float:
    out = _number(name, value)
    if not 0.0 < out < 1.0:
        raise ValueError(f"{name}: expected a number in (0, 1), got {value!r}")
    return out


def _z(confidence: float) -> float:
    """Two-sided normal critical value ``z_{1-alpha/2}``, ``alpha = 1 - confidence``."""
    return float(stats.norm.isf((1.0 - _open_unit("confidence", confidence)) / 2.0))


def _array(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a 1-d array of numbers, got {values!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got {int(np.sum(~np.isfinite(arr)))}")
    return arr


def _population(
    impressions: npt.ArrayLike, violation_prob: npt.ArrayLike, floor: float
) -> tuple[FloatArray, FloatArray, float]:
    x = _array("impressions", impressions)
    q = _array("violation_prob", violation_prob)
    if x.shape != q.shape:
        raise ValueError(f"violation_prob: expected shape {x.shape} (one per unit), got {q.shape}")
    if np.any(x < 0.0):
        raise ValueError(f"impressions: expected values >= 0, got minimum {float(x.min())!r}")
    if np.any((q < 0.0) | (q > 1.0)):
        raise ValueError(
            f"violation_prob: expected values in [0, 1], got range [{float(q.min())!r}, "
            f"{float(q.max())!r}]"
        )
    if not np.any(x * q > 0.0):
        raise ValueError(
            "violation_prob: expected at least one unit with impressions > 0 and "
            "violation_prob > 0 (anticipated prevalence 0 cannot be planned for)"
        )
    f = _number("floor", floor)
    if not 0.0 <= f < 1.0:
        raise ValueError(f"floor: expected a number in [0, 1), got {floor!r}")
    return x, q, f


# --------------------------------------------------------------------------------------------
# Simple route
# --------------------------------------------------------------------------------------------


def labels_needed(
    prevalence: float,
    relative_half_width: float,
    *,
    design_effect: float = 1.0,
    confidence: float = 0.95,
) -> float:
    """Labels needed for a relative CI half-width ``r``: ``n = deff z^2 (1-p) / (r^2 p)``.

    Solves ``z sqrt(deff p (1-p) / n) = r p`` for ``n`` (Cochran 1977, Section 4.4, with
    relative error ``d = r p``, times the design effect). Not rounded: the inverse of
    :func:`relative_half_width_at`.

    Parameters
    ----------
    prevalence : float
        Anticipated prevalence ``p`` in ``(0, 1)`` (e.g. a recent pooled estimate).
    relative_half_width : float
        Target relative half-width ``r > 0`` (0.2 for +/-20%).
    design_effect : float, default 1.0
        Design effect ``deff > 0`` of the design (``V / (p(1-p)/n)``; e.g. the
        ``design_effect`` of recent estimates, typically < 1 for risk-weighted PPS).
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.

    Returns
    -------
    float
        The (fractional) number of labels ``n``.
    """
    p = _open_unit("prevalence", prevalence)
    r = _positive("relative_half_width", relative_half_width)
    deff = _positive("design_effect", design_effect)
    z = _z(confidence)
    return deff * z * z * (1.0 - p) / (r * r * p)


def relative_half_width_at(
    prevalence: float,
    n: float,
    *,
    design_effect: float = 1.0,
    confidence: float = 0.95,
) -> float:
    """Relative CI half-width achieved with ``n`` labels: ``r = z sqrt(deff (1-p) / (n p))``.

    Inverse of :func:`labels_needed`. ``math.inf`` for ``n == 0``.

    Parameters
    ----------
    prevalence : float
        Anticipated prevalence ``p`` in ``(0, 1)``.
    n : float
        Number of labels ``>= 0``.
    design_effect : float, default 1.0
        Design effect ``> 0``.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    """
    p = _open_unit("prevalence", prevalence)
    size = _number("n", n)
    if size < 0.0:
        raise ValueError(f"n: expected a number >= 0, got {n!r}")
    deff = _positive("design_effect", design_effect)
    z = _z(confidence)
    if size == 0.0:
        return math.inf
    return z * math.sqrt(deff * (1.0 - p) / (size * p))


# --------------------------------------------------------------------------------------------
# Design route: Poisson PPS with pi_i = min(1, c x_i sqrt(q_i) + floor)
# --------------------------------------------------------------------------------------------


def sqrt_q_inclusion(
    impressions: npt.ArrayLike,
    violation_prob: npt.ArrayLike,
    expected_n: float,
    floor: float = 0.0,
) -> FloatArray:
    """Inclusion probabilities ``pi_i = min(1, c x_i sqrt(q_i) + floor)`` with ``sum pi_i = n``.

    Writing ``a_i = x_i sqrt(q_i)``, ``pi_i = floor + (1 - floor) min(1, c' a_i)`` with
    ``c' = c / (1 - floor)``, so ``c'`` is the exact capping solution of
    ``sampling.poisson_pps_inclusion(a, (n - N floor) / (1 - floor))``. Units with ``a_i = 0``
    (no impressions or ``q_i = 0``) get ``pi_i = floor``. Select with
    ``sampling.poisson_pps_select``; estimate with ``sampling.horvitz_thompson_prevalence``.

    Parameters
    ----------
    impressions : array_like, shape (N,)
        Impressions ``x_i >= 0``.
    violation_prob : array_like, shape (N,)
        Calibrated violation probabilities ``q_i`` in ``[0, 1]``.
    expected_n : float
        Expected sample size ``n``, in ``[N floor, N floor + (1 - floor) N_+]`` with ``N_+`` the
        number of units with ``a_i > 0`` (and ``n > 0``).
    floor : float, default 0.0
        Additive floor in ``[0, 1)``: every unit's inclusion probability is at least ``floor``.

    Returns
    -------
    numpy.ndarray
        ``pi_i``, shape (N,).
    """
    x, q, f = _population(impressions, violation_prob, floor)
    a = x * np.sqrt(q)
    n_units, n_pos = len(a), int(np.count_nonzero(a > 0.0))
    n = _positive("expected_n", expected_n)
    lo, hi = n_units * f, n_units * f + (1.0 - f) * n_pos
    if not lo <= n <= hi * (1.0 + 1e-12):
        raise ValueError(
            f"expected_n: expected a number in [{lo:g}, {hi:g}] (N floor to every unit with "
            f"x q > 0 certain), got {expected_n!r}"
        )
    m = min((n - lo) / (1.0 - f), float(n_pos))
    if m <= 0.0:
        return np.full(n_units, f)
    return f + (1.0 - f) * poisson_pps_inclusion(a, m)


def anticipated_variance(
    impressions: npt.ArrayLike, violation_prob: npt.ArrayLike, inclusion_prob: npt.ArrayLike
) -> float:
    """Anticipated variance of the HT prevalence under Poisson sampling and the ``q`` model.

    ``AV = sum_i x_i^2 q_i (1 - pi_i) / pi_i / X^2`` with ``X = sum_i x_i``: the expectation,
    over ``y_i = x_i Bernoulli(q_i)``, of the Poisson design variance ``sum_i y_i^2 (1 - pi_i) /
    pi_i / X^2`` of ``P_hat = sum_S y_i / pi_i / X`` (Sarndal et al. 1992, Chapter 12). Since
    the HT estimator is design-unbiased, it is also ``E[(P_hat - P)^2]`` over model and design.
    Any ``pi`` may be given (e.g. the production design's ``poisson_pps_inclusion`` on
    ``size_measure``); ``math.inf`` when a unit with ``x_i q_i > 0`` has ``pi_i = 0``.

    Parameters
    ----------
    impressions, violation_prob : array_like, shape (N,)
        ``x_i >= 0`` and ``q_i`` in ``[0, 1]``.
    inclusion_prob : array_like, shape (N,)
        ``pi_i`` in ``[0, 1]``.

    Returns
    -------
    float
        ``AV`` (a variance of the prevalence, not of the total).
    """
    x, q, _ = _population(impressions, violation_prob, 0.0)
    pi = _array("inclusion_prob", inclusion_prob)
    if pi.shape != x.shape:
        raise ValueError(f"inclusion_prob: expected shape {x.shape} (one per unit), got {pi.shape}")
    if np.any((pi < 0.0) | (pi > 1.0)):
        raise ValueError("inclusion_prob: expected values in [0, 1]")
    w = x * x * q
    active = w > 0.0
    if np.any(pi[active] <= 0.0):
        return math.inf
    total = float(x.sum())
    return float(np.sum(w[active] * (1.0 - pi[active]) / pi[active])) / (total * total)


class _SqrtQDesign:
    """Pre-sorted ``pi_i = min(1, c a_i + f)`` design: ``AV(n)`` in O(N) per evaluation.

    Same exact capping rule as ``sampling.poisson_pps_inclusion`` (sizes sorted decreasingly,
    ``k`` certainty units the smallest ``k`` with ``a_(k+1) (m - k) < sum_{j > k} a_(j)``), on
    ``m = (n - N f) / (1 - f)``; units with ``a_i = 0`` have ``x_i^2 q_i = 0`` and add nothing.
    """

    def __init__(self, x: FloatArray, q: FloatArray, floor: float) -> None:
        a = x * np.sqrt(q)
        positive = a > 0.0
        order = np.argsort(-a[positive], kind="stable")
        self.a = a[positive][order]
        self.w = (x * x * q)[positive][order]
        self.tail = np.cumsum(self.a[::-1])[::-1]
        self.ranks = np.arange(len(self.a), dtype=np.float64)
        self.floor = floor
        self.n_units = len(x)
        self.total = float(x.sum())
        self.prevalence = float(np.dot(x, q)) / self.total
        self.n_min = self.n_units * floor
        self.n_max = self.n_min + (1.0 - floor) * len(self.a)

    def inclusion(self, n: float) -> FloatArray:
        """``pi`` of the units with ``a_i > 0``, in decreasing ``a`` order."""
        f = self.floor
        m = (n - self.n_min) / (1.0 - f)
        if m <= 0.0:
            return np.full(len(self.a), f)
        if m >= len(self.a):
            return np.ones(len(self.a))
        not_capped = self.a * (m - self.ranks) < self.tail
        k = int(np.argmax(not_capped))
        scaled = np.minimum(1.0, self.a * ((m - k) / float(self.tail[k])))
        scaled[:k] = 1.0
        return f + (1.0 - f) * scaled

    def variance(self, n: float) -> float:
        pi = self.inclusion(n)
        if np.any(pi <= 0.0):
            return math.inf
        return float(np.sum(self.w * (1.0 - pi) / pi)) / (self.total * self.total)

    def relative_half_width(self, n: float, z: float) -> float:
        if n < self.n_min or n <= 0.0:
            return math.inf  # the floor alone needs more than n labels
        return z * math.sqrt(self.variance(min(n, self.n_max))) / self.prevalence

    def labels_needed(self, r: float, z: float, rtol: float) -> float:
        lo = max(self.n_min, 0.0)
        if lo > 0.0 and self.relative_half_width(lo, z) <= r:
            return lo
        hi = self.n_max  # AV(n_max) = 0
        for _ in range(200):  # bisection: invariant r(lo) > target >= r(hi)
            mid = 0.5 * (lo + hi)
            if self.relative_half_width(mid, z) <= r:
                hi = mid
            else:
                lo = mid
            if hi - lo <= rtol * hi:
                break
        return hi


def design_relative_half_width(
    impressions: npt.ArrayLike,
    violation_prob: npt.ArrayLike,
    expected_n: float,
    *,
    floor: float = 0.0,
    confidence: float = 0.95,
) -> float:
    """Anticipated relative CI half-width ``z sqrt(AV(n)) / p`` of the sqrt-q Poisson PPS design.

    ``AV(n)`` is :func:`anticipated_variance` at ``pi_i = min(1, c x_i sqrt(q_i) + floor)``
    with ``sum pi_i = n`` and ``p = sum x_i q_i / X`` the anticipated prevalence. ``math.inf``
    when ``n < N floor`` (the floor alone exceeds ``n``); 0 beyond the size at which every unit
    with ``x_i q_i > 0`` is certain.

    Parameters
    ----------
    impressions, violation_prob : array_like, shape (N,)
        ``x_i >= 0`` and calibrated ``q_i`` in ``[0, 1]``.
    expected_n : float
        Expected sample size ``n >= 0``.
    floor : float, default 0.0
        Additive inclusion-probability floor in ``[0, 1)``.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    """
    x, q, f = _population(impressions, violation_prob, floor)
    n = _number("expected_n", expected_n)
    if n < 0.0:
        raise ValueError(f"expected_n: expected a number >= 0, got {expected_n!r}")
    return _SqrtQDesign(x, q, f).relative_half_width(n, _z(confidence))


def design_labels_needed(
    impressions: npt.ArrayLike,
    violation_prob: npt.ArrayLike,
    relative_half_width: float,
    *,
    floor: float = 0.0,
    confidence: float = 0.95,
    rtol: float = 1e-10,
) -> float:
    """Expected sample size ``n`` at which the sqrt-q Poisson PPS design reaches ``r``.

    Bisection on ``n`` of ``z sqrt(AV(n)) / p = r`` (see :func:`design_relative_half_width`;
    ``AV`` decreases in ``n``), between ``N floor`` and the size at which every unit with
    ``x_i q_i > 0`` is certain (``AV = 0``), to relative tolerance ``rtol``; the returned ``n``
    meets the target (``r(n) <= r``). When the floor alone already meets it, ``N floor``.

    Parameters
    ----------
    impressions, violation_prob : array_like, shape (N,)
        ``x_i >= 0`` and calibrated ``q_i`` in ``[0, 1]``.
    relative_half_width : float
        Target ``r > 0``.
    floor : float, default 0.0
        Additive inclusion-probability floor in ``[0, 1)``.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    rtol : float, default 1e-10
        Relative tolerance of the bisection, in ``(0, 0.1]``.

    Returns
    -------
    float
        Expected sample size ``n = sum pi_i`` (not rounded).
    """
    x, q, f = _population(impressions, violation_prob, floor)
    r = _positive("relative_half_width", relative_half_width)
    tol = _positive("rtol", rtol)
    if tol > 0.1:
        raise ValueError(f"rtol: expected a number in (0, 0.1], got {rtol!r}")
    return _SqrtQDesign(x, q, f).labels_needed(r, _z(confidence), tol)


# --------------------------------------------------------------------------------------------
# Targets and budget allocation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimpleTarget:
    """A policy planned with the design-effect formula (:func:`labels_needed`).

    Attributes
    ----------
    policy : str
        Policy name.
    prevalence : float
        Anticipated prevalence ``p`` in ``(0, 1)``.
    design_effect : float
        Design effect ``> 0`` (default 1: simple random sampling).
    """

    policy: str
    prevalence: float
    design_effect: float = 1.0

    def __post_init__(self) -> None:
        _open_unit("prevalence", self.prevalence)
        _positive("design_effect", self.design_effect)

    @classmethod
    def from_estimate(
        cls, policy: str, estimate: float, design_effect: float | None
    ) -> SimpleTarget:
        """Target from a recent (e.g. pooled) estimate and its design effect.

        ``design_effect`` ``None`` (undefined: no violating draw) is rejected, as is an estimate
        outside ``(0, 1)``: plan such a policy from an assumed prevalence instead.
        """
        if design_effect is None:
            raise ValueError(
                f"design_effect: expected a number for policy {policy!r}, got None (the "
                "estimate has no variance; use an assumed prevalence and design effect)"
            )
        return cls(policy=policy, prevalence=estimate, design_effect=design_effect)

    def labels_needed(self, relative_half_width: float, confidence: float) -> float:
        """``deff z^2 (1-p) / (r^2 p)``."""
        return labels_needed(
            self.prevalence,
            relative_half_width,
            design_effect=self.design_effect,
            confidence=confidence,
        )

    def relative_half_width(self, n: float, confidence: float) -> float:
        """``z sqrt(deff (1-p) / (n p))``."""
        return relative_half_width_at(
            self.prevalence, n, design_effect=self.design_effect, confidence=confidence
        )


@dataclass(frozen=True, eq=False)
class DesignTarget:
    """A policy planned with the sqrt-q Poisson PPS anticipated variance.

    Attributes
    ----------
    policy : str
        Policy name.
    impressions : numpy.ndarray
        ``x_i >= 0`` of a recent day's units.
    violation_prob : numpy.ndarray
        Calibrated ``q_i`` in ``[0, 1]`` for this policy.
    floor : float
        Additive inclusion-probability floor in ``[0, 1)``.
    """

    policy: str
    impressions: FloatArray
    violation_prob: FloatArray
    floor: float = 0.0
    _design: _SqrtQDesign = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        x, q, f = _population(self.impressions, self.violation_prob, self.floor)
        object.__setattr__(self, "impressions", x)
        object.__setattr__(self, "violation_prob", q)
        object.__setattr__(self, "floor", f)
        object.__setattr__(self, "_design", _SqrtQDesign(x, q, f))

    @property
    def prevalence(self) -> float:
        """Anticipated prevalence ``sum x_i q_i / sum x_i``."""
        return self._design.prevalence

    def labels_needed(self, relative_half_width: float, confidence: float) -> float:
        """Expected sample size reaching ``relative_half_width`` (bisection on ``n``)."""
        r = _positive("relative_half_width", relative_half_width)
        return self._design.labels_needed(r, _z(confidence), 1e-10)

    def relative_half_width(self, n: float, confidence: float) -> float:
        """``z sqrt(AV(n)) / p``; ``math.inf`` below ``N floor``."""
        return self._design.relative_half_width(float(n), _z(confidence))


PolicyTarget = SimpleTarget | DesignTarget


@dataclass(frozen=True)
class PolicyPlan:
    """Plan of one policy.

    Attributes
    ----------
    policy : str
        Policy name.
    prevalence : float
        Anticipated prevalence used.
    needed_n : float
        Labels (expected sample size) needed to reach the target, unrounded.
    labels_needed : int
        ``ceil(needed_n)``.
    chosen_n : int
        Labels this policy gets: the shared sample size, or its allocation.
    achievable_relative_half_width : float
        Anticipated relative CI half-width at ``chosen_n`` (``inf`` when ``chosen_n`` is 0 or
        below the design's floor).
    meets_target : bool
        ``needed_n <= chosen_n``.
    """

    policy: str
    prevalence: float
    needed_n: float
    labels_needed: int
    chosen_n: int
    achievable_relative_half_width: float
    meets_target: bool


@dataclass(frozen=True)
class LabelPlan:
    """Daily label plan.

    Attributes
    ----------
    shared_sample : bool
        One multi-policy sample (``True``) or one sample per policy.
    budget : int
        Daily label budget.
    target_relative_half_width : float
        Target ``r``.
    confidence : float
        Confidence level of the target.
    chosen_n : int
        Labels used: the shared sample size, or the sum of the per-policy allocations
        (always ``<= budget``).
    policies : tuple of PolicyPlan
        Per-policy plans, in the order of the targets.
    """

    shared_sample: bool
    budget: int
    target_relative_half_width: float
    confidence: float
    chosen_n: int
    policies: tuple[PolicyPlan, ...]

    @property
    def missing_target(self) -> tuple[str, ...]:
        """Policies that will not reach the target within the budget."""
        return tuple(p.policy for p in self.policies if not p.meets_target)

    @property
    def unallocated(self) -> int:
        """Budget left unused (``budget - chosen_n``)."""
        return self.budget - self.chosen_n


def plan_labels(
    targets: Sequence[PolicyTarget],
    budget: int,
    *,
    relative_half_width: float = 0.2,
    confidence: float = 0.95,
    shared_sample: bool = True,
) -> LabelPlan:
    """Labels needed per policy and a daily allocation of the label budget.

    For every target ``k`` the needed labels ``n_k`` come from its route
    (:class:`SimpleTarget`: ``deff z^2 (1-p) / (r^2 p)``; :class:`DesignTarget`: bisection on
    the anticipated variance) and ``N_k = ceil(n_k)``. Then:

    * ``shared_sample=True``: chosen ``n = min(max_k N_k, budget)`` labels of one sample that
      every policy uses; policy ``k`` misses its target when ``n_k > n``.
    * ``shared_sample=False``: ``N_k`` each when ``sum_k N_k <= budget``, otherwise
      ``floor(N_k budget / sum_j N_j)`` (proportional scaling, rounded down: the total never
      exceeds the budget and each allocation is non-decreasing in the budget).

    The achievable relative half-width of each policy is evaluated at its chosen labels.

    Parameters
    ----------
    targets : sequence of SimpleTarget or DesignTarget
        At least one, with distinct policy names.
    budget : int
        Daily label budget ``>= 1``.
    relative_half_width : float, default 0.2
        Target relative CI half-width ``r > 0``.
    confidence : float, default 0.95
        Confidence level in ``(0, 1)``.
    shared_sample : bool, default True
        One multi-policy sample, or one sample per policy.

    Returns
    -------
    LabelPlan
    """
    items = list(targets)
    if not items:
        raise ValueError("targets: expected at least one SimpleTarget or DesignTarget, got none")
    for t in items:
        if not isinstance(t, SimpleTarget | DesignTarget):
            raise ValueError(
                f"targets: expected SimpleTarget or DesignTarget items, got {type(t).__name__}"
            )
    names = [t.policy for t in items]
    if len(set(names)) != len(names):
        raise ValueError(f"targets: expected distinct policy names, got {names}")
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 1:
        raise ValueError(f"budget: expected an integer >= 1, got {budget!r}")
    if not isinstance(shared_sample, bool):
        raise ValueError(f"shared_sample: expected a bool, got {shared_sample!r}")
    r = _positive("relative_half_width", relative_half_width)
    _z(confidence)
    total_budget = int(budget)

    needed = [t.labels_needed(r, confidence) for t in items]
    whole = [math.ceil(n) for n in needed]
    if shared_sample:
        chosen = [min(max(whole), total_budget)] * len(items)
        used = chosen[0]
    else:
        demand = sum(whole)
        if demand <= total_budget:
            chosen = list(whole)
        else:
            chosen = [(w * total_budget) // demand for w in whole]
        used = sum(chosen)
    plans = tuple(
        PolicyPlan(
            policy=t.policy,
            prevalence=float(t.prevalence),
            needed_n=float(n),
            labels_needed=int(w),
            chosen_n=int(c),
            achievable_relative_half_width=(
                math.inf if c == 0 else float(t.relative_half_width(c, confidence))
            ),
            meets_target=bool(n <= c),
        )
        for t, n, w, c in zip(items, needed, whole, chosen, strict=True)
    )
    return LabelPlan(
        shared_sample=shared_sample,
        budget=total_budget,
        target_relative_half_width=r,
        confidence=float(confidence),
        chosen_n=int(used),
        policies=plans,
    )
