"""Structural tests of :mod:`tsmetrics.check_simulation` on tiny configurations (no database).

The headline numbers live in ``docs/checks_proof.md``; these tests check that the simulation
reproduces the production design, estimator, checks and incident counting, properties that a
wrong reproduction would break.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tsmetrics import check_simulation as cs
from tsmetrics.checks import CheckResult
from tsmetrics.config import RunConfig, load_config
from tsmetrics.simulate import SimulatedDay, SimulationConfig, simulate_day

SEED = 20261123
N_INTERACTIONS = 3_000


@pytest.fixture(scope="module")
def config() -> RunConfig:
    return load_config()


@pytest.fixture(scope="module")
def sim() -> SimulatedDay:
    return simulate_day(
        cs.POPULATION_DAY,
        SEED,
        SimulationConfig(n_interactions=N_INTERACTIONS, day_prevalence_jitter=0.0),
    )


@pytest.fixture(scope="module")
def population(sim: SimulatedDay) -> cs.Population:
    return cs.population_from_day(sim)


def _quiet(config: RunConfig) -> RunConfig:
    """The default configuration with every check's false-alarm level made negligible."""
    rules = {name: dict(rule) for name, rule in config.rules.items()}
    rules["baseline_change"]["q"] = 1e-12
    rules["cusum"]["h"] = 1e6
    policies = tuple(dataclasses.replace(p, limit=1.0) for p in config.policies)
    return dataclasses.replace(config, rise_alpha=1e-12, rules=rules, policies=policies)


# --------------------------------------------------------------------------------------------
# Population and design
# --------------------------------------------------------------------------------------------


def test_population_reproduces_the_simulators_truth(
    sim: SimulatedDay, population: cs.Population, config: RunConfig
) -> None:
    assert list(population.policies) == config.policy_names
    assert len(population.impressions) == N_INTERACTIONS
    assert population.impressions.sum() == sim.truth["total_impressions"]
    prevalence = population.prevalence()
    for j, policy in enumerate(population.policies):
        truth = sim.truth["policies"][policy]
        assert prevalence[j, 0] == pytest.approx(truth["unit_prevalence"], rel=1e-12, abs=0)
        assert population.violates[:, j].sum() == truth["n_violating_units"]
        for s, surface in enumerate(population.surfaces):
            expected = sim.truth["by_surface"][surface][policy]
            assert prevalence[j, s + 1] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_unit_risk_is_max_score_or_impression_weighted_fill() -> None:
    nan = float("nan")
    pop = cs.Population(
        policies=("a", "b"),
        surfaces=("s",),
        impressions=np.array([10.0, 30.0, 0.0, 5.0]),
        surface=np.zeros(4, dtype=np.int64),
        observed_risk=np.array([[0.2, nan], [0.6, nan], [0.9, nan], [nan, nan]]),
        violates=np.zeros((4, 2), dtype=bool),
    )
    risk = pop.unit_risk()
    fill = (0.2 * 10 + 0.6 * 30 + 0.9 * 0) / 40
    np.testing.assert_allclose(risk[:, 0], [0.2, 0.6, 0.9, fill])
    np.testing.assert_array_equal(risk[:, 1], 0.0)  # no unit has a score: coalesce(..., 0)
    design = cs.pps_design(pop, size_floor=0.02, n_draws=10)
    np.testing.assert_array_equal(design.units, [0, 1, 3])  # no impressions: never drawn
    size = np.array([10 * 0.22, 30 * 0.62, 5 * (0.02 + fill)])
    np.testing.assert_allclose(design.prob, size / size.sum())


def test_relabelling_hits_the_target_and_leaves_other_policies(
    population: cs.Population,
) -> None:
    j = population.policies.index("harassment")
    x_total = population.impressions.sum()
    for target in (0.002, 0.05):
        out = cs.relabel_to_prevalence(population, "harassment", target, np.random.default_rng(1))
        assert abs(out.prevalence()[j, 0] - target) <= 1.0 / x_total
        others = [k for k in range(len(population.policies)) if k != j]
        np.testing.assert_array_equal(out.violates[:, others], population.violates[:, others])
        np.testing.assert_array_equal(
            out.observed_risk[:, others], population.observed_risk[:, others]
        )
    base, doubled, blind = cs.doubling_scenario(population, "harassment", 0.01, seed=3)
    assert doubled.prevalence()[j, 0] == pytest.approx(0.02, abs=1.0 / x_total)
    np.testing.assert_array_equal(doubled.violates, blind.violates)
    added = doubled.violates[:, j] & ~base.violates[:, j]
    assert added.any() and (base.violates[:, j] <= doubled.violates[:, j]).all()
    np.testing.assert_array_equal(blind.observed_risk, base.observed_risk)  # model-blind
    donors = base.observed_risk[base.violates[:, j], j]  # new violations scored like old ones
    for value in doubled.observed_risk[added, j]:
        assert (np.isnan(value) and np.isnan(donors).any()) or value in donors


# --------------------------------------------------------------------------------------------
# Estimator
# --------------------------------------------------------------------------------------------


def test_vectorised_estimates_equal_the_production_estimator(
    population: cs.Population, config: RunConfig
) -> None:
    design = cs.pps_design(population, config.sampling.size_floor, 300)
    positions = cs.draw_positions(design, np.random.default_rng(5), 4)
    estimates = cs.estimate_draws(population, design, positions)
    assert estimates.estimate.shape == (4, len(population.policies), len(population.domains))
    worst = cs.verify_estimates(population, design, positions, estimates, config, range(4))
    assert worst < 1e-9


def test_reproduced_design_is_unbiased_and_its_variance_estimator_too(
    population: cs.Population, config: RunConfig
) -> None:
    """Over 2,000 simulated days, the mean estimate is within 4 simulation SEs of the truth
    (exact design variance), and the mean estimated variance within 4 simulation SEs of the
    exact design variance, for every policy and domain."""
    design = cs.pps_design(population, config.sampling.size_floor, 200)
    days = 2_000
    estimates = cs.estimate_draws(
        population, design, cs.draw_positions(design, np.random.default_rng(11), days)
    )
    truth, exact = population.prevalence(), cs.design_variance(population, design)
    tested = exact > 0
    assert tested[:, 0].all()
    v = estimates.variance
    with np.errstate(invalid="ignore", divide="ignore"):  # untested cells: 0 / 0
        z = (estimates.estimate.mean(axis=0) - truth) / np.sqrt(exact / days)
        z_var = (v.mean(axis=0) - exact) / (v.std(axis=0, ddof=1) / math.sqrt(days))
    assert np.abs(z[tested]).max() < 4.0
    assert np.abs(z_var[tested]).max() < 4.0
    # and the estimates really vary as the exact variance says (within 15%)
    ratio = estimates.estimate.var(axis=0, ddof=1)[:, 0] / exact[:, 0]
    assert np.all(np.abs(ratio - 1.0) < 0.15)


# --------------------------------------------------------------------------------------------
# Checks and incidents
# --------------------------------------------------------------------------------------------


def _result(outcome: str, statistic: float = 1.0) -> CheckResult:
    return CheckResult("day_over_day_rise", "adult", statistic, 3.0, 0.5, outcome)  # type: ignore[arg-type]


def test_count_transitions_counts_breaches_not_breaching_before() -> None:
    days = [
        [_result("breach", 4.0)],  # day 0: only the first "yesterday"
        [_result("breach", 4.0)],  # ongoing: nothing
        [_result("pass")],  # cleared
        [_result("breach", 4.0)],  # opened
        [_result("breach", 9.0)],  # escalated (ratio grew 2.25x >= 1.5)
        [_result("skipped", float("nan"))],
        [_result("breach", 9.0)],  # still the same incident: a skipped day changes nothing
        [_result("skipped", float("nan"))],
        [_result("pass")],  # cleared
        [_result("skipped", float("nan"))],
        [_result("breach", 4.0)],  # opened (last decided outcome was a pass)
    ]
    counts = cs.count_transitions(days)
    assert counts.opened["day_over_day_rise"] == 2
    assert counts.escalated["day_over_day_rise"] == 1
    assert counts.opened_by == {("day_over_day_rise", "adult", "rise"): 2}
    assert counts.opened_after_skip == 1
    assert sum(counts.opened.values()) == 2


def test_checks_run_on_full_history_and_find_nothing_at_a_negligible_level(
    population: cs.Population, config: RunConfig
) -> None:
    quiet = _quiet(config)
    design = cs.pps_design(population, config.sampling.size_floor, 300)
    null = cs.run_null(population, design, quiet, days=5, replications=3, seed=SEED)
    assert null.total_opened().tolist() == [0, 0, 0]
    assert not null.opened_by and null.opened_after_skip.sum() == 0
    # the checks really ran (not skipped): the same sequence at the default levels has results
    burn_in = cs.history_days(config)
    positions = cs.draw_positions(design, np.random.default_rng(2), burn_in + 1)
    estimates = cs.estimate_draws(population, design, positions)
    dates, history, overall = cs._histories(estimates, population, config, [burn_in])
    results = cs.checks_for_day(dates[-1], history, overall, config)
    outcomes = {(r.check_name, r.policy): r.outcome for r in results}
    n_cells = len(population.policies) * len(population.surfaces)
    assert sum(name == "baseline_change" for name, _ in outcomes) == n_cells
    for check in cs.CHECKS:
        ran = [o for (name, _), o in outcomes.items() if name == check]
        assert ran and any(o != "skipped" for o in ran), check
    cusum = [r for r in results if r.check_name == "cusum" and r.outcome != "skipped"]
    window = int(config.rule("cusum")["window_days"])  # days with SE 0 are left out
    assert max(r.details["days"] for r in cusum) == window
    assert all(r.details["days"] <= window for r in cusum)


def test_a_huge_change_is_detected_by_every_check_on_the_day(
    population: cs.Population, config: RunConfig
) -> None:
    base = cs.relabel_to_prevalence(population, "harassment", 0.01, np.random.default_rng(1))
    changed = cs.relabel_to_prevalence(base, "harassment", 0.3, np.random.default_rng(2))
    det = cs.run_detection(
        base, changed, "harassment", config, n_draws=500, replications=4, seed=SEED
    )
    assert det.after == pytest.approx(0.3, abs=1e-3)
    for check in (*cs.CHECKS, "any"):
        assert det.probability(check) == (1.0, 0.0), check


def test_no_change_is_never_detected_at_a_negligible_level(
    population: cs.Population, config: RunConfig
) -> None:
    base = cs.relabel_to_prevalence(population, "harassment", 0.01, np.random.default_rng(1))
    det = cs.run_detection(
        base, base, "harassment", _quiet(config), n_draws=300, replications=4, seed=SEED
    )
    assert det.probability("any") == (0.0, 0.0)


def test_results_do_not_depend_on_the_number_of_workers(
    population: cs.Population, config: RunConfig
) -> None:
    design = cs.pps_design(population, config.sampling.size_floor, 200)
    one = cs.run_null(population, design, config, days=3, replications=4, seed=1, workers=1)
    two = cs.run_null(population, design, config, days=3, replications=4, seed=1, workers=2)
    np.testing.assert_array_equal(one.mean_estimate, two.mean_estimate)
    for check in cs.CHECKS:
        np.testing.assert_array_equal(one.opened[check], two.opened[check])


# --------------------------------------------------------------------------------------------
# Analytic requirements and CLI
# --------------------------------------------------------------------------------------------


def test_analytic_sample_size_gives_the_target_power(
    population: cs.Population, config: RunConfig
) -> None:
    base, doubled, _ = cs.doubling_scenario(population, "harassment", 0.005, seed=4)
    needs = cs.analytic_requirements(base, doubled, "harassment", config, 0.9)
    j = population.policies.index("harassment")
    n = needs["day_over_day_rise"]["n_draws"]
    var = [cs.design_variance(p, cs.pps_design(p, 0.02, round(n)))[j, 0] for p in (base, doubled)]
    delta = doubled.prevalence()[j, 0] - base.prevalence()[j, 0]
    z_alpha = 3.090232306167813  # Phi^-1(1 - 0.001), the default rise_alpha
    assert delta / math.sqrt(sum(var)) - z_alpha == pytest.approx(1.2815515655446004, rel=1e-3)
    assert math.isinf(needs["limit"]["n_draws"])  # 1% stays below harassment's 1.5% limit
    # the CUSUM needs (h + k + z_0.9) SEs of the day's estimate: more than 3 SEs
    assert needs["cusum"]["se_needed"] == pytest.approx(delta / (5.5 + 1.2815515655446004))


def test_cli_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--days",
        "2",
        "--replications",
        "2",
        "--n-interactions",
        "2000",
        "--grid",
        "400",
        "--grid-replications",
        "2",
        "--realisations",
        "2",
        "--workers",
        "1",
        "--seed",
        "3",
    ]
    assert cs.main(argv) == 0
    out = capsys.readouterr().out
    assert "--days 2 --replications 2" in out
    assert "### (a) False alerts per 2 days" in out
    assert "### (b) Same-day detection" in out
    assert "### (c) Sample size for 90% same-day detection" in out
    assert "| all checks |" in out and "| any check |" in out
    assert "max relative difference" in out
