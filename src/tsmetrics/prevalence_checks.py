"""The daily prevalence checks, as pure functions of the stored estimates.

Each function takes the day, a history of stored estimates (as ``measure.checks_day`` reads
them from ``tsm.estimates``) and its rule from the versioned YAML, and returns
:class:`~tsmetrics.checks.CheckResult` rows. :func:`prevalence_checks` runs them all; it is
shared by :func:`tsmetrics.measure.checks_day` (production) and :mod:`tsmetrics.check_simulation`
(the proof of their false-alert and detection rates, ``docs/checks_proof.md``).

* ``limit`` and ``day_over_day_rise`` (:mod:`tsmetrics.checks`), per policy;
* ``baseline_change`` (:func:`baseline_change_checks`): every policy x surface cell against
  its trailing baseline, Benjamini-Hochberg across the cells;
* ``baseline_rise_all`` (:func:`baseline_rise_checks`): each policy's ``all`` domain against
  its trailing baseline mean, one-sided -- the same-day test of a rise;
* ``cusum`` (:func:`cusum_checks`): a two-sided tabular CUSUM on normal scores of the daily
  estimates -- sustained shifts, with a stated in-control ARL.

Everything is recomputed from the stored estimates each run (stateless), so re-runs and
backfills of a day give the same rows.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta
from typing import Any

import numpy as np
from scipy import stats

from tsmetrics.checks import CheckResult, day_over_day_check, limit_check
from tsmetrics.config import RunConfig
from tsmetrics.control_charts import cusum, poisson_normal_scores
from tsmetrics.drift import baseline_change_test, prevalence_drift_checks

__all__ = [
    "DOMAIN_ALL",
    "History",
    "Today",
    "baseline_change_checks",
    "baseline_rise_checks",
    "cusum_checks",
    "history_days",
    "prevalence_checks",
]

DOMAIN_ALL = "all"
"""The whole-population domain of ``tsm.estimates.domain`` (others are ``surface=S``)."""

History = dict[tuple[str, str], dict[date, tuple[float, float]]]
"""(policy, domain) -> {day: (estimate, standard error)}, as read from ``tsm.estimates``."""
Today = dict[str, tuple[float, float, float, float]]
"""policy -> (estimate, standard error, CI lower, CI upper) of the ``all`` domain on one day."""


def baseline_change_checks(day: date, history: History, rule: dict[str, Any]) -> list[CheckResult]:
    """Today against the trailing baseline for every policy x surface cell, BH across cells
    (:func:`tsmetrics.drift.prevalence_drift_checks`); rule keys ``baseline_days`` (14),
    ``min_baseline_days`` (3), ``q`` (0.001), ``alternative`` ("greater")."""
    baseline_days = int(rule.get("baseline_days", 14))
    cells = sorted(key for key, series in history.items() if key[1] != DOMAIN_ALL and day in series)
    if not cells:
        return []
    previous = [day - timedelta(days=i) for i in range(baseline_days, 0, -1)]
    nan = (float("nan"), float("nan"))
    today = np.array([history[c][day] for c in cells])
    baseline = np.array([[history[c].get(d, nan) for d in previous] for c in cells])
    results = prevalence_drift_checks(
        cells,
        today[:, 0],
        today[:, 1],
        baseline[:, :, 0],
        baseline[:, :, 1],
        q=float(rule.get("q", 0.001)),
        alternative=rule.get("alternative", "greater"),
        min_baseline_days=int(rule.get("min_baseline_days", 3)),
    )
    return [
        dataclasses.replace(r, policy=f"{cell[0]}|{cell[1]}")
        for r, cell in zip(results, cells, strict=True)
    ]


def baseline_rise_checks(
    day: date, history: History, policies: list[str], rule: dict[str, Any], alpha: float
) -> list[CheckResult]:
    """Per policy, a one-sided z-test of a rise of today's ``all``-domain estimate above the
    mean of its trailing baseline (``check_name = "baseline_rise_all"``).

    With today's estimate ``P_t`` (SE ``s_t``) and the ``k <= baseline_days`` baseline days
    before it (estimates ``P_i``, SEs ``s_i``, independent daily samples)::

        m = (1/k) sum_i P_i,   z = (P_t - m) / sqrt(s_t^2 + sum_i s_i^2 / k^2),
        p = 1 - Phi(z),        breach when p < alpha

    (:func:`tsmetrics.drift.baseline_change_test` with ``tau^2 = 0``: both periods' sampling
    error, no between-day variation). Against yesterday alone (``day_over_day_rise``) the
    reference has one day's variance; against the ``k``-day mean, ``k`` times less, so this is
    the most powerful one-day test of a rise the design allows. One test per policy at level
    ``alpha``, no correction across policies: with ``P`` policies the nominal false-alarm rate is
    ``P alpha`` per day. It is conservative on the HT estimates of rare policies (a day that
    catches a heavy violating unit also gets a large SE), as the checks simulation measures.
    Skipped with fewer than ``min_baseline_days`` valid baseline days, without an estimate
    today, or when every SE is 0. Rule keys ``baseline_days`` (14), ``min_baseline_days`` (3)
    and ``alpha`` (default: the ``alpha`` argument, ``checks.rise_alpha``).
    """
    level = float(rule.get("alpha", alpha))
    if not 0.0 < level < 1.0:
        raise ValueError(f"baseline_rise_all alpha: expected a number in (0, 1), got {level!r}")
    baseline_days = int(rule.get("baseline_days", 14))
    min_days = int(rule.get("min_baseline_days", 3))
    threshold = float(stats.norm.isf(level))
    previous = [day - timedelta(days=i) for i in range(baseline_days, 0, -1)]
    nan = (math.nan, math.nan)
    results = []
    for policy in policies:
        series = history.get((policy, DOMAIN_ALL), {})
        if day not in series:
            continue
        estimate, std_error = series[day]
        baseline = np.array([series.get(d, nan) for d in previous], dtype=np.float64)
        test = baseline_change_test(
            estimate,
            std_error,
            baseline[:, 0],
            baseline[:, 1],
            min_baseline_days=min_days,
        )
        z = float(test.statistic)
        details: dict[str, Any] = {
            "estimate": estimate,
            "std_error": std_error,
            "baseline_mean": float(test.baseline_mean),
            "baseline_std_error": float(test.baseline_std_error),
            "n_baseline": int(test.n_baseline),
            "alpha": level,
            "direction": "rise",
        }
        if math.isnan(z):
            reason = (
                f"{int(test.n_baseline)} baseline days (< {min_days})"
                if int(test.n_baseline) < min_days
                else "zero variance (all standard errors 0)"
            )
            results.append(
                CheckResult(
                    "baseline_rise_all",
                    policy,
                    math.nan,
                    threshold,
                    None,
                    "skipped",
                    {**details, "reason": reason},
                )
            )
            continue
        p_value = float(test.p_value_greater)
        mean = float(test.baseline_mean)
        results.append(
            CheckResult(
                "baseline_rise_all",
                policy,
                z,
                threshold,
                p_value,
                "breach" if p_value < level else "pass",
                {
                    **details,
                    "difference": estimate - mean,
                    "relative_change": (estimate - mean) / mean if mean != 0 else math.nan,
                },
            )
        )
    return results


def cusum_checks(
    day: date, history: History, policies: list[str], rule: dict[str, Any]
) -> list[CheckResult]:
    """Two-sided tabular CUSUM per policy on normal scores of the daily ``all``-domain estimates.

    Over the last ``window_days`` days (today included), with ``mu0`` the mean of the
    ``baseline_days`` estimates before the window and ``sigma0^2`` the mean of their squared
    standard errors (a common in-control variance: a day's own estimated SE grows with its
    estimate, so dividing by it makes low days look like large falls), each day's estimate
    becomes the normal score ``z_t`` of :func:`tsmetrics.control_charts.poisson_normal_scores`
    (its mid-p probability under the scaled-Poisson model with that mean and variance; the
    linear ``(P_t - mu0) / sigma0`` when the days hold many violating units, without the
    right-skew of rare policies' HT estimates otherwise), and::

        C+_t = max(0, C+_{t-1} + z_t - k),   C-_t = max(0, C-_{t-1} - z_t - k),   C_0 = 0

    at the window's start; breach when today's ``C+`` or ``C-`` exceeds ``h``.

    In-control ARL: with known parameters, ``k = 0.5, h = 5`` has ARL 465 days (Montgomery
    Table 9.3). Estimating ``mu0`` from 28 days moves the chart by a random ``N(0, 1/28)``
    shift and the sliding window re-standardizes daily, which cuts the mean time between false
    incidents of this scheme to about 144 days at ``h = 5``; the configured ``h = 6.6`` restores
    about 465 (normal data, measured by ``tsmetrics.check_simulation``; the rule's
    ``in_control_arl`` states it). Recomputed from the stored estimates each run (stateless, so
    re-runs and backfills agree). Skipped with fewer than ``min_baseline_days`` baseline days,
    without an estimate today, or when the baseline has no violating unit (``sigma0 = 0``).
    Rule keys ``k`` (0.5), ``h`` (5.0), ``baseline_days`` (28), ``min_baseline_days`` (7),
    ``window_days`` (14).
    """
    window, baseline_days = int(rule.get("window_days", 14)), int(rule.get("baseline_days", 28))
    k, h = float(rule.get("k", 0.5)), float(rule.get("h", 5.0))
    min_baseline = int(rule.get("min_baseline_days", 7))
    results = []
    for policy in policies:
        series = history.get((policy, DOMAIN_ALL), {})
        window_days = [day - timedelta(days=i) for i in range(window - 1, -1, -1)]
        before = [
            series[d]
            for d in (window_days[0] - timedelta(days=i) for i in range(1, baseline_days + 1))
            if d in series
        ]
        sigma0 = float(np.sqrt(np.mean([b[1] ** 2 for b in before]))) if before else 0.0
        mu0 = float(np.mean([b[0] for b in before])) if before else 0.0
        reason = None
        if len(before) < min_baseline:
            reason = f"{len(before)} baseline days (< {min_baseline})"
        elif day not in series:
            reason = "no estimate today"
        elif sigma0 <= 0 or mu0 <= 0:
            reason = "no violating unit in the baseline (sigma0 = 0)"
        if reason is not None:
            results.append(
                CheckResult("cusum", policy, float("nan"), h, None, "skipped", {"reason": reason})
            )
            continue
        observed = [d for d in window_days if d in series]
        z = poisson_normal_scores([series[d][0] for d in observed], mu0, sigma0 * sigma0)
        chart = cusum(z, k=k, h=h)
        statistic = float(max(chart.upper[-1], chart.lower[-1]))
        results.append(
            CheckResult(
                "cusum",
                policy,
                statistic,
                h,
                None,
                "breach" if bool(chart.signals[-1]) else "pass",
                {
                    "mu0": mu0,
                    "sigma0": sigma0,
                    "effective_events": mu0 * mu0 / (sigma0 * sigma0),
                    "k": k,
                    "days": len(observed),
                    "z_today": float(z[-1]),
                    "upper": float(chart.upper[-1]),
                    "lower": float(chart.lower[-1]),
                },
            )
        )
    return results


def prevalence_checks(
    day: date, today: Today, yesterday: Today, history: History, config: RunConfig
) -> list[CheckResult]:
    """The prevalence checks of ``day`` from per-policy ``(estimate, SE, CI lower, CI upper)``
    of today and yesterday and the estimate history (which must include today): per policy the
    limit and day-over-day checks, then ``baseline_change``, ``baseline_rise_all`` and
    ``cusum`` with their configured rules."""
    results: list[CheckResult] = []
    for policy in config.policies:
        if policy.name not in today:
            continue
        estimate, std_error, ci_lower, ci_upper = today[policy.name]
        results.append(limit_check(policy.name, estimate, ci_lower, ci_upper, policy.limit))
        previous = yesterday.get(policy.name)
        results.append(
            day_over_day_check(
                policy.name,
                estimate,
                std_error,
                None if previous is None else previous[0],
                None if previous is None else previous[1],
                alpha=config.rise_alpha,
            )
        )
    results += baseline_change_checks(day, history, config.rule("baseline_change"))
    results += baseline_rise_checks(
        day, history, config.policy_names, config.rule("baseline_rise_all"), config.rise_alpha
    )
    results += cusum_checks(day, history, config.policy_names, config.rule("cusum"))
    return results


def history_days(config: RunConfig) -> int:
    """Days of estimates before the day that :func:`prevalence_checks` reads."""
    return max(
        int(config.rule("baseline_change").get("baseline_days", 14)),
        int(config.rule("baseline_rise_all").get("baseline_days", 14)),
        int(config.rule("cusum").get("baseline_days", 28))
        + int(config.rule("cusum").get("window_days", 14)),
    )
