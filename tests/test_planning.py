"""Tests of tsmetrics.planning: labels needed for a relative precision, and budget allocation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tsmetrics.planning import (
    DesignTarget,
    LabelPlan,
    SimpleTarget,
    anticipated_variance,
    design_labels_needed,
    design_relative_half_width,
    labels_needed,
    plan_labels,
    relative_half_width_at,
    sqrt_q_inclusion,
)
from tsmetrics.sampling import (
    horvitz_thompson_prevalence,
    poisson_pps_inclusion,
    poisson_pps_select,
)

FloatArray = npt.NDArray[np.float64]
Z975 = float(stats.norm.isf(0.025))


def _population(seed: int, n_units: int = 20_000) -> tuple[FloatArray, FloatArray]:
    """Impressions (heavy-tailed) and calibrated violation probabilities (rare, skewed)."""
    rng = np.random.default_rng(seed)
    x = np.floor(rng.lognormal(2.0, 1.5, n_units)) + 1.0
    q = rng.beta(0.1, 30.0, n_units)  # mean 0.33%, most units near 0
    return x, q


# --------------------------------------------------------------------------------------------
# Simple route
# --------------------------------------------------------------------------------------------


def test_formula_by_hand() -> None:
    # p = 1%, r = 20%, 95%: n = 1.959964^2 * 0.99 / (0.04 * 0.01) = 3.841459 * 2475 = 9507.61
    assert labels_needed(0.01, 0.2) == pytest.approx(Z975**2 * 0.99 / 0.0004, rel=1e-12)
    assert labels_needed(0.01, 0.2) == pytest.approx(9507.61, abs=0.01)
    # The design effect multiplies n.
    assert labels_needed(0.01, 0.2, design_effect=0.25) == pytest.approx(9507.61 / 4, abs=0.01)


# statsmodels 0.15.0, statsmodels.stats.proportion.samplesize_confint_proportion(
#     proportion=p, half_length=r * p, alpha=1 - confidence)  (normal method:
#     n = p (1 - p) / (half_length / z)^2), run in this repository's .venv; not a dependency.
STATSMODELS_0_15 = [
    # p, r, confidence, n
    (0.0005, 0.2, 0.95, 191976.904564189),
    (0.01, 0.2, 0.95, 9507.610581217965),
    (0.02, 0.1, 0.90, 13257.16292506753),
    (0.001, 0.3, 0.99, 73647.35227133552),
]


@pytest.mark.parametrize(("p", "r", "confidence", "n"), STATSMODELS_0_15)
def test_formula_matches_statsmodels(p: float, r: float, confidence: float, n: float) -> None:
    assert labels_needed(p, r, confidence=confidence) == pytest.approx(n, rel=1e-12)


@pytest.mark.parametrize("p", [1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 2e-2])
def test_about_100_positive_labels_for_20_percent(p: float) -> None:
    # Liu (2019), Unofficial Google Data Science Blog, "Estimating the prevalence of rare
    # events -- theory and practice": "To obtain a relative error of no more than 20%, we need
    # roughly 100 positive labels" (uniform sampling). With deff = 1 the expected positives are
    # n p = z^2 (1 - p) / r^2 = 96.04 (1 - p): 94.1 to 96.0 over 0.01%-2% prevalence.
    positives = labels_needed(p, 0.2) * p
    assert positives == pytest.approx(Z975**2 * (1 - p) / 0.04, rel=1e-12)
    assert 94.0 < positives < 96.1
    assert positives == pytest.approx(100, rel=0.06)


@settings(max_examples=200, deadline=None)
@given(
    p=st.floats(1e-6, 0.999),
    r=st.floats(1e-3, 5.0),
    deff=st.floats(0.01, 20.0),
    confidence=st.floats(0.5, 0.999),
)
def test_formula_inverts_exactly(p: float, r: float, deff: float, confidence: float) -> None:
    n = labels_needed(p, r, design_effect=deff, confidence=confidence)
    back = relative_half_width_at(p, n, design_effect=deff, confidence=confidence)
    assert back == pytest.approx(r, rel=1e-12)
    # More labels -> narrower; a larger design effect -> more labels.
    assert relative_half_width_at(p, 2 * n, design_effect=deff, confidence=confidence) < r
    assert labels_needed(p, r, design_effect=2 * deff, confidence=confidence) > n


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0.0, 0.2), {}, "prevalence"),
        ((1.0, 0.2), {}, "prevalence"),
        ((0.01, 0.0), {}, "relative_half_width"),
        ((0.01, math.inf), {}, "relative_half_width"),
        ((0.01, 0.2), {"design_effect": 0.0}, "design_effect"),
        ((0.01, 0.2), {"confidence": 1.0}, "confidence"),
        ((True, 0.2), {}, "prevalence"),
    ],
)
def test_labels_needed_validation(
    args: tuple[float, float], kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        labels_needed(*args, **kwargs)


def test_relative_half_width_at_edge_cases() -> None:
    assert relative_half_width_at(0.01, 0) == math.inf
    with pytest.raises(ValueError, match="n"):
        relative_half_width_at(0.01, -1)


# --------------------------------------------------------------------------------------------
# Design route
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("floor", [0.0, 0.002, 0.05])
def test_sqrt_q_inclusion_is_the_stated_design(floor: float) -> None:
    x, q = _population(1, 5000)
    n = 400.0
    pi = sqrt_q_inclusion(x, q, n, floor)
    assert pi.sum() == pytest.approx(n, rel=1e-10)
    a = x * np.sqrt(q)
    free = (pi < 1.0) & (a > 0)
    largest_free = int(np.argmax(np.where(free, a, -1.0)))
    c = (pi[largest_free] - floor) / a[largest_free]  # the common c of every non-certain unit
    np.testing.assert_allclose(pi, np.minimum(1.0, c * a + floor), rtol=1e-10, atol=1e-15)
    assert np.any(pi == 1.0)  # the heavy-tailed population has certainty units
    assert np.all(pi[a == 0] == floor)


def test_sqrt_q_inclusion_without_floor_is_poisson_pps_on_x_sqrt_q() -> None:
    x, q = _population(2, 3000)
    pi = sqrt_q_inclusion(x, q, 250.0)
    np.testing.assert_allclose(pi, poisson_pps_inclusion(x * np.sqrt(q), 250.0), rtol=1e-12)


def test_anticipated_variance_by_hand() -> None:
    # x = [10, 20, 70], q = [0.5, 0.1, 0], pi = [0.5, 0.25, 0.1]; X = 100
    # AV = (100 * 0.5 * 0.5 / 0.5 + 400 * 0.1 * 0.75 / 0.25 + 0) / 100^2 = (50 + 120) / 1e4
    av = anticipated_variance([10, 20, 70], [0.5, 0.1, 0.0], [0.5, 0.25, 0.1])
    assert av == pytest.approx(0.017, rel=1e-12)
    assert anticipated_variance([10, 20, 70], [0.5, 0.1, 0.0], [0.5, 0.0, 0.1]) == math.inf


def test_anticipated_variance_is_expected_design_variance_by_enumeration() -> None:
    # Three units, Poisson design: enumerate all 2^3 samples and all 2^3 violation patterns.
    x = np.array([4.0, 10.0, 30.0])
    q = np.array([0.3, 0.1, 0.02])
    pi = np.array([0.9, 0.5, 0.2])
    total = float(x.sum())
    expected_mse = 0.0
    for violates in np.ndindex(2, 2, 2):
        v = np.array(violates, dtype=bool)
        p_model = float(np.prod(np.where(v, q, 1 - q)))
        y = np.where(v, x, 0.0)
        for chosen in np.ndindex(2, 2, 2):
            s = np.array(chosen, dtype=bool)
            p_design = float(np.prod(np.where(s, pi, 1 - pi)))
            estimate = float(np.sum(y[s] / pi[s])) / total
            expected_mse += p_model * p_design * (estimate - y.sum() / total) ** 2
    assert anticipated_variance(x, q, pi) == pytest.approx(expected_mse, rel=1e-12)


def test_design_planner_matches_closed_form_without_capping() -> None:
    # With floor 0 and no certainty unit, pi_i = n a_i / A (a = x sqrt(q), A = sum a), so
    # AV(n) = (A^2 / n - sum x^2 q) / X^2 and z sqrt(AV) / p = r has the closed form
    # n = A^2 / ((r p X / z)^2 + sum x^2 q).
    rng = np.random.default_rng(3)
    x = rng.integers(1, 51, 20_000).astype(float)  # light-tailed: no certainty unit
    q = rng.uniform(0.001, 0.02, 20_000)
    a = x * np.sqrt(q)
    total = x.sum()
    p = float(np.dot(x, q) / total)
    r = 0.3
    closed = float(a.sum() ** 2 / ((r * p * total / Z975) ** 2 + np.sum(x * x * q)))
    assert closed * a.max() / a.sum() < 1  # no capping at the solution: the closed form holds
    n = design_labels_needed(x, q, r)
    assert n == pytest.approx(closed, rel=1e-8)
    assert design_relative_half_width(x, q, n) == pytest.approx(r, rel=1e-8)


@pytest.mark.parametrize("floor", [0.0, 1e-3, 1e-2])
def test_design_planner_inverts(floor: float) -> None:
    x, q = _population(4)
    for r in (0.1, 0.2, 0.5):
        n = design_labels_needed(x, q, r, floor=floor)
        assert design_relative_half_width(x, q, n, floor=floor) <= r
        assert design_relative_half_width(x, q, n, floor=floor) == pytest.approx(r, rel=1e-8)
        # The public inclusion probabilities give the same anticipated variance.
        pi = sqrt_q_inclusion(x, q, n, floor)
        p = float(np.dot(x, q) / x.sum())
        assert Z975 * math.sqrt(anticipated_variance(x, q, pi)) / p == pytest.approx(r, rel=1e-8)


def test_design_planner_edge_cases() -> None:
    x, q = _population(5, 2000)
    # Below N floor the design does not exist.
    assert design_relative_half_width(x, q, 10.0, floor=0.01) == math.inf
    # Beyond every active unit certain the variance is 0.
    assert design_relative_half_width(x, q, 2000.0) == 0.0
    # A floor that alone meets the target returns N floor.
    assert design_labels_needed(x, q, 50.0, floor=0.5) == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="violation_prob"):
        design_labels_needed(x, np.zeros_like(q), 0.2)
    with pytest.raises(ValueError, match="violation_prob"):
        design_labels_needed(x, q + 1.0, 0.2)
    with pytest.raises(ValueError, match="floor"):
        design_labels_needed(x, q, 0.2, floor=1.0)
    with pytest.raises(ValueError, match="expected_n"):
        sqrt_q_inclusion(x, q, 5.0, 0.01)
    with pytest.raises(ValueError, match="shape"):
        anticipated_variance(x, q, np.ones(3))


def test_design_planner_agrees_with_simulation_of_poisson_pps_ht() -> None:
    # Plan n for r = 0.2 on a population with calibrated q, then simulate 400 days: violations
    # B_i ~ Bernoulli(q_i), Poisson PPS selection with the planned pi, HT estimate. The
    # HT estimator is design-unbiased, so E[(P_hat - P)^2] = AV(n): the simulated relative
    # half-width z RMSE / p must match 0.2 within 3 Monte Carlo standard errors of the RMSE
    # (delta method on the mean of squared errors; about 5% here).
    x, q = _population(6)
    total = float(x.sum())
    p_model = float(np.dot(x, q)) / total
    floor = 1e-3
    n = design_labels_needed(x, q, 0.2, floor=floor)
    pi = sqrt_q_inclusion(x, q, n, floor)
    rng = np.random.default_rng(60)
    reps = 400
    errors = np.empty(reps)
    sizes = np.empty(reps)
    for k in range(reps):
        y = np.where(rng.random(len(x)) < q, x, 0.0)
        chosen = poisson_pps_select(pi, rng)
        sizes[k] = len(chosen)
        est = horvitz_thompson_prevalence(y[chosen], pi[chosen], total)
        errors[k] = est.estimate - y.sum() / total
    mse = float(np.mean(errors**2))
    rel_se_rmse = 0.5 * float(np.std(errors**2, ddof=1)) / math.sqrt(reps) / mse
    simulated_r = Z975 * math.sqrt(mse) / p_model
    assert simulated_r == pytest.approx(0.2, rel=3 * rel_se_rmse)
    assert 3 * rel_se_rmse < 0.25  # the check has power
    assert abs(float(sizes.mean()) - n) < 4 * math.sqrt(float(np.sum(pi * (1 - pi))) / reps)
    # The simple route with deff = 1 would need ~20x the labels: the two routes are distinct
    # and the simulation tells them apart (r at that n would be ~0.2 / sqrt(20)).
    assert labels_needed(p_model, 0.2) > 10 * n


# --------------------------------------------------------------------------------------------
# Budget allocation
# --------------------------------------------------------------------------------------------


def test_shared_plan_by_hand() -> None:
    # needs: spam p=1% -> 9507.61 -> 9508; adult p=0.1%, deff 0.5 -> 0.5*3.841459*0.999/(0.04
    # *0.001) = 47970.1 -> 47971; hate p=2%, deff 0.2 -> 0.2*3.841459*0.98/(0.04*0.02) = 941.16
    targets = [
        SimpleTarget("spam", 0.01),
        SimpleTarget("adult", 0.001, design_effect=0.5),
        SimpleTarget("hate", 0.02, design_effect=0.2),
    ]
    plan = plan_labels(targets, 20_000)
    assert isinstance(plan, LabelPlan)
    assert [p.labels_needed for p in plan.policies] == [
        math.ceil(labels_needed(0.01, 0.2)),
        math.ceil(labels_needed(0.001, 0.2, design_effect=0.5)),
        math.ceil(labels_needed(0.02, 0.2, design_effect=0.2)),
    ]
    assert plan.chosen_n == 20_000  # max need 47971 capped by the budget
    assert all(p.chosen_n == 20_000 for p in plan.policies)
    assert plan.missing_target == ("adult",)
    adult = plan.policies[1]
    assert adult.achievable_relative_half_width == pytest.approx(
        relative_half_width_at(0.001, 20_000, design_effect=0.5)
    )
    assert adult.achievable_relative_half_width > 0.2
    assert plan.policies[0].achievable_relative_half_width < 0.2
    assert plan.unallocated == 0
    # A budget above the largest need: n = max need, nobody misses.
    big = plan_labels(targets, 100_000)
    assert big.chosen_n == max(p.labels_needed for p in big.policies)
    assert big.missing_target == ()
    assert big.unallocated == 100_000 - big.chosen_n


def test_per_policy_plan_by_hand() -> None:
    targets = [SimpleTarget("a", 0.01), SimpleTarget("b", 0.02, design_effect=0.2)]
    need_a, need_b = (
        math.ceil(labels_needed(0.01, 0.2)),
        math.ceil(labels_needed(0.02, 0.2, design_effect=0.2)),
    )
    plan = plan_labels(targets, 20_000, shared_sample=False)
    assert [p.chosen_n for p in plan.policies] == [need_a, need_b]
    assert plan.chosen_n == need_a + need_b and plan.missing_target == ()
    tight = plan_labels(targets, 5000, shared_sample=False)
    demand = need_a + need_b
    assert [p.chosen_n for p in tight.policies] == [
        need_a * 5000 // demand,
        need_b * 5000 // demand,
    ]
    assert tight.chosen_n <= 5000
    assert tight.missing_target == ("a", "b")


def test_plan_with_design_targets() -> None:
    x, q = _population(7)
    design = DesignTarget("spam", x, q, floor=1e-3)
    simple = SimpleTarget("adult", 0.005, design_effect=0.3)
    plan = plan_labels([design, simple], 3000, relative_half_width=0.25)
    need = design_labels_needed(x, q, 0.25, floor=1e-3)
    assert plan.policies[0].needed_n == pytest.approx(need, rel=1e-12)
    assert plan.policies[0].prevalence == pytest.approx(float(np.dot(x, q) / x.sum()))
    chosen = plan.chosen_n
    assert plan.policies[0].achievable_relative_half_width == pytest.approx(
        design_relative_half_width(x, q, chosen, floor=1e-3), rel=1e-12
    )
    # A budget below N floor cannot run the design at all.
    tiny = plan_labels([design], 10)
    assert tiny.policies[0].achievable_relative_half_width == math.inf
    assert tiny.missing_target == ("spam",)


@st.composite
def simple_targets(draw: st.DrawFn) -> list[SimpleTarget]:
    k = draw(st.integers(1, 6))
    return [
        SimpleTarget(
            f"policy{i}",
            draw(st.floats(1e-4, 0.05)),
            design_effect=draw(st.floats(0.05, 3.0)),
        )
        for i in range(k)
    ]


@settings(max_examples=150, deadline=None)
@given(
    targets=simple_targets(),
    budgets=st.tuples(st.integers(1, 2_000_000), st.integers(1, 2_000_000)).map(sorted),
    shared=st.booleans(),
    r=st.floats(0.05, 1.0),
)
def test_budget_allocation_invariants(
    targets: list[SimpleTarget], budgets: list[int], shared: bool, r: float
) -> None:
    low, high = budgets
    plan_low = plan_labels(targets, low, relative_half_width=r, shared_sample=shared)
    plan_high = plan_labels(targets, high, relative_half_width=r, shared_sample=shared)
    for plan, budget in ((plan_low, low), (plan_high, high)):
        # Never exceeds the budget, and the totals add up.
        assert plan.chosen_n <= budget
        assert plan.unallocated == budget - plan.chosen_n >= 0
        if shared:
            assert {p.chosen_n for p in plan.policies} == {plan.chosen_n}
            assert plan.chosen_n == min(max(p.labels_needed for p in plan.policies), budget)
        else:
            assert sum(p.chosen_n for p in plan.policies) == plan.chosen_n
            assert all(p.chosen_n <= p.labels_needed for p in plan.policies)
        for p in plan.policies:
            # meets_target <=> the achievable half-width is within the target.
            assert p.meets_target == (p.needed_n <= p.chosen_n)
            if p.meets_target:
                assert p.achievable_relative_half_width <= r * (1 + 1e-12)
            else:
                assert p.achievable_relative_half_width > r * (1 - 1e-12)
        assert set(plan.missing_target) == {p.policy for p in plan.policies if not p.meets_target}
    # Monotone in the budget: more budget never gives a policy fewer labels or less precision.
    for lo_p, hi_p in zip(plan_low.policies, plan_high.policies, strict=True):
        assert lo_p.chosen_n <= hi_p.chosen_n
        assert hi_p.achievable_relative_half_width <= lo_p.achievable_relative_half_width
    assert set(plan_high.missing_target) <= set(plan_low.missing_target)


def test_per_policy_scaling_is_proportional() -> None:
    targets = [SimpleTarget(f"p{i}", 0.001 * (i + 1)) for i in range(4)]
    plan = plan_labels(targets, 10_000, shared_sample=False)
    demand = sum(p.labels_needed for p in plan.policies)
    for p in plan.policies:
        exact = p.labels_needed * 10_000 / demand
        assert exact - 1 < p.chosen_n <= exact
    assert 10_000 - len(targets) < plan.chosen_n <= 10_000


def test_simple_target_from_estimate() -> None:
    t = SimpleTarget.from_estimate("spam", 0.002, 0.3)
    assert t == SimpleTarget("spam", 0.002, 0.3)
    with pytest.raises(ValueError, match="design_effect"):
        SimpleTarget.from_estimate("spam", 0.0, None)
    with pytest.raises(ValueError, match="prevalence"):
        SimpleTarget.from_estimate("spam", 0.0, 0.5)


def test_plan_validation() -> None:
    t = SimpleTarget("a", 0.01)
    with pytest.raises(ValueError, match="at least one"):
        plan_labels([], 100)
    with pytest.raises(ValueError, match="distinct"):
        plan_labels([t, t], 100)
    with pytest.raises(ValueError, match="budget"):
        plan_labels([t], 0)
    with pytest.raises(ValueError, match="budget"):
        plan_labels([t], 10.5)
    with pytest.raises(ValueError, match="relative_half_width"):
        plan_labels([t], 100, relative_half_width=-0.2)
    with pytest.raises(ValueError, match="confidence"):
        plan_labels([t], 100, confidence=95)
    with pytest.raises(ValueError, match="targets"):
        plan_labels([("a", 0.01)], 100)
    with pytest.raises(ValueError, match="design_effect"):
        SimpleTarget("a", 0.01, design_effect=-1)


def test_plan_is_frozen() -> None:
    plan = plan_labels([SimpleTarget("a", 0.01)], 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.chosen_n = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.policies[0].chosen_n = 5
