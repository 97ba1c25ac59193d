"""Tests of tsmetrics.prevalence_checks: the daily prevalence checks on a history of stored
estimates (baseline change across cells, baseline rise of each policy, CUSUM on normal scores).

Simulation tests use fixed seeds and tolerances in Monte Carlo standard errors.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from tolerances import within

from tsmetrics.alerts import incident_transitions
from tsmetrics.checks import CheckResult
from tsmetrics.config import load_config
from tsmetrics.control_charts import cusum
from tsmetrics.prevalence_checks import (
    DOMAIN_ALL,
    History,
    baseline_change_checks,
    baseline_rise_checks,
    cusum_checks,
    history_days,
    prevalence_checks,
)

DAY = date(2026, 3, 31)
RULE = {"baseline_days": 14, "min_baseline_days": 3, "q": 0.001, "alternative": "greater"}
CUSUM = {"k": 0.5, "h": 5.0, "baseline_days": 28, "min_baseline_days": 7, "window_days": 14}
RISE = {"baseline_days": 14, "min_baseline_days": 3, "alpha": 0.001}


def history(  # type: ignore[no-untyped-def]
    days: int, level: float, se: float, seed: int, jump_last: int = 0, jump: float = 0.0
):
    """(policy, domain) -> {day: (estimate, SE)} with normal noise of the given SE."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in [("adult", "all"), ("adult", "surface=search"), ("adult", "surface=home_feed")]:
        series = {}
        for i in range(days):
            d = DAY - timedelta(days=days - 1 - i)
            shift = jump if i >= days - jump_last else 0.0
            series[d] = (level + shift + rng.normal(0, se), se)
        out[key] = series
    return out


# --------------------------------------------------------------------------------------------
# baseline_change
# --------------------------------------------------------------------------------------------


def test_stable_series_pass_and_a_jump_in_one_cell_breaches() -> None:
    stable = history(15, 0.01, 0.001, seed=1)
    results = baseline_change_checks(DAY, stable, RULE)
    assert [r.policy for r in results] == ["adult|surface=home_feed", "adult|surface=search"]
    assert all(r.outcome == "pass" for r in results)
    jumped = history(15, 0.01, 0.001, seed=1)
    jumped[("adult", "surface=search")][DAY] = (0.02, 0.001)  # +10 standard errors
    outcome = {r.policy: r.outcome for r in baseline_change_checks(DAY, jumped, RULE)}
    assert outcome == {"adult|surface=search": "breach", "adult|surface=home_feed": "pass"}


def test_too_short_a_baseline_is_skipped() -> None:
    short = history(3, 0.01, 0.001, seed=2)
    assert {r.outcome for r in baseline_change_checks(DAY, short, RULE)} == {"skipped"}


# --------------------------------------------------------------------------------------------
# baseline_rise_all
# --------------------------------------------------------------------------------------------


def test_baseline_rise_is_the_baseline_z_test_at_alpha_by_hand() -> None:
    """``z = (x0 - mean) / sqrt(s0^2 + sum s_i^2 / k^2)`` over the 14 previous days, breach iff
    ``1 - Phi(z) < alpha``; one row per policy with today's ``all`` estimate; days outside the
    14-day baseline and other domains are ignored."""
    rng = np.random.default_rng(3)
    hist: History = {}
    expected_z = {}
    policies = ["adult", "harassment", "self_harm"]
    for i, policy in enumerate(policies):
        base = {DAY - timedelta(days=k): (0.01 + 0.001 * rng.random(), 0.002) for k in range(1, 21)}
        today = [(0.0106, 0.002), (0.02, 0.002), (0.016, 0.002)][i]  # z ~ 0, 4.7, 2.7
        hist[(policy, DOMAIN_ALL)] = {**base, DAY: today}
        hist[(policy, "surface=search")] = {DAY: (1.0, 0.001)}  # not the all domain
        window = [base[DAY - timedelta(days=k)] for k in range(1, 15)]
        mean = np.mean([w[0] for w in window])
        var = today[1] ** 2 + sum(w[1] ** 2 for w in window) / 14**2
        expected_z[policy] = (today[0] - mean) / math.sqrt(var)
    results = baseline_rise_checks(DAY, hist, [*policies, "misinformation"], RISE, 0.5)
    assert [r.policy for r in results] == policies  # no row without an estimate today
    for r in results:
        assert r.check_name == "baseline_rise_all"
        assert r.statistic == pytest.approx(expected_z[r.policy], rel=1e-12)
        assert r.p_value == pytest.approx(stats.norm.sf(expected_z[r.policy]), rel=1e-9)
        assert r.threshold == pytest.approx(stats.norm.isf(0.001))
        assert r.details["n_baseline"] == 14 and r.details["direction"] == "rise"
    assert [r.outcome for r in results] == ["pass", "breach", "pass"]
    assert results[2].p_value is not None and 0.001 < results[2].p_value < 0.01
    # the rule's alpha decides; without one, the argument (checks.rise_alpha)
    loose = baseline_rise_checks(DAY, hist, policies, {"baseline_days": 14}, 0.01)
    assert [r.outcome for r in loose] == ["pass", "breach", "breach"]


def test_baseline_rise_is_one_sided_and_skips_short_baselines() -> None:
    falling = history(15, 0.01, 0.001, seed=4)
    falling[("adult", DOMAIN_ALL)][DAY] = (0.0, 0.001)  # a -10 SE fall: not a rise
    (fall,) = baseline_rise_checks(DAY, falling, ["adult"], RISE, 0.001)
    assert fall.outcome == "pass" and fall.statistic < -5
    (short,) = baseline_rise_checks(DAY, history(3, 0.01, 0.001, seed=5), ["adult"], RISE, 0.001)
    assert short.outcome == "skipped" and "baseline days" in short.details["reason"]
    zero = {("adult", DOMAIN_ALL): {DAY - timedelta(days=i): (0.0, 0.0) for i in range(10)}}
    (flat,) = baseline_rise_checks(DAY, zero, ["adult"], RISE, 0.001)
    assert flat.outcome == "skipped" and "zero variance" in flat.details["reason"]
    with pytest.raises(ValueError, match="alpha"):
        baseline_rise_checks(DAY, zero, ["adult"], {"alpha": 1.5}, 0.001)


def test_baseline_rise_false_alarm_rate_is_alpha_on_normal_data() -> None:
    """With i.i.d. normal daily estimates and known SEs, z is exactly N(0, 1): the share of
    breaches at alpha = 0.05 over 4,000 independent days is 0.05 within 4 binomial SEs."""
    rng = np.random.default_rng(6)
    breaches, n = 0, 4000
    for _ in range(n):
        x = 0.01 + 0.001 * rng.standard_normal(15)
        series = {DAY - timedelta(days=14 - t): (float(x[t]), 0.001) for t in range(15)}
        (r,) = baseline_rise_checks(DAY, {("p", DOMAIN_ALL): series}, ["p"], {}, 0.05)
        breaches += r.outcome == "breach"
    within(breaches / n, 0.05, math.sqrt(0.05 * 0.95 / n))


# --------------------------------------------------------------------------------------------
# cusum
# --------------------------------------------------------------------------------------------


def test_cusum_passes_in_control_and_signals_a_sustained_shift() -> None:
    stable = history(42, 0.01, 0.001, seed=3)
    assert [r.outcome for r in cusum_checks(DAY, stable, ["adult"], CUSUM)] == ["pass"]
    shifted = history(42, 0.01, 0.001, seed=3, jump_last=7, jump=0.002)  # 2 SE for a week
    (result,) = cusum_checks(DAY, shifted, ["adult"], CUSUM)
    assert result.outcome == "breach" and result.statistic > 5.0
    assert result.details["upper"] == result.statistic and result.details["lower"] == 0.0


def test_cusum_without_history_is_skipped() -> None:
    (result,) = cusum_checks(DAY, history(5, 0.01, 0.001, seed=4), ["adult"], CUSUM)
    assert result.outcome == "skipped" and "baseline days" in result.details["reason"]
    empty = {("adult", DOMAIN_ALL): {DAY - timedelta(days=i): (0.0, 0.0) for i in range(42)}}
    (none,) = cusum_checks(DAY, empty, ["adult"], CUSUM)
    assert none.outcome == "skipped" and "no violating unit" in none.details["reason"]


def test_cusum_charts_linear_z_when_days_hold_many_events() -> None:
    """With ``mu0^2 / sigma0^2`` in the millions the normal scores are the linear
    ``(x - mu0) / sigma0``: the chart equals ``control_charts.cusum`` on those, to 1e-3."""
    hist = history(42, 0.5, 0.0001, seed=7, jump_last=5, jump=0.0002)
    (result,) = cusum_checks(DAY, hist, ["adult"], CUSUM)
    series = hist[("adult", DOMAIN_ALL)]
    days = sorted(series)
    baseline, window = days[:28], days[28:]
    mu0 = float(np.mean([series[d][0] for d in baseline]))
    z = [(series[d][0] - mu0) / 0.0001 for d in window]
    chart = cusum(z, k=0.5, h=5.0)
    assert result.details["upper"] == pytest.approx(float(chart.upper[-1]), abs=1e-3)
    assert result.details["lower"] == pytest.approx(float(chart.lower[-1]), abs=1e-3)
    assert result.details["effective_events"] == pytest.approx((mu0 / 0.0001) ** 2, rel=0.01)


def _rare_series(rng: np.random.Generator, n_days: int, lam: float, weight_sd: float) -> History:
    """Daily HT-like estimates of a rare policy: ``K ~ Poisson(lam)`` violating units a day,
    each of lognormal weight (mean 1e-4, log-sd ``weight_sd``); SE^2 = sum of squared weights."""
    out = {}
    for t in range(n_days):
        k = rng.poisson(lam)
        w = 1e-4 * rng.lognormal(-(weight_sd**2) / 2, weight_sd, k)
        out[DAY - timedelta(days=n_days - 1 - t)] = (
            float(w.sum()),
            float(math.sqrt((w * w).sum())),
        )
    return {("p", DOMAIN_ALL): out}


def _opened(results: list[list[CheckResult]]) -> int:
    """Incidents opened over consecutive days, as production's send_alerts counts them."""
    last: dict[tuple[str, str], tuple[str, float | None, float | None]] = {}
    opened = 0
    for day in results:
        opened += sum(e.kind == "opened" for e in incident_transitions(day, last))
        last.update(
            {
                (r.check_name, r.policy): (r.outcome, r.statistic, r.threshold)
                for r in day
                if r.outcome != "skipped"
            }
        )
    return opened


def test_normal_scores_keep_the_cusum_false_alarm_rate_on_rare_skewed_days() -> None:
    """A rare policy (0.7 violating units a day, weights varying 30%): on normal scores the
    production scheme (h = 5) opens false incidents at its rate on normal data (0.21 per 30
    days, ``docs/checks_proof.md``) within 4 simulation SEs (from the per-window counts); on the
    linear standardization, about twice as many (significantly more, paired). 600 windows of
    30 days after a 42-day burn-in."""
    rng = np.random.default_rng(8)
    reps, days = 600, 30
    scores_counts, linear_counts = np.zeros(reps), np.zeros(reps)
    for rep in range(reps):
        hist = _rare_series(rng, 42 + days, 0.7, 0.3)
        series = hist[("p", DOMAIN_ALL)]
        dates = sorted(series)
        scores = [cusum_checks(d, hist, ["p"], CUSUM) for d in dates[41:]]
        scores_counts[rep] = _opened(scores)
        linear = []
        for (r,), d in zip(scores, dates[41:], strict=True):
            if r.outcome != "skipped":
                window = [d - timedelta(days=i) for i in range(13, -1, -1)]
                z = [(series[w][0] - r.details["mu0"]) / r.details["sigma0"] for w in window]
                signal = bool(cusum(z, k=0.5, h=5.0).signals[-1])
                r = dataclasses.replace(r, outcome="breach" if signal else "pass")
            linear.append([r])
        linear_counts[rep] = _opened(linear)
    normal_rate = 0.21  # the production scheme at h = 5 on normal data (docs/checks_proof.md)
    se = float(scores_counts.std(ddof=1)) / math.sqrt(reps)
    within(float(scores_counts.mean()), normal_rate, se, n_se=4.0)
    # the linear standardization opens clearly more (paired over the same windows)
    diff = linear_counts - scores_counts
    assert diff.mean() > 4 * diff.std(ddof=1) / math.sqrt(reps), (linear_counts.mean(), se)


def test_configured_cusum_meets_its_stated_in_control_arl_on_normal_data() -> None:
    """The configured rule (h = 6.6, 28 baseline days, 14-day window) on i.i.d. normal daily
    estimates: 60 independent series of 700 checked days; the mean false incidents per series is
    700 / 465 (the rule's ``in_control_arl``) within 4 simulation SEs from the per-series counts
    (incidents cluster, so a Poisson SE would be too small). At h = 5 it would be about 3 times
    as many."""
    rule = load_config().rule("cusum")
    arl = float(rule["in_control_arl"])
    burn_in = int(rule["baseline_days"]) + int(rule["window_days"])
    n_series, n_days = 60, 700
    counts = np.zeros(n_series)
    for i in range(n_series):
        x = 0.01 + 0.0001 * np.random.default_rng([9, i]).standard_normal(burn_in + n_days)
        start = DAY - timedelta(days=len(x))
        series = {start + timedelta(days=t): (float(v), 0.0001) for t, v in enumerate(x)}
        hist: History = {("p", DOMAIN_ALL): series}
        counts[i] = _opened(
            [
                cusum_checks(start + timedelta(days=t), hist, ["p"], rule)
                for t in range(burn_in - 1, burn_in + n_days)
            ]
        )
    se = float(counts.std(ddof=1)) / math.sqrt(n_series)
    within(float(counts.mean()), n_days / arl, se, n_se=4.0)


@settings(max_examples=40, deadline=None)
@given(
    level=st.floats(1e-4, 0.2),
    relative_se=st.floats(0.01, 2.0),
    seed=st.integers(0, 2**16),
)
def test_cusum_statistic_is_the_larger_arm_and_decides_the_outcome(
    level: float, relative_se: float, seed: int
) -> None:
    hist = history(42, level, level * relative_se, seed=seed)
    hist = {k: {d: (max(v[0], 0.0), v[1]) for d, v in s.items()} for k, s in hist.items()}
    (r,) = cusum_checks(DAY, hist, ["adult"], CUSUM)
    assert r.outcome in ("pass", "breach")
    assert r.statistic == max(r.details["upper"], r.details["lower"]) >= 0.0
    assert (r.outcome == "breach") == (r.statistic > CUSUM["h"])
    assert math.isfinite(r.details["z_today"])


# --------------------------------------------------------------------------------------------
# prevalence_checks
# --------------------------------------------------------------------------------------------


def test_prevalence_checks_run_every_check_with_its_configured_rule() -> None:
    config = load_config()
    hist = {}
    for policy in config.policy_names:
        for key, series in history(43, 0.01, 0.001, seed=10).items():
            hist[(policy, key[1])] = series
    today = {p: (*hist[(p, DOMAIN_ALL)][DAY], 0.0, 0.02) for p in config.policy_names}
    yesterday = {
        p: (*hist[(p, DOMAIN_ALL)][DAY - timedelta(days=1)], 0.0, 0.02) for p in config.policy_names
    }
    results = prevalence_checks(DAY, today, yesterday, hist, config)
    names = [r.check_name for r in results]
    n = len(config.policy_names)
    assert names.count("limit") == names.count("day_over_day_rise") == n
    assert names.count("baseline_rise_all") == names.count("cusum") == n
    assert names.count("baseline_change") == 2 * n  # two surface cells per policy here
    assert all(r.outcome == "pass" for r in results)
    rise = [r for r in results if r.check_name == "baseline_rise_all"]
    assert all(r.details["alpha"] == config.rule("baseline_rise_all")["alpha"] for r in rise)
    cusum_rows = [r for r in results if r.check_name == "cusum"]
    assert all(r.threshold == config.rule("cusum")["h"] for r in cusum_rows)
    assert history_days(config) == 28 + 14
