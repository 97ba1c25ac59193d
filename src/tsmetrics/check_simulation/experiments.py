"""Experiments of the check simulation: checks, incidents, false alerts, detection, sample sizes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
from scipy import stats

from tsmetrics.alerts import incident_transitions
from tsmetrics.calibration import Calibration
from tsmetrics.check_simulation._common import (
    _STREAM_DETECT,
    _STREAM_NULL,
    CHECKS,
    BoolArray,
    FloatArray,
    History,
    IntArray,
    Overall,
)
from tsmetrics.check_simulation.estimates import (
    DailyEstimates,
    _histories,
    draw_days,
    estimate_days,
)
from tsmetrics.check_simulation.population import (
    Design,
    PoissonDesign,
    Population,
    design_variance,
    fit_population_calibrations,
    make_design,
    variance_at,
)
from tsmetrics.checks import CheckResult
from tsmetrics.config import RunConfig
from tsmetrics.control_charts import poisson_normal_scores
from tsmetrics.prevalence_checks import history_days, prevalence_checks

# --------------------------------------------------------------------------------------------
# Checks and incidents
# --------------------------------------------------------------------------------------------


def checks_for_day(
    day: date, history: History, overall: Overall, config: RunConfig
) -> list[CheckResult]:
    """The prevalence checks of ``day`` (:func:`tsmetrics.prevalence_checks.prevalence_checks`:
    limit, day-over-day, baseline change, baseline rise, CUSUM), called as
    :func:`tsmetrics.measure.checks_day` calls them (agreement and pipeline-health checks are
    not simulated). ``history`` may hold more days than the window; it is cut to
    ``[day - history_days, day]`` like ``measure._estimate_history``."""
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


Z_STATS: tuple[str, ...] = (
    "days",
    "sum_z",
    "sum_z2",
    "z_below_-3",
    "z_above_3",
    "se_zero",
    "sum_scores",
    "sum_scores2",
    "scores_below_-3",
    "scores_above_3",
)
"""Columns of :attr:`NullSummary.z_stats`."""


def _z_stats(estimates: DailyEstimates, truth: FloatArray, exact_se: FloatArray) -> FloatArray:
    """Per policy (domain ``all``), sums over days of ``z = (estimate - truth) / SE_exact`` (the
    exact design SE) and of the normal scores the CUSUM charts
    (:func:`tsmetrics.control_charts.poisson_normal_scores` with the true mean and the exact
    variance: the in-control model ``cusum_checks`` estimates from its baseline), in the order
    of :data:`Z_STATS` (``se_zero``: days whose own estimated SE is 0), shape (P, 10)."""
    est, var = estimates.estimate[:, :, 0], estimates.variance[:, :, 0]
    ok = np.broadcast_to(exact_se[None, :] > 0, est.shape)
    z = np.where(ok, (est - truth[None, :]) / np.where(exact_se > 0, exact_se, 1.0)[None, :], 0.0)
    scores = np.zeros_like(z)
    for j in range(est.shape[1]):
        if exact_se[j] > 0 and truth[j] > 0:
            scores[:, j] = poisson_normal_scores(est[:, j], truth[j], exact_se[j] ** 2)
    return np.stack(
        [
            ok.sum(axis=0),
            z.sum(axis=0),
            (z * z).sum(axis=0),
            (ok & (z < -3.0)).sum(axis=0),
            (ok & (z > 3.0)).sum(axis=0),
            (var <= 0).sum(axis=0),
            scores.sum(axis=0),
            (scores * scores).sum(axis=0),
            (ok & (scores < -3.0)).sum(axis=0),
            (ok & (scores > 3.0)).sum(axis=0),
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
    results = [checks_for_day(dates[t], history, overall, task.config) for t in check_days]
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
        Per check (:data:`CHECKS`), the opened incidents of each
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
        Daily sample size (expected, for Poisson) and number of replications.
    breached : dict of str to ndarray of bool
        Per check of :data:`CHECKS` and ``"any"`` (any of them), whether it breached for the
        policy on the day.
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
      ``z_T - k`` exceeds ``h``, with the normal score ``z_T`` read as its large-count limit
      ``(P_T - mu0) / sigma0``, i.e.
      ``Phi((D - (h + k) sqrt(V0)) / sqrt(V1 + V0 / B)) >= power``;
    * ``baseline_change``: the policy's surface cells against the ``k``-day baseline, each
      rejected when its one-sided p-value is below ``q / m`` (BH's first step over the ``m``
      cells: a lower bound of BH's power); any cell rejected, cells independent;
    * ``limit``: ``CI lower > limit`` approximated as ``(P1 - limit) / sqrt(V1) >= z_{(1+c)/2}
      + z_b`` (infinite ``n`` when ``P1 <= limit``);
    * ``baseline_rise_all``: ``D / sqrt(V1 + V0 / k) >= z_{1-alpha} + z_b`` (its rule's
      ``baseline_days`` ``k`` and ``alpha``).

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

    rise_rule = config.rule("baseline_rise_all")
    k_rise = int(rise_rule.get("baseline_days", 14))
    z_rise = float(stats.norm.isf(float(rise_rule.get("alpha", config.rise_alpha))))

    def rise_all(n: float) -> float:
        v0, v1 = var(n)
        sd = math.sqrt(v1[0] + v0[0] / k_rise)
        return _upper_tail(delta[0] - z_rise * sd, sd)

    power_of: dict[str, Callable[[float], float]] = {
        "limit": limit_power,
        "day_over_day_rise": day_over_day,
        "baseline_change": baseline_change,
        "cusum": cusum,
        "baseline_rise_all": rise_all,
    }
    out: dict[str, dict[str, float]] = {}
    for check in CHECKS:
        if check == "limit" and p1[0] <= limit:
            out[check] = {"n_draws": math.inf, "se_needed": 0.0}
            continue
        n = _smallest_n(power_of[check], power, n_max)
        se = math.sqrt(var(n)[1][0]) if math.isfinite(n) else 0.0
        out[check] = {"n_draws": n, "se_needed": se}
    return out
