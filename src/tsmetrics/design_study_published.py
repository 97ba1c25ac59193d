"""Coverage of what is *published*: daily cells, and small cells replaced by their pooled week.

What is simulated
-----------------
The default design of :mod:`tsmetrics.design_study` (Poisson PPS with the Platt-calibrated
``sqrt_calibrated`` size, ``n`` expected labels a day, one shared sample for policies at 2%,
0.5% and 0.05%, AUC 0.9 scores) over ``weeks`` independent weeks of 7 independent days. Each
day is estimated as ``estimate_day`` does it: Horvitz-Thompson with the known total impressions
(:func:`tsmetrics.sampling.horvitz_thompson_prevalence`) and a gamma interval with the mean
weight of the uncertain sampled units.

What is published on the last day of each week is decided by the production rule
(:func:`tsmetrics.pooling.classify_cell` with ``estimation.small_cells`` of the shipped
configuration: effective sample size >= 10, relative half-width <= 1) against the 7-day pool
of :func:`tsmetrics.pooling.pool_days` *with the same interval*:

* ``report``: the day's interval, compared with the day's realised prevalence;
* ``pool``: the week's pooled interval, compared with the week's realised prevalence
  ``sum_d Y_d / sum_d X_d`` -- the quantity the pooled cell is labelled with;
* ``suppress`` / ``flag``: the upper bound only, "covered" when the day's prevalence is at or
  below it (a one-sided statement; reported separately).

Weeks are independent (independent populations and selections), so coverage's simulation
standard error is binomial over weeks. Every week has its own generator
``default_rng([seed, 5, week, day])``: the numbers do not depend on ``--workers``.

Run ``python -m tsmetrics.design_study_published --weeks 2000 --seed 20261123 --workers 2``.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tsmetrics.design_study import (
    DEFAULT_RELATIVE_FLOOR,
    Calibrations,
    PopulationModel,
    add_simulation_arguments,
    calibrated_size,
    fit_calibrations,
    generate_day,
    map_chunks,
)
from tsmetrics.estimation import PrevalenceEstimate
from tsmetrics.gamma_interval import GAMMA_METHOD, GAMMA_MIDP_METHOD, mean_uncertain_weight
from tsmetrics.pooling import DayRecord, classify_cell, pool_days
from tsmetrics.sampling import horvitz_thompson_prevalence, poisson_pps_inclusion

_STREAM_PUBLISHED = 5
DAYS_PER_WEEK = 7
PUBLISHED_CI_METHODS: tuple[str, ...] = (GAMMA_METHOD, GAMMA_MIDP_METHOD)
#: ``estimation.small_cells`` of the shipped ``policies.yaml``.
MIN_EFFECTIVE_N = 10.0
MAX_RELATIVE_HALF_WIDTH = 1.0
#: ``pooling.CELL_STATUSES`` in the order the table shows them.
SHOWN_STATUSES: tuple[str, ...] = ("report", "pool", "suppress", "flag")


@dataclass(frozen=True)
class _WeekTask:
    model: PopulationModel
    calibrations: Calibrations
    seed: int
    n: int
    ci_methods: tuple[str, ...]


@dataclass(frozen=True)
class WeekOutcome:
    """One policy's published cell on the last day of one week, for one interval method."""

    ci_method: str
    policy_index: int
    status: str
    covered: bool
    lower: float | None  # None when only an upper bound is published
    upper: float
    target: float  # the realised prevalence the published numbers stand for
    pooled_covered: bool  # the week's pooled interval covers the week's prevalence
    pooled_relative_half_width: float


def simulate_week(task: _WeekTask, week: int) -> list[WeekOutcome]:
    """Seven days of the default design and what is published on the seventh."""
    n_policies = len(task.model.prevalences)
    estimates: dict[str, list[list[PrevalenceEstimate]]] = {
        m: [[] for _ in range(n_policies)] for m in task.ci_methods
    }
    totals, violating = [], []
    for day_no in range(DAYS_PER_WEEK):
        rng = np.random.default_rng([task.seed, _STREAM_PUBLISHED, week, day_no])
        day = generate_day(task.model, rng)
        size = calibrated_size(day, task.calibrations.predict_raw(day), DEFAULT_RELATIVE_FLOOR)
        pi = poisson_pps_inclusion(size, task.n)
        selected = rng.random(len(pi)) < pi
        x, pis, total = day.impressions[selected], pi[selected], day.total_impressions
        weight = mean_uncertain_weight(x, pis, total)
        totals.append(total)
        violating.append(day.truth() * total)
        for j in range(n_policies):
            y = np.where(day.violates[selected, j], x, 0.0)
            for method in task.ci_methods:
                estimates[method][j].append(
                    horvitz_thompson_prevalence(
                        y, pis, total, ci_method=method, event_weight=weight
                    )
                )
    week_truth = np.sum(violating, axis=0) / sum(totals)
    last_truth = violating[-1] / totals[-1]
    out = []
    for method in task.ci_methods:
        for j in range(n_policies):
            days = estimates[method][j]
            records = [
                DayRecord.from_estimate(e, t, day=None) for e, t in zip(days, totals, strict=True)
            ]
            pooled = pool_days(records, ci_method=method)
            status = classify_cell(
                days[-1], MIN_EFFECTIVE_N, MAX_RELATIVE_HALF_WIDTH, pooled=pooled
            )
            target = float(week_truth[j] if status.basis == "window" else last_truth[j])
            lower = status.ci_lower
            covered = target <= status.ci_upper and (lower is None or lower <= target)
            pooled_target = float(week_truth[j])
            out.append(
                WeekOutcome(
                    ci_method=method,
                    policy_index=j,
                    status=status.status,
                    covered=bool(covered),
                    lower=lower,
                    upper=status.ci_upper,
                    target=target,
                    pooled_covered=bool(pooled.ci_lower <= pooled_target <= pooled.ci_upper),
                    pooled_relative_half_width=(pooled.ci_upper - pooled.ci_lower)
                    / (2.0 * pooled_target),
                )
            )
    return out


def _weeks_chunk(task: _WeekTask, weeks: range) -> list[list[WeekOutcome]]:
    return [simulate_week(task, w) for w in weeks]


@dataclass(frozen=True)
class PublishedRow:
    """Coverage of the published cells of one policy and interval method."""

    ci_method: str
    prevalence: float
    weeks: int
    status_shares: dict[str, float]
    coverage_two_sided: float | None  # over report and pool cells
    coverage_two_sided_se: float | None
    bound_only_coverage: float | None  # suppress / flag: share with the truth <= the bound
    pooled_coverage: float  # every week's pooled interval, whatever was published
    pooled_coverage_se: float
    pooled_mean_relative_half_width: float


def _share_se(hits: np.ndarray) -> tuple[float | None, float | None]:
    if len(hits) == 0:
        return None, None
    p = float(hits.mean())
    return p, math.sqrt(p * (1.0 - p) / len(hits))


def summarise(
    outcomes: Sequence[Sequence[WeekOutcome]], prevalences: Sequence[float]
) -> list[PublishedRow]:
    """One row per (interval method, policy) from every week's outcomes."""
    flat = [o for week in outcomes for o in week]
    rows = []
    for method in dict.fromkeys(o.ci_method for o in flat):
        for j, prevalence in enumerate(prevalences):
            cells = [o for o in flat if o.ci_method == method and o.policy_index == j]
            statuses = np.array([o.status for o in cells])
            covered = np.array([o.covered for o in cells])
            two_sided = np.isin(statuses, ["report", "pool"]) & np.array(
                [o.lower is not None for o in cells]
            )
            cov, cov_se = _share_se(covered[two_sided])
            bound_cov, _ = _share_se(covered[~two_sided])
            pooled = np.array([o.pooled_covered for o in cells])
            pooled_cov, pooled_se = _share_se(pooled)
            rows.append(
                PublishedRow(
                    ci_method=method,
                    prevalence=prevalence,
                    weeks=len(cells),
                    status_shares={s: float(np.mean(statuses == s)) for s in SHOWN_STATUSES},
                    coverage_two_sided=cov,
                    coverage_two_sided_se=cov_se,
                    bound_only_coverage=bound_cov,
                    pooled_coverage=float(pooled_cov or 0.0),
                    pooled_coverage_se=float(pooled_se or 0.0),
                    pooled_mean_relative_half_width=float(
                        np.mean([o.pooled_relative_half_width for o in cells])
                    ),
                )
            )
    return rows


def run_published(
    model: PopulationModel,
    calibrations: Calibrations,
    *,
    weeks: int,
    seed: int,
    n: int = 2000,
    ci_methods: Sequence[str] = PUBLISHED_CI_METHODS,
    workers: int = 1,
) -> list[PublishedRow]:
    """Simulate ``weeks`` independent weeks and summarise what is published."""
    task = _WeekTask(model, calibrations, seed, n, tuple(ci_methods))
    outcomes = map_chunks(_weeks_chunk, task, weeks, workers)
    return summarise(outcomes, model.prevalences)


def _fmt(value: float | None, se: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if se is None else f"{value:.3f} ({se:.3f})"


def render_markdown(rows: Sequence[PublishedRow], command: str) -> str:
    """The study's table, as pasted into ``docs/design_study.md``."""
    lines = [
        f"Reproduce with `{command}`.",
        "",
        "| CI | prevalence | weeks | report / pool / suppress / flag | published coverage (SE) "
        "| bound-only: truth <= U | 7-day pooled coverage (SE) | pooled mean rel. half-width |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shares = " / ".join(f"{r.status_shares[s]:.3f}" for s in SHOWN_STATUSES)
        lines.append(
            f"| {r.ci_method} | {r.prevalence:.2%} | {r.weeks} | {shares} | "
            f"{_fmt(r.coverage_two_sided, r.coverage_two_sided_se)} | "
            f"{_fmt(r.bound_only_coverage)} | {_fmt(r.pooled_coverage, r.pooled_coverage_se)} | "
            f"{r.pooled_mean_relative_half_width:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tsmetrics.design_study_published", description=__doc__
    )
    parser.add_argument("--weeks", type=int, default=2000)
    add_simulation_arguments(parser)
    args = parser.parse_args(argv)
    started = time.monotonic()
    model = PopulationModel(n_units=args.units)
    calibrations = fit_calibrations(model, args.seed, args.training_days, args.n)
    rows = run_published(
        model, calibrations, weeks=args.weeks, seed=args.seed, n=args.n, workers=args.workers
    )
    argv_text = shlex.join(sys.argv[1:] if argv is None else list(argv))
    print(render_markdown(rows, f"python -m tsmetrics.design_study_published {argv_text}"))
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
