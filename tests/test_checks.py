"""Tests of tsmetrics.checks (policy limit and day-over-day checks)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tsmetrics.checks import CheckResult, day_over_day_check, limit_check
from tsmetrics.estimation import hansen_hurwitz_prevalence

# --------------------------------------------------------------------------------------------
# limit_check
# --------------------------------------------------------------------------------------------


def test_limit_breach_when_lower_bound_above_limit() -> None:
    res = limit_check("adult", 0.03, 0.021, 0.04, 0.02)
    assert res.outcome == "breach"
    assert res.check_name == "limit"
    assert res.policy == "adult"
    assert res.statistic == 0.021
    assert res.threshold == 0.02
    assert res.p_value is None
    assert res.details["margin"] == pytest.approx(0.001)
    assert res.details["estimate"] == 0.03


def test_limit_pass_when_estimate_above_but_lower_bound_not() -> None:
    res = limit_check("adult", 0.025, 0.015, 0.035, 0.02)
    assert res.outcome == "pass"
    assert res.statistic == 0.015


def test_limit_pass_at_exact_boundary() -> None:
    assert limit_check("adult", 0.03, 0.02, 0.04, 0.02).outcome == "pass"


def test_limit_skipped_on_nan_estimate() -> None:
    res = limit_check("adult", math.nan, math.nan, math.nan, 0.02)
    assert res.outcome == "skipped"
    assert math.isnan(res.statistic)
    assert "reason" in res.details


def test_limit_check_with_prevalence_estimate_fields() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.1).astype(float)
    est = hansen_hurwitz_prevalence(y, np.full(n, 1e-3), 1000.0)
    res = limit_check("spam", est.estimate, est.ci_lower, est.ci_upper, 0.01)
    assert res.outcome == "breach"
    assert res.statistic == est.ci_lower


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", 0.1, 0.05, 0.2, 0.1), "policy"),
        (("p", 0.1, 0.2, 0.05, 0.1), "ci_lower"),
        (("p", 0.1, 0.05, 0.2, -0.1), "limit"),
        (("p", 0.1, 0.05, 0.2, math.nan), "limit"),
        (("p", 0.1, 0.05, math.inf, 0.1), "ci_upper"),
        (("p", "0.1", 0.05, 0.2, 0.1), "estimate"),
        (("p", 0.1, 0.05, 0.2, None), "limit"),
    ],
)
def test_limit_validation(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        limit_check(*args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# day_over_day_check
# --------------------------------------------------------------------------------------------


def test_day_over_day_p_value_against_scipy() -> None:
    res = day_over_day_check("adult", 0.030, 0.002, 0.020, 0.0015, alpha=0.01)
    z = (0.030 - 0.020) / math.sqrt(0.002**2 + 0.0015**2)  # = 0.01 / 0.0025 = 4.0
    assert z == pytest.approx(4.0)
    assert res.statistic == pytest.approx(z, rel=1e-12)
    assert res.p_value == pytest.approx(float(stats.norm.sf(4.0)), rel=1e-12)
    assert res.p_value == pytest.approx(3.167124e-05, rel=1e-6)
    assert res.threshold == pytest.approx(float(stats.norm.ppf(0.99)), rel=1e-12)
    assert res.outcome == "breach"
    assert res.check_name == "day_over_day_rise"
    assert res.details["alpha"] == 0.01


def test_day_over_day_pass_on_small_rise() -> None:
    res = day_over_day_check("adult", 0.021, 0.002, 0.020, 0.002)
    # z = 0.001 / 0.0028284 = 0.3536, p = 0.3618 > 0.01
    assert res.outcome == "pass"
    assert res.p_value == pytest.approx(float(stats.norm.sf(0.001 / math.sqrt(8e-6))), rel=1e-12)


def test_day_over_day_pass_on_drop() -> None:
    res = day_over_day_check("adult", 0.010, 0.001, 0.030, 0.001)
    assert res.outcome == "pass"
    assert res.statistic < 0
    assert res.p_value is not None
    assert res.p_value > 0.99


def test_day_over_day_alpha_controls_decision() -> None:
    # z = 2.0 -> one-sided p = 0.02275
    assert day_over_day_check("p", 0.02, 0.003, 0.01, 0.004, alpha=0.05).outcome == "breach"
    assert day_over_day_check("p", 0.02, 0.003, 0.01, 0.004, alpha=0.01).outcome == "pass"


def test_day_over_day_one_zero_standard_error_is_fine() -> None:
    res = day_over_day_check("p", 0.02, 0.002, 0.0, 0.0)
    assert res.statistic == pytest.approx(10.0)
    assert res.outcome == "breach"


@pytest.mark.parametrize(
    ("prev_estimate", "prev_std_error"), [(None, None), (None, 0.01), (0.02, None)]
)
def test_day_over_day_skipped_without_previous_day(
    prev_estimate: float | None, prev_std_error: float | None
) -> None:
    res = day_over_day_check("p", 0.02, 0.002, prev_estimate, prev_std_error)
    assert res.outcome == "skipped"
    assert res.p_value is None
    assert math.isnan(res.statistic)
    assert res.details["reason"] == "no previous day"


def test_day_over_day_skipped_when_both_standard_errors_zero() -> None:
    res = day_over_day_check("p", 0.0, 0.0, 0.01, 0.0)
    assert res.outcome == "skipped"
    assert res.details["reason"] == "both standard errors are 0"


def test_day_over_day_skipped_on_nan() -> None:
    assert day_over_day_check("p", math.nan, math.nan, 0.01, 0.001).outcome == "skipped"


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("p", 0.02, 0.002, 0.01, 0.001), {"alpha": 0.0}, "alpha"),
        (("p", 0.02, 0.002, 0.01, 0.001), {"alpha": 1.0}, "alpha"),
        (("p", 0.02, -0.002, 0.01, 0.001), {}, "std_error"),
        (("p", 0.02, 0.002, 0.01, -0.001), {}, "prev_std_error"),
        (("p", math.inf, 0.002, 0.01, 0.001), {}, "estimate"),
        ((None, 0.02, 0.002, 0.01, 0.001), {}, "policy"),
    ],
)
def test_day_over_day_validation(
    args: tuple[object, ...], kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        day_over_day_check(*args, **kwargs)  # type: ignore[arg-type]


def test_result_is_frozen() -> None:
    res = limit_check("p", 0.1, 0.05, 0.2, 0.1)
    assert isinstance(res, CheckResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.outcome = "breach"  # type: ignore[misc]


PROPORTION = st.floats(0.0, 1.0)
STD_ERROR = st.floats(0.0, 0.5)


@settings(max_examples=300, deadline=None)
@given(
    est=PROPORTION,
    se=STD_ERROR,
    prev=PROPORTION,
    prev_se=STD_ERROR,
    alpha=st.floats(1e-6, 0.5),
)
def test_day_over_day_decision_consistent_with_z_threshold(
    est: float, se: float, prev: float, prev_se: float, alpha: float
) -> None:
    res = day_over_day_check("p", est, se, prev, prev_se, alpha=alpha)
    if se == 0.0 and prev_se == 0.0:
        assert res.outcome == "skipped"
        return
    assert res.p_value is not None
    assert 0.0 <= res.p_value <= 1.0
    assert res.p_value == pytest.approx(float(stats.norm.sf(res.statistic)), abs=1e-15)
    assert (res.outcome == "breach") == (res.p_value < alpha)
    # Away from the boundary the z-threshold gives the same decision.
    if abs(res.statistic - res.threshold) > 1e-9:
        assert (res.outcome == "breach") == (res.statistic > res.threshold)


@settings(max_examples=300, deadline=None)
@given(
    bounds=st.lists(PROPORTION, min_size=3, max_size=3).map(sorted),
    limit=PROPORTION,
)
def test_limit_decision_property(bounds: list[float], limit: float) -> None:
    lower, est, upper = bounds
    res = limit_check("p", est, lower, upper, limit)
    assert res.outcome == ("breach" if lower > limit else "pass")
    assert res.statistic == lower
    assert res.threshold == limit
