"""Daily estimates of the simulated designs, vectorised over days (checked against production)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from scipy import sparse

from tsmetrics.check_simulation._common import (
    START_DAY,
    BoolArray,
    Draws,
    FloatArray,
    History,
    IntArray,
    Overall,
)
from tsmetrics.check_simulation.population import (
    Design,
    PoissonDesign,
    Population,
    draw_poisson,
)
from tsmetrics.config import RunConfig
from tsmetrics.designs import LabelledSample, design_of
from tsmetrics.estimation import CI_METHODS
from tsmetrics.gamma_interval import EVENT_WEIGHT_CI_METHODS

# --------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DailyEstimates:
    """Daily estimates, as ``estimate_day`` writes them.

    Attributes
    ----------
    estimate, variance : ndarray of float, shape (days, P, S + 1)
        Prevalence estimate and its estimated variance (``SE = sqrt(variance)``).
    present : ndarray of bool, shape (days, S + 1)
        ``estimate_day`` writes a row only for domains with a sampled unit and positive
        impressions (and only on days with at least 2 sampled units).
    n_units : ndarray of int, shape (days,)
        Sample size of each day: draws (with replacement) or selected units (Poisson), the
        ``n`` of the interval functions.
    method : str
        ``"pps_with_replacement"`` (Hansen-Hurwitz) or ``"poisson_pps"`` (Horvitz-Thompson).
    event_weight : ndarray of float, shape (days, S + 1), optional
        Poisson only: the ``gamma_tcz`` event weight of each day and domain
        (:func:`tsmetrics.gamma_interval.mean_uncertain_weight` of the domain's sampled units).
    """

    estimate: FloatArray
    variance: FloatArray
    present: BoolArray
    n_units: IntArray
    method: str = "pps_with_replacement"
    event_weight: FloatArray | None = None

    def concat(self, other: DailyEstimates) -> DailyEstimates:
        """Days of ``self`` followed by the days of ``other``."""
        if self.method != other.method:
            raise ValueError(f"other: expected method {self.method!r}, got {other.method!r}")
        weights = None
        if self.event_weight is not None and other.event_weight is not None:
            weights = np.concatenate([self.event_weight, other.event_weight])
        return DailyEstimates(
            estimate=np.concatenate([self.estimate, other.estimate]),
            variance=np.concatenate([self.variance, other.variance]),
            present=np.concatenate([self.present, other.present]),
            n_units=np.concatenate([self.n_units, other.n_units]),
            method=self.method,
            event_weight=weights,
        )


def draw_positions(design: Design, rng: np.random.Generator, n_days: int) -> IntArray:
    """Positions into ``design.units`` of ``n_days`` days of ``n_draws`` PPS draws each."""
    out: IntArray = rng.choice(len(design.units), size=(n_days, design.n_draws), p=design.prob)
    return out


def estimate_draws(population: Population, design: Design, positions: IntArray) -> DailyEstimates:
    """Hansen-Hurwitz estimate and variance of every day, policy and domain (vectorised).

    Per day, as :func:`~tsmetrics.estimation.hansen_hurwitz_prevalence` on
    ``y_k = impressions_k * violating_k * in_domain_k`` and ``p_k``::

        z_k = y_k / p_k,  Y = mean(z),  v = sum (z - Y)^2 / (n (n - 1)),
        estimate = Y / X_d,  variance = v / X_d^2.
    """
    units = design.units[positions]  # (T, n)
    n = positions.shape[1]
    z_all = population.impressions[units] / design.prob[positions]  # (T, n)
    in_domain = population.domain_masks()[:, units].transpose(1, 0, 2)  # (T, D, n)
    totals = population.domain_totals()
    n_days, n_dom, n_pol = positions.shape[0], len(totals), len(population.policies)
    estimate = np.empty((n_days, n_pol, n_dom))
    variance = np.empty((n_days, n_pol, n_dom))
    safe = np.where(totals > 0, totals, 1.0)
    for j in range(n_pol):
        keep = population.violates[units, j][:, None, :] & in_domain  # (T, D, n)
        z = np.where(keep, z_all[:, None, :], 0.0)
        y_hat = z.mean(axis=-1)
        v_total = np.sum((z - y_hat[..., None]) ** 2, axis=-1) / (n * (n - 1))
        estimate[:, j, :] = y_hat / safe
        variance[:, j, :] = v_total / safe**2
    present = in_domain.any(axis=-1) & (totals > 0)[None, :]
    return DailyEstimates(
        estimate=estimate,
        variance=variance,
        present=present,
        n_units=np.full(n_days, n, dtype=np.int64),
    )


_COLUMNS_CACHE: dict[tuple[int, int], tuple[Population, PoissonDesign, FloatArray]] = {}


def _poisson_columns(population: Population, design: PoissonDesign) -> FloatArray:
    """Per sized unit, the terms :func:`estimate_poisson` sums over a day's sample, shape
    (M, 2 P D + 4 D): ``y / pi`` per (policy, domain), ``(1 - pi) (y / pi)^2``, then per domain
    membership, membership with ``pi < 1``, and ``x / pi`` for both (event weights). Cached per
    (population, design) object pair (the cache holds references, so ids are not reused)."""
    key = (id(population), id(design))
    hit = _COLUMNS_CACHE.get(key)
    if hit is not None and hit[0] is population and hit[1] is design:
        return hit[2]
    units, pi = design.units, design.pi
    x = population.impressions[units]
    masks = population.domain_masks()[:, units].T.astype(np.float64)  # (M, D)
    n_pol, n_dom = len(population.policies), masks.shape[1]
    z = x / pi  # (M,)
    violates = population.violates[units].astype(np.float64)  # (M, P)
    contrib = (violates[:, :, None] * masks[:, None, :] * z[:, None, None]).reshape(
        len(units), n_pol * n_dom
    )
    uncertain = masks * (pi < 1.0)[:, None]  # (M, D)
    columns = np.hstack(
        [
            contrib,
            (1.0 - pi)[:, None] * contrib * contrib,
            masks,
            uncertain,
            masks * z[:, None],
            uncertain * z[:, None],
        ]
    )
    if len(_COLUMNS_CACHE) >= 64:
        _COLUMNS_CACHE.pop(next(iter(_COLUMNS_CACHE)))
    _COLUMNS_CACHE[key] = (population, design, columns)
    return columns


def estimate_poisson(
    population: Population, design: PoissonDesign, selected: BoolArray
) -> DailyEstimates:
    """Horvitz-Thompson estimate, variance and ``gamma_tcz`` event weight of every day, policy
    and domain (vectorised over days).

    Per day ``t``, policy and domain ``d``, as :func:`tsmetrics.sampling.
    horvitz_thompson_prevalence` on the selected units with ``y_k = x_k v_k [k in d]``::

        estimate = sum_s y_k / pi_k / X_d,   variance = sum_s (1 - pi_k) (y_k / pi_k)^2 / X_d^2,

    and the event weight ``mean(x_k / pi_k) / X_d`` over the selected units of ``d`` with
    ``pi_k < 1`` (all selected units of ``d`` when each is a certainty unit), as
    :func:`tsmetrics.gamma_interval.mean_uncertain_weight`.
    """
    columns = _poisson_columns(population, design)
    totals = population.domain_totals()
    safe = np.where(totals > 0, totals, 1.0)
    n_pol, n_dom = len(population.policies), len(totals)
    n_days = len(selected)
    day, unit = np.nonzero(selected)
    n_units = np.bincount(day, minlength=n_days).astype(np.int64)
    indicator = sparse.csr_matrix(
        (np.ones(len(day)), (day, unit)), shape=(n_days, len(design.units))
    )  # (T, M): day t's sample
    sums = np.asarray(indicator @ columns)  # (T, 4 + ...): per-day sums over the sample
    pd = n_pol * n_dom
    y_hat = sums[:, :pd].reshape(n_days, n_pol, n_dom)
    v_total = sums[:, pd : 2 * pd].reshape(n_days, n_pol, n_dom)
    count_all, count_unc, sum_all, sum_unc = np.split(sums[:, 2 * pd :], 4, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_z = np.where(count_unc > 0, sum_unc / count_unc, sum_all / count_all)
        weight = mean_z / safe[None, :]
    weight = np.where(np.isfinite(weight) & (weight > 0), weight, 1.0 / safe[None, :])
    present = (count_all > 0) & (totals > 0)[None, :] & (n_units >= 2)[:, None]
    return DailyEstimates(
        estimate=y_hat / safe[None, None, :],
        variance=v_total / (safe**2)[None, None, :],
        present=present,
        n_units=n_units,
        method="poisson_pps",
        event_weight=weight,
    )


def draw_days(design: Design | PoissonDesign, rng: np.random.Generator, n_days: int) -> Draws:
    """``n_days`` days of samples: :func:`draw_poisson` or :func:`draw_positions`."""
    if isinstance(design, PoissonDesign):
        return draw_poisson(design, rng, n_days)
    return draw_positions(design, rng, n_days)


def estimate_days(
    population: Population, design: Design | PoissonDesign, draws: Draws
) -> DailyEstimates:
    """:func:`estimate_poisson` or :func:`estimate_draws` of ``draws`` (from :func:`draw_days`)."""
    if isinstance(design, PoissonDesign):
        return estimate_poisson(population, design, draws)
    return estimate_draws(population, design, draws)


def verify_estimates(
    population: Population,
    design: Design | PoissonDesign,
    draws: Draws,
    estimates: DailyEstimates,
    config: RunConfig,
    days: Iterable[int] = (0,),
) -> float:
    """Largest relative difference, over ``days`` and every policy and domain, between the
    vectorised estimates and the production estimator called exactly as ``estimate_day`` calls
    it (``tsmetrics.designs``: :func:`~tsmetrics.sampling.horvitz_thompson_prevalence` with the
    ``gamma_tcz`` event weight, or :func:`~tsmetrics.estimation.hansen_hurwitz_prevalence`):
    estimate, standard error, CI bounds. ``inf`` when the domains with a row differ."""
    worst = 0.0
    masks = population.domain_masks()
    totals = population.domain_totals()
    poisson = isinstance(design, PoissonDesign)
    method = "poisson_pps" if poisson else "pps_with_replacement"
    for t in days:
        if isinstance(design, PoissonDesign):
            units, probs = design.units[draws[t]], design.pi[draws[t]]
        else:
            units, probs = design.units[draws[t]], design.prob[draws[t]]
        x = population.impressions[units]
        for j in range(len(population.policies)):
            violating = population.violates[units, j]
            for d in range(len(totals)):
                in_domain = masks[d, units]
                writes = bool(in_domain.any()) and totals[d] > 0 and len(units) >= 2
                if writes != bool(estimates.present[t, d]):
                    return math.inf
                if not writes:
                    continue
                ref = design_of(method).estimate(
                    LabelledSample(
                        x.astype(float),
                        probs,
                        units.astype(str),
                        np.zeros(len(units), dtype=np.int64),
                        len(units),
                        {},
                    ),
                    np.where(violating & in_domain, x, 0.0),
                    in_domain,
                    float(totals[d]),
                    config,
                )
                est = float(estimates.estimate[t, j, d])
                var = max(float(estimates.variance[t, j, d]), 0.0)
                lower, upper = _interval(config, estimates, t, d, est, var)
                for ours, theirs in (
                    (est, ref.estimate),
                    (math.sqrt(var), ref.std_error),
                    (lower, ref.ci_lower),
                    (upper, ref.ci_upper),
                ):
                    scale = max(abs(theirs), 1e-300)
                    worst = max(worst, abs(ours - theirs) / scale if theirs else abs(ours))
    return worst


def _interval(
    config: RunConfig, estimates: DailyEstimates, t: int, d: int, estimate: float, variance: float
) -> tuple[float, float]:
    """The interval ``estimate_day`` stores for day ``t``, domain ``d``: Poisson -- ``gamma_tcz``
    with the day's event weight, or the configured ``CI_METHODS`` entry at ``max(estimate, 0)``
    (as ``horvitz_thompson_prevalence``); with replacement -- the configured method, Wilson-KG
    in place of ``gamma_tcz`` (as ``tsmetrics.designs``)."""
    n = int(estimates.n_units[t])
    if estimates.method == "poisson_pps":
        if config.ci_method in EVENT_WEIGHT_CI_METHODS:
            if estimates.event_weight is None:
                raise ValueError(
                    f"estimates: a Poisson day needs event weights for {config.ci_method}"
                )
            weight = float(estimates.event_weight[t, d])
            interval = EVENT_WEIGHT_CI_METHODS[config.ci_method]
            return interval(max(estimate, 0.0), variance, weight, config.confidence)
        return CI_METHODS[config.ci_method](max(estimate, 0.0), variance, n, config.confidence)
    return CI_METHODS[wr_ci_method(config)](estimate, variance, n, config.confidence)


def wr_ci_method(config: RunConfig) -> str:
    """The configured interval, or Wilson-KG when it belongs to the Poisson design only."""
    return config.ci_method if config.ci_method in CI_METHODS else "wilson_kg"


def _histories(
    estimates: DailyEstimates,
    population: Population,
    config: RunConfig,
    interval_days: Iterable[int],
) -> tuple[list[date], History, Overall]:
    """The history dict of ``measure._estimate_history`` over all days, and per day the
    ``(estimate, SE, CI lower, CI upper)`` of domain ``all`` per policy (``_estimates_by_policy``;
    CI bounds only on ``interval_days``, NaN elsewhere)."""
    n_days = estimates.estimate.shape[0]
    dates = [START_DAY + timedelta(days=t) for t in range(n_days)]
    se = np.sqrt(np.maximum(estimates.variance, 0.0))
    history: History = {}
    for j, policy in enumerate(population.policies):
        for d, domain in enumerate(population.domains):
            series = {
                dates[t]: (float(estimates.estimate[t, j, d]), float(se[t, j, d]))
                for t in range(n_days)
                if estimates.present[t, d]
            }
            if series:
                history[(policy, domain)] = series
    with_interval = set(interval_days)
    overall: Overall = {}
    nan = float("nan")
    for t in range(n_days):
        if not estimates.present[t, 0]:
            continue
        row = {}
        for j, policy in enumerate(population.policies):
            est, var = float(estimates.estimate[t, j, 0]), float(estimates.variance[t, j, 0])
            lower, upper = (
                _interval(config, estimates, t, 0, est, max(var, 0.0))
                if t in with_interval
                else (nan, nan)
            )
            row[policy] = (est, math.sqrt(max(var, 0.0)), lower, upper)
        overall[dates[t]] = row
    return dates, history, overall
