"""Reproducible simulation ("proof") of the daily alerting checks under the production design.

What is simulated
-----------------
1. **Population.** One day of :func:`tsmetrics.simulate.simulate_day` (no day-to-day jitter) is
   turned into measurement units exactly as ``include/sql/build_units.sql`` does: unit
   impressions = sum of the components' impressions; unit risk per policy = max of the
   components' scores, imputed by the day's impression-weighted mean of the observed unit risks
   when no component has a score; a unit violates a policy when any component does (the primary
   labeler of the default configuration has error rate 0, so labels are the truth). The same
   population is used every day: there is **no true change**.
2. **Design and estimator**, chosen by ``config.sampling.method`` as production chooses them:

   * ``poisson_pps`` (the default, ``include/sql/sample_poisson_design.sql``): each policy's
     risk is calibrated into ``q = P(violating | score)`` by the production fit
     (:func:`tsmetrics.design_day.fit_day_calibrations`: design-weighted Platt on
     ``calibration.window_days`` days of labelled sample units, weights ``1 / pi``, units with
     an imputed risk left out, identity while labels are too few). :func:`fit_population_
     calibrations` fits it once per population in two stages: ``window_days`` days sampled with
     the identity calibration (production's cold start: no labels yet), then ``window_days``
     days sampled with that first fit, refitted (production's steady state: a calibration
     fitted on days of the same design). Sizes ``x sqrt(sum_p max(q_p, phi Pbar_p) / Pbar_p^2)``
     (:func:`tsmetrics.sampling.sqrt_calibrated_size`; an imputed risk gets the calibrated
     prevalence), ``pi = min(1, c size)`` with ``sum pi = n_draws``
     (:func:`tsmetrics.sampling.poisson_pps_inclusion`), unit ``i`` selected iff ``u_i < pi_i``
     with independent uniforms (numpy's in place of the warehouse's hash uniforms: same
     distribution). Per day, policy and domain (``all`` and ``surface=S``) the Horvitz-Thompson
     estimate ``sum_s y / pi / X_d`` and variance ``sum_s (1 - pi) (y / pi)^2 / X_d^2`` (``y = 0``
     outside the domain, the domain's known impressions ``X_d``), vectorised over days, and the
     ``gamma_tcz`` interval with the event weight of the domain's sampled uncertain units
     (:func:`tsmetrics.gamma_interval.mean_uncertain_weight`), as
     :func:`tsmetrics.measure.estimate_day` computes them.
   * ``pps_with_replacement`` (the walking skeleton, ``include/sql/sample_pps_wr.sql``):
     ``size = impressions * (size_floor + max over policies of unit risk)``, ``n_draws`` draws
     with replacement (:meth:`numpy.random.Generator.choice`), Hansen-Hurwitz estimates.

   :func:`verify_estimates` checks the vectorised numbers against the production estimator
   (``tsmetrics.designs``, i.e. :func:`tsmetrics.sampling.horvitz_thompson_prevalence` or
   :func:`tsmetrics.estimation.hansen_hurwitz_prevalence` called exactly as ``estimate_day``
   calls them: estimate, standard error and interval); the CLI does so on every run.
3. **Checks.** The production check functions on a history shaped like
   ``measure._estimate_history``: :func:`tsmetrics.checks.limit_check`,
   :func:`tsmetrics.checks.day_over_day_check`, :func:`tsmetrics.measure.baseline_change_checks`
   and :func:`tsmetrics.measure.cusum_checks` (through :func:`tsmetrics.measure.
   prevalence_checks`), with the default configuration of :func:`tsmetrics.config.load_config`
   (:func:`checks_for_day`). Incidents are counted with
   :func:`tsmetrics.alerts.incident_transitions` (an *opened* incident = a breach whose cell's
   last decided outcome was not a breach). A *proposed* check, not in production
   (:data:`PROPOSED`, :func:`proposed_checks`), is simulated alongside and reported separately:
   production's baseline test (:func:`tsmetrics.drift.prevalence_drift_checks`) on the
   ``all`` domain of each policy alone, one-sided at the configured ``rise_alpha``.
4. **Experiments.** (a) False alerts: ``days`` consecutive days after a burn-in long enough for
   every check to have its full history. (b) Detection: the policy closest to the target
   prevalence (default 0.5%) is relabelled to exactly that prevalence, a full history is drawn,
   then on day ``T`` the prevalence doubles (more units relabelled as violating); the
   probability that a check breaches for that policy on day ``T``. Under the Poisson design the
   calibration is fitted on the unchanged population (days before ``T``) and applied to day
   ``T``'s scores, as production does. (c) The sample size for 90% same-day detection: normal
   approximations per check from the exact design variances (:func:`analytic_requirements`),
   and simulation over a grid of ``n_draws``.

Run ``python -m tsmetrics.check_simulation --days 30 --replications 1500 --seed 20261123`` (the
full command of ``docs/checks_proof.md`` adds the detection, grid and realisation settings;
``--method pps_with_replacement`` simulates the walking skeleton's design); the Markdown report
goes to stdout (progress to stderr). Results do not depend on ``--workers``: every
replication has its own generator ``default_rng([seed, stream, replication])``.

References
----------
Horvitz, D. G. and Thompson, D. J. (1952). A generalization of sampling without replacement from
a finite universe. *JASA* 47, 663-685. Sarndal, C.-E., Swensson, B. and Wretman, J. (1992).
*Model Assisted Survey Sampling*, Springer, Chapter 3 (Poisson sampling: ``V(Y_hat) = sum (1 /
pi - 1) y^2``). Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed., Wiley, 9A (Hansen-Hurwitz).
Page, E. S. (1954). Continuous inspection schemes. *Biometrika* 41, 100-115 (CUSUM).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse, stats

from tsmetrics.alerts import incident_transitions
from tsmetrics.calibration import Calibration
from tsmetrics.checks import CheckResult
from tsmetrics.config import RunConfig, load_config
from tsmetrics.design_day import fit_day_calibrations
from tsmetrics.designs import LabelledSample, design_of
from tsmetrics.drift import baseline_change_test
from tsmetrics.estimation import CI_METHODS
from tsmetrics.gamma_interval import EVENT_WEIGHT_CI_METHODS
from tsmetrics.measure import DOMAIN_ALL, prevalence_checks
from tsmetrics.sampling import poisson_pps_inclusion, sqrt_calibrated_size
from tsmetrics.simulate import SURFACES, SimulatedDay, SimulationConfig, simulate_day

__all__ = [
    "ALL_CHECKS",
    "CHECKS",
    "PROPOSED",
    "Design",
    "DailyEstimates",
    "DetectionSummary",
    "NullSummary",
    "PoissonDesign",
    "Population",
    "Report",
    "TransitionCounts",
    "Z_STATS",
    "analytic_requirements",
    "calibrated_q",
    "checks_for_day",
    "closest_policy",
    "configure",
    "doubling_scenario",
    "count_transitions",
    "design_variance",
    "draw_days",
    "draw_poisson",
    "draw_positions",
    "estimate_days",
    "estimate_draws",
    "estimate_poisson",
    "fit_population_calibrations",
    "history_days",
    "main",
    "make_design",
    "poisson_design",
    "population_from_day",
    "pps_design",
    "proposed_checks",
    "relabel_to_prevalence",
    "render_markdown",
    "run_detection",
    "run_null",
    "variance_at",
    "verify_estimates",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Draws = npt.NDArray[Any]  # positions (T, n) with replacement, or selection indicators (T, M)
History = dict[tuple[str, str], dict[date, tuple[float, float]]]
Overall = dict[date, dict[str, tuple[float, float, float, float]]]

CHECKS: tuple[str, ...] = ("limit", "day_over_day_rise", "baseline_change", "cusum")
"""The simulated production checks, in :func:`tsmetrics.measure.checks_day` order."""
PROPOSED: tuple[str, ...] = ("baseline_rise_all",)
"""Checks simulated as proposals (not in production): :func:`proposed_checks`."""
ALL_CHECKS: tuple[str, ...] = CHECKS + PROPOSED

POPULATION_DAY = date(2026, 1, 1)
"""Day simulated for the fixed population (its seed is the run seed)."""
START_DAY = date(2026, 1, 1)
"""First simulated sample day (dates only order the history)."""
DETECTION_POWER = 0.9
"""Target same-day detection probability."""

# Random streams: default_rng([seed, stream, replication]).
_STREAM_NULL = 1
_STREAM_DETECT = 2
_STREAM_DETECT_BLIND = 3
_STREAM_RELABEL = 10
_STREAM_CALIBRATE = 20
_STREAM_GRID = 100

_HEAD_RE = re.compile(r'^\{"interaction_id": "([^"]+)", "event_ts": "[^"]+", "surface": "([^"]+)"')


# --------------------------------------------------------------------------------------------
# Population and design
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Population:
    """Measurement units of one day (as ``build_units.sql`` builds them) with their truth.

    Attributes
    ----------
    policies : tuple of str
        Policy names, the order of the policy axis.
    surfaces : tuple of str
        Surface names, the order of the surface codes.
    impressions : ndarray of float, shape (N,)
        Unit impressions (sum over components).
    surface : ndarray of int, shape (N,)
        Index of the unit's surface in ``surfaces``.
    observed_risk : ndarray of float, shape (N, P)
        Max component score per policy, ``nan`` when no component has a score.
    violates : ndarray of bool, shape (N, P)
        Whether the unit violates each policy (any component does).
    """

    policies: tuple[str, ...]
    surfaces: tuple[str, ...]
    impressions: FloatArray
    surface: IntArray
    observed_risk: FloatArray
    violates: BoolArray

    @property
    def domains(self) -> list[str]:
        """Domain names, the order of the domain axis: ``all`` then ``surface=S``."""
        return [DOMAIN_ALL] + [f"surface={s}" for s in self.surfaces]

    def domain_masks(self) -> BoolArray:
        """Shape (S + 1, N): unit membership per domain."""
        rows = [np.ones(len(self.impressions), dtype=bool)]
        rows += [self.surface == s for s in range(len(self.surfaces))]
        return np.stack(rows)

    def domain_totals(self) -> FloatArray:
        """Known impressions per domain, shape (S + 1,)."""
        out: FloatArray = self.domain_masks().astype(np.float64) @ self.impressions
        return out

    def unit_risk(self) -> FloatArray:
        """Risk per unit and policy: the observed max score, or the impression-weighted mean of
        the observed unit risks of the policy when missing (0 when no unit has one), as
        ``build_units.sql``'s ``coalesce(o.risk, f.mean_risk, 0)``."""
        observed = ~np.isnan(self.observed_risk)
        weights = np.where(observed, self.impressions[:, None], 0.0)
        den = weights.sum(axis=0)
        num = np.where(observed, self.observed_risk * self.impressions[:, None], 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            fill = np.where(den > 0, num / den, 0.0)
        out: FloatArray = np.where(observed, self.observed_risk, fill[None, :])
        return out

    def prevalence(self) -> FloatArray:
        """True impression-weighted prevalence, shape (P, S + 1) (0 for an empty domain)."""
        masks = self.domain_masks().astype(np.float64)
        violating = (self.violates * self.impressions[:, None]).T @ masks.T  # (P, S + 1)
        totals = self.domain_totals()
        with np.errstate(invalid="ignore", divide="ignore"):
            out: FloatArray = np.where(totals > 0, violating / totals, 0.0)
        return out


def population_from_day(sim: SimulatedDay) -> Population:
    """Units of a simulated day, grouped from ``sim.components`` (surfaces from the raw lines).

    Raises
    ------
    ValueError
        When the raw lines and the component frame do not describe the same interactions.
    """
    comps = sim.components
    policies = tuple(c[len("score_") :] for c in comps.columns if c.startswith("score_"))
    heads = [_HEAD_RE.match(line) for line in sim.jsonl.splitlines()]
    if any(h is None for h in heads):
        raise ValueError("raw lines: expected every line to start with id, event_ts and surface")
    ids = [h.group(1) for h in heads if h is not None]
    surface_of = {s: i for i, s in enumerate(SURFACES)}
    surface = np.array([surface_of[h.group(2)] for h in heads if h is not None], dtype=np.int64)
    codes = comps["interaction_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    if len(starts) != len(ids) or list(codes[starts]) != ids:
        raise ValueError("components: expected the interactions of the raw lines, in order")
    impressions = np.add.reduceat(comps["impressions"].to_numpy(np.int64), starts)
    observed = np.empty((len(ids), len(policies)))
    violates = np.empty((len(ids), len(policies)), dtype=bool)
    unit_of = np.repeat(np.arange(len(ids)), np.diff(np.r_[starts, len(codes)]))
    for j, policy in enumerate(policies):
        scores = comps[f"score_{policy}"].to_numpy(np.float64)
        best = np.full(len(ids), -np.inf)
        np.maximum.at(best, unit_of, np.where(np.isnan(scores), -np.inf, scores))
        observed[:, j] = np.where(np.isfinite(best), best, np.nan)
        violates[:, j] = np.logical_or.reduceat(comps[f"violates_{policy}"].to_numpy(bool), starts)
    return Population(
        policies=policies,
        surfaces=SURFACES,
        impressions=impressions.astype(np.float64),
        surface=surface,
        observed_risk=observed,
        violates=violates,
    )


@dataclass(frozen=True, eq=False)
class Design:
    """PPS-with-replacement design of ``sample_pps_wr.sql``.

    Attributes
    ----------
    units : ndarray of int
        Indices of the drawable units (impressions > 0).
    prob : ndarray of float
        Their single-draw probabilities ``size / sum(size)``.
    n_draws : int
        Draws per day.
    """

    units: IntArray
    prob: FloatArray
    n_draws: int


def pps_design(population: Population, size_floor: float, n_draws: int) -> Design:
    """``size = impressions * (size_floor + max over policies of unit risk)`` over the units
    with impressions (and a positive size), ``p = size / sum(size)``."""
    if n_draws < 2:
        raise ValueError(f"n_draws: expected at least 2, got {n_draws}")
    size = population.impressions * (size_floor + population.unit_risk().max(axis=1))
    units = np.flatnonzero((population.impressions > 0) & (size > 0)).astype(np.int64)
    prob = size[units] / size[units].sum()
    return Design(units=units, prob=prob, n_draws=int(n_draws))


def design_variance(population: Population, design: Design | PoissonDesign) -> FloatArray:
    """Exact design variance of the daily prevalence estimate, shape (P, S + 1) (NaN for an
    empty domain).

    * PPS with replacement, Hansen-Hurwitz: ``V = (sum_i y_i^2 / p_i - Y^2) / (n X^2)``
      (Cochran 1977, 9A);
    * Poisson PPS, Horvitz-Thompson: ``V = sum_i (1 / pi_i - 1) y_i^2 / X^2`` (Sarndal et al.
      1992, 3.2; certainty units contribute nothing),

    with ``y_i`` unit ``i``'s violating impressions in the domain and ``X`` the domain's
    impressions.
    """
    if isinstance(design, PoissonDesign):
        return variance_at(population, design, design.expected_n)
    x = population.impressions[design.units]
    v = population.violates[design.units].astype(np.float64)  # (M, P)
    masks = population.domain_masks()[:, design.units].astype(np.float64)  # (D, M)
    totals = population.domain_totals()
    y2p = (v * (x * x / design.prob)[:, None]).T @ masks.T  # (P, D)
    y = (v * x[:, None]).T @ masks.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(
            totals > 0, np.maximum(y2p - y * y, 0.0) / (design.n_draws * totals**2), np.nan
        )
    return out


def variance_at(population: Population, design: Design | PoissonDesign, n: float) -> FloatArray:
    """:func:`design_variance` of the same design at sample size ``n`` (shape (P, S + 1)).

    With replacement the variance is ``V_1 / n`` (``V_1`` the one-draw variance). Poisson: the
    same sizes with ``pi = poisson_pps_inclusion(size, n)`` re-solved at ``n`` (more units
    become certainty units as ``n`` grows), ``n`` at most the number of sized units (then every
    ``pi = 1`` and ``V = 0``).
    """
    if not (math.isfinite(n) and n > 0):
        raise ValueError(f"n: expected a finite number > 0, got {n!r}")
    if not isinstance(design, PoissonDesign):
        return design_variance(population, design) * (design.n_draws / n)
    units = design.units
    pi = poisson_pps_inclusion(design.size, min(float(n), float(len(units))))
    x = population.impressions[units]
    v = population.violates[units].astype(np.float64)  # (M, P)
    masks = population.domain_masks()[:, units].astype(np.float64)  # (D, M)
    totals = population.domain_totals()
    factor = (1.0 / pi - 1.0) * x * x  # (M,)
    num = (v * factor[:, None]).T @ masks.T  # (P, D)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(totals > 0, num / totals**2, np.nan)
    return out


def relabel_to_prevalence(
    population: Population,
    policy: str,
    target: float,
    rng: np.random.Generator,
    *,
    model_aware: bool = True,
) -> Population:
    """A copy of the population with ``policy``'s true prevalence moved to ``target``.

    Units are relabelled in random order. When the prevalence is above ``target``, violating
    units are made non-violating until it is at or below ``target``; then non-violating units
    (with impressions) are made violating, each only if it does not overshoot, until the
    violating impressions are within one impression of ``target * X``. With ``model_aware`` a
    relabelled unit gets the observed ``policy`` risk of a random unit of its new class in the
    original population (new violations are scored like the existing ones, so the risk-steered
    design sees them; removed ones like non-violations); otherwise it keeps its own score.
    Other policies are untouched.
    """
    j = population.policies.index(policy)
    x = population.impressions
    goal = target * float(x.sum())
    violates = population.violates.copy()
    observed = population.observed_risk.copy()

    def relabel(units: list[int], to: bool) -> None:
        picked = np.asarray(units, dtype=np.int64)
        violates[picked, j] = to
        donors = np.flatnonzero(population.violates[:, j] == to)
        if model_aware and len(picked) and len(donors):
            observed[picked, j] = population.observed_risk[rng.choice(donors, len(picked)), j]

    current = float(x[violates[:, j]].sum())
    removed: list[int] = []
    for unit in rng.permutation(np.flatnonzero(violates[:, j])).tolist():
        if current <= goal:
            break
        removed.append(unit)
        current -= float(x[unit])
    relabel(removed, False)
    added: list[int] = []
    for unit in rng.permutation(np.flatnonzero(~violates[:, j] & (x > 0))).tolist():
        if goal - current < 1.0:
            break
        if x[unit] <= goal - current:
            added.append(unit)
            current += float(x[unit])
    relabel(added, True)
    return dataclasses.replace(population, violates=violates, observed_risk=observed)


# --------------------------------------------------------------------------------------------
# Calibrated Poisson PPS design (the default)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PoissonDesign:
    """Calibrated Poisson PPS design of ``sample_poisson_design.sql`` (``tsm.unit_sizes`` with
    ``sqrt_calibrated`` and ``tsm.poisson_pps_sample``).

    Attributes
    ----------
    units : ndarray of int, shape (M,)
        Indices of the sized units (impressions > 0).
    size : ndarray of float, shape (M,)
        Their ``sqrt_calibrated`` sizes.
    pi : ndarray of float, shape (M,)
        Inclusion probabilities ``min(1, c size)`` with ``sum pi = expected_n``.
    expected_n : float
        Expected sample size (``sampling.n_draws``).
    calibrations : tuple of Calibration
        Per policy (population order), the calibration of the risk scores behind the sizes.
    """

    units: IntArray
    size: FloatArray
    pi: FloatArray
    expected_n: float
    calibrations: tuple[Calibration, ...]

    @property
    def n_draws(self) -> int:
        """The expected sample size, rounded (the configuration's ``n_draws``)."""
        return round(self.expected_n)


def calibrated_q(
    population: Population, calibrations: Sequence[Calibration]
) -> tuple[FloatArray, BoolArray]:
    """``(q, imputed)``, both (N, P): each unit's calibrated risk per policy
    (:meth:`Calibration.predict` of the observed risk), and whether its risk is imputed (no
    component has a score). Where imputed, ``q`` holds a placeholder (0.5) that
    :func:`tsmetrics.sampling.sqrt_calibrated_size` replaces by the calibrated prevalence."""
    if len(calibrations) != len(population.policies):
        raise ValueError(
            f"calibrations: expected one per policy ({len(population.policies)}), "
            f"got {len(calibrations)}"
        )
    imputed = np.isnan(population.observed_risk)
    scores = np.where(imputed, 0.5, population.observed_risk)
    q = np.column_stack([c.predict(scores[:, j]) for j, c in enumerate(calibrations)])
    return q.astype(np.float64), imputed


def poisson_design(
    population: Population,
    calibrations: Sequence[Calibration],
    relative_floor: float,
    expected_n: float,
) -> PoissonDesign:
    """The default design of ``population``: ``sqrt_calibrated`` sizes of the units with
    impressions under ``calibrations`` and ``pi = poisson_pps_inclusion(size, expected_n)``."""
    units = np.flatnonzero(population.impressions > 0).astype(np.int64)
    q, imputed = calibrated_q(population, calibrations)
    size = sqrt_calibrated_size(
        population.impressions[units], q[units], imputed[units], relative_floor
    )
    return PoissonDesign(
        units=units,
        size=size,
        pi=poisson_pps_inclusion(size, expected_n),
        expected_n=float(expected_n),
        calibrations=tuple(calibrations),
    )


def draw_poisson(design: PoissonDesign, rng: np.random.Generator, n_days: int) -> BoolArray:
    """Selection indicators, shape (n_days, M): unit ``k`` of ``design.units`` is in day
    ``t``'s sample iff ``u_tk < pi_k``, independent uniforms (as
    :func:`tsmetrics.sampling.poisson_pps_select`)."""
    out: BoolArray = rng.random((n_days, len(design.pi))) < design.pi[None, :]
    return out


def _training_window(
    population: Population, design: PoissonDesign, selected: BoolArray
) -> dict[str, tuple[FloatArray, BoolArray, FloatArray, list[str]]]:
    """``calibration_training_data`` of the days in ``selected``: per policy the observed risk,
    label and weight ``1 / pi`` of each selected unit whose risk was observed."""
    out = {}
    days = [
        (START_DAY - timedelta(days=len(selected) - t)).isoformat() for t in range(len(selected))
    ]
    rows = np.nonzero(selected)
    units, pi = design.units[rows[1]], design.pi[rows[1]]
    for j, policy in enumerate(population.policies):
        risk = population.observed_risk[units, j]
        keep = ~np.isnan(risk)
        out[policy] = (
            risk[keep],
            population.violates[units[keep], j],
            1.0 / pi[keep],
            sorted({days[t] for t in rows[0][keep].tolist()}),
        )
    return out


def fit_population_calibrations(
    population: Population, config: RunConfig, seed: int, *, stages: int = 2, realisation: int = 0
) -> tuple[Calibration, ...]:
    """The calibration production reaches on ``population`` (fitted once, then held fixed).

    Stage 0 samples ``calibration.window_days`` days with the identity calibration (what
    :func:`tsmetrics.design_day.fit_day_calibrations` returns without labels: production's
    first days); every later stage fits the calibration on the previous stage's days with
    :func:`~tsmetrics.design_day.fit_day_calibrations` (design weights ``1 / pi``, imputed risks
    left out, identity below ``min_positives`` Kish-effective positives) and samples its
    window with it. With ``stages = 2`` the result is fitted on days of the calibrated design
    itself (production's steady state). Random stream ``[seed, 20, realisation, stage]``.
    """
    if stages < 1:
        raise ValueError(f"stages: expected at least 1, got {stages}")
    empty = np.zeros(0)
    calibrations = fit_day_calibrations(
        {p: (empty, empty.astype(bool), empty, []) for p in population.policies}, config
    )
    fitted = tuple(calibrations[p] for p in population.policies)
    window = config.sampling.calibration_window_days
    for stage in range(stages):
        design = poisson_design(
            population, fitted, config.sampling.size_floor, config.sampling.n_draws
        )
        rng = np.random.default_rng([seed, _STREAM_CALIBRATE, realisation, stage])
        selected = draw_poisson(design, rng, window)
        calibrations = fit_day_calibrations(_training_window(population, design, selected), config)
        fitted = tuple(calibrations[p] for p in population.policies)
    return fitted


def make_design(
    population: Population,
    config: RunConfig,
    *,
    n: float | None = None,
    calibrations: Sequence[Calibration] | None = None,
) -> Design | PoissonDesign:
    """The configured design (``config.sampling.method``) of ``population`` with sample size
    ``n`` (default ``config.sampling.n_draws``); the Poisson design needs ``calibrations``."""
    size = config.sampling.n_draws if n is None else n
    if config.sampling.method == "poisson_pps":
        if config.sampling.size_measure != "sqrt_calibrated":
            raise ValueError(
                "config.sampling.size_measure: the simulation supports sqrt_calibrated with "
                f"poisson_pps, got {config.sampling.size_measure!r}"
            )
        if calibrations is None:
            raise ValueError("calibrations: required with sampling.method poisson_pps")
        return poisson_design(population, calibrations, config.sampling.size_floor, size)
    if config.sampling.method == "pps_with_replacement":
        return pps_design(population, wr_size_floor(config), round(size))
    raise ValueError(
        f"config.sampling.method: expected poisson_pps or pps_with_replacement, "
        f"got {config.sampling.method!r}"
    )


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


#: Absolute size floor of the walking skeleton's PPS-with-replacement design, used when the
#: configured design is the Poisson one (whose ``size_floor`` is relative).
WR_SIZE_FLOOR = 0.02


def wr_size_floor(config: RunConfig) -> float:
    """The PPS-with-replacement size floor this simulation uses for ``config``."""
    if config.sampling.size_measure == "max_risk":
        return config.sampling.size_floor
    return WR_SIZE_FLOOR


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


# --------------------------------------------------------------------------------------------
# Checks and incidents
# --------------------------------------------------------------------------------------------


def history_days(config: RunConfig) -> int:
    """Days of history ``checks_day`` reads before the day (``_estimate_history``'s window)."""
    baseline_rule, cusum_rule = config.rule("baseline_change"), config.rule("cusum")
    return max(
        int(baseline_rule.get("baseline_days", 14)),
        int(cusum_rule.get("baseline_days", 28)) + int(cusum_rule.get("window_days", 14)),
    )


def checks_for_day(
    day: date, history: History, overall: Overall, config: RunConfig, *, proposed: bool = False
) -> list[CheckResult]:
    """The limit, day-over-day, baseline-change and CUSUM checks of ``day``, called as
    :func:`tsmetrics.measure.checks_day` calls them (agreement and pipeline-health checks are
    not simulated), followed by :func:`proposed_checks` when ``proposed``. ``history`` may hold
    more days than the window; it is cut to ``[day - history_days, day]`` like
    ``_estimate_history``."""
    first = day - timedelta(days=history_days(config))
    window: History = {}
    for key, series in history.items():
        kept = {d: v for d, v in series.items() if first <= d <= day}
        if kept:
            window[key] = kept
    results = prevalence_checks(
        day, overall.get(day, {}), overall.get(day - timedelta(days=1), {}), window, config
    )
    if proposed:
        results += proposed_checks(day, window, config)
    return results


def proposed_checks(day: date, history: History, config: RunConfig) -> list[CheckResult]:
    """The proposed ``baseline_rise_all`` check (not in production): per policy, today's
    estimate of domain ``all`` against the mean of the ``baseline_change`` rule's trailing
    ``baseline_days``, one-sided (rise) at the configured ``rise_alpha``::

        z = (P_t - m) / sqrt(SE_t^2 + sum_i SE_i^2 / k^2),   breach when 1 - Phi(z) < rise_alpha,

    the statistic of production's :func:`tsmetrics.drift.baseline_change_test` (the test behind
    the ``baseline_change`` check), decided per policy at ``rise_alpha`` as the day-over-day
    check is (no BH across cells). Against yesterday alone the reference has the variance of one
    day; against the ``k``-day mean, ``k`` times less."""
    rule = config.rule("baseline_change")
    k = int(rule.get("baseline_days", 14))
    previous = [day - timedelta(days=i) for i in range(k, 0, -1)]
    policies = [p for p in config.policy_names if day in history.get((p, DOMAIN_ALL), {})]
    if not policies:
        return []
    nan = (math.nan, math.nan)
    series = [history[(p, DOMAIN_ALL)] for p in policies]
    today = np.array([s[day] for s in series], dtype=np.float64)
    baseline = np.array([[s.get(d, nan) for d in previous] for s in series], dtype=np.float64)
    res = baseline_change_test(
        today[:, 0],
        today[:, 1],
        baseline[:, :, 0],
        baseline[:, :, 1],
        min_baseline_days=int(rule.get("min_baseline_days", 3)),
    )
    threshold = float(stats.norm.isf(config.rise_alpha))
    out = []
    for i, policy in enumerate(policies):
        z, p_value = float(res.statistic[i]), float(res.p_value_greater[i])
        cell = f"{policy}|{DOMAIN_ALL}"
        if math.isnan(z):
            out.append(
                CheckResult(
                    PROPOSED[0], cell, z, threshold, None, "skipped", {"reason": "not testable"}
                )
            )
            continue
        out.append(
            CheckResult(
                PROPOSED[0],
                cell,
                z,
                threshold,
                p_value,
                "breach" if p_value < config.rise_alpha else "pass",
                {"baseline_mean": float(res.baseline_mean[i]), "direction": "rise"},
            )
        )
    return out


def _finite(value: float | None) -> float | None:
    """As stored in ``tsm.checks`` (non-finite -> NULL)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _escalate_ratios(config: RunConfig) -> dict[str, float]:
    return {
        name: float(rule["escalate_ratio"])
        for name, rule in config.rules.items()
        if "escalate_ratio" in rule
    }


@dataclass(frozen=True)
class TransitionCounts:
    """Incident events of a run of days.

    Attributes
    ----------
    opened, escalated : dict of str to int
        Opened and escalated incidents per check.
    opened_by : dict of (check, policy, direction) to int
        Opened incidents per check, policy (a cell's policy part) and direction (``rise`` or
        ``fall`` for the two-sided CUSUM, ``rise`` for the one-sided tests, ``above limit``).
    opened_after_skip : int
        Opened incidents whose cell was ``skipped`` the day before (``incident_transitions``
        compares with yesterday only, so breach, skipped, breach opens a second incident).
    """

    opened: dict[str, int]
    escalated: dict[str, int]
    opened_by: dict[tuple[str, str, str], int]
    opened_after_skip: int = 0


def _direction(result: CheckResult) -> str:
    if result.check_name == "limit":
        return "above limit"
    if result.check_name == "cusum":
        up = float(result.details.get("upper", 0.0)) > result.threshold
        down = float(result.details.get("lower", 0.0)) > result.threshold
        return "both" if up and down else ("fall" if down else "rise")
    return str(result.details.get("direction", "rise"))


def count_transitions(
    days: Sequence[Sequence[CheckResult]], escalate_ratio: dict[str, float] | None = None
) -> TransitionCounts:
    """Incident events per check on ``days[1:]`` (``days[0]`` only seeds the history), from
    :func:`tsmetrics.alerts.incident_transitions` fed as ``tasks.send_alerts`` feeds it: each
    ``(check, cell)``'s last decided (not skipped) ``(outcome, statistic, threshold)`` before the
    day, as stored (non-finite statistics read back as ``None``). ``opened_after_skip`` counts
    openings whose cell was skipped the day before (0 now that skipped days are carried over)."""
    opened = dict.fromkeys(ALL_CHECKS, 0)
    escalated = dict.fromkeys(ALL_CHECKS, 0)
    opened_by: dict[tuple[str, str, str], int] = {}
    after_skip = 0
    last_decided: dict[tuple[str, str], tuple[str, float | None, float | None]] = {}
    for before, today in zip(days[:-1], days[1:], strict=True):
        last_decided.update(
            {
                (r.check_name, r.policy): (r.outcome, _finite(r.statistic), _finite(r.threshold))
                for r in before
                if r.outcome != "skipped"
            }
        )
        skipped_yesterday = {(r.check_name, r.policy) for r in before if r.outcome == "skipped"}
        for event in incident_transitions(today, last_decided, escalate_ratio):
            result = event.result
            if event.kind == "opened":
                opened[result.check_name] += 1
                key = (result.check_name, result.policy.partition("|")[0], _direction(result))
                opened_by[key] = opened_by.get(key, 0) + 1
                after_skip += (result.check_name, result.policy) in skipped_yesterday
            elif event.kind == "escalated":
                escalated[result.check_name] += 1
    return TransitionCounts(
        opened=opened, escalated=escalated, opened_by=opened_by, opened_after_skip=after_skip
    )


def _breaches_for_policy(results: Iterable[CheckResult], policy: str) -> dict[str, bool]:
    out = dict.fromkeys(ALL_CHECKS, False)
    for r in results:
        if r.outcome == "breach" and r.policy.partition("|")[0] == policy:
            out[r.check_name] = True
    return out


# --------------------------------------------------------------------------------------------
# Replications
# --------------------------------------------------------------------------------------------


AnyDesign = Design | PoissonDesign
DesignPool = AnyDesign | Sequence[AnyDesign]


def _pool(designs: DesignPool) -> tuple[AnyDesign, ...]:
    """A design, or a pool of designs (one per calibration fit), as a non-empty tuple."""
    out = (designs,) if isinstance(designs, Design | PoissonDesign) else tuple(designs)
    if not out:
        raise ValueError("designs: expected at least one design")
    return out


@dataclass(frozen=True)
class _NullTask:
    population: Population
    designs: tuple[AnyDesign, ...]  # replication r uses designs[r % len(designs)]
    config: RunConfig
    days: int
    seed: int
    exact_se: FloatArray  # (C, P), domain all


@dataclass(frozen=True)
class _DetectTask:
    base: Population
    base_designs: tuple[AnyDesign, ...]
    changed: Population
    changed_designs: tuple[AnyDesign, ...]
    config: RunConfig
    policy: str
    seed: int
    stream: int


Z_STATS: tuple[str, ...] = ("days", "sum_z", "sum_z2", "z_below_-3", "z_above_3", "se_zero")
"""Columns of :attr:`NullSummary.z_stats`."""


def _z_stats(estimates: DailyEstimates, truth: FloatArray, exact_se: FloatArray) -> FloatArray:
    """Per policy (domain ``all``), sums over days of ``z = (estimate - truth) / SE_exact`` (the
    exact design SE: the scale the CUSUM's ``sigma0`` estimates), in the order of
    :data:`Z_STATS` (``se_zero``: days whose own estimated SE is 0), shape (P, 6)."""
    est, var = estimates.estimate[:, :, 0], estimates.variance[:, :, 0]
    ok = np.broadcast_to(exact_se[None, :] > 0, est.shape)
    z = np.where(ok, (est - truth[None, :]) / np.where(exact_se > 0, exact_se, 1.0)[None, :], 0.0)
    return np.stack(
        [
            ok.sum(axis=0),
            z.sum(axis=0),
            (z * z).sum(axis=0),
            (ok & (z < -3.0)).sum(axis=0),
            (ok & (z > 3.0)).sum(axis=0),
            (var <= 0).sum(axis=0),
        ],
        axis=1,
    ).astype(np.float64)


def _null_replication(task: _NullTask, rep: int) -> tuple[TransitionCounts, FloatArray, FloatArray]:
    """One window: burn-in + ``days`` days of samples of the unchanged population."""
    burn_in = history_days(task.config)
    n_days = burn_in + task.days
    rng = np.random.default_rng([task.seed, _STREAM_NULL, rep])
    member = rep % len(task.designs)
    design = task.designs[member]
    estimates = estimate_days(task.population, design, draw_days(design, rng, n_days))
    check_days = range(burn_in - 1, n_days)
    dates, history, overall = _histories(estimates, task.population, task.config, check_days)
    results = [
        checks_for_day(dates[t], history, overall, task.config, proposed=True) for t in check_days
    ]
    counts = count_transitions(results, _escalate_ratios(task.config))
    z_stats = _z_stats(estimates, task.population.prevalence()[:, 0], task.exact_se[member])
    return counts, estimates.estimate.mean(axis=0), z_stats


def _detect_replication(task: _DetectTask, rep: int) -> dict[str, bool]:
    """A full history of the base population, then day ``T`` sampled from the changed one."""
    burn_in = history_days(task.config)
    rng = np.random.default_rng([task.seed, task.stream, rep])
    member = rep % len(task.base_designs)
    base_design, changed_design = task.base_designs[member], task.changed_designs[member]
    before = estimate_days(task.base, base_design, draw_days(base_design, rng, burn_in))
    after = estimate_days(task.changed, changed_design, draw_days(changed_design, rng, 1))
    estimates = before.concat(after)
    dates, history, overall = _histories(estimates, task.base, task.config, [burn_in])
    return _breaches_for_policy(
        checks_for_day(dates[-1], history, overall, task.config, proposed=True), task.policy
    )


def _null_chunk(
    task: _NullTask, reps: range
) -> list[tuple[TransitionCounts, FloatArray, FloatArray]]:
    return [_null_replication(task, r) for r in reps]


def _detect_chunk(task: _DetectTask, reps: range) -> list[dict[str, bool]]:
    return [_detect_replication(task, r) for r in reps]


def _map_chunks(
    function: Callable[[Any, range], list[Any]], task: Any, replications: int, workers: int
) -> list[Any]:
    """``function(task, chunk)`` over chunks of the replications, in replication order."""
    if workers <= 1 or replications < 2:
        return function(task, range(replications))
    size = max(1, math.ceil(replications / (workers * 8)))
    chunks = [range(i, min(i + size, replications)) for i in range(0, replications, size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(function, [task] * len(chunks), chunks)
        return [item for part in parts for item in part]


@dataclass(frozen=True)
class NullSummary:
    """False alerts over ``days``-day windows without any true change.

    Attributes
    ----------
    days, replications : int
        Window length and number of windows.
    opened : dict of str to ndarray of int
        Per check (production and proposed, :data:`ALL_CHECKS`), the opened incidents of each
        window (all policies and cells).
    escalated : dict of str to ndarray of int
        Per check, the escalations of each window (posted too, not counted as false alerts).
    opened_by : dict of (check, policy, direction) to ndarray of int
        Opened incidents of each window by check, policy and direction.
    opened_after_skip : ndarray of int
        Per window, opened incidents whose cell was skipped the day before.
    mean_estimate : ndarray of float, shape (replications, P, S + 1)
        Per window, the mean daily estimate (for the unbiasedness check).
    z_stats : ndarray of float, shape (P, 6)
        Sums over all windows and days (burn-in included) of :func:`_z_stats`.
    """

    days: int
    replications: int
    opened: dict[str, IntArray]
    escalated: dict[str, IntArray]
    opened_by: dict[tuple[str, str, str], IntArray]
    opened_after_skip: IntArray
    mean_estimate: FloatArray
    z_stats: FloatArray

    def total_opened(self, checks: Sequence[str] = CHECKS) -> IntArray:
        """Opened incidents per window over ``checks`` (default: the production checks)."""
        out: IntArray = np.sum([self.opened[c] for c in checks], axis=0).astype(np.int64)
        return out


def run_null(
    population: Population,
    designs: DesignPool,
    config: RunConfig,
    *,
    days: int,
    replications: int,
    seed: int,
    workers: int = 1,
) -> NullSummary:
    """False-alert experiment: ``replications`` windows of ``days`` days (after a burn-in of
    :func:`history_days` days) of independent daily samples of the same population. With a
    pool of designs (one per calibration fit), window ``r`` uses ``designs[r % len]``."""
    pool = _pool(designs)
    exact_se = np.stack([np.sqrt(design_variance(population, d)[:, 0]) for d in pool])
    task = _NullTask(population, pool, config, days, seed, exact_se)
    rows = _map_chunks(_null_chunk, task, replications, workers)
    return NullSummary(
        days=days,
        replications=replications,
        opened={c: np.array([r[0].opened[c] for r in rows], dtype=np.int64) for c in ALL_CHECKS},
        escalated={
            c: np.array([r[0].escalated[c] for r in rows], dtype=np.int64) for c in ALL_CHECKS
        },
        opened_by={
            key: np.array([r[0].opened_by.get(key, 0) for r in rows], dtype=np.int64)
            for key in sorted({k for r in rows for k in r[0].opened_by})
        },
        opened_after_skip=np.array([r[0].opened_after_skip for r in rows], dtype=np.int64),
        mean_estimate=np.stack([r[1] for r in rows]),
        z_stats=np.sum([r[2] for r in rows], axis=0),
    )


@dataclass(frozen=True)
class DetectionSummary:
    """Same-day detection of a change of one policy's prevalence.

    Attributes
    ----------
    policy : str
        The changed policy.
    before, after : float
        Its true prevalence before and on the day of the change.
    n_draws, replications : int
        Daily sample size (expected, for Poisson) and number of replications.
    breached : dict of str to ndarray of bool
        Per check of :data:`ALL_CHECKS`, ``"any"`` (any production check) and
        ``"any_with_proposed"``, whether it breached for the policy on the day.
    se_before, se_after : float
        Exact design standard error of the policy's daily estimate (domain ``all``) before and
        on the day (root mean square over the pool of calibrations).
    """

    policy: str
    before: float
    after: float
    n_draws: int
    replications: int
    breached: dict[str, BoolArray]
    se_before: float
    se_after: float

    def probability(self, check: str) -> tuple[float, float]:
        """Detection probability and its simulation standard error."""
        p = float(self.breached[check].mean())
        return p, math.sqrt(p * (1.0 - p) / self.replications)


def _rms_se(population: Population, designs: Sequence[AnyDesign], j: int) -> float:
    """Root mean square over ``designs`` of policy ``j``'s exact SE (domain ``all``)."""
    return float(np.sqrt(np.mean([design_variance(population, d)[j, 0] for d in designs])))


def run_detection(
    base: Population,
    changed: Population,
    policy: str,
    config: RunConfig,
    *,
    n_draws: int,
    replications: int,
    seed: int,
    stream: int = _STREAM_DETECT,
    workers: int = 1,
    calibration_pool: Sequence[Sequence[Calibration]] | None = None,
) -> DetectionSummary:
    """Detection experiment: a full history of ``base``, then one day of ``changed``; which
    checks breach for ``policy`` on that day. Under the Poisson design both days of replication
    ``r`` use member ``r % len`` of ``calibration_pool`` (each a calibration per policy; default:
    one :func:`fit_population_calibrations` of ``base``), fitted before the change, as
    production's day ``T`` uses a calibration fitted on earlier days."""
    pool: list[Sequence[Calibration] | None] = [None]
    if config.sampling.method == "poisson_pps":
        pool = list(calibration_pool or [fit_population_calibrations(base, config, seed)])
    task = _DetectTask(
        base=base,
        base_designs=tuple(make_design(base, config, n=n_draws, calibrations=c) for c in pool),
        changed=changed,
        changed_designs=tuple(
            make_design(changed, config, n=n_draws, calibrations=c) for c in pool
        ),
        config=config,
        policy=policy,
        seed=seed,
        stream=stream,
    )
    rows = _map_chunks(_detect_chunk, task, replications, workers)
    breached = {c: np.array([r[c] for r in rows], dtype=bool) for c in ALL_CHECKS}
    breached["any"] = np.any([breached[c] for c in CHECKS], axis=0)
    breached["any_with_proposed"] = np.any([breached[c] for c in ALL_CHECKS], axis=0)
    j = base.policies.index(policy)
    return DetectionSummary(
        policy=policy,
        before=float(base.prevalence()[j, 0]),
        after=float(changed.prevalence()[j, 0]),
        n_draws=n_draws,
        replications=replications,
        breached=breached,
        se_before=_rms_se(base, task.base_designs, j),
        se_after=_rms_se(changed, task.changed_designs, j),
    )


# --------------------------------------------------------------------------------------------
# Analytic sample-size requirements
# --------------------------------------------------------------------------------------------


def _upper_tail(margin: float, sd: float) -> float:
    """``Phi(margin / sd)``, with ``sd = 0`` read as a certain sign."""
    if sd > 0:
        return float(stats.norm.cdf(margin / sd))
    return 1.0 if margin > 0 else 0.0


def _smallest_n(power_at: Callable[[float], float], target: float, n_max: float) -> float:
    """Smallest ``n`` in ``[2, n_max]`` (to 0.05) with ``power_at(n) >= target`` (``power_at``
    non-decreasing in ``n``), ``inf`` when even ``n_max`` does not reach it."""
    lo, hi = 2.0, float(n_max)
    if power_at(hi) < target:
        return math.inf
    if power_at(lo) >= target:
        return lo
    while hi - lo > 0.05:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if power_at(mid) >= target else (mid, hi)
    return hi


def analytic_requirements(
    base: Population,
    changed: Population,
    policy: str,
    config: RunConfig,
    power: float,
    *,
    calibrations: Sequence[Calibration] | None = None,
) -> dict[str, dict[str, float]]:
    """Normal approximations, from the exact design variances, of the sample size each check
    needs to detect the change of ``policy`` on the day with probability ``power``.

    With ``V0(n)``, ``V1(n)`` the design variances of the daily estimate at sample size ``n``
    before and on the day (:func:`variance_at`: ``V(n_0) n_0 / n`` with replacement; re-solved
    inclusion probabilities for Poisson), ``D`` the true change, ``z_b = Phi^-1(power)``; the
    estimated SEs are replaced by their design values:

    * ``day_over_day_rise``: ``D / sqrt(V0 + V1) >= z_{1-alpha} + z_b`` (``alpha = rise_alpha``);
    * ``cusum`` (chart at 0 the day before; ``sigma0 = sqrt(V0)``, the root mean square of the
      baseline's SEs; ``mu0`` the mean of ``B`` baseline days): the day's increment
      ``(P_T - mu0) / sigma0 - k`` exceeds ``h``, i.e.
      ``Phi((D - (h + k) sqrt(V0)) / sqrt(V1 + V0 / B)) >= power``;
    * ``baseline_change``: the policy's surface cells against the ``k``-day baseline, each
      rejected when its one-sided p-value is below ``q / m`` (BH's first step over the ``m``
      cells: a lower bound of BH's power); any cell rejected, cells independent;
    * ``limit``: ``CI lower > limit`` approximated as ``(P1 - limit) / sqrt(V1) >= z_{(1+c)/2}
      + z_b`` (infinite ``n`` when ``P1 <= limit``);
    * ``baseline_rise_all`` (proposed): ``D / sqrt(V1 + V0 / k) >= z_{1-alpha} + z_b``.

    ``calibrations`` (required for the Poisson design) calibrate both days. Returns per check
    ``n_draws`` (the smallest ``n``, to 0.05; ``inf`` if none up to the number of units) and
    ``se_needed`` (the design SE of the day's estimate, domain ``all``, at that ``n``).
    """
    if not 0.0 < power < 1.0:
        raise ValueError(f"power: expected a number in (0, 1), got {power!r}")
    j = base.policies.index(policy)
    design0 = make_design(base, config, calibrations=calibrations)
    design1 = make_design(changed, config, calibrations=calibrations)
    n_max = (
        float(min(len(design0.units), len(design1.units)))
        if isinstance(design0, PoissonDesign)
        else 1e9
    )
    cache: dict[float, tuple[FloatArray, FloatArray]] = {}

    def var(n: float) -> tuple[FloatArray, FloatArray]:
        if n not in cache:
            cache[n] = (variance_at(base, design0, n)[j], variance_at(changed, design1, n)[j])
        return cache[n]

    p0, p1 = base.prevalence()[j], changed.prevalence()[j]
    delta = p1 - p0
    z_a = float(stats.norm.isf(config.rise_alpha))
    cusum_rule = config.rule("cusum")
    hk = float(cusum_rule.get("h", 5.0)) + float(cusum_rule.get("k", 0.5))
    cusum_days = int(cusum_rule.get("baseline_days", 28))
    limit = next(p.limit for p in config.policies if p.name == policy)
    z_c = float(stats.norm.isf((1.0 - config.confidence) / 2.0))
    baseline_rule = config.rule("baseline_change")
    k = int(baseline_rule.get("baseline_days", 14))
    m = len(base.policies) * len(base.surfaces)
    z_q = float(stats.norm.isf(float(baseline_rule.get("q", 0.001)) / m))
    cells = [d for d in range(1, len(base.domains)) if delta[d] > 0]

    def day_over_day(n: float) -> float:
        v0, v1 = var(n)
        return _upper_tail(delta[0] - z_a * math.sqrt(v0[0] + v1[0]), math.sqrt(v0[0] + v1[0]))

    def cusum(n: float) -> float:
        v0, v1 = var(n)
        return _upper_tail(delta[0] - hk * math.sqrt(v0[0]), math.sqrt(v1[0] + v0[0] / cusum_days))

    def limit_power(n: float) -> float:
        _, v1 = var(n)
        return _upper_tail(p1[0] - limit - z_c * math.sqrt(v1[0]), math.sqrt(v1[0]))

    def baseline_change(n: float) -> float:
        v0, v1 = var(n)
        miss = 1.0
        for d in cells:
            sd = math.sqrt(v1[d] + v0[d] / k)
            miss *= 1.0 - _upper_tail(delta[d] - z_q * sd, sd)
        return 1.0 - miss

    def rise_all(n: float) -> float:
        v0, v1 = var(n)
        sd = math.sqrt(v1[0] + v0[0] / k)
        return _upper_tail(delta[0] - z_a * sd, sd)

    power_of: dict[str, Callable[[float], float]] = {
        "limit": limit_power,
        "day_over_day_rise": day_over_day,
        "baseline_change": baseline_change,
        "cusum": cusum,
        "baseline_rise_all": rise_all,
    }
    out: dict[str, dict[str, float]] = {}
    for check in ALL_CHECKS:
        if check == "limit" and p1[0] <= limit:
            out[check] = {"n_draws": math.inf, "se_needed": 0.0}
            continue
        n = _smallest_n(power_of[check], power, n_max)
        se = math.sqrt(var(n)[1][0]) if math.isfinite(n) else 0.0
        out[check] = {"n_draws": n, "se_needed": se}
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Everything :func:`render_markdown` prints."""

    command: str
    seed: int
    workers: int
    runtime_seconds: float
    n_interactions: int
    population: Population
    config: RunConfig
    exact_se: FloatArray
    max_relative_difference: float
    bias_z: FloatArray
    null: NullSummary
    detection: list[tuple[str, DetectionSummary]]
    requirements: dict[str, dict[str, float]]
    requirement_spread: dict[str, FloatArray]
    grid: list[DetectionSummary]
    calibrations: list[tuple[Calibration, ...]] | None = None
    wr_exact_se: FloatArray | None = None
    certainty_units: int = 0
    member_se: FloatArray | None = None


def _pct(value: float, digits: int = 3) -> str:
    return f"{100.0 * value:.{digits}f}%"


def _label(check: str) -> str:
    if check == "any":
        return "any production check"
    if check == "any_with_proposed":
        return "any check incl. proposed"
    return f"{check} (proposed)" if check in PROPOSED else check


def _design_text(config: RunConfig, certainty_units: int) -> str:
    sampling = config.sampling
    if sampling.method == "poisson_pps":
        return (
            f"calibrated Poisson PPS (size_measure {sampling.size_measure}, relative floor "
            f"{sampling.size_floor}), expected n = {sampling.n_draws:,} ({certainty_units:,} "
            f"certainty units), Horvitz-Thompson, CI {config.ci_method} {config.confidence:.0%}"
        )
    return (
        f"PPS with replacement, n_draws = {sampling.n_draws:,}, size_floor = "
        f"{wr_size_floor(config)}, Hansen-Hurwitz, CI {wr_ci_method(config)} "
        f"{config.confidence:.0%}"
    )


def _calibration_text(policies: Sequence[str], pool: Sequence[Sequence[Calibration]]) -> list[str]:
    lines = []
    for j, policy in enumerate(policies):
        fits = [member[j] for member in pool]
        methods = sorted({c.method for c in fits})
        counts = ", ".join(f"{m} in {sum(c.method == m for c in fits)}" for m in methods)
        platt = [c.params.to_dict() for c in fits if c.method == "platt"]
        shown = ""
        if platt:
            a_values = [p["a"] for p in platt]
            b_values = [p["b"] for p in platt]
            shown = (
                f"; Platt a in [{min(a_values):+.2f}, {max(a_values):+.2f}], "
                f"b in [{min(b_values):.2f}, {max(b_values):.2f}]"
            )
        positives = [c.n_positive for c in fits]
        lines.append(
            f"  - {policy}: {counts} of {len(fits)} fits{shown}; weighted positives in the "
            f"training window {min(positives):,.0f}-{max(positives):,.0f}"
        )
    return lines


def render_markdown(report: Report) -> str:
    """The report as Markdown (tables and the run's facts; interpretation is left to the doc)."""
    pop, config, null = report.population, report.config, report.null
    limits = {p.name: p.limit for p in config.policies}
    prevalence = pop.prevalence()
    lines = [
        "## Check simulation",
        "",
        f"- command: `{report.command}`",
        f"- seed: {report.seed}; workers: {report.workers}; "
        f"runtime: {report.runtime_seconds:.0f} s",
        f"- population: {report.n_interactions:,} interactions "
        f"({len(pop.impressions):,} units, {int(pop.impressions.sum()):,} impressions), "
        "fixed: no true change",
        f"- design: {_design_text(config, report.certainty_units)}",
    ]
    if report.calibrations is not None:
        lines.append(
            f"- calibration: a pool of {len(report.calibrations)} independent steady-state fits "
            "(`fit_population_calibrations`), window r uses fit r mod pool size:"
        )
        lines += _calibration_text(pop.policies, report.calibrations)
    estimator = (
        "horvitz_thompson_prevalence"
        if config.sampling.method == "poisson_pps"
        else "hansen_hurwitz_prevalence"
    )
    lines += [
        f"- burn-in: {history_days(config)} days before each {null.days}-day window",
        f"- reproduced estimator vs `{estimator}` as `estimate_day` calls it (one day, every "
        f"policy and domain; estimate, SE, CI): max relative difference "
        f"{report.max_relative_difference:.1e}",
        f"- unbiasedness over {null.replications} windows: max |bias| / simulation SE over "
        f"policies x domains = {np.nanmax(np.abs(report.bias_z)):.2f}",
        "",
    ]
    if report.wr_exact_se is not None:
        lines += [
            "| policy | true prevalence | limit | exact SE at n_draws (RMS over fits) "
            "[min, max] | exact SE of PPS with replacement at the same n (old default) "
            "| variance ratio old / new |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines += [
            "| policy | true prevalence | limit | exact SE at n_draws |",
            "|---|---|---|---|",
        ]
    for j, policy in enumerate(pop.policies):
        se_text = _pct(report.exact_se[j, 0])
        if report.member_se is not None and len(report.member_se) > 1:
            members = report.member_se[:, j]
            se_text += f" [{_pct(members.min())}, {_pct(members.max())}]"
        row = (
            f"| {policy} | {_pct(prevalence[j, 0])} | {_pct(limits.get(policy, math.nan), 2)} "
            f"| {se_text} |"
        )
        if report.wr_exact_se is not None:
            old, new = report.wr_exact_se[j, 0], report.exact_se[j, 0]
            ratio = (old / new) ** 2 if new > 0 else math.inf
            row += f" {_pct(old)} | {ratio:.2f} |"
        lines.append(row)
    lines += [
        "",
        f"### (a) False alerts per {null.days} days, all policies and cells "
        f"({null.replications} windows)",
        "",
        f"| check | mean opened per {null.days} d (sim. SE) | share of windows >= 1 | "
        "share > 1 | mean escalations |",
        "|---|---|---|---|---|",
    ]
    per_check: dict[str, IntArray] = {c: null.opened[c] for c in CHECKS}
    escalations: dict[str, IntArray] = {c: null.escalated[c] for c in CHECKS}
    per_check["all production checks"] = null.total_opened()
    escalations["all production checks"] = np.sum([null.escalated[c] for c in CHECKS], axis=0)
    for c in PROPOSED:
        per_check[_label(c)] = null.opened[c]
        escalations[_label(c)] = null.escalated[c]
    per_check["production + proposed"] = null.total_opened(ALL_CHECKS)
    escalations["production + proposed"] = np.sum([null.escalated[c] for c in ALL_CHECKS], axis=0)
    r = null.replications
    for name, counts in per_check.items():
        mean = float(counts.mean())
        se = float(counts.std(ddof=1)) / math.sqrt(r) if r > 1 else math.nan
        ge1, gt1 = float((counts >= 1).mean()), float((counts > 1).mean())
        lines.append(
            f"| {name} | {mean:.3f} ({se:.3f}) | {ge1:.3f} ({math.sqrt(ge1 * (1 - ge1) / r):.3f})"
            f" | {gt1:.3f} ({math.sqrt(gt1 * (1 - gt1) / r):.3f}) "
            f"| {float(escalations[name].mean()):.3f} |"
        )
    lines += [
        "",
        f"False alerts by source (mean opened per {null.days} days; sources never opened: 0):",
        "",
        f"| check | policy | direction | mean opened per {null.days} d |",
        "|---|---|---|---|",
    ]
    for (check, policy, direction), counts in null.opened_by.items():
        lines.append(f"| {_label(check)} | {policy} | {direction} | {float(counts.mean()):.3f} |")
    lines += [
        "",
        f"Of these, {float(null.opened_after_skip.mean()):.3f} per {null.days} days opened on a "
        "cell that was skipped the day before.",
        "",
        "Standardised daily estimates under no change, `z = (estimate - truth) / SE_exact` with "
        "the exact design SE (the scale the CUSUM's `sigma0` estimates), over all simulated "
        "days (nominal: mean 0, sd 1, P(z < -3) = P(z > 3) = 0.0013):",
        "",
        "| policy | days with estimated SE = 0 | mean z | sd z | P(z < -3) | P(z > 3) |",
        "|---|---|---|---|---|---|",
    ]
    for j, policy in enumerate(pop.policies):
        days, sum_z, sum_z2, below, above, zero = null.z_stats[j]
        mean = sum_z / days if days else math.nan
        sd = math.sqrt(max(sum_z2 / days - mean * mean, 0.0)) if days else math.nan
        total_days = max(days, zero, 1.0)
        lines.append(
            f"| {policy} | {zero / total_days:.3f} | {mean:+.3f} | {sd:.3f} "
            f"| {below / max(days, 1):.4f} | {above / max(days, 1):.4f} |"
        )
    outcomes = (*ALL_CHECKS, "any", "any_with_proposed")
    for label, det in report.detection:
        lines += [
            "",
            f"### (b) Same-day detection: {det.policy} {_pct(det.before)} -> {_pct(det.after)}, "
            f"{label} (n_draws = {det.n_draws:,}, {det.replications} replications)",
            "",
            f"Exact SE of the day's estimate: {_pct(det.se_before)} before, "
            f"{_pct(det.se_after)} on the day; true change / sqrt(SE_before^2 + SE_after^2) = "
            f"{(det.after - det.before) / math.hypot(det.se_before, det.se_after):.2f}.",
            "",
            "| check | P(breach on the day) (sim. SE) |",
            "|---|---|",
        ]
        for check in outcomes:
            p, se = det.probability(check)
            lines.append(f"| {_label(check)} | {p:.3f} ({se:.3f}) |")
    if report.requirements:
        det = report.detection[0][1]
        lines += [
            "",
            f"### (c) Sample size for {DETECTION_POWER:.0%} same-day detection "
            f"({det.policy} {_pct(det.before)} -> {_pct(det.after)}, current thresholds)",
            "",
            "Normal approximation from the exact design variances (per check alone):",
            "",
        ]
        n_spread = len(report.requirement_spread.get(CHECKS[0], ()))
        if n_spread:
            lines += [
                "| check | n_draws needed | SE of the day's estimate (domain all) needed "
                f"| n_draws over {n_spread} relabellings: median [min, max] |",
                "|---|---|---|---|",
            ]
        else:
            lines += [
                "| check | n_draws needed | SE of the day's estimate (domain all) needed |",
                "|---|---|---|",
            ]
        for check in ALL_CHECKS:
            req = report.requirements[check]
            values = report.requirement_spread.get(check, np.array([]))
            spread = (
                ""
                if not n_spread
                else " - |"
                if np.isinf(values).all()
                else f" {np.median(values):,.0f} [{values.min():,.0f}, {values.max():,.0f}] |"
            )
            never = check == "limit" and math.isinf(req["n_draws"])
            n_text = (
                "never (true level below the limit)"
                if never
                else "more than the population"
                if math.isinf(req["n_draws"])
                else f"{req['n_draws']:,.0f}"
            )
            se_text = "-" if math.isinf(req["n_draws"]) else _pct(req["se_needed"])
            lines.append(f"| {_label(check)} | {n_text} | {se_text} |{spread}")
    if report.grid:
        lines += [
            "",
            "Simulated (same experiment as (b), first variant) over n_draws:",
            "",
            "| n_draws | replications | "
            + " | ".join(f"P({_label(c)})" for c in ALL_CHECKS)
            + " | P(any production check) | P(any incl. proposed) |",
            "|---|---|" + "---|" * (len(ALL_CHECKS) + 2),
        ]
        for det in report.grid:
            cells = [f"{det.probability(c)[0]:.3f}" for c in ALL_CHECKS]
            p, se = det.probability("any")
            p2, se2 = det.probability("any_with_proposed")
            lines.append(
                f"| {det.n_draws:,} | {det.replications} | "
                + " | ".join(cells)
                + f" | {p:.3f} ({se:.3f}) | {p2:.3f} ({se2:.3f}) |"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def closest_policy(population: Population, target: float) -> str:
    """The policy whose true prevalence is closest to ``target`` on the log scale (policies
    without any violation are not candidates unless all are)."""
    prevalence = population.prevalence()[:, 0]
    with np.errstate(divide="ignore"):
        distance = np.where(prevalence > 0, np.abs(np.log(prevalence / target)), np.inf)
    return population.policies[int(np.argmin(distance))]


def doubling_scenario(
    population: Population, policy: str, target: float, seed: int, realisation: int = 0
) -> tuple[Population, Population, Population]:
    """``(base, doubled, blind)``: ``policy`` relabelled to ``target``, then to ``2 * target``
    with the added violations scored like existing ones (``doubled``) or keeping their own
    non-violator scores (``blind``); ``doubled`` and ``blind`` relabel the same units."""
    base = relabel_to_prevalence(
        population, policy, target, np.random.default_rng([seed, _STREAM_RELABEL, realisation])
    )
    stream = [seed, _STREAM_RELABEL, realisation, 1]
    doubled = relabel_to_prevalence(base, policy, 2 * target, np.random.default_rng(stream))
    blind = relabel_to_prevalence(
        base, policy, 2 * target, np.random.default_rng(stream), model_aware=False
    )
    return base, doubled, blind


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tsmetrics.check_simulation",
        description="Simulate the alerting checks (false alerts without change, same-day "
        "detection of a doubling) under the production design and default configuration.",
    )
    parser.add_argument("--days", type=int, default=30, help="window length (default 30)")
    parser.add_argument("--replications", type=int, default=1000, help="windows (default 1000)")
    parser.add_argument(
        "--detection-replications", type=int, default=None, help="default: --replications"
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--n-interactions", type=int, default=50_000)
    parser.add_argument(
        "--n-draws",
        type=int,
        default=None,
        help="daily (expected) sample size (default: the configuration's)",
    )
    parser.add_argument(
        "--method",
        choices=("poisson_pps", "pps_with_replacement"),
        default=None,
        help="sampling method (default: the configuration's); pps_with_replacement uses "
        f"size_measure max_risk with the absolute floor {WR_SIZE_FLOOR}",
    )
    parser.add_argument("--target-prevalence", type=float, default=0.005)
    parser.add_argument(
        "--policy", default=None, help="policy to double (default: the closest to the target)"
    )
    parser.add_argument(
        "--grid",
        default="3000,4000,5000,6000",
        help="comma-separated n_draws for the simulated sample-size search ('' to skip)",
    )
    parser.add_argument(
        "--grid-replications", type=int, default=300, help="per grid point (default 300)"
    )
    parser.add_argument(
        "--calibration-pool",
        type=int,
        default=10,
        help="independent calibration fits per population (Poisson design; default 10)",
    )
    parser.add_argument(
        "--realisations",
        type=int,
        default=20,
        help="relabelling realisations for the spread of the analytic sample sizes (default 20)",
    )
    args = parser.parse_args(argv)
    if args.days < 1 or args.replications < 2:
        parser.error("--days must be >= 1 and --replications >= 2")
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def configure(
    config: RunConfig, *, n_draws: int | None = None, method: str | None = None
) -> RunConfig:
    """``config`` with a what-if sample size and/or sampling method (thresholds unchanged).
    Switching to ``pps_with_replacement`` from the default uses ``size_measure: max_risk`` with
    the absolute floor :data:`WR_SIZE_FLOOR` (the walking skeleton's design)."""
    sampling = config.sampling
    if n_draws is not None:
        sampling = dataclasses.replace(sampling, n_draws=n_draws)
    if method is not None and method != sampling.method:
        if method == "pps_with_replacement":
            sampling = dataclasses.replace(
                sampling, method=method, size_measure="max_risk", size_floor=WR_SIZE_FLOOR
            )
        else:
            sampling = dataclasses.replace(
                sampling, method=method, size_measure="sqrt_calibrated", size_floor=0.03
            )
    return dataclasses.replace(config, sampling=sampling)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the experiments and print the Markdown report to stdout."""
    args = _parse_args(argv)
    started = time.perf_counter()
    config = configure(load_config(), n_draws=args.n_draws, method=args.method)
    n_draws = config.sampling.n_draws
    poisson = config.sampling.method == "poisson_pps"
    sim = simulate_day(
        POPULATION_DAY,
        args.seed,
        SimulationConfig(n_interactions=args.n_interactions, day_prevalence_jitter=0.0),
    )
    population = population_from_day(sim)
    if list(population.policies) != config.policy_names:
        raise ValueError(
            f"simulated policies {population.policies} differ from the config's "
            f"{config.policy_names}"
        )
    pool_size = max(1, args.calibration_pool) if poisson else 1
    calibrations = (
        [
            fit_population_calibrations(population, config, args.seed, realisation=c)
            for c in range(pool_size)
        ]
        if poisson
        else None
    )
    members: list[tuple[Calibration, ...] | None] = [None]
    if calibrations:
        members = list(calibrations)
    designs = [make_design(population, config, calibrations=c) for c in members]
    design = designs[0]
    check_rng = np.random.default_rng([args.seed, _STREAM_NULL, 0])
    draws = draw_days(design, check_rng, 1)
    max_diff = verify_estimates(
        population, design, draws, estimate_days(population, design, draws), config
    )
    if max_diff > 1e-9:
        raise RuntimeError(f"reproduced estimator differs from production: {max_diff:.3e}")
    _log(f"population ready ({time.perf_counter() - started:.1f} s); null experiment ...")
    null = run_null(
        population,
        designs,
        config,
        days=args.days,
        replications=args.replications,
        seed=args.seed,
        workers=args.workers,
    )
    truth = population.prevalence()
    member_var = np.stack([design_variance(population, d) for d in designs])
    exact_var = member_var.mean(axis=0)
    n_days = history_days(config) + args.days
    bias_sim_se = np.sqrt(exact_var / (n_days * args.replications))
    bias = null.mean_estimate.mean(axis=0) - truth
    safe = np.where(bias_sim_se > 0, bias_sim_se, 1.0)
    bias_z = np.where(bias_sim_se > 0, bias / safe, np.nan)
    _log(f"null done ({time.perf_counter() - started:.1f} s); detection ...")

    policy = args.policy or closest_policy(population, args.target_prevalence)
    base, doubled, blind = doubling_scenario(population, policy, args.target_prevalence, args.seed)
    base_pool = (
        [
            fit_population_calibrations(base, config, args.seed, realisation=1000 + c)
            for c in range(pool_size)
        ]
        if poisson
        else None
    )
    reps = args.detection_replications or args.replications
    detection = []
    for label, changed, stream in (
        ("new violations scored like existing ones", doubled, _STREAM_DETECT),
        ("new violations unseen by the risk model", blind, _STREAM_DETECT_BLIND),
    ):
        detection.append(
            (
                label,
                run_detection(
                    base,
                    changed,
                    policy,
                    config,
                    n_draws=n_draws,
                    replications=reps,
                    seed=args.seed,
                    stream=stream,
                    workers=args.workers,
                    calibration_pool=base_pool,
                ),
            )
        )
    _log(f"detection done ({time.perf_counter() - started:.1f} s); sample sizes ...")
    per_member = [
        analytic_requirements(base, doubled, policy, config, DETECTION_POWER, calibrations=c)
        for c in (list(base_pool) if base_pool else [None])
    ]
    requirements = {
        check: {
            key: float(np.median([m[check][key] for m in per_member]))
            for key in ("n_draws", "se_needed")
        }
        for check in ALL_CHECKS
    }
    spread: dict[str, list[float]] = {check: [] for check in ALL_CHECKS}
    for realisation in range(args.realisations):
        scenario = doubling_scenario(
            population, policy, args.target_prevalence, args.seed, realisation
        )
        fitted = (
            fit_population_calibrations(
                scenario[0], config, args.seed, realisation=2000 + realisation
            )
            if poisson
            else None
        )
        needs = analytic_requirements(
            scenario[0], scenario[1], policy, config, DETECTION_POWER, calibrations=fitted
        )
        for check in ALL_CHECKS:
            spread[check].append(needs[check]["n_draws"])
    grid = []
    for i, n in enumerate(int(v) for v in args.grid.split(",") if v.strip()):
        _log(f"grid n_draws={n} ({time.perf_counter() - started:.1f} s) ...")
        grid.append(
            run_detection(
                base,
                doubled,
                policy,
                config,
                n_draws=n,
                replications=args.grid_replications,
                seed=args.seed,
                stream=_STREAM_GRID + i,
                workers=args.workers,
                calibration_pool=base_pool,
            )
        )
    command = "python -m tsmetrics.check_simulation " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    wr_exact_se = None
    if isinstance(design, PoissonDesign):
        wr_design = pps_design(population, WR_SIZE_FLOOR, n_draws)
        wr_exact_se = np.sqrt(design_variance(population, wr_design))
    report = Report(
        command=command.strip(),
        seed=args.seed,
        workers=args.workers,
        runtime_seconds=time.perf_counter() - started,
        n_interactions=args.n_interactions,
        population=population,
        config=config,
        exact_se=np.sqrt(exact_var),
        max_relative_difference=max_diff,
        bias_z=bias_z,
        null=null,
        detection=detection,
        requirements=requirements,
        requirement_spread={c: np.asarray(v) for c, v in spread.items()},
        grid=grid,
        calibrations=calibrations,
        member_se=np.sqrt(member_var[:, :, 0]),
        wr_exact_se=wr_exact_se,
        certainty_units=(
            int(np.count_nonzero(design.pi >= 1.0)) if isinstance(design, PoissonDesign) else 0
        ),
    )
    sys.stdout.write(render_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
