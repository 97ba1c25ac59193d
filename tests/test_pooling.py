"""Tests of tsmetrics.pooling: pooled prevalence over independent days, and small-cell rules."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tsmetrics.estimation import (
    CI_METHODS,
    PrevalenceEstimate,
    hansen_hurwitz_prevalence,
)
from tsmetrics.gamma_interval import EVENT_WEIGHT_CI_METHODS, mean_uncertain_weight
from tsmetrics.pooling import (
    CELL_STATUSES,
    CellStatus,
    DayRecord,
    PooledEstimate,
    classify_cell,
    pool_cells,
    pool_days,
    pooled_event_weight,
    relative_half_width,
)
from tsmetrics.sampling import (
    horvitz_thompson_prevalence,
    poisson_pps_inclusion,
    pps_with_replacement,
    size_measure,
)

FloatArray = npt.NDArray[np.float64]
Z975 = float(stats.norm.isf(0.025))
DAY0 = date(2024, 3, 1)


def _day_population(
    rng: np.random.Generator, n_units: int, rate: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Impressions, violating impressions and single-draw PPS probabilities of one day."""
    x = np.floor(rng.lognormal(2.0, 1.5, n_units)) + 1.0
    violates = rng.random(n_units) < rate
    risk = np.where(violates, rng.beta(4, 2, n_units), rng.beta(1, 30, n_units))
    size = size_measure(x, risk, 0.05)
    return x, np.where(violates, x, 0.0), size / size.sum()


# --------------------------------------------------------------------------------------------
# Pooling: one day, hand example, stratified-by-day algebra
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ci_method", sorted(CI_METHODS))
def test_one_day_window_equals_the_direct_estimate(ci_method: str) -> None:
    rng = np.random.default_rng(11)
    x, y, p = _day_population(rng, 3000, 0.02)
    draws = pps_with_replacement(p, 200, rng)
    total = float(x.sum())
    direct = hansen_hurwitz_prevalence(y[draws], p[draws], total, ci_method=ci_method)
    assert direct.n_positive_draws > 0
    pooled = pool_days([DayRecord.from_estimate(direct, total, day=DAY0)], ci_method=ci_method)
    assert pooled.prevalence.estimate == pytest.approx(direct.estimate, rel=1e-12)
    assert pooled.prevalence.std_error == pytest.approx(direct.std_error, rel=1e-12)
    assert pooled.prevalence.ci_lower == pytest.approx(direct.ci_lower, rel=1e-9, abs=1e-15)
    assert pooled.prevalence.ci_upper == pytest.approx(direct.ci_upper, rel=1e-9)
    assert pooled.prevalence.effective_sample_size == pytest.approx(
        direct.effective_sample_size, rel=1e-9
    )
    assert pooled.prevalence.design_effect == pytest.approx(direct.design_effect, rel=1e-9)
    assert pooled.prevalence.n_draws == direct.n_draws
    assert pooled.prevalence.n_positive_draws == direct.n_positive_draws
    assert (pooled.n_days, pooled.first_day, pooled.last_day) == (1, DAY0, DAY0)
    assert pooled.total_impressions == total


def test_one_zero_violation_day_equals_the_direct_estimate() -> None:
    direct = hansen_hurwitz_prevalence(np.zeros(400), np.full(400, 1e-3), 5e5)
    pooled = pool_days([DayRecord.from_estimate(direct, 5e5)])
    assert pooled.prevalence.estimate == 0.0
    assert pooled.prevalence.ci_upper == pytest.approx(direct.ci_upper, rel=1e-12)
    assert pooled.prevalence.ci_upper == pytest.approx(Z975**2 / (400 + Z975**2), rel=1e-12)
    assert pooled.prevalence.design_effect is None


def test_hand_computed_two_day_pool() -> None:
    # Day 1: P = 0.01, SE = 0.004, X = 1000, n = 100, k = 3
    # Day 2: P = 0.03, SE = 0.006, X = 3000, n = 150, k = 9
    # P_pool = (10 + 90) / 4000 = 0.025
    # v = (1000^2 0.004^2 + 3000^2 0.006^2) / 4000^2 = (16 + 324) / 16e6 = 2.125e-5
    # n_eff = 0.025 * 0.975 / 2.125e-5 = 1147.0588..., deff = 250 / n_eff = 0.21794...
    recs = [
        DayRecord(0.01, 0.004, 1000.0, 100, 3, day=DAY0),
        DayRecord(0.03, 0.006, 3000.0, 150, 9, day=DAY0 + timedelta(days=1)),
    ]
    res = pool_days(recs, ci_method="wald")
    assert res.estimate == pytest.approx(0.025, rel=1e-12)
    assert res.std_error == pytest.approx(math.sqrt(2.125e-5), rel=1e-12)
    assert res.n_draws == 250
    assert res.n_positive_draws == 12
    assert res.effective_sample_size == pytest.approx(0.025 * 0.975 / 2.125e-5, rel=1e-12)
    assert res.prevalence.design_effect == pytest.approx(250 * 2.125e-5 / (0.025 * 0.975))
    half = Z975 * math.sqrt(2.125e-5)
    assert (res.ci_lower, res.ci_upper) == pytest.approx((0.025 - half, 0.025 + half))
    assert res.total_impressions == 4000.0
    assert (res.first_day, res.last_day) == (DAY0, DAY0 + timedelta(days=1))
    # Not the plain mean of the daily prevalences (0.02): impression-weighted.
    assert res.estimate != pytest.approx(0.02)


def _stratified_by_day(
    days: list[tuple[FloatArray, FloatArray, float]],
) -> tuple[float, float]:
    """Direct stratified HH computation on the concatenated draws, strata = days.

    With z_hk = y_hk / p_hk for draw k of day h:
        Y_st = sum_h mean_h(z),   v(Y_st) = sum_h s_h^2 / n_h   (s_h^2 with ddof 1),
        P = Y_st / sum_h X_h,     v(P) = v(Y_st) / (sum_h X_h)^2     (Cochran 1977, 5.3, 9A).
    """
    z = np.concatenate([y / p for y, p, _ in days])
    stratum = np.concatenate([np.full(len(y), h) for h, (y, _, _) in enumerate(days)])
    total = sum(t for _, _, t in days)
    y_st = 0.0
    v_st = 0.0
    for h in range(len(days)):
        zh = z[stratum == h]
        y_st += float(zh.mean())
        v_st += float(zh.var(ddof=1)) / len(zh)
    return y_st / total, v_st / total**2


def test_pooling_is_the_stratified_by_day_estimator_on_concatenated_draws() -> None:
    # Seven days, one design (risk-weighted PPS-WR, 150-300 draws a day), pooled from the daily HH
    # estimates, equals the stratified estimator computed directly on the concatenated draws.
    rng = np.random.default_rng(12)
    days = []
    records = []
    for d in range(7):
        x, y, p = _day_population(rng, 5000, 0.002 * (1 + 4 * d))  # 0.2% .. 5% violators
        draws = pps_with_replacement(p, 150 + 25 * d, rng)
        days.append((y[draws], p[draws], float(x.sum())))
        est = hansen_hurwitz_prevalence(y[draws], p[draws], float(x.sum()))
        records.append(DayRecord.from_estimate(est, float(x.sum()), day=DAY0 + timedelta(d)))
    pooled = pool_days(records)
    direct_p, direct_v = _stratified_by_day(days)
    assert pooled.estimate == pytest.approx(direct_p, rel=1e-12)
    assert pooled.std_error**2 == pytest.approx(direct_v, rel=1e-10)

    # The point estimate is also the HH estimator of the concatenated draws seen as ONE sample
    # of n = sum n_d draws from the week with p'_k = p_k n_d / n:
    # (1/n) sum_k y_k / p'_k = sum_d (1/n_d) sum_k y_k / p_k = sum_d Y_d_hat.
    n_total = sum(len(y) for y, _, _ in days)
    y_all = np.concatenate([y for y, _, _ in days])
    p_all = np.concatenate([p * len(y) / n_total for y, p, _ in days])
    week_total = sum(t for _, _, t in days)
    one_sample = hansen_hurwitz_prevalence(y_all, p_all, week_total)
    assert one_sample.estimate == pytest.approx(pooled.estimate, rel=1e-12)
    # ... but its variance estimator ignores the stratification (it also counts the between-day
    # spread of the day means of n y / (n_d p)), so it is not the pooled (stratified) variance.
    assert one_sample.std_error != pytest.approx(pooled.std_error, rel=1e-6)


def _poisson_day(
    rng: np.random.Generator, n_units: int, rate: float, n: int, n_uncertain: int, ci_method: str
) -> tuple[FloatArray, FloatArray, FloatArray, float, PrevalenceEstimate]:
    """One day's Poisson PPS sample, cut to exactly ``n_uncertain`` uncertain units."""
    x, y, p = _day_population(rng, n_units, rate)
    pi = poisson_pps_inclusion(p, n)
    picked = np.flatnonzero(rng.random(n_units) < pi)
    uncertain = picked[pi[picked] < 1.0][:n_uncertain]
    picked = np.concatenate([picked[pi[picked] >= 1.0], uncertain])
    assert len(uncertain) == n_uncertain
    total = float(x.sum())
    weight = mean_uncertain_weight(x[picked], pi[picked], total)
    est = horvitz_thompson_prevalence(
        y[picked], pi[picked], total, ci_method=ci_method, event_weight=weight
    )
    return x[picked], y[picked], pi[picked], total, est


@pytest.mark.parametrize("ci_method", sorted(EVENT_WEIGHT_CI_METHODS))
def test_gamma_pool_is_the_gamma_interval_of_the_window_as_one_poisson_sample(
    ci_method: str,
) -> None:
    # Days sampled independently by Poisson PPS are one Poisson sample of the window (each
    # unit keeps its pi); HT of the window over X_W is the pooled estimate, its variance the
    # pooled variance, and -- with as many uncertain units every day -- the window's mean
    # uncertain weight x / (pi X_W) is w_W. So the pooled gamma interval must be the gamma
    # interval computed directly on the concatenated sample.
    rng = np.random.default_rng(21)
    days = [_poisson_day(rng, 4000, 0.003 * (1 + d), 400, 250, ci_method) for d in range(7)]
    records = [
        DayRecord.from_estimate(est, total, day=DAY0 + timedelta(d))
        for d, (*_, total, est) in enumerate(days)
    ]
    pooled = pool_days(records, ci_method=ci_method)
    x_all, y_all, pi_all = (np.concatenate([day[k] for day in days]) for k in range(3))
    week_total = sum(day[3] for day in days)
    direct = horvitz_thompson_prevalence(
        y_all,
        pi_all,
        week_total,
        ci_method=ci_method,
        event_weight=mean_uncertain_weight(x_all, pi_all, week_total),
    )
    assert pooled.prevalence.event_weight == pytest.approx(direct.event_weight, rel=1e-12)
    assert pooled.estimate == pytest.approx(direct.estimate, rel=1e-12)
    assert pooled.std_error == pytest.approx(direct.std_error, rel=1e-12)
    assert (pooled.ci_lower, pooled.ci_upper) == pytest.approx(
        (direct.ci_lower, direct.ci_upper), rel=1e-9
    )
    assert pooled.prevalence.ci_method == ci_method
    # A one-day window is that day's interval.
    one = pool_days(records[:1], ci_method=ci_method)
    first = days[0][4]
    assert (one.ci_lower, one.ci_upper) == pytest.approx((first.ci_lower, first.ci_upper))


def test_pooled_event_weight_by_hand_and_required() -> None:
    # w_W = (1/D) sum_d w_d X_d / X_W = (0.001 * 1000 + 0.0004 * 3000) / (2 * 4000) = 2.75e-4
    recs = [
        DayRecord(0.01, 0.004, 1000.0, 100, 3, day=DAY0, event_weight=0.001),
        DayRecord(0.03, 0.006, 3000.0, 150, 9, day=DAY0 + timedelta(days=1), event_weight=4e-4),
    ]
    assert pooled_event_weight(recs) == pytest.approx(2.75e-4, rel=1e-12)
    assert pool_days(recs, ci_method="gamma_tcz").prevalence.event_weight == pytest.approx(2.75e-4)
    no_weight = [recs[0], dataclasses.replace(recs[1], event_weight=None)]
    with pytest.raises(ValueError, match="event_weight: required on every record"):
        pool_days(no_weight, ci_method="gamma_midp")
    # The other methods need no weight, and leave none on the result.
    assert pool_days(no_weight, ci_method="wilson_kg").prevalence.event_weight is None
    with pytest.raises(ValueError, match="event_weight: expected a number > 0"):
        DayRecord(0.01, 0.004, 1000.0, 100, 3, event_weight=0.0)


def test_domain_pooling_equals_stratified_domain_estimator() -> None:
    # Domain estimates as in measure.estimate_day: every draw, y = 0 outside the domain, the
    # domain's known impressions X_S,d as denominator; pooled per domain over 5 days.
    rng = np.random.default_rng(13)
    records = []
    days = []
    for d in range(5):
        x, y, p = _day_population(rng, 4000, 0.02)
        surface = rng.choice(np.array(["feed", "search"]), size=len(x), p=[0.7, 0.3])
        draws = pps_with_replacement(p, 200, rng)
        in_search = surface[draws] == "search"
        x_search = float(x[surface == "search"].sum())
        y_dom = np.where(in_search, y[draws], 0.0)
        est = hansen_hurwitz_prevalence(y_dom, p[draws], x_search)
        records.append(
            DayRecord.from_estimate(
                est, x_search, day=DAY0 + timedelta(d), policy="spam", domain="surface=search"
            )
        )
        days.append((y_dom, p[draws], x_search))
    pooled = pool_cells(records)[("spam", "surface=search")]
    direct_p, direct_v = _stratified_by_day(days)
    assert pooled.estimate == pytest.approx(direct_p, rel=1e-12)
    assert pooled.std_error**2 == pytest.approx(direct_v, rel=1e-10)
    assert (pooled.policy, pooled.domain, pooled.n_days) == ("spam", "surface=search", 5)


@pytest.mark.parametrize("n_draws", [2, 3])
def test_pooled_estimator_and_variance_unbiased_by_full_enumeration(n_draws: int) -> None:
    # Two days, tiny populations, n_d draws each; enumerate every pair of ordered samples.
    # Stratified theory: E[P_pool] = P_W, V(P_pool) = sum_d V(Y_d_hat) / X_W^2 with
    # V(Y_d_hat) = sum_i p_i (y_i / p_i - Y_d)^2 / n_d, and E[v_pool] = V(P_pool).
    pops = [
        (np.array([5.0, 40.0, 12.0]), np.array([5.0, 0.0, 12.0]), np.array([0.5, 0.2, 0.3])),
        (np.array([8.0, 30.0, 2.0]), np.array([0.0, 30.0, 2.0]), np.array([0.1, 0.6, 0.3])),
    ]
    totals = [float(x.sum()) for x, _, _ in pops]
    week = sum(totals)
    true_p = sum(float(y.sum()) for _, y, _ in pops) / week
    true_v = sum(float(np.sum(p * (y / p - y.sum()) ** 2)) / n_draws for _, y, p in pops) / week**2
    samples = [list(itertools.product(range(3), repeat=n_draws)) for _ in pops]
    e_est = e_var = mse = 0.0
    for s0, s1 in itertools.product(*samples):
        prob = 1.0
        recs = []
        for (_, y, p), s, total in zip(pops, (s0, s1), totals, strict=True):
            idx = list(s)
            prob *= float(np.prod(p[idx]))
            est = hansen_hurwitz_prevalence(y[idx], p[idx], total, ci_method="wald")
            recs.append(DayRecord.from_estimate(est, total))
        res = pool_days(recs, ci_method="wald")
        e_est += prob * res.estimate
        e_var += prob * res.std_error**2
        mse += prob * (res.estimate - true_p) ** 2
    assert e_est == pytest.approx(true_p, rel=1e-12)
    assert mse == pytest.approx(true_v, rel=1e-10)
    assert e_var == pytest.approx(true_v, rel=1e-10)


# --------------------------------------------------------------------------------------------
# Coverage of pooled intervals for a rare policy
# --------------------------------------------------------------------------------------------


def test_pooled_interval_coverage_rare_policy() -> None:
    # Seven day populations of 30,000 units, violation rate 0.05% (impression-weighted
    # prevalence of the week about 0.05%), risk-weighted PPS-WR with 300 draws a day (about
    # 1 violating draw a day, 37% of days with none). Fixed populations, 400 repeated
    # samples: the 95% wilson_kg interval of the 7-day pool must cover the week's prevalence
    # 95% of the time within 3 binomial standard errors.
    rng = np.random.default_rng(2024)
    reps, n_per_day = 400, 300
    days = []
    for _ in range(7):
        x, y, p = _day_population(rng, 30_000, 0.0005)
        # n * reps independent multinomial draws = reps independent samples of n draws
        draws = pps_with_replacement(p, n_per_day * reps, rng).reshape(reps, n_per_day)
        days.append((x, y, p, draws))
    totals = [float(x.sum()) for x, _, _, _ in days]
    week_p = sum(float(y.sum()) for _, y, _, _ in days) / sum(totals)
    assert 3e-4 < week_p < 7e-4  # the scenario is the rare policy it claims to be

    covered = naive_covered = zero_days = 0
    for rep in range(reps):
        recs = []
        for (_, y, p, draws), total in zip(days, totals, strict=True):
            idx = draws[rep]
            est = hansen_hurwitz_prevalence(y[idx], p[idx], total)
            zero_days += est.n_positive_draws == 0
            recs.append(DayRecord.from_estimate(est, total))
        pooled = pool_days(recs)
        covered += pooled.ci_lower <= week_p <= pooled.ci_upper
        # Negative control: a pooled variance that does not shrink with pooling (the mean daily
        # variance) -- the kind of error this simulation must be able to detect.
        naive_v = float(np.mean([r.std_error**2 for r in recs]))
        lo, hi = CI_METHODS["wilson_kg"](pooled.estimate, naive_v, pooled.n_draws, 0.95)
        naive_covered += lo <= week_p <= hi
    tolerance = 3 * math.sqrt(0.95 * 0.05 / reps)  # 0.0327
    assert abs(covered / reps - 0.95) <= tolerance
    assert naive_covered / reps > 0.95 + tolerance
    assert zero_days > 0.1 * 7 * reps  # daily cells really are small


# --------------------------------------------------------------------------------------------
# pool_cells, records, validation
# --------------------------------------------------------------------------------------------


def test_pool_cells_groups_by_policy_and_domain_and_filters_the_window() -> None:
    recs = []
    for d in range(10):
        day = DAY0 + timedelta(days=d)
        for policy, domain, p in (("spam", "all", 0.01), ("spam", "surface=feed", 0.02)):
            recs.append(DayRecord(p * (1 + d / 10), 0.001, 1000.0 + d, 100, 2, day, policy, domain))
        recs.append(DayRecord(0.005, 0.002, 500.0, 80, 1, day, "adult", "all"))
    end = DAY0 + timedelta(days=9)
    cells = pool_cells(recs, end_day=end, window_days=7)
    assert set(cells) == {("spam", "all"), ("spam", "surface=feed"), ("adult", "all")}
    for key, pooled in cells.items():
        assert pooled.n_days == 7
        assert (pooled.first_day, pooled.last_day) == (DAY0 + timedelta(days=3), end)
        expected = pool_days(
            [
                r
                for r in recs
                if (r.policy, r.domain) == key
                and r.day is not None
                and r.day >= DAY0 + timedelta(days=3)
            ]
        )
        assert pooled.prevalence == expected.prevalence
    # A window ending before the data starts is empty.
    assert pool_cells(recs, end_day=DAY0 - timedelta(days=1)) == {}
    # Without end_day every record is used.
    assert pool_cells(recs)[("adult", "all")].n_days == 10


def test_day_record_from_row() -> None:
    row = {
        "event_date": DAY0,
        "design_id": "pps_wr_v1",
        "policy": "spam",
        "domain": "surface=search",
        "estimate": 0.002,
        "std_error": 0.0005,
        "total_impressions": 123456,
        "n_draws": 500,
        "n_positive_draws": 7,
    }
    rec = DayRecord.from_row(row)
    assert rec == DayRecord(0.002, 0.0005, 123456.0, 500, 7, DAY0, "spam", "surface=search")
    del row["std_error"]
    with pytest.raises(ValueError, match="std_error"):
        DayRecord.from_row(row)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimate": -0.1}, "estimate"),
        ({"estimate": math.nan}, "estimate"),
        ({"std_error": -1.0}, "std_error"),
        ({"std_error": math.inf}, "std_error"),
        ({"total_impressions": 0.0}, "total_impressions"),
        ({"n_draws": 0}, "n_draws"),
        ({"n_draws": 2.5}, "n_draws"),
        ({"n_positive_draws": -1}, "n_positive_draws"),
        ({"n_positive_draws": 11}, "n_positive_draws"),
        ({"day": "2024-03-01"}, "day"),
    ],
)
def test_day_record_validation(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "estimate": 0.01,
        "std_error": 0.002,
        "total_impressions": 1000.0,
        "n_draws": 10,
        "n_positive_draws": 1,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DayRecord(**args)


def test_pool_days_validation() -> None:
    rec = DayRecord(0.01, 0.002, 1000.0, 10, 1, DAY0, "spam")
    with pytest.raises(ValueError, match="at least one"):
        pool_days([])
    with pytest.raises(ValueError, match="one record per day"):
        pool_days([rec, rec])
    with pytest.raises(ValueError, match="one policy and domain"):
        pool_days([rec, dataclasses.replace(rec, day=None, policy="adult")])
    with pytest.raises(ValueError, match="ci_method"):
        pool_days([rec], ci_method="bootstrap")
    with pytest.raises(ValueError, match="confidence"):
        pool_days([rec], confidence=1.0)
    with pytest.raises(ValueError, match="DayRecord"):
        pool_days([(0.01, 0.002)])
    with pytest.raises(ValueError, match="window_days"):
        pool_cells([rec], window_days=0)
    with pytest.raises(ValueError, match="carry a day"):
        pool_cells([dataclasses.replace(rec, day=None)], end_day=DAY0)


@st.composite
def day_records(draw: st.DrawFn) -> list[DayRecord]:
    n_days = draw(st.integers(1, 10))
    recs = []
    for d in range(n_days):
        n = draw(st.integers(2, 5000))
        recs.append(
            DayRecord(
                estimate=draw(st.floats(0.0, 0.05)),
                std_error=draw(st.floats(0.0, 0.02)),
                total_impressions=draw(st.floats(1.0, 1e9)),
                n_draws=n,
                n_positive_draws=draw(st.integers(0, n)),
                day=DAY0 + timedelta(days=d),
            )
        )
    return recs


@settings(max_examples=60, deadline=None)
@given(day_records(), st.sampled_from(sorted(CI_METHODS)), st.randoms())
def test_pool_properties(recs: list[DayRecord], ci_method: str, order: object) -> None:
    res = pool_days(recs, ci_method=ci_method)
    estimates = [r.estimate for r in recs]
    # An impression-weighted mean lies between the daily extremes.
    assert min(estimates) - 1e-15 <= res.estimate <= max(estimates) + 1e-15
    # The pooled SE is at most the largest daily SE (a weighted root-sum of squares with
    # weights X_d / X_W summing to 1).
    assert res.std_error <= max(r.std_error for r in recs) * (1 + 1e-12) + 1e-300
    assert 0.0 <= res.ci_lower <= res.ci_upper <= 1.0
    assert res.n_draws == sum(r.n_draws for r in recs)
    assert res.n_positive_draws == sum(r.n_positive_draws for r in recs)
    # Order of the days does not matter.
    shuffled = list(recs)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    again = pool_days(shuffled, ci_method=ci_method)
    assert again.estimate == pytest.approx(res.estimate, rel=1e-12, abs=1e-300)
    assert again.std_error == pytest.approx(res.std_error, rel=1e-12, abs=1e-300)


def test_identical_days_shrink_the_variance_by_the_number_of_days() -> None:
    rec = DayRecord(0.004, 0.001, 2e6, 500, 8)
    for n_days in (2, 7):
        recs = [dataclasses.replace(rec, day=DAY0 + timedelta(d)) for d in range(n_days)]
        res = pool_days(recs)
        assert res.estimate == pytest.approx(0.004, rel=1e-12)
        assert res.std_error == pytest.approx(0.001 / math.sqrt(n_days), rel=1e-12)


def test_pooled_result_is_frozen() -> None:
    res = pool_days([DayRecord(0.01, 0.002, 1000.0, 10, 1)])
    assert isinstance(res, PooledEstimate)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.n_days = 3


# --------------------------------------------------------------------------------------------
# Small-cell rules
# --------------------------------------------------------------------------------------------


def _estimate(
    p: float, variance: float, n: int, k: int, method: str = "wilson_kg"
) -> PrevalenceEstimate:
    """A PrevalenceEstimate with the interval and effective sample size the estimator would give."""
    lo, hi = CI_METHODS[method](p, variance, n, 0.95)
    n_eff = p * (1 - p) / variance if variance > 0 and 0 < p < 1 else float(n)
    return PrevalenceEstimate(
        estimate=p,
        std_error=math.sqrt(variance),
        ci_lower=lo,
        ci_upper=hi,
        ci_method=method,
        confidence=0.95,
        n_draws=n,
        n_distinct_units=None,
        n_positive_draws=k,
        effective_sample_size=n_eff,
        design_effect=None if variance == 0 or p == 0 else n / n_eff,
    )


def test_adequate_day_is_reported() -> None:
    day = _estimate(0.002, 0.002 * 0.998 / 2000, 800, 12)  # n_eff 2000
    status = classify_cell(day)
    assert status.status == "report"
    assert status.basis == "day"
    assert (status.estimate, status.ci_lower, status.ci_upper) == (
        day.estimate,
        day.ci_lower,
        day.ci_upper,
    )
    assert status.display == f"0.2% [{100 * day.ci_lower:.3g}%, {100 * day.ci_upper:.3g}%]"


def test_small_day_is_pooled_when_the_window_is_adequate() -> None:
    day = _estimate(0.003, 0.003 * 0.997 / 6, 300, 1)  # n_eff 6 < 10
    week = pool_days([DayRecord(0.002, 0.0005, 1e6, 300, 3, DAY0 + timedelta(d)) for d in range(7)])
    assert week.effective_sample_size > 10
    status = classify_cell(day, pooled=week)
    assert status.status == "pool"
    assert status.basis == "window"
    assert (status.estimate, status.ci_lower, status.ci_upper) == (
        week.estimate,
        week.ci_lower,
        week.ci_upper,
    )
    assert "effective sample size 6 < 10" in status.reason
    assert status.display.endswith("(7-day pooled)")


def test_small_window_is_suppressed_to_the_day_upper_bound() -> None:
    day = _estimate(0.003, 0.003 * 0.997 / 4, 300, 1)
    week = pool_days([DayRecord(0.003, 0.04, 1e6, 300, 1, DAY0 + timedelta(d)) for d in range(3)])
    assert week.effective_sample_size < 10
    status = classify_cell(day, pooled=week)
    assert status.status == "suppress"
    assert status.estimate is None and status.ci_lower is None
    assert status.ci_upper == day.ci_upper
    assert status.display == f"<= {100 * day.ci_upper:.3g}%"
    assert "pooled cell: effective sample size" in status.reason
    # Without a pooled estimate an inadequate day is suppressed too.
    alone = classify_cell(day)
    assert alone.status == "suppress"
    assert "no pooled estimate" in alone.reason


def test_zero_violation_day_is_never_a_bare_zero() -> None:
    zero = hansen_hurwitz_prevalence(np.zeros(500), np.full(500, 1e-3), 1e6)
    # Enough draws: flagged, upper bound only (Wilson with m = n: z^2 / (n + z^2)).
    status = classify_cell(zero)
    assert status.status == "flag"
    assert status.estimate is None
    assert status.ci_upper == pytest.approx(Z975**2 / (500 + Z975**2), rel=1e-12)
    assert status.display.startswith("<= ") and status.display != "<= 0%"
    # Too few draws for the effective-sample-size rule: try the window.
    tiny = hansen_hurwitz_prevalence(np.zeros(5), np.full(5, 1e-3), 1e6)
    week = pool_days([DayRecord(0.001, 0.0002, 1e6, 500, 5, DAY0 + timedelta(d)) for d in range(7)])
    assert classify_cell(tiny, pooled=week).status == "pool"
    # With a precision rule a zero day has an infinite relative half-width: pooled.
    with_rule = classify_cell(zero, max_relative_half_width=0.5, pooled=week)
    assert with_rule.status == "pool"
    assert "relative CI half-width infinite" in with_rule.reason


def test_zero_window_publishes_the_window_upper_bound() -> None:
    tiny = hansen_hurwitz_prevalence(np.zeros(5), np.full(5, 1e-3), 1e6)
    week = pool_days([DayRecord(0.0, 0.0, 1e6, 300, 0, DAY0 + timedelta(d)) for d in range(7)])
    status = classify_cell(tiny, pooled=week)
    assert status.status == "pool"
    assert status.estimate is None
    assert status.ci_upper == pytest.approx(Z975**2 / (2100 + Z975**2), rel=1e-12)
    assert status.display.startswith("<= ") and status.display.endswith("(7-day pooled)")


def test_relative_half_width_rule() -> None:
    # n_eff = 400 passes the size rule; 95% Wilson relative half-width at p = 1%, m = 400 is
    # about z sqrt(0.99 / (400 * 0.01)) = 0.975 > 0.5, so the day goes to the window.
    day = _estimate(0.01, 0.01 * 0.99 / 400, 400, 4)
    assert relative_half_width(day) == pytest.approx(
        (day.ci_upper - day.ci_lower) / 0.02, rel=1e-12
    )
    assert classify_cell(day).status == "report"
    week = _estimate(0.01, 0.01 * 0.99 / 20000, 2800, 28)
    assert relative_half_width(week) < 0.5
    status = classify_cell(day, max_relative_half_width=0.5, pooled=week)
    assert status.status == "pool"
    assert "relative CI half-width" in status.reason
    strict = classify_cell(day, max_relative_half_width=0.05, pooled=week)
    assert strict.status == "suppress"


def test_relative_half_width_matches_wald_formula() -> None:
    est = _estimate(0.02, 1e-5, 1000, 20, method="wald")
    assert relative_half_width(est) == pytest.approx(Z975 * math.sqrt(1e-5) / 0.02, rel=1e-12)
    assert relative_half_width(_estimate(0.0, 0.0, 100, 0)) == math.inf


@settings(max_examples=100, deadline=None)
@given(
    p_day=st.floats(0.0, 0.05),
    neff_day=st.floats(0.5, 5000),
    p_week=st.one_of(st.none(), st.floats(0.0, 0.05)),
    neff_week=st.floats(0.5, 50000),
    min_n=st.floats(1.0, 100.0),
    max_rhw=st.one_of(st.none(), st.floats(0.05, 2.0)),
)
def test_classification_invariants(
    p_day: float,
    neff_day: float,
    p_week: float | None,
    neff_week: float,
    min_n: float,
    max_rhw: float | None,
) -> None:
    def make(p: float, neff: float) -> PrevalenceEstimate:
        return _estimate(p, p * (1 - p) / neff if p > 0 else 0.0, max(int(neff), 1), int(p > 0))

    day = make(p_day, neff_day)
    week = None if p_week is None else make(p_week, neff_week)
    status = classify_cell(day, min_n, max_rhw, pooled=week)
    assert isinstance(status, CellStatus)
    assert status.status in CELL_STATUSES
    # Never a bare zero: a published point estimate is positive, otherwise an upper bound only.
    assert status.estimate is None or status.estimate > 0
    assert (status.estimate is None) == status.display.startswith("<= ")
    assert status.ci_upper > 0
    if status.status == "report":
        assert day.effective_sample_size >= min_n and day.estimate > 0
        assert max_rhw is None or relative_half_width(day) <= max_rhw
    if status.status in ("pool", "suppress"):
        assert day.effective_sample_size < min_n or (
            max_rhw is not None and relative_half_width(day) > max_rhw
        )
    if status.status == "pool":
        assert week is not None and week.effective_sample_size >= min_n
        assert status.basis == "window"
    else:
        assert status.basis == "day"
    if status.status == "suppress":
        assert status.ci_upper == day.ci_upper


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_effective_n": 0}, "min_effective_n"),
        ({"min_effective_n": math.nan}, "min_effective_n"),
        ({"min_effective_n": True}, "min_effective_n"),
        ({"max_relative_half_width": 0.0}, "max_relative_half_width"),
        ({"max_relative_half_width": math.inf}, "max_relative_half_width"),
    ],
)
def test_classify_cell_validation(kwargs: dict[str, object], match: str) -> None:
    day = _estimate(0.01, 1e-6, 100, 1)
    with pytest.raises(ValueError, match=match):
        classify_cell(day, **kwargs)
