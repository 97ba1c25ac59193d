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
2. **Design and estimator.** As ``include/sql/sample_pps_wr.sql``: units with impressions,
   ``size = impressions * (size_floor + max over policies of unit risk)``, ``n_draws`` draws
   with replacement with probability ``size / sum(size)`` (here :meth:`numpy.random.Generator.
   choice` with ``p`` instead of the warehouse's hash uniforms). Per day, policy and domain
   (``all`` and ``surface=S``) the Hansen-Hurwitz estimate and standard error of
   :func:`tsmetrics.measure.estimate_day` (every draw, ``y = 0`` outside the domain, the domain's
   known impressions as denominator), vectorised over days; :func:`verify_estimates` checks them
   against :func:`tsmetrics.estimation.hansen_hurwitz_prevalence` (the CLI does so on every run)
   and the confidence interval comes from the production interval function
   (:data:`tsmetrics.estimation.CI_METHODS`).
3. **Checks.** The production check functions on a history shaped like
   ``measure._estimate_history``: :func:`tsmetrics.checks.limit_check`,
   :func:`tsmetrics.checks.day_over_day_check`, :func:`tsmetrics.measure.baseline_change_checks`
   and :func:`tsmetrics.measure.cusum_checks`, with the default configuration of
   :func:`tsmetrics.config.load_config`, called as :func:`tsmetrics.measure.checks_day` calls
   them (:func:`checks_for_day`). Incidents are counted with
   :func:`tsmetrics.alerts.incident_transitions` (an *opened* incident = a breach that was not
   breaching the day before).
4. **Experiments.** (a) False alerts: ``days`` consecutive days after a burn-in long enough for
   every check to have its full history. (b) Detection: the policy closest to the target
   prevalence (default 0.5%) is relabelled to exactly that prevalence, a full history is drawn,
   then on day ``T`` the prevalence doubles (more units relabelled as violating); the
   probability that a check breaches for that policy on day ``T``. (c) The sample size for 90%
   same-day detection: normal approximations per check from the exact design variances, and
   simulation over a grid of ``n_draws``.

Run ``python -m tsmetrics.check_simulation --days 30 --replications 2000 --seed 20261123``; the
Markdown report goes to stdout (progress to stderr). Results do not depend on ``--workers``: every
replication has its own generator ``default_rng([seed, stream, replication])``.
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
from scipy import stats

from tsmetrics.alerts import incident_transitions
from tsmetrics.checks import CheckResult
from tsmetrics.config import RunConfig, load_config
from tsmetrics.estimation import CI_METHODS, hansen_hurwitz_prevalence
from tsmetrics.measure import DOMAIN_ALL, prevalence_checks
from tsmetrics.simulate import SURFACES, SimulatedDay, SimulationConfig, simulate_day

__all__ = [
    "CHECKS",
    "Design",
    "DailyEstimates",
    "DetectionSummary",
    "NullSummary",
    "Population",
    "Report",
    "TransitionCounts",
    "Z_STATS",
    "analytic_requirements",
    "checks_for_day",
    "closest_policy",
    "doubling_scenario",
    "count_transitions",
    "design_variance",
    "estimate_draws",
    "history_days",
    "main",
    "population_from_day",
    "pps_design",
    "relabel_to_prevalence",
    "render_markdown",
    "run_detection",
    "run_null",
    "verify_estimates",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
History = dict[tuple[str, str], dict[date, tuple[float, float]]]
Overall = dict[date, dict[str, tuple[float, float, float, float]]]

CHECKS: tuple[str, ...] = ("limit", "day_over_day_rise", "baseline_change", "cusum")
"""The simulated checks, in :func:`tsmetrics.measure.checks_day` order."""

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


def design_variance(population: Population, design: Design) -> FloatArray:
    """Exact design variance of the daily Hansen-Hurwitz prevalence estimate, shape (P, S + 1):
    ``V = (sum_i y_i^2 / p_i - Y^2) / (n X^2)`` (Cochran 1977, 9A)."""
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
# Estimates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DailyEstimates:
    """Daily Hansen-Hurwitz estimates, as ``estimate_day`` writes them.

    Attributes
    ----------
    estimate, variance : ndarray of float, shape (days, P, S + 1)
        Prevalence estimate and its estimated variance (``SE = sqrt(variance)``).
    present : ndarray of bool, shape (days, S + 1)
        ``estimate_day`` writes a row only for domains with a draw and positive impressions.
    n_draws : int
        Draws per day.
    """

    estimate: FloatArray
    variance: FloatArray
    present: BoolArray
    n_draws: int

    def concat(self, other: DailyEstimates) -> DailyEstimates:
        """Days of ``self`` followed by the days of ``other``."""
        return DailyEstimates(
            estimate=np.concatenate([self.estimate, other.estimate]),
            variance=np.concatenate([self.variance, other.variance]),
            present=np.concatenate([self.present, other.present]),
            n_draws=self.n_draws,
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
    return DailyEstimates(estimate=estimate, variance=variance, present=present, n_draws=n)


def verify_estimates(
    population: Population,
    design: Design,
    positions: IntArray,
    estimates: DailyEstimates,
    config: RunConfig,
    days: Iterable[int] = (0,),
) -> float:
    """Largest relative difference, over ``days`` and every policy and domain, between
    :func:`estimate_draws` and the production estimator called exactly as ``estimate_day`` calls
    it (estimate, standard error, CI bounds)."""
    worst = 0.0
    masks = population.domain_masks()
    totals = population.domain_totals()
    for t in days:
        units = design.units[positions[t]]
        probs = design.prob[positions[t]]
        for j in range(len(population.policies)):
            violating = population.violates[units, j]
            for d in range(len(totals)):
                in_domain = masks[d, units]
                if not in_domain.any() or totals[d] <= 0:
                    continue
                ref = hansen_hurwitz_prevalence(
                    np.where(violating & in_domain, population.impressions[units], 0.0),
                    probs,
                    float(totals[d]),
                    confidence=config.confidence,
                    ci_method=wr_ci_method(config),
                    unit_ids=units,
                )
                est = float(estimates.estimate[t, j, d])
                var = max(float(estimates.variance[t, j, d]), 0.0)
                lower, upper = _interval(config, est, var, estimates.n_draws)
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


def _interval(config: RunConfig, estimate: float, variance: float, n: int) -> tuple[float, float]:
    """The interval of the simulated PPS-with-replacement design: the configured method, or
    Wilson-KG when the configured one belongs to the Poisson design (``gamma_tcz``), exactly as
    :func:`tsmetrics.measure.estimate_day` does for a PPS-with-replacement day."""
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
                _interval(config, est, max(var, 0.0), estimates.n_draws)
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
    day: date, history: History, overall: Overall, config: RunConfig
) -> list[CheckResult]:
    """The limit, day-over-day, baseline-change and CUSUM checks of ``day``, called as
    :func:`tsmetrics.measure.checks_day` calls them (agreement and pipeline-health checks are
    not simulated). ``history`` may hold more days than the window; it is cut to
    ``[day - history_days, day]`` like ``_estimate_history``."""
    first = day - timedelta(days=history_days(config))
    window: History = {}
    for key, series in history.items():
        kept = {d: v for d, v in series.items() if first <= d <= day}
        if kept:
            window[key] = kept
    return prevalence_checks(
        day, overall.get(day, {}), overall.get(day - timedelta(days=1), {}), window, config
    )


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
    opened = dict.fromkeys(CHECKS, 0)
    escalated = dict.fromkeys(CHECKS, 0)
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
    out = dict.fromkeys(CHECKS, False)
    for r in results:
        if r.outcome == "breach" and r.policy.partition("|")[0] == policy:
            out[r.check_name] = True
    return out


# --------------------------------------------------------------------------------------------
# Replications
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NullTask:
    population: Population
    design: Design
    config: RunConfig
    days: int
    seed: int


@dataclass(frozen=True)
class _DetectTask:
    base: Population
    base_design: Design
    changed: Population
    changed_design: Design
    config: RunConfig
    policy: str
    seed: int
    stream: int


Z_STATS: tuple[str, ...] = ("days", "sum_z", "sum_z2", "z_below_-3", "z_above_3", "se_zero")
"""Columns of :attr:`NullSummary.z_stats`."""


def _z_stats(estimates: DailyEstimates, truth: FloatArray) -> FloatArray:
    """Per policy (domain ``all``), sums over days of ``z = (estimate - truth) / SE`` (days with
    SE > 0), in the order of :data:`Z_STATS`, shape (P, 6)."""
    est, var = estimates.estimate[:, :, 0], estimates.variance[:, :, 0]
    ok = var > 0
    z = np.where(ok, (est - truth[None, :]) / np.sqrt(np.where(ok, var, 1.0)), 0.0)
    return np.stack(
        [
            ok.sum(axis=0),
            z.sum(axis=0),
            (z * z).sum(axis=0),
            (ok & (z < -3.0)).sum(axis=0),
            (ok & (z > 3.0)).sum(axis=0),
            (~ok).sum(axis=0),
        ],
        axis=1,
    ).astype(np.float64)


def _null_replication(task: _NullTask, rep: int) -> tuple[TransitionCounts, FloatArray, FloatArray]:
    """One window: burn-in + ``days`` days of samples of the unchanged population."""
    burn_in = history_days(task.config)
    n_days = burn_in + task.days
    rng = np.random.default_rng([task.seed, _STREAM_NULL, rep])
    positions = draw_positions(task.design, rng, n_days)
    estimates = estimate_draws(task.population, task.design, positions)
    check_days = range(burn_in - 1, n_days)
    dates, history, overall = _histories(estimates, task.population, task.config, check_days)
    results = [checks_for_day(dates[t], history, overall, task.config) for t in check_days]
    counts = count_transitions(results, _escalate_ratios(task.config))
    z_stats = _z_stats(estimates, task.population.prevalence()[:, 0])
    return counts, estimates.estimate.mean(axis=0), z_stats


def _detect_replication(task: _DetectTask, rep: int) -> dict[str, bool]:
    """A full history of the base population, then day ``T`` sampled from the changed one."""
    burn_in = history_days(task.config)
    rng = np.random.default_rng([task.seed, task.stream, rep])
    before = estimate_draws(
        task.base, task.base_design, draw_positions(task.base_design, rng, burn_in)
    )
    after = estimate_draws(
        task.changed, task.changed_design, draw_positions(task.changed_design, rng, 1)
    )
    estimates = before.concat(after)
    dates, history, overall = _histories(estimates, task.base, task.config, [burn_in])
    return _breaches_for_policy(
        checks_for_day(dates[-1], history, overall, task.config), task.policy
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
        Per check, the opened incidents of each window (all policies and cells).
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

    def total_opened(self) -> IntArray:
        """Opened incidents per window over all checks."""
        out: IntArray = np.sum([self.opened[c] for c in CHECKS], axis=0).astype(np.int64)
        return out


def run_null(
    population: Population,
    design: Design,
    config: RunConfig,
    *,
    days: int,
    replications: int,
    seed: int,
    workers: int = 1,
) -> NullSummary:
    """False-alert experiment: ``replications`` windows of ``days`` days (after a burn-in of
    :func:`history_days` days) of independent daily samples of the same population."""
    task = _NullTask(population, design, config, days, seed)
    rows = _map_chunks(_null_chunk, task, replications, workers)
    return NullSummary(
        days=days,
        replications=replications,
        opened={c: np.array([r[0].opened[c] for r in rows], dtype=np.int64) for c in CHECKS},
        escalated={c: np.array([r[0].escalated[c] for r in rows], dtype=np.int64) for c in CHECKS},
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
        Daily sample size and number of replications.
    breached : dict of str to ndarray of bool
        Per check (and ``"any"``), whether it breached for the policy on the day.
    se_before, se_after : float
        Exact design standard error of the policy's daily estimate (domain ``all``) before and
        on the day.
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
) -> DetectionSummary:
    """Detection experiment: a full history of ``base``, then one day of ``changed``; which
    checks breach for ``policy`` on that day."""
    floor = wr_size_floor(config)
    task = _DetectTask(
        base=base,
        base_design=pps_design(base, floor, n_draws),
        changed=changed,
        changed_design=pps_design(changed, floor, n_draws),
        config=config,
        policy=policy,
        seed=seed,
        stream=stream,
    )
    rows = _map_chunks(_detect_chunk, task, replications, workers)
    breached = {c: np.array([r[c] for r in rows], dtype=bool) for c in CHECKS}
    breached["any"] = np.any([breached[c] for c in CHECKS], axis=0)
    j = base.policies.index(policy)
    return DetectionSummary(
        policy=policy,
        before=float(base.prevalence()[j, 0]),
        after=float(changed.prevalence()[j, 0]),
        n_draws=n_draws,
        replications=replications,
        breached=breached,
        se_before=float(np.sqrt(design_variance(base, task.base_design)[j, 0])),
        se_after=float(np.sqrt(design_variance(changed, task.changed_design)[j, 0])),
    )


# --------------------------------------------------------------------------------------------
# Analytic sample-size requirements
# --------------------------------------------------------------------------------------------


def analytic_requirements(
    base: Population, changed: Population, policy: str, config: RunConfig, power: float
) -> dict[str, dict[str, float]]:
    """Normal approximations, from the exact design variances, of what each check needs to
    detect the change of ``policy`` on the day with probability ``power``.

    With ``V0``, ``V1`` the per-draw design variances (``n`` times the variance of the daily
    estimate) before and on the day, ``D`` the true change and ``z_b = Phi^-1(power)``:

    * ``day_over_day_rise``: ``D / sqrt((V0 + V1) / n) >= z_{1-alpha} + z_b``;
    * ``cusum``: the chart in control the day before (``C = 0``) and ``mu0`` exact:
      ``D / sqrt(V1 / n) >= h + k + z_b``;
    * ``baseline_change``: the policy's surface cells against the ``k``-day baseline, each
      rejected when its one-sided p-value is below ``q / m`` (BH's first step over the ``m``
      cells: a lower bound of BH's power); any cell rejected, cells independent;
    * ``limit``: ``CI lower > limit`` approximated as ``(P1 - limit) / SE1 >= z_{(1+c)/2} + z_b``
      (infinite ``n`` when ``P1 <= limit``).

    Returns per check ``n_draws`` (the smallest ``n``) and ``se_needed`` (the standard error of
    the day's estimate at the changed level it implies).
    """
    j = base.policies.index(policy)
    floor, n = wr_size_floor(config), config.sampling.n_draws
    v0 = n * design_variance(base, pps_design(base, floor, n))[j]  # per-draw, shape (S + 1,)
    v1 = n * design_variance(changed, pps_design(changed, floor, n))[j]
    p0, p1 = base.prevalence()[j], changed.prevalence()[j]
    delta = p1 - p0
    z_b = float(stats.norm.ppf(power))
    out: dict[str, dict[str, float]] = {}
    z_a = float(stats.norm.isf(config.rise_alpha))
    n = (z_a + z_b) ** 2 * (v0[0] + v1[0]) / delta[0] ** 2
    out["day_over_day_rise"] = {"n_draws": n, "se_needed": math.sqrt(v1[0] / n)}
    rule = config.rule("cusum")
    hk = float(rule.get("h", 5.0)) + float(rule.get("k", 0.5))
    n = (hk + z_b) ** 2 * v1[0] / delta[0] ** 2
    out["cusum"] = {"n_draws": n, "se_needed": delta[0] / (hk + z_b)}
    limit = next(p.limit for p in config.policies if p.name == policy)
    z_c = float(stats.norm.isf((1.0 - config.confidence) / 2.0))
    if p1[0] > limit:
        n = (z_c + z_b) ** 2 * v1[0] / (p1[0] - limit) ** 2
        out["limit"] = {"n_draws": n, "se_needed": (p1[0] - limit) / (z_c + z_b)}
    else:
        out["limit"] = {"n_draws": math.inf, "se_needed": 0.0}
    rule = config.rule("baseline_change")
    k = int(rule.get("baseline_days", 14))
    m = len(base.policies) * len(base.surfaces)
    z_q = float(stats.norm.isf(float(rule.get("q", 0.001)) / m))
    cells = [d for d in range(1, len(base.domains)) if np.isfinite(v1[d]) and delta[d] > 0]

    def miss(n_draws: float) -> float:
        sd = np.sqrt((v1[cells] + v0[cells] / k) / n_draws)
        return float(np.prod(stats.norm.cdf(z_q - delta[cells] / sd)))

    lo, hi = 2.0, 2.0
    while miss(hi) > 1.0 - power and hi < 1e9:
        hi *= 2.0
    while hi - lo > 1.0:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if miss(mid) > 1.0 - power else (lo, mid)
    out["baseline_change"] = {"n_draws": hi, "se_needed": math.sqrt(v1[0] / hi)}
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


def _pct(value: float, digits: int = 3) -> str:
    return f"{100.0 * value:.{digits}f}%"


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
        f"- design: PPS with replacement, n_draws = {config.sampling.n_draws:,}, size_floor = "
        f"{wr_size_floor(config)}, CI {config.ci_method} {config.confidence:.0%}",
        f"- burn-in: {history_days(config)} days before each {null.days}-day window",
        f"- reproduced estimator vs `hansen_hurwitz_prevalence` (one day, every policy and "
        f"domain): max relative difference {report.max_relative_difference:.1e}",
        f"- unbiasedness over {null.replications} windows: max |bias| / simulation SE over "
        f"policies x domains = {np.nanmax(np.abs(report.bias_z)):.2f}",
        "",
        "| policy | true prevalence | limit | exact SE at n_draws |",
        "|---|---|---|---|",
    ]
    for j, policy in enumerate(pop.policies):
        lines.append(
            f"| {policy} | {_pct(prevalence[j, 0])} | {_pct(limits.get(policy, math.nan), 2)} "
            f"| {_pct(report.exact_se[j, 0])} |"
        )
    lines += [
        "",
        f"### (a) False alerts per {null.days} days, all policies and cells "
        f"({null.replications} windows)",
        "",
        f"| check | mean opened per {null.days} d (sim. SE) | share of windows >= 1 | "
        "share > 1 | mean escalations |",
        "|---|---|---|---|---|",
    ]
    per_check = {**{c: null.opened[c] for c in CHECKS}, "all checks": null.total_opened()}
    escalations = {**null.escalated, "all checks": np.sum(list(null.escalated.values()), axis=0)}
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
        lines.append(f"| {check} | {policy} | {direction} | {float(counts.mean()):.3f} |")
    lines += [
        "",
        f"Of these, {float(null.opened_after_skip.mean()):.3f} per {null.days} days opened on a "
        "cell that was skipped the day before.",
    ]
    lines += [
        "",
        "Standardised daily estimates under no change, `z = (estimate - truth) / SE` with the "
        "day's own estimated SE (as the CUSUM uses them), over all simulated days (nominal: mean "
        "0, sd 1, P(z < -3) = P(z > 3) = 0.0013):",
        "",
        "| policy | days with SE = 0 | mean z | sd z | P(z < -3) | P(z > 3) |",
        "|---|---|---|---|---|---|",
    ]
    for j, policy in enumerate(pop.policies):
        days, sum_z, sum_z2, below, above, zero = null.z_stats[j]
        mean = sum_z / days if days else math.nan
        sd = math.sqrt(max(sum_z2 / days - mean * mean, 0.0)) if days else math.nan
        lines.append(
            f"| {policy} | {zero / (days + zero):.3f} | {mean:+.3f} | {sd:.3f} "
            f"| {below / max(days, 1):.4f} | {above / max(days, 1):.4f} |"
        )
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
        for check in (*CHECKS, "any"):
            p, se = det.probability(check)
            lines.append(f"| {'any check' if check == 'any' else check} | {p:.3f} ({se:.3f}) |")
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
        for check in CHECKS:
            req = report.requirements[check]
            values = report.requirement_spread.get(check, np.array([]))
            spread = (
                ""
                if not n_spread
                else " - |"
                if np.isinf(values).all()
                else f" {np.median(values):,.0f} [{values.min():,.0f}, {values.max():,.0f}] |"
            )
            n_text = (
                "never (true level below the limit)"
                if math.isinf(req["n_draws"])
                else (f"{req['n_draws']:,.0f}")
            )
            se_text = "-" if math.isinf(req["n_draws"]) else _pct(req["se_needed"])
            lines.append(f"| {check} | {n_text} | {se_text} |{spread}")
    if report.grid:
        lines += [
            "",
            "Simulated (same experiment as (b), first variant) over n_draws:",
            "",
            "| n_draws | replications | "
            + " | ".join(f"P({c})" for c in CHECKS)
            + " | P(any check) |",
            "|---|---|" + "---|" * (len(CHECKS) + 1),
        ]
        for det in report.grid:
            cells = [f"{det.probability(c)[0]:.3f}" for c in CHECKS]
            p, se = det.probability("any")
            lines.append(
                f"| {det.n_draws:,} | {det.replications} | "
                + " | ".join(cells)
                + f" | {p:.3f} ({se:.3f}) |"
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
        "--n-draws", type=int, default=None, help="daily draws (default: the configuration's)"
    )
    parser.add_argument("--target-prevalence", type=float, default=0.005)
    parser.add_argument(
        "--policy", default=None, help="policy to double (default: the closest to the target)"
    )
    parser.add_argument(
        "--grid",
        default="7000,8000,9000,10000",
        help="comma-separated n_draws for the simulated sample-size search ('' to skip)",
    )
    parser.add_argument(
        "--grid-replications", type=int, default=300, help="per grid point (default 300)"
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the experiments and print the Markdown report to stdout."""
    args = _parse_args(argv)
    started = time.perf_counter()
    config = load_config()
    if args.n_draws is not None:  # a what-if on the sample size only; thresholds unchanged
        config = dataclasses.replace(
            config, sampling=dataclasses.replace(config.sampling, n_draws=args.n_draws)
        )
    n_draws = config.sampling.n_draws
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
    design = pps_design(population, config.sampling.size_floor, n_draws)
    check_rng = np.random.default_rng([args.seed, _STREAM_NULL, 0])
    positions = draw_positions(design, check_rng, 1)
    max_diff = verify_estimates(
        population, design, positions, estimate_draws(population, design, positions), config
    )
    if max_diff > 1e-9:
        raise RuntimeError(f"reproduced estimator differs from production: {max_diff:.3e}")
    _log(f"population ready ({time.perf_counter() - started:.1f} s); null experiment ...")
    null = run_null(
        population,
        design,
        config,
        days=args.days,
        replications=args.replications,
        seed=args.seed,
        workers=args.workers,
    )
    truth = population.prevalence()
    exact_var = design_variance(population, design)
    n_days = history_days(config) + args.days
    bias_sim_se = np.sqrt(exact_var / (n_days * args.replications))
    bias = null.mean_estimate.mean(axis=0) - truth
    safe = np.where(bias_sim_se > 0, bias_sim_se, 1.0)
    bias_z = np.where(bias_sim_se > 0, bias / safe, np.nan)
    _log(f"null done ({time.perf_counter() - started:.1f} s); detection ...")

    policy = args.policy or closest_policy(population, args.target_prevalence)
    base, doubled, blind = doubling_scenario(population, policy, args.target_prevalence, args.seed)
    reps = args.detection_replications or args.replications
    detection = [
        (
            "new violations scored like existing ones",
            run_detection(
                base,
                doubled,
                policy,
                config,
                n_draws=n_draws,
                replications=reps,
                seed=args.seed,
                stream=_STREAM_DETECT,
                workers=args.workers,
            ),
        ),
        (
            "new violations unseen by the risk model",
            run_detection(
                base,
                blind,
                policy,
                config,
                n_draws=n_draws,
                replications=reps,
                seed=args.seed,
                stream=_STREAM_DETECT_BLIND,
                workers=args.workers,
            ),
        ),
    ]
    requirements = analytic_requirements(base, doubled, policy, config, DETECTION_POWER)
    spread: dict[str, list[float]] = {check: [] for check in CHECKS}
    for realisation in range(args.realisations):
        scenario = doubling_scenario(
            population, policy, args.target_prevalence, args.seed, realisation
        )
        needs = analytic_requirements(scenario[0], scenario[1], policy, config, DETECTION_POWER)
        for check in CHECKS:
            spread[check].append(needs[check]["n_draws"])
    grid_reps = args.grid_replications
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
                replications=grid_reps,
                seed=args.seed,
                stream=_STREAM_GRID + i,
                workers=args.workers,
            )
        )
    command = "python -m tsmetrics.check_simulation " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
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
    )
    sys.stdout.write(render_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
