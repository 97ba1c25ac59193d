"""Tests of tsmetrics.drift (baseline change test, Benjamini-Hochberg, drift checks across cells).

Simulation tests use fixed seeds; their tolerances are stated in Monte Carlo standard errors
(SE) of the simulated quantity, so that a correct implementation passes for almost every seed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from tolerances import within

from tsmetrics.checks import CheckResult, day_over_day_check
from tsmetrics.drift import baseline_change_test, benjamini_hochberg, prevalence_drift_checks

FloatArray = npt.NDArray[np.float64]

# --------------------------------------------------------------------------------------------
# baseline_change_test
# --------------------------------------------------------------------------------------------


def test_baseline_change_hand_computed() -> None:
    # m = 0.01; v = 0.001^2 + 3 * 0.001^2 / 9 = 4/3 e-6; z = 0.002 / sqrt(4/3 e-6) = sqrt(3).
    res = baseline_change_test(0.012, 0.001, [0.010, 0.011, 0.009], [0.001, 0.001, 0.001])
    assert float(res.baseline_mean) == pytest.approx(0.01)
    assert float(res.std_error) == pytest.approx(math.sqrt(4.0 / 3.0) * 1e-3)
    assert float(res.statistic) == pytest.approx(math.sqrt(3.0))
    assert float(res.p_value_greater) == pytest.approx(0.0416323, abs=1e-7)
    assert float(res.p_value_two_sided) == pytest.approx(2 * 0.0416323, abs=2e-7)
    assert float(res.p_value_less) == pytest.approx(1 - 0.0416323, abs=1e-7)
    assert float(res.baseline_std_error) == pytest.approx(math.sqrt(3e-6 / 9))
    assert float(res.between_day_variance) == 0.0
    assert int(res.n_baseline) == 3
    # S^2 = 1e-6 = mean s_i^2: no sign of extra between-day variation.
    assert float(res.overdispersion) == pytest.approx(1.0)
    assert float(res.tau2_moment) == pytest.approx(0.0, abs=1e-18)
    assert res.p_value("greater") is res.p_value_greater


def test_baseline_change_moment_and_fixed_between_day_variance() -> None:
    base, se = [0.010, 0.014, 0.006], [0.001] * 3
    # S^2 = (0 + 0.004^2 + 0.004^2) / 2 = 1.6e-5; tau^2 = 1.6e-5 - 1e-6 = 1.5e-5.
    res = baseline_change_test(0.02, 0.001, base, se, between_day_variance="moment")
    assert float(res.tau2_moment) == pytest.approx(1.5e-5)
    assert float(res.between_day_variance) == pytest.approx(1.5e-5)
    assert float(res.overdispersion) == pytest.approx(16.0)
    var = 1e-6 + 1.5e-5 * (1 + 1 / 3) + 3e-6 / 9
    assert float(res.std_error) == pytest.approx(math.sqrt(var))
    assert float(res.statistic) == pytest.approx(0.01 / math.sqrt(var))
    fixed = baseline_change_test(0.02, 0.001, base, se, between_day_variance=1.5e-5)
    assert float(fixed.statistic) == pytest.approx(float(res.statistic))
    none = baseline_change_test(0.02, 0.001, base, se)
    assert float(none.statistic) > float(res.statistic)
    assert float(none.tau2_moment) == pytest.approx(1.5e-5)  # reported as a diagnostic anyway


def test_baseline_change_with_one_day_equals_day_over_day_check() -> None:
    res = baseline_change_test(0.013, 0.002, [0.010], [0.0015])
    ref = day_over_day_check("adult", 0.013, 0.002, 0.010, 0.0015)
    assert float(res.statistic) == pytest.approx(ref.statistic)
    assert float(res.p_value_greater) == pytest.approx(ref.p_value)


def test_baseline_change_vectorised_matches_per_cell_and_handles_missing() -> None:
    rng = np.random.default_rng(3)
    est = rng.uniform(0.005, 0.02, size=(4, 5))
    se = rng.uniform(0.0005, 0.002, size=(4, 5))
    b_est = rng.uniform(0.005, 0.02, size=(4, 5, 7))
    b_se = rng.uniform(0.0005, 0.002, size=(4, 5, 7))
    b_est[0, 0, [1, 4]] = np.nan  # missing baseline days
    b_se[1, 2, 3] = np.nan
    est[2, 2] = np.nan  # no estimate today
    res = baseline_change_test(est, se, b_est, b_se, between_day_variance="moment")
    assert res.statistic.shape == (4, 5)
    assert res.n_baseline[0, 0] == 5 and res.n_baseline[1, 2] == 6 and res.n_baseline[3, 3] == 7
    assert np.isnan(res.statistic[2, 2]) and np.isnan(res.p_value_greater[2, 2])
    for i in range(4):
        for j in range(5):
            if (i, j) == (2, 2):
                continue
            keep = np.isfinite(b_est[i, j]) & np.isfinite(b_se[i, j])
            one = baseline_change_test(
                est[i, j],
                se[i, j],
                b_est[i, j][keep],
                b_se[i, j][keep],
                between_day_variance="moment",
            )
            assert res.statistic[i, j] == pytest.approx(float(one.statistic), rel=1e-12)
            assert res.p_value_two_sided[i, j] == pytest.approx(float(one.p_value_two_sided))


def test_baseline_change_untestable_cells_are_nan() -> None:
    res = baseline_change_test(
        [0.01, 0.01, 0.01],
        [0.001, 0.0, 0.001],
        [[0.01, np.nan], [0.01, 0.01], [0.01, 0.02]],
        [[0.001, np.nan], [0.0, 0.0], [0.001, 0.001]],
        between_day_variance="moment",
    )
    # Cell 0: one valid day, "moment" needs 2. Cell 1: zero variance. Cell 2: fine.
    assert np.isnan(res.statistic[0]) and np.isnan(res.statistic[1])
    assert np.isfinite(res.statistic[2])
    res2 = baseline_change_test(
        [0.01], [0.001], [[0.01, 0.01]], [[0.001, 0.001]], min_baseline_days=3
    )
    assert np.isnan(res2.statistic[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"std_error": -0.1}, "std_error: expected values >= 0"),
        ({"std_error": [0.1, 0.1]}, "std_error: expected shape"),
        ({"baseline_estimates": [[0.1, 0.2]]}, "baseline_estimates: expected shape"),
        ({"baseline_std_errors": [0.1]}, "baseline_std_errors: expected shape"),
        ({"baseline_std_errors": [0.1, -0.1]}, "baseline_std_errors: expected values >= 0"),
        ({"estimate": math.inf}, "estimate: expected finite values"),
        ({"between_day_variance": "dl"}, "between_day_variance: expected one of"),
        ({"between_day_variance": -1.0}, r"between_day_variance: expected a number in \[0"),
        ({"min_baseline_days": 0}, "min_baseline_days: expected an integer >= 1"),
        ({"estimate": "x"}, "estimate: expected an array of numbers"),
    ],
)
def test_baseline_change_validation(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "estimate": 0.1,
        "std_error": 0.01,
        "baseline_estimates": [0.1, 0.1],
        "baseline_std_errors": [0.01, 0.01],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        baseline_change_test(**args)  # type: ignore[arg-type]


def test_baseline_change_null_distribution_is_standard_normal() -> None:
    """With known SEs and no change, z ~ N(0, 1) exactly (heteroscedastic SEs)."""
    rng = np.random.default_rng(11)
    n, k = 20_000, 7
    se0 = rng.uniform(0.5, 2.0, n)
    se_b = rng.uniform(0.5, 2.0, (n, k))
    res = baseline_change_test(
        5.0 + se0 * rng.standard_normal(n), se0, 5.0 + se_b * rng.standard_normal((n, k)), se_b
    )
    z = res.statistic
    # mean: SE 1/sqrt(n); variance: SE sqrt(2/n); rejection rate at 5%: SE sqrt(.05 .95 / n).
    within(float(z.mean()), 0.0, 1 / math.sqrt(n))
    within(float(z.var()), 1.0, math.sqrt(2 / n))
    within(float((res.p_value_greater < 0.05).mean()), 0.05, math.sqrt(0.05 * 0.95 / n))
    within(float((res.p_value_two_sided < 0.05).mean()), 0.05, math.sqrt(0.05 * 0.95 / n))
    assert stats.kstest(res.p_value_two_sided, "uniform").pvalue > 1e-3


def test_between_day_variation_inflates_none_and_moment_restores_level() -> None:
    """Real day-to-day variation (tau = SE): "none" over-alerts, "moment" is near nominal."""
    rng = np.random.default_rng(12)
    n, k, se, tau = 20_000, 28, 1.0, 1.0
    mu_b = tau * rng.standard_normal((n, k))
    mu_0 = tau * rng.standard_normal(n)
    x_b = mu_b + se * rng.standard_normal((n, k))
    x_0 = mu_0 + se * rng.standard_normal(n)
    se_b, se_0 = np.full((n, k), se), np.full(n, se)
    none = baseline_change_test(x_0, se_0, x_b, se_b)
    moment = baseline_change_test(x_0, se_0, x_b, se_b, between_day_variance="moment")
    known = baseline_change_test(x_0, se_0, x_b, se_b, between_day_variance=tau**2)
    rate = {
        name: float((r.p_value_greater < 0.05).mean())
        for name, r in (("none", none), ("moment", moment), ("known", known))
    }
    mc_se = math.sqrt(0.05 * 0.95 / n)
    # "none": z has sd sqrt((2 + 2/k) / (1 + 1/k)) = sqrt(2): rate = 1 - Phi(1.645 / sqrt(2)).
    within(rate["none"], float(stats.norm.sf(1.6449 / math.sqrt(2))), math.sqrt(0.12 * 0.88 / n))
    within(rate["known"], 0.05, mc_se)
    # Plug-in tau^2 with k = 28: slightly anti-conservative (documented), within 1.5 points.
    assert 0.05 - 4 * mc_se <= rate["moment"] <= 0.065
    assert float(np.median(moment.tau2_moment)) == pytest.approx(tau**2, rel=0.1)


# --------------------------------------------------------------------------------------------
# benjamini_hochberg
# --------------------------------------------------------------------------------------------

# Benjamini & Hochberg (1995), section 4: 15 p-values, q = 0.05; BH rejects the 4 smallest
# (p_(4) = 0.0095 <= 4 (0.05) / 15 = 0.0133; p_(i) > i (0.05) / 15 for every i >= 5).
BH_1995_P = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000,
]  # fmt: skip
# Hand-worked adjusted p-values: min over j >= i of 15 p_(j) / j.
BH_1995_ADJ = [
    0.0015, 0.003, 0.0095, 0.035625, 0.0603, 0.0298 * 15 / 7, 0.0298 * 15 / 7, 0.0645,
    0.0765, 0.486, 0.4262 * 15 / 11, 0.714875, 0.6528 * 15 / 13, 0.759 * 15 / 14, 1.0,
]  # fmt: skip


def test_bh_hand_worked_example_from_the_paper() -> None:
    order = np.random.default_rng(0).permutation(15)  # input order must not matter
    p = np.asarray(BH_1995_P)[order]
    res = benjamini_hochberg(p, 0.05)
    assert res.rejected.tolist() == (np.arange(15) < 4)[order].tolist()
    np.testing.assert_allclose(res.adjusted, np.asarray(BH_1995_ADJ)[order], rtol=1e-12)
    assert int(res.n_rejected) == 4 and int(res.n_tests) == 15
    assert float(res.p_cutoff) == pytest.approx(4 * 0.05 / 15)
    # Bonferroni (0.05 / 15 = 0.0033) would reject only 3.
    assert int((p <= 0.05 / 15).sum()) == 3


def test_bh_small_example_with_ties_and_boundary() -> None:
    # m = 5, q = 0.1: critical values 0.02, 0.04, 0.06, 0.08, 0.10. Sorted p: .01 .03 .05 .05 .5
    # p_(4) = 0.05 <= 0.08 -> R = 4 (both tied 0.05 rejected).
    res = benjamini_hochberg([0.05, 0.5, 0.01, 0.05, 0.03], 0.1)
    assert res.rejected.tolist() == [True, False, True, True, True]
    # Adjusted (min over j >= i of 5 p_(j) / j): .01*5 = .05; .03*5/2 = .075 -> .0625;
    # .05*5/3 = .0833 -> .0625; .05*5/4 = .0625; .5.
    np.testing.assert_allclose(res.adjusted, [0.0625, 0.5, 0.05, 0.0625, 0.0625])
    none = benjamini_hochberg([0.3, 0.2, 0.9], 0.05)
    assert not none.rejected.any() and int(none.n_rejected) == 0
    assert float(none.p_cutoff) == pytest.approx(0.05 / 3)
    all_ = benjamini_hochberg([0.04, 0.01, 0.049], 0.05)
    assert all_.rejected.all()


def test_bh_nan_means_not_tested() -> None:
    p = np.array([0.01, np.nan, 0.02, 0.9, np.nan])
    res = benjamini_hochberg(p, 0.05)
    sub = benjamini_hochberg(p[np.isfinite(p)], 0.05)
    assert int(res.n_tests) == 3
    assert res.rejected.tolist() == [True, False, True, False, False]
    np.testing.assert_allclose(res.adjusted[np.isfinite(p)], sub.adjusted)
    assert np.isnan(res.adjusted[[1, 4]]).all()
    empty = benjamini_hochberg([np.nan, np.nan], 0.05)
    assert int(empty.n_tests) == 0 and not empty.rejected.any() and np.isnan(empty.p_cutoff)


def test_bh_axis_gives_one_family_per_slice() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(size=(6, 9)) ** 3
    res = benjamini_hochberg(p, 0.1, axis=-1)
    res0 = benjamini_hochberg(p.T, 0.1, axis=0)
    for i in range(6):
        one = benjamini_hochberg(p[i], 0.1)
        assert res.rejected[i].tolist() == one.rejected.tolist()
        np.testing.assert_allclose(res.adjusted[i], one.adjusted)
        assert res.n_rejected[i] == one.n_rejected
        assert res0.rejected[:, i].tolist() == one.rejected.tolist()
    flat = benjamini_hochberg(p, 0.1)
    assert flat.rejected.shape == (6, 9)
    assert flat.rejected.ravel().tolist() == benjamini_hochberg(p.ravel(), 0.1).rejected.tolist()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=60),
    st.floats(0.001, 0.5),
)
def test_bh_matches_scipy_and_step_up_definition(p_list: list[float], q: float) -> None:
    p = np.asarray(p_list)
    res = benjamini_hochberg(p, q)
    np.testing.assert_allclose(res.adjusted, stats.false_discovery_control(p, method="bh"))
    # Step-up definition, naively.
    m = p.size
    ps = np.sort(p)
    r = max([i for i in range(1, m + 1) if ps[i - 1] <= i * q / m], default=0)
    expected = p <= ps[r - 1] if r else np.zeros(m, dtype=bool)
    assert res.rejected.tolist() == expected.tolist()
    assert int(res.n_rejected) == r
    # Adjusted p-values: monotone in p, in [p, 1], and rejection <=> adjusted <= q (off ties).
    assert np.all(res.adjusted >= p - 1e-15) and np.all(res.adjusted <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(res.adjusted[order]) >= -1e-15)
    off_boundary = np.abs(res.adjusted - q) > 1e-12
    assert np.array_equal(res.rejected[off_boundary], (res.adjusted <= q)[off_boundary])


@pytest.mark.parametrize(
    ("p", "q", "axis", "match"),
    [
        ([0.1, 1.2], 0.05, None, r"p_values: expected values in \[0, 1\]"),
        ([0.1, -0.1], 0.05, None, r"p_values: expected values in \[0, 1\]"),
        ([0.1, math.inf], 0.05, None, "p_values: expected finite values"),
        ([0.1], 0.0, None, r"q: expected a number in \(0.0, 1.0\)"),
        ([0.1], 1.0, None, r"q: expected a number in \(0.0, 1.0\)"),
        ([0.1], math.nan, None, "q: expected a finite number"),
        ([0.1], 0.05, 1, "axis: expected an axis"),
        ([0.1], 0.05, "0", "axis: expected an integer or None"),
    ],
)
def test_bh_validation(p: list[float], q: float, axis: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        benjamini_hochberg(p, q, axis=axis)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# prevalence_drift_checks
# --------------------------------------------------------------------------------------------

CELLS = [("adult", "feed"), ("adult", "search"), ("spam", "feed"), ("spam", "search")]


def _cells_inputs() -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    base = np.tile([0.010, 0.011, 0.009, 0.010, 0.010, 0.011, 0.009], (4, 1))
    b_se = np.full((4, 7), 0.0005)
    est = np.array([0.020, 0.004, 0.0102, np.nan])  # rise, fall, no change, missing
    se = np.full(4, 0.0005)
    return est, se, base, b_se


def test_drift_checks_rise_only_by_default() -> None:
    est, se, base, b_se = _cells_inputs()
    rows = prevalence_drift_checks(CELLS, est, se, base, b_se, q=0.05)
    assert [r.outcome for r in rows] == ["breach", "pass", "pass", "skipped"]
    assert all(isinstance(r, CheckResult) and r.check_name == "baseline_change" for r in rows)
    assert [r.policy for r in rows] == ["adult", "adult", "spam", "spam"]
    assert [r.details["surface"] for r in rows] == ["feed", "search", "feed", "search"]
    rise = rows[0]
    ref = baseline_change_test(est[0], se[0], base[0], b_se[0])
    assert rise.statistic == pytest.approx(float(ref.statistic))
    assert rise.p_value == pytest.approx(float(ref.p_value_greater))
    assert rise.details["direction"] == "rise"
    assert rise.details["n_tests"] == 3  # the skipped cell is not in BH's family
    assert rise.details["relative_change"] == pytest.approx(1.0)
    assert rise.details["p_adjusted"] <= 0.05
    assert rows[1].p_value is not None and rows[1].p_value > 0.99  # a big fall, p ~ 1
    skipped = rows[3]
    assert math.isnan(skipped.statistic) and skipped.p_value is None
    assert "NaN" in skipped.details["reason"]
    # threshold is BH's critical z: breaches are exactly the z at or above it.
    for r in rows[:3]:
        assert (r.outcome == "breach") == (r.statistic >= r.threshold)
    assert rows[0].threshold == pytest.approx(float(stats.norm.isf(0.05 / 3)))


def test_drift_checks_two_sided_and_less() -> None:
    est, se, base, b_se = _cells_inputs()
    both = prevalence_drift_checks(CELLS, est, se, base, b_se, alternative="two-sided")
    assert [r.outcome for r in both] == ["breach", "breach", "pass", "skipped"]
    assert [r.details["direction"] for r in both[:3]] == ["rise", "fall", "none"]
    for r in both[:3]:
        assert (r.outcome == "breach") == (abs(r.statistic) >= r.threshold)
    less = prevalence_drift_checks(CELLS, est, se, base, b_se, alternative="less")
    assert [r.outcome for r in less] == ["pass", "breach", "pass", "skipped"]
    for r in less[:3]:
        assert (r.outcome == "breach") == (r.statistic <= r.threshold)


def test_drift_checks_skip_reasons_and_dataclass_is_frozen() -> None:
    est, se, base, b_se = _cells_inputs()
    est[3] = 0.01
    base[2, :] = np.nan
    se[1] = 0.0
    b_se[1] = 0.0
    rows = prevalence_drift_checks(CELLS, est, se, base, b_se, min_baseline_days=3)
    assert rows[2].outcome == "skipped" and "fewer than 3" in rows[2].details["reason"]
    assert rows[1].outcome == "skipped" and "zero variance" in rows[1].details["reason"]
    assert rows[0].details["n_tests"] == 2
    # With "moment" the baseline's day-to-day spread gives cell 1 a positive variance.
    moment = prevalence_drift_checks(CELLS, est, se, base, b_se, between_day_variance="moment")
    assert moment[1].outcome != "skipped"
    assert moment[1].details["between_day_variance"] > 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].outcome = "pass"  # type: ignore[misc]


def test_drift_checks_all_skipped() -> None:
    nan4 = np.full(4, np.nan)
    rows = prevalence_drift_checks(CELLS, nan4, nan4, np.ones((4, 2)), np.ones((4, 2)))
    assert all(r.outcome == "skipped" for r in rows)
    assert math.isnan(rows[0].threshold) and rows[0].details["n_tests"] == 0


@pytest.mark.parametrize(
    ("cells", "est", "match"),
    [
        ([("a", "x"), ("a", "x")], [0.1, 0.1], "cells: expected distinct"),
        ([("a", "")], [0.1], "cells: expected .policy, surface. pairs"),
        ("ax", [0.1], "cells: expected a sequence"),
        ([("a", "x")], [0.1, 0.2], r"estimates: expected shape \(1,\)"),
    ],
)
def test_drift_checks_validation(cells: object, est: list[float], match: str) -> None:
    n = len(est)
    with pytest.raises(ValueError, match=match):
        prevalence_drift_checks(
            cells,  # type: ignore[arg-type]
            est,
            [0.01] * n,
            np.full((n, 3), 0.1),
            np.full((n, 3), 0.01),
        )
    one = ([("a", "x")], [0.1], [0.1], [[0.1]], [[0.1]])
    with pytest.raises(ValueError, match="alternative: expected one of"):
        prevalence_drift_checks(*one, alternative="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"q: expected a number in \(0.0, 1.0\)"):
        prevalence_drift_checks(*one, q=1.5)
    with pytest.raises(ValueError, match=r"std_errors: expected shape \(1,\)"):
        prevalence_drift_checks([("a", "x")], [0.1], [0.1, 0.2], [[0.1]], [[0.1]])
    with pytest.raises(ValueError, match=r"baseline_estimates: expected shape \(n_cells, k\)"):
        prevalence_drift_checks([("a", "x")], [0.1], [0.1], [0.1], [0.1])


# Simulated panel: 16 cells (4 policies x 4 surfaces) with prevalences from 0.2% to 2%, daily
# estimates normal around the truth with a known relative standard error (SE / prevalence).
N_CELLS, N_DAYS, K_BASE, REL_SE = 16, 30, 7, 0.15
SIM_CELLS = [(f"policy{i // 4}", f"surface{i % 4}") for i in range(N_CELLS)]
SIM_PREV = np.geomspace(0.002, 0.02, N_CELLS)


def _panel(
    rng: np.random.Generator, n_rep: int, prevalence: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Estimates and SEs of shape (n_rep, n_days, n_cells) for true prevalences (broadcast)."""
    se = REL_SE * SIM_PREV * np.sqrt(prevalence / SIM_PREV)  # SE ~ sqrt(prevalence), fixed n
    est = prevalence + se * rng.standard_normal((n_rep, K_BASE + N_DAYS, N_CELLS))
    return est, np.broadcast_to(se, est.shape).copy()


def _windows(est: FloatArray, se: FloatArray) -> tuple[FloatArray, ...]:
    """Today (days K_BASE..) and its trailing K_BASE-day baseline: (rep, day, cell[, k])."""
    b_est = np.lib.stride_tricks.sliding_window_view(est[:, :-1], K_BASE, axis=1)
    b_se = np.lib.stride_tricks.sliding_window_view(se[:, :-1], K_BASE, axis=1)
    return est[:, K_BASE:], se[:, K_BASE:], b_est, b_se


def test_no_change_panel_false_alarms_at_most_nominal() -> None:
    """30 days x 16 cells with no change: BH at q = 0.05 flags few days."""
    rng = np.random.default_rng(2024)
    est, se = _panel(rng, 1, np.broadcast_to(SIM_PREV, (K_BASE + N_DAYS, N_CELLS)))
    today, today_se, b_est, b_se = _windows(est, se)
    flagged_days = 0
    for d in range(N_DAYS):
        rows = prevalence_drift_checks(
            SIM_CELLS, today[0, d], today_se[0, d], b_est[0, d], b_se[0, d]
        )
        assert len(rows) == N_CELLS and all(r.outcome != "skipped" for r in rows)
        flagged_days += any(r.outcome == "breach" for r in rows)
    # Under the global null P(day flagged) = q m0 / m = 0.05 exactly (independent cells), so the
    # count is at most the 99.9% quantile of Binomial(30, 0.05).
    assert flagged_days <= stats.binom.ppf(0.999, N_DAYS, 0.05)

    # The same calibration precisely: 400 replicate panels, vectorised.
    n_rep = 400
    est, se = _panel(rng, n_rep, np.broadcast_to(SIM_PREV, (K_BASE + N_DAYS, N_CELLS)))
    today, today_se, b_est, b_se = _windows(est, se)
    for mode, exact in (("none", True), ("moment", False)):
        res = baseline_change_test(today, today_se, b_est, b_se, between_day_variance=mode)  # type: ignore[arg-type]
        bh = benjamini_hochberg(res.p_value_greater, 0.05, axis=-1)
        day_flagged = bh.n_rejected > 0  # (rep, day)
        rate = float(day_flagged.mean())
        # Days of a replicate share baseline days: SE from replicate means.
        mc_se = float(day_flagged.mean(axis=1).std(ddof=1)) / math.sqrt(n_rep)
        if exact:
            within(rate, 0.05, mc_se)
        else:  # tau^2 = 0 truly: the moment plug-in only adds variance -> conservative
            assert rate <= 0.05 + 4 * mc_se


def test_true_doubling_is_detected_with_high_probability() -> None:
    """One cell of 16 doubles its prevalence; relative SE 15% (SE grows by sqrt(2))."""
    rng = np.random.default_rng(77)
    n_rep = 4000
    prev = np.broadcast_to(SIM_PREV, (K_BASE + N_DAYS, N_CELLS)).copy()
    est, se = _panel(rng, n_rep, prev)
    # Only the last day matters here: replace cell 0 of the last day by a doubled prevalence.
    doubled_se = REL_SE * SIM_PREV[0] * math.sqrt(2.0)
    est[:, -1, 0] = 2 * SIM_PREV[0] + doubled_se * rng.standard_normal(n_rep)
    se[:, -1, 0] = doubled_se
    today, today_se, b_est, b_se = _windows(est, se)
    res = baseline_change_test(today[:, -1], today_se[:, -1], b_est[:, -1], b_se[:, -1])
    bh = benjamini_hochberg(res.p_value_greater, 0.05, axis=-1)
    power = float(bh.rejected[:, 0].mean())
    # z's mean is 1 / (0.15 sqrt(2 + 1/7)) = 4.55; BH rejects at least whenever Bonferroni
    # (p <= q / 16, z >= 2.73) does, so power >= Phi(4.55 - 2.73) = 0.966.
    shift = 1.0 / (REL_SE * math.sqrt(2.0 + 1.0 / K_BASE))
    lower_bound = float(stats.norm.sf(stats.norm.isf(0.05 / N_CELLS) - shift))
    mc_se = math.sqrt(power * (1 - power) / n_rep)
    assert lower_bound == pytest.approx(0.966, abs=1e-3)
    assert power >= lower_bound - 4 * mc_se
    assert power >= 0.95
    # False alarms in the 15 unchanged cells stay rare.
    assert float(bh.rejected[:, 1:].mean()) < 0.01
