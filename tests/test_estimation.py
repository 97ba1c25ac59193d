"""Tests of tsmetrics.estimation (Hansen-Hurwitz prevalence under PPS with replacement)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from strategies import CONFIDENCES, Draws, pps_draws

from tsmetrics.estimation import (
    CI_METHODS,
    PrevalenceEstimate,
    clopper_pearson_kg_interval,
    effective_sample_size,
    hansen_hurwitz_prevalence,
    hansen_hurwitz_ratio_prevalence,
    wald_interval,
    wilson_kg_interval,
)

Z975 = float(stats.norm.isf(0.025))

# --------------------------------------------------------------------------------------------
# Hand-computed examples
# --------------------------------------------------------------------------------------------

# Four draws; X = 200 known total impressions.
HAND_Y = [10.0, 0.0, 60.0, 0.0]
HAND_X = [10.0, 50.0, 60.0, 40.0]
HAND_P = [0.1, 0.2, 0.3, 0.05]
HAND_TOTAL = 200.0


def test_hansen_hurwitz_hand_computed_example() -> None:
    # z_k = y_k / p_k = [10/0.1, 0/0.2, 60/0.3, 0/0.05] = [100, 0, 200, 0]
    # Y_hat = (100 + 0 + 200 + 0) / 4 = 75;  P_hat = 75 / 200 = 0.375
    # z_k - Y_hat = [25, -75, 125, -75]; squares = 625 + 5625 + 15625 + 5625 = 27500
    # v(Y_hat) = 27500 / (4 * 3) = 2291.666...;  v(P_hat) = 2291.666... / 200^2 = 0.05729166...
    # SE(P_hat) = sqrt(0.05729166...) = 0.2393567...
    # n_eff = 0.375 * 0.625 / 0.05729166... = 112500 / 27500 = 4.0909...
    # deff = 4 / n_eff = 0.9777...
    res = hansen_hurwitz_prevalence(HAND_Y, HAND_P, HAND_TOTAL, ci_method="wald")
    assert res.estimate == pytest.approx(0.375, rel=1e-12)
    assert res.std_error == pytest.approx(math.sqrt(27500 / 12) / 200, rel=1e-12)
    assert res.std_error == pytest.approx(0.2393567, abs=1e-7)
    assert res.effective_sample_size == pytest.approx(112500 / 27500, rel=1e-12)
    assert res.design_effect == pytest.approx(4 * 27500 / 112500, rel=1e-12)
    assert res.n_draws == 4
    assert res.n_positive_draws == 2
    assert res.n_distinct_units is None
    # Wald: 0.375 -/+ 1.959964 * 0.2393567 = [-0.0941, 0.8441] -> clipped lower 0
    assert res.ci_lower == 0.0
    assert res.ci_upper == pytest.approx(0.375 + Z975 * 0.2393567, abs=1e-6)


def test_wilson_kg_hand_computed_example() -> None:
    # m = n_eff = 4.0909..., z^2 = 3.841459, p = 0.375:
    # centre = (0.375 + 3.841459 / 8.181818) / (1 + 3.841459 / 4.090909) = 0.844512 / 1.939024
    #        = 0.435535
    # half   = 1.959964 / 1.939024 * sqrt(0.234375 / 4.090909 + 3.841459 / (4 * 4.090909^2))
    #        = 1.010799 * sqrt(0.057292 + 0.057384) = 0.342295
    res = hansen_hurwitz_prevalence(HAND_Y, HAND_P, HAND_TOTAL, ci_method="wilson_kg")
    assert res.ci_lower == pytest.approx(0.435535 - 0.342295, abs=2e-6)
    assert res.ci_upper == pytest.approx(0.435535 + 0.342295, abs=2e-6)
    assert res.ci_method == "wilson_kg"
    assert res.confidence == 0.95


def test_ratio_hand_computed_example() -> None:
    # y/p = [100, 0, 200, 0] -> Y_hat = 75;  x/p = [100, 250, 200, 800] -> X_hat = 337.5
    # R_hat = 75 / 337.5 = 2/9
    # e_k = (y_k - R x_k) / p_k = [100 - 200/9, -500/9, 200 - 400/9, -1600/9]
    #     = [700, -500, 1400, -1600] / 9   (sum 0)
    # sum e_k^2 = (490000 + 250000 + 1960000 + 2560000) / 81 = 5260000 / 81
    # v(R_hat) = 5260000 / 81 / (4 * 3 * 337.5^2) = 5260000 / 110716875 = 0.0475081...
    res = hansen_hurwitz_ratio_prevalence(HAND_Y, HAND_X, HAND_P)
    assert res.estimate == pytest.approx(2 / 9, rel=1e-12)
    assert res.std_error == pytest.approx(math.sqrt(5260000 / 110716875), rel=1e-12)
    assert res.n_positive_draws == 2


# --------------------------------------------------------------------------------------------
# Equivalences with textbook forms
# --------------------------------------------------------------------------------------------


def _textbook_hh(y: list[float], p: list[float], total: float) -> tuple[float, float]:
    """Cochran (1977, Section 9A) in the computing form sum z^2 - n Y_hat^2, plain loops."""
    n = len(y)
    z = [yk / pk for yk, pk in zip(y, p, strict=True)]
    y_hat = sum(z) / n
    v = (sum(zk * zk for zk in z) - n * y_hat * y_hat) / (n * (n - 1))
    return y_hat / total, math.sqrt(max(v, 0.0)) / total


def test_matches_textbook_formula_on_random_data() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(2, 200))
        x = rng.integers(1, 10_000, n).astype(float)
        y = np.where(rng.random(n) < 0.3, x, 0.0)
        p = rng.uniform(1e-4, 1e-2, n)
        total = float(x.sum() * 50)
        res = hansen_hurwitz_prevalence(y, p, total)
        est, se = _textbook_hh(y.tolist(), p.tolist(), total)
        assert res.estimate == pytest.approx(est, rel=1e-10)
        assert res.std_error == pytest.approx(se, rel=1e-8)


def test_srs_with_replacement_reduces_to_sample_mean() -> None:
    # p_k = 1/N, impressions 1, X = N: z_k = N y_k, so P_hat = mean(y) and
    # v(P_hat) = N^2 s^2 / n / N^2 = s^2 / n, i.e. SE = s / sqrt(n) with s the ddof=1 std.
    rng = np.random.default_rng(2)
    big_n, n = 5_000, 300
    population = (rng.random(big_n) < 0.07).astype(float)
    draws = rng.integers(0, big_n, n)
    y = population[draws]
    res = hansen_hurwitz_prevalence(y, np.full(n, 1 / big_n), float(big_n))
    assert res.estimate == pytest.approx(y.mean(), rel=1e-12)
    assert res.std_error == pytest.approx(y.std(ddof=1) / math.sqrt(n), rel=1e-10)
    # For 0/1 data s^2 = n/(n-1) p(1-p), so n_eff = n - 1 and the design effect is n/(n-1).
    assert res.effective_sample_size == pytest.approx(n - 1, rel=1e-10)
    assert res.design_effect == pytest.approx(n / (n - 1), rel=1e-10)


def test_ratio_equals_hh_when_probabilities_proportional_to_impressions() -> None:
    # p_i = x_i / X makes every x_k / p_k = X, so X_hat = X and e_k = z_k - Y_hat:
    # the ratio estimator and its variance coincide with the HH estimator with X known.
    rng = np.random.default_rng(3)
    x_pop = rng.integers(1, 1000, 500).astype(float)
    y_pop = np.where(rng.random(500) < 0.1, x_pop, 0.0)
    total = float(x_pop.sum())
    draws = rng.integers(0, 500, 80)
    p = x_pop[draws] / total
    hh = hansen_hurwitz_prevalence(y_pop[draws], p, total)
    ratio = hansen_hurwitz_ratio_prevalence(y_pop[draws], x_pop[draws], p)
    assert ratio.estimate == pytest.approx(hh.estimate, rel=1e-10)
    assert ratio.std_error == pytest.approx(hh.std_error, rel=1e-8)


def test_ratio_variance_matches_delta_method_with_sample_covariances() -> None:
    # Delta method for R = Y/X with HH means of a = y/p and b = x/p:
    # v(R) = (s_aa - 2 R s_ab + R^2 s_bb) / (n X_hat^2), (co)variances with ddof = 1.
    rng = np.random.default_rng(4)
    n = 150
    x = rng.integers(1, 5000, n).astype(float)
    y = np.where(rng.random(n) < 0.2, x, 0.0)
    p = rng.uniform(1e-5, 1e-3, n)
    a, b = y / p, x / p
    r = a.mean() / b.mean()
    cov = np.cov(a, b, ddof=1)
    v = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * b.mean() ** 2)
    res = hansen_hurwitz_ratio_prevalence(y, x, p)
    assert res.estimate == pytest.approx(r, rel=1e-12)
    assert res.std_error == pytest.approx(math.sqrt(v), rel=1e-8)


@pytest.mark.parametrize("n", [2, 3])
def test_design_unbiasedness_by_full_enumeration(n: int) -> None:
    # Tiny population; enumerate all N^n ordered samples with probability prod p_{i_k}.
    # HH theory: E[P_hat] = P and E[v(P_hat)] = V(P_hat) = sum_i p_i (y_i/p_i - Y)^2 / (n X^2).
    x = np.array([5.0, 40.0, 12.0, 80.0])
    y = np.array([5.0, 0.0, 12.0, 0.0])
    size = x * (0.1 + np.array([0.9, 0.1, 0.5, 0.05]))
    p = size / size.sum()
    total, big_y = float(x.sum()), float(y.sum())
    expected_est = expected_var = second_moment = 0.0
    for sample in itertools.product(range(len(x)), repeat=n):
        idx = list(sample)
        prob = float(np.prod(p[idx]))
        res = hansen_hurwitz_prevalence(y[idx], p[idx], total, ci_method="wald")
        expected_est += prob * res.estimate
        expected_var += prob * res.std_error**2
        second_moment += prob * (res.estimate - big_y / total) ** 2
    true_var = float(np.sum(p * (y / p - big_y) ** 2)) / (n * total**2)
    assert expected_est == pytest.approx(big_y / total, rel=1e-12)
    assert second_moment == pytest.approx(true_var, rel=1e-10)
    assert expected_var == pytest.approx(true_var, rel=1e-10)


# --------------------------------------------------------------------------------------------
# Confidence intervals
# --------------------------------------------------------------------------------------------

# Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion: comparison of
# seven methods. Statistics in Medicine 17, 857-872, Table II, methods 3 (Wilson score) and 5
# (Clopper-Pearson), published to 4 decimals. Re-computed to full precision with statsmodels
# 0.15.0, statsmodels.stats.proportion.proportion_confint(x, n, 0.05, "wilson" / "beta"), in a
# throwaway virtualenv (not a project dependency).
NEWCOMBE_1998 = [
    # x, n, wilson (lower, upper), clopper-pearson (lower, upper)
    (81, 263, (0.2552885198782742, 0.36620957698280004), (0.25273674558527126, 0.3676219226013514)),
    (15, 148, (0.06238639953073628, 0.16048724172330803), (0.05784401008344857, 0.161650490349479)),
    (0, 20, (0.0, 0.1611251580528194), (0.0, 0.16843347098308534)),
    (
        1,
        29,
        (0.006113214292762667, 0.17175521879320294),
        (0.000872646883579922, 0.17764429548872293),
    ),
]


@pytest.mark.parametrize(("x", "n", "wilson", "cp"), NEWCOMBE_1998)
def test_kg_intervals_reduce_to_classical_intervals_with_binomial_variance(
    x: int, n: int, wilson: tuple[float, float], cp: tuple[float, float]
) -> None:
    # With v = p(1-p)/n the effective sample size is n, so KG Wilson/CP = classical Wilson/CP.
    p = x / n
    v = p * (1 - p) / n
    assert wilson_kg_interval(p, v, n, 0.95) == pytest.approx(wilson, abs=1e-10)
    assert clopper_pearson_kg_interval(p, v, n, 0.95) == pytest.approx(cp, abs=1e-9)
    published_wilson = (round(wilson[0], 4), round(wilson[1], 4))
    assert wilson_kg_interval(p, v, n, 0.95) == pytest.approx(published_wilson, abs=5e-5)


def test_zero_violations_give_positive_upper_bound() -> None:
    n = 500
    y = np.zeros(n)
    p = np.full(n, 1e-3)
    wilson = hansen_hurwitz_prevalence(y, p, 1e6, ci_method="wilson_kg")
    assert wilson.estimate == 0.0
    assert wilson.std_error == 0.0
    assert wilson.n_positive_draws == 0
    assert wilson.effective_sample_size == n
    assert wilson.design_effect is None
    assert wilson.ci_lower == 0.0
    # Wilson with p = 0 and m = n: upper = z^2 / (n + z^2)
    assert wilson.ci_upper == pytest.approx(Z975**2 / (n + Z975**2), rel=1e-12)
    assert wilson.ci_upper > 0.0
    cp = hansen_hurwitz_prevalence(y, p, 1e6, ci_method="clopper_pearson_kg")
    # Clopper-Pearson with x = 0: upper = 1 - (alpha/2)^(1/n)
    assert cp.ci_lower == 0.0
    assert cp.ci_upper == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9)
    # Wald is degenerate there (documented): zero-width interval.
    wald = hansen_hurwitz_prevalence(y, p, 1e6, ci_method="wald")
    assert (wald.ci_lower, wald.ci_upper) == (0.0, 0.0)


def test_all_violating_with_equal_weights_gives_interval_touching_one() -> None:
    n = 50
    res = hansen_hurwitz_prevalence(np.ones(n), np.full(n, 0.01), 100.0)
    assert res.estimate == 1.0
    assert res.std_error == 0.0
    assert res.ci_upper == 1.0
    assert res.ci_lower == pytest.approx(n / (n + Z975**2), rel=1e-12)


def test_capped_variants_are_wider_when_design_effect_below_one() -> None:
    # deff = 0.25: n_eff = 4n. Uncapped Wilson uses 4n, the capped variant n.
    n, p = 1000, 0.02
    v = p * (1 - p) / (4 * n)
    lo, hi = CI_METHODS["wilson_kg"](p, v, n, 0.95)
    lo_c, hi_c = CI_METHODS["wilson_kg_capped"](p, v, n, 0.95)
    assert lo_c < lo < p < hi < hi_c
    assert (lo, hi) == pytest.approx(wilson_kg_interval(p, p * (1 - p) / (4 * n), 4 * n, 0.95))
    assert (lo_c, hi_c) == pytest.approx(wilson_kg_interval(p, p * (1 - p) / n, n, 0.95))
    cp_lo, cp_hi = CI_METHODS["clopper_pearson_kg"](p, v, n, 0.95)
    cpc_lo, cpc_hi = CI_METHODS["clopper_pearson_kg_capped"](p, v, n, 0.95)
    assert cpc_lo < cp_lo < p < cp_hi < cpc_hi
    # With deff >= 1 the cap does not bind.
    v_big = 2 * p * (1 - p) / n
    assert CI_METHODS["wilson_kg"](p, v_big, n, 0.95) == CI_METHODS["wilson_kg_capped"](
        p, v_big, n, 0.95
    )


def test_effective_sample_size_conventions() -> None:
    assert effective_sample_size(0.1, 0.09 / 50, 100) == pytest.approx(50)
    assert effective_sample_size(0.0, 0.0, 100) == 100
    assert effective_sample_size(0.3, 0.0, 100) == 100
    assert effective_sample_size(1.4, 0.5, 100) == 100  # clipped P = 1
    assert effective_sample_size(0.1, 0.09 / 500, 100) == pytest.approx(500)  # not capped


def test_wald_interval_formula() -> None:
    lo, hi = wald_interval(0.3, 0.01, 10, 0.9)
    z = float(stats.norm.isf(0.05))
    assert (lo, hi) == pytest.approx((0.3 - 0.1 * z, 0.3 + 0.1 * z), rel=1e-12)


def test_registry_contents_and_read_only() -> None:
    assert set(CI_METHODS) == {
        "wald",
        "wilson_kg",
        "clopper_pearson_kg",
        "wilson_kg_capped",
        "clopper_pearson_kg_capped",
        "logit",
        "beta_kg",
    }
    with pytest.raises(TypeError):
        CI_METHODS["other"] = wald_interval  # type: ignore[index]


def test_confidence_level_changes_width() -> None:
    narrow = hansen_hurwitz_prevalence(HAND_Y, HAND_P, HAND_TOTAL, confidence=0.8)
    wide = hansen_hurwitz_prevalence(HAND_Y, HAND_P, HAND_TOTAL, confidence=0.99)
    assert wide.ci_lower < narrow.ci_lower < narrow.ci_upper < wide.ci_upper
    assert narrow.confidence == 0.8


def test_result_is_frozen() -> None:
    res = hansen_hurwitz_prevalence(HAND_Y, HAND_P, HAND_TOTAL)
    assert isinstance(res, PrevalenceEstimate)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.estimate = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# unit_ids
# --------------------------------------------------------------------------------------------


def test_unit_ids_count_distinct_units() -> None:
    res = hansen_hurwitz_prevalence(
        [10.0, 10.0, 0.0, 5.0], [0.1, 0.1, 0.2, 0.05], 100.0, unit_ids=["a", "a", "b", "c"]
    )
    assert res.n_distinct_units == 3
    assert res.n_draws == 4


def test_unit_ids_inconsistent_values_rejected() -> None:
    with pytest.raises(ValueError, match="selection_prob"):
        hansen_hurwitz_prevalence([10.0, 10.0, 0.0], [0.1, 0.2, 0.2], 100.0, unit_ids=[1, 1, 2])
    with pytest.raises(ValueError, match="impressions"):
        hansen_hurwitz_ratio_prevalence(
            [0.0, 0.0, 0.0], [10.0, 11.0, 3.0], [0.1, 0.1, 0.2], unit_ids=[1, 1, 2]
        )
    with pytest.raises(ValueError, match="unit_ids"):
        hansen_hurwitz_prevalence([1.0, 0.0], [0.1, 0.2], 100.0, unit_ids=[1])


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"violating_impressions": [1.0, 2.0, 3.0]}, "equal length"),
        ({"violating_impressions": [1.0], "selection_prob": [0.1]}, "at least 2"),
        ({"selection_prob": [0.0, 0.5]}, "selection_prob"),
        ({"selection_prob": [1.5, 0.5]}, "selection_prob"),
        ({"selection_prob": [-0.1, 0.5]}, "selection_prob"),
        ({"violating_impressions": [-1.0, 2.0]}, "violating_impressions"),
        ({"violating_impressions": [np.nan, 2.0]}, "finite"),
        ({"violating_impressions": [[1.0, 2.0]]}, "1-d"),
        ({"violating_impressions": ["a", "b"]}, "violating_impressions"),
        ({"total_impressions": 0.0}, "total_impressions"),
        ({"total_impressions": -5.0}, "total_impressions"),
        ({"total_impressions": math.inf}, "total_impressions"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": math.nan}, "confidence"),
        ({"ci_method": "bootstrap"}, "ci_method"),
        ({"violating_impressions": [1e300, 0.0], "selection_prob": [1e-300, 0.5]}, "finite"),
    ],
)
def test_hansen_hurwitz_validation(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "violating_impressions": [1.0, 2.0],
        "selection_prob": [0.1, 0.2],
        "total_impressions": 100.0,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        hansen_hurwitz_prevalence(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"impressions": [1.0, 2.0, 3.0]}, "equal length"),
        ({"impressions": [0.5, 2.0]}, "<= impressions"),
        ({"impressions": [-1.0, 2.0]}, "impressions"),
        ({"violating_impressions": [0.0, 0.0], "impressions": [0.0, 0.0]}, "impressions > 0"),
        ({"selection_prob": [0.1, 0.0]}, "selection_prob"),
        ({"impressions": [1e300, 2.0], "selection_prob": [1e-300, 0.2]}, "finite"),
        ({"ci_method": "nope"}, "ci_method"),
    ],
)
def test_ratio_validation(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "violating_impressions": [1.0, 0.0],
        "impressions": [1.0, 2.0],
        "selection_prob": [0.1, 0.2],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        hansen_hurwitz_ratio_prevalence(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args",
    [(-0.1, 0.01, 10, 0.95), (0.1, -0.01, 10, 0.95), (0.1, 0.01, 0, 0.95), (0.1, 0.01, 10, 1.2)],
)
def test_interval_validation(args: tuple[float, float, int, float]) -> None:
    for interval in CI_METHODS.values():
        with pytest.raises(ValueError):
            interval(*args)


# --------------------------------------------------------------------------------------------
# Simulation with known truth
# --------------------------------------------------------------------------------------------

N_UNITS, N_DRAWS, N_REPS, FLOOR = 20_000, 2_000, 1_000, 0.05


@dataclass(frozen=True)
class Population:
    impressions: npt.NDArray[np.float64]
    violating: npt.NDArray[np.float64]
    prob: npt.NDArray[np.float64]
    prevalence: float


def _population(rng: np.random.Generator, target: float) -> Population:
    """Pareto impressions; violators fill ~``target`` of impressions; informative risk scores."""
    impressions = np.ceil(10.0 * (rng.pareto(1.5, N_UNITS) + 1.0))
    order = rng.permutation(N_UNITS)
    cum = np.cumsum(impressions[order])
    is_violating = np.zeros(N_UNITS, dtype=bool)
    is_violating[order[cum <= target * impressions.sum()]] = True
    # Enforcement model: violators score high, others low (informative but imperfect).
    risk = np.where(is_violating, rng.beta(5.0, 2.0, N_UNITS), rng.beta(1.0, 8.0, N_UNITS))
    size = impressions * (FLOOR + risk)
    violating = np.where(is_violating, impressions, 0.0)
    return Population(
        impressions=impressions,
        violating=violating,
        prob=size / size.sum(),
        prevalence=float(violating.sum() / impressions.sum()),
    )


@dataclass(frozen=True)
class SimulationSummary:
    truth: float
    estimates: npt.NDArray[np.float64]
    std_errors: npt.NDArray[np.float64]
    coverage: dict[str, float]
    design_effect: float

    @property
    def bias(self) -> float:
        return float(self.estimates.mean() - self.truth)

    @property
    def simulation_se(self) -> float:
        return float(self.estimates.std(ddof=1) / math.sqrt(len(self.estimates)))


def _simulate(pop: Population, draws: npt.NDArray[np.intp], ratio: bool) -> SimulationSummary:
    total = float(pop.impressions.sum())
    estimates, std_errors, deffs = [], [], []
    covered: dict[str, int] = dict.fromkeys(CI_METHODS, 0)
    for d in draws:
        if ratio:
            res = hansen_hurwitz_ratio_prevalence(pop.violating[d], pop.impressions[d], pop.prob[d])
        else:
            res = hansen_hurwitz_prevalence(pop.violating[d], pop.prob[d], total)
        estimates.append(res.estimate)
        std_errors.append(res.std_error)
        deffs.append(res.design_effect if res.design_effect is not None else math.nan)
        for name, interval in CI_METHODS.items():
            lo, hi = interval(res.estimate, res.std_error**2, res.n_draws, 0.95)
            covered[name] += lo <= pop.prevalence <= hi
    return SimulationSummary(
        truth=pop.prevalence,
        estimates=np.array(estimates),
        std_errors=np.array(std_errors),
        coverage={name: count / len(draws) for name, count in covered.items()},
        design_effect=float(np.nanmean(deffs)),
    )


@pytest.fixture(scope="module")
def simulations() -> dict[tuple[float, bool], SimulationSummary]:
    rng = np.random.default_rng(20261120)
    out: dict[tuple[float, bool], SimulationSummary] = {}
    for target in (0.02, 0.005):
        pop = _population(rng, target)
        draws = rng.choice(N_UNITS, size=(N_REPS, N_DRAWS), p=pop.prob)
        for ratio in (False, True):
            out[(target, ratio)] = _simulate(pop, draws, ratio)
    return out


SIM_CASES = [(0.02, False), (0.005, False), (0.02, True), (0.005, True)]


@pytest.mark.parametrize(("target", "ratio"), SIM_CASES)
def test_simulation_truth_is_near_target(
    simulations: dict[tuple[float, bool], SimulationSummary], target: float, ratio: bool
) -> None:
    assert simulations[(target, ratio)].truth == pytest.approx(target, rel=0.1)


@pytest.mark.parametrize(("target", "ratio"), SIM_CASES)
def test_simulation_bias_within_three_simulation_se(
    simulations: dict[tuple[float, bool], SimulationSummary], target: float, ratio: bool
) -> None:
    s = simulations[(target, ratio)]
    assert abs(s.bias) < 3 * s.simulation_se, (s.bias, s.simulation_se)


@pytest.mark.parametrize(("target", "ratio"), SIM_CASES)
def test_simulation_standard_error_is_calibrated(
    simulations: dict[tuple[float, bool], SimulationSummary], target: float, ratio: bool
) -> None:
    s = simulations[(target, ratio)]
    rms_se = float(np.sqrt(np.mean(s.std_errors**2)))
    assert rms_se == pytest.approx(float(s.estimates.std(ddof=1)), rel=0.10)


@pytest.mark.parametrize(("target", "ratio"), SIM_CASES)
@pytest.mark.parametrize("method", ["wilson_kg", "clopper_pearson_kg", "wald"])
def test_simulation_coverage(
    simulations: dict[tuple[float, bool], SimulationSummary],
    target: float,
    ratio: bool,
    method: str,
) -> None:
    coverage = simulations[(target, ratio)].coverage[method]
    assert 0.93 <= coverage <= 0.975, coverage


@pytest.mark.parametrize(("target", "ratio"), SIM_CASES)
def test_simulation_capped_intervals_overcover_when_design_effect_below_one(
    simulations: dict[tuple[float, bool], SimulationSummary], target: float, ratio: bool
) -> None:
    # Risk-informed PPS oversamples violators: deff << 1. Capping n_eff at n then inflates the
    # intervals by ~1/sqrt(deff) -- the reason the cap is not the default.
    s = simulations[(target, ratio)]
    assert s.design_effect < 0.5
    assert s.coverage["wilson_kg_capped"] > 0.99
    assert s.coverage["clopper_pearson_kg_capped"] > 0.99


def test_simulation_zero_violations_positive_upper_bound() -> None:
    rng = np.random.default_rng(7)
    pop = _population(rng, 0.0)
    assert pop.prevalence == 0.0
    total = float(pop.impressions.sum())
    for d in rng.choice(N_UNITS, size=(20, N_DRAWS), p=pop.prob):
        res = hansen_hurwitz_prevalence(pop.violating[d], pop.prob[d], total)
        assert res.estimate == 0.0
        assert res.ci_lower == 0.0
        assert 0.0 < res.ci_upper < 0.01


# --------------------------------------------------------------------------------------------
# Properties (hypothesis)
# --------------------------------------------------------------------------------------------

METHODS = st.sampled_from(sorted(CI_METHODS))


@settings(max_examples=200, deadline=None)
@given(data=pps_draws(), perm_seed=st.integers(0, 2**32 - 1), method=METHODS)
def test_estimate_invariant_to_permutation_of_draws(
    data: Draws, perm_seed: int, method: str
) -> None:
    perm = np.random.default_rng(perm_seed).permutation(len(data.selection_prob))
    a = hansen_hurwitz_prevalence(
        data.violating_impressions, data.selection_prob, data.total_impressions, ci_method=method
    )
    b = hansen_hurwitz_prevalence(
        data.violating_impressions[perm],
        data.selection_prob[perm],
        data.total_impressions,
        ci_method=method,
    )
    assert b.estimate == pytest.approx(a.estimate, rel=1e-9, abs=1e-300)
    assert b.std_error == pytest.approx(a.std_error, rel=1e-6, abs=1e-12 * a.estimate)
    assert b.n_positive_draws == a.n_positive_draws


def _check_interval(res: PrevalenceEstimate) -> None:
    assert 0.0 <= res.ci_lower <= res.ci_upper <= 1.0
    if res.estimate <= 1.0:
        assert res.ci_lower <= res.estimate <= res.ci_upper
    else:
        assert res.ci_upper == 1.0
    assert res.std_error >= 0.0
    assert res.effective_sample_size >= 0.0


@settings(max_examples=300, deadline=None)
@given(data=pps_draws(), method=METHODS, confidence=CONFIDENCES)
def test_hh_bounds_and_interval_properties(data: Draws, method: str, confidence: float) -> None:
    res = hansen_hurwitz_prevalence(
        data.violating_impressions,
        data.selection_prob,
        data.total_impressions,
        confidence=confidence,
        ci_method=method,
    )
    z = data.violating_impressions / data.selection_prob
    assert 0.0 <= res.estimate <= float(z.max()) / data.total_impressions * (1 + 1e-12)
    _check_interval(res)
    if res.n_positive_draws == 0:
        assert res.estimate == 0.0
        if method != "wald":
            assert res.ci_upper > 0.0


@settings(max_examples=300, deadline=None)
@given(data=pps_draws(), method=METHODS, confidence=CONFIDENCES)
def test_ratio_bounds_and_interval_properties(data: Draws, method: str, confidence: float) -> None:
    if not np.any(data.impressions > 0):
        data = dataclasses.replace(data, impressions=data.impressions + 1.0)
    res = hansen_hurwitz_ratio_prevalence(
        data.violating_impressions,
        data.impressions,
        data.selection_prob,
        confidence=confidence,
        ci_method=method,
    )
    assert 0.0 <= res.estimate <= 1.0
    _check_interval(res)


@settings(max_examples=300, deadline=None)
@given(
    estimate=st.floats(0.0, 1.0),
    variance=st.floats(0.0, 10.0),
    n_draws=st.integers(1, 10**6),
    confidence=CONFIDENCES,
    method=METHODS,
)
def test_interval_functions_properties(
    estimate: float, variance: float, n_draws: int, confidence: float, method: str
) -> None:
    lo, hi = CI_METHODS[method](estimate, variance, n_draws, confidence)
    assert 0.0 <= lo <= estimate <= hi <= 1.0
