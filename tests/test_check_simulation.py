"""Tests of :mod:`tsmetrics.check_simulation` on tiny configurations (no database, no process
pools).

The headline numbers live in ``docs/checks_proof.md``; these tests check that the simulation
reproduces the production design (calibrated Poisson PPS by default, PPS with replacement on
request), estimator, checks and incident counting, properties that a wrong reproduction would
break. Simulation tolerances are derived from the simulation standard errors (fixed seeds).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tsmetrics import check_simulation as cs
from tsmetrics.calibration import Calibration, PlattParams
from tsmetrics.check_simulation.estimates import _histories as histories
from tsmetrics.check_simulation.experiments import _null_chunk as null_chunk
from tsmetrics.check_simulation.experiments import _NullTask as NullTask
from tsmetrics.check_simulation.population import _training_window as training_window
from tsmetrics.checks import CheckResult
from tsmetrics.config import RunConfig, load_config
from tsmetrics.gamma_interval import mean_uncertain_weight
from tsmetrics.sampling import horvitz_thompson_prevalence
from tsmetrics.simulate import SimulatedDay, SimulationConfig, simulate_day

SEED = 20261123
N_INTERACTIONS = 3_000
N_SMALL = 300  # expected sample size of the tiny Poisson design


@pytest.fixture(scope="module")
def config() -> RunConfig:
    """The default configuration (calibrated Poisson PPS, gamma_tcz) at a tiny sample size."""
    return cs.configure(load_config(), n_draws=N_SMALL)


@pytest.fixture(scope="module")
def wr_config(config: RunConfig) -> RunConfig:
    """The walking skeleton's design: PPS with replacement, max_risk sizes, floor 0.02."""
    return cs.configure(config, method="pps_with_replacement")


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


@pytest.fixture(scope="module")
def calibrations(population: cs.Population, config: RunConfig) -> tuple[Calibration, ...]:
    return cs.fit_population_calibrations(population, config, SEED)


@pytest.fixture(scope="module")
def design(
    population: cs.Population, config: RunConfig, calibrations: tuple[Calibration, ...]
) -> cs.PoissonDesign:
    out = cs.make_design(population, config, calibrations=calibrations)
    assert isinstance(out, cs.PoissonDesign)
    return out


def _quiet(config: RunConfig) -> RunConfig:
    """The configuration with every check's false-alarm level made negligible."""
    rules = {name: dict(rule) for name, rule in config.rules.items()}
    rules["baseline_change"]["q"] = 1e-12
    rules["cusum"]["h"] = 1e6
    rules["baseline_rise_all"]["alpha"] = 1e-12
    policies = tuple(dataclasses.replace(p, limit=1.0) for p in config.policies)
    return dataclasses.replace(config, rise_alpha=1e-12, rules=rules, policies=policies)


# --------------------------------------------------------------------------------------------
# Population and configuration
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


def test_design_follows_the_configured_method(
    population: cs.Population,
    config: RunConfig,
    wr_config: RunConfig,
    calibrations: tuple[Calibration, ...],
) -> None:
    assert load_config().sampling.method == "poisson_pps"  # the production default
    assert isinstance(
        cs.make_design(population, config, calibrations=calibrations), cs.PoissonDesign
    )
    wr = cs.make_design(population, wr_config)
    assert isinstance(wr, cs.Design) and wr.n_draws == N_SMALL
    assert wr_config.sampling.size_measure == "max_risk" and wr_config.sampling.size_floor == 0.02
    with pytest.raises(ValueError, match="calibrations"):
        cs.make_design(population, config)


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


def test_poisson_sizes_follow_the_sql_definition_by_hand() -> None:
    """``tsm.unit_sizes('sqrt_calibrated')`` on a 5-unit population, computed by hand: Platt
    ``q``, imputed risks get the impression-weighted mean ``q`` of the scored units, the
    relative floor, units without impressions left out; ``sum pi = n``."""
    nan = float("nan")
    pop = cs.Population(
        policies=("a", "b"),
        surfaces=("s",),
        impressions=np.array([100.0, 20.0, 0.0, 50.0, 30.0]),
        surface=np.zeros(5, dtype=np.int64),
        observed_risk=np.array([[0.9, 0.01], [0.05, 0.3], [0.5, 0.5], [nan, 0.02], [0.2, nan]]),
        violates=np.zeros((5, 2), dtype=bool),
    )
    cal = (
        Calibration(params=PlattParams(a=-2.0, b=1.5, eps=1e-6)),
        Calibration(params=PlattParams(a=-1.0, b=0.5, eps=1e-6)),
    )
    design = cs.poisson_design(pop, cal, relative_floor=0.3, expected_n=2.0)
    np.testing.assert_array_equal(design.units, [0, 1, 3, 4])

    def platt(a: float, b: float, s: float) -> float:
        return 1.0 / (1.0 + math.exp(-(a + b * math.log(s / (1.0 - s)))))

    x = {0: 100.0, 1: 20.0, 3: 50.0, 4: 30.0}
    qa = {0: platt(-2, 1.5, 0.9), 1: platt(-2, 1.5, 0.05), 4: platt(-2, 1.5, 0.2)}
    qb = {0: platt(-1, 0.5, 0.01), 1: platt(-1, 0.5, 0.3), 3: platt(-1, 0.5, 0.02)}
    qa[3] = sum(x[i] * qa[i] for i in (0, 1, 4)) / sum(x[i] for i in (0, 1, 4))
    qb[4] = sum(x[i] * qb[i] for i in (0, 1, 3)) / sum(x[i] for i in (0, 1, 3))
    total = sum(x.values())
    pbar_a = sum(x[i] * qa[i] for i in x) / total
    pbar_b = sum(x[i] * qb[i] for i in x) / total
    expected = [
        x[i]
        * math.sqrt(max(qa[i], 0.3 * pbar_a) / pbar_a**2 + max(qb[i], 0.3 * pbar_b) / pbar_b**2)
        for i in (0, 1, 3, 4)
    ]
    np.testing.assert_allclose(design.size, expected, rtol=1e-12)
    assert design.pi.sum() == pytest.approx(2.0, rel=1e-12)
    uncertain = design.pi < 1.0
    ratio = design.pi[uncertain] / design.size[uncertain]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # pi proportional to size


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
# Calibration
# --------------------------------------------------------------------------------------------


def test_calibration_training_weights_are_inverse_inclusion_probabilities(
    population: cs.Population, design: cs.PoissonDesign
) -> None:
    """The weights of the training rows are ``1 / pi``: their sum over 14 days estimates 14
    times the number of scored units without bias (Horvitz-Thompson). Checked against the
    exact variance ``14 sum (1 - pi) / pi`` at 4 SEs; weights ``1 / (n pi)`` or ``1`` fail."""
    days = 14
    selected = cs.draw_poisson(design, np.random.default_rng(8), days)
    training = training_window(population, design, selected)
    for j, policy in enumerate(population.policies):
        scores, labels, weights, fitted_on = training[policy]
        scored = ~np.isnan(population.observed_risk[design.units, j])
        assert not np.isnan(scores).any() and len(fitted_on) == days
        assert len(scores) == len(labels) == len(weights) == selected[:, scored].sum()
        pi = design.pi[scored]
        se = math.sqrt(days * np.sum((1.0 - pi) / pi))
        assert abs(weights.sum() - days * scored.sum()) < 4.0 * se
        assert (
            labels.sum()
            == population.violates[design.units[np.nonzero(selected)[1]], j][
                ~np.isnan(population.observed_risk[design.units[np.nonzero(selected)[1]], j])
            ].sum()
        )


def test_fit_population_calibrations_uses_the_production_fallback(
    population: cs.Population, config: RunConfig, calibrations: tuple[Calibration, ...]
) -> None:
    """Platt where the window has enough (Kish-effective) positives, identity otherwise, as
    ``design_day.fit_day_calibrations``; a policy without any violation stays identity."""
    assert len(calibrations) == len(population.policies)
    assert {c.method for c in calibrations} == {"platt", "identity"}  # both paths at this seed
    for c in calibrations:
        if c.method == "platt":
            assert c.n_positive > 0
    j = population.policies.index("harassment")
    none = population.violates.copy()
    none[:, j] = False
    fitted = cs.fit_population_calibrations(
        dataclasses.replace(population, violates=none), config, SEED
    )
    assert fitted[j].method == "identity"
    again = cs.fit_population_calibrations(population, config, SEED)
    assert [c.version for c in again] == [c.version for c in calibrations]  # reproducible


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------


def test_poisson_vectorised_estimates_equal_the_production_estimator(
    population: cs.Population, config: RunConfig, design: cs.PoissonDesign
) -> None:
    """Estimate, SE and gamma_tcz interval of every day, policy and domain equal
    ``horvitz_thompson_prevalence`` called as ``estimate_day`` calls it; a perturbed variance
    or event weight is caught."""
    draws = cs.draw_poisson(design, np.random.default_rng(5), 6)
    estimates = cs.estimate_poisson(population, design, draws)
    assert estimates.estimate.shape == (6, len(population.policies), len(population.domains))
    assert estimates.method == "poisson_pps" and estimates.event_weight is not None
    np.testing.assert_array_equal(estimates.n_units, draws.sum(axis=1))
    assert cs.verify_estimates(population, design, draws, estimates, config, range(6)) < 1e-9
    wilson = dataclasses.replace(config, ci_method="wilson_kg")
    assert cs.verify_estimates(population, design, draws, estimates, wilson, range(6)) < 1e-9
    bad_var = dataclasses.replace(estimates, variance=estimates.variance * 1.001)
    assert cs.verify_estimates(population, design, draws, bad_var, config, range(6)) > 1e-4
    bad_weight = dataclasses.replace(estimates, event_weight=estimates.event_weight * 1.01)
    assert cs.verify_estimates(population, design, draws, bad_weight, config, range(6)) > 1e-4
    # one day, one domain, by hand with the library functions
    t, d = 2, 2
    units = design.units[draws[t]]
    pi = design.pi[draws[t]]
    in_domain = population.domain_masks()[d, units]
    x = population.impressions[units]
    total = float(population.domain_totals()[d])
    assert estimates.event_weight[t, d] == pytest.approx(
        mean_uncertain_weight(x[in_domain], pi[in_domain], total), rel=1e-12
    )
    j = population.policies.index("adult")
    ref = horvitz_thompson_prevalence(
        np.where(population.violates[units, j] & in_domain, x, 0.0),
        pi,
        total,
        ci_method="gamma_tcz",
        event_weight=mean_uncertain_weight(x[in_domain], pi[in_domain], total),
    )
    assert estimates.estimate[t, j, d] == pytest.approx(ref.estimate, rel=1e-12)


def test_wr_vectorised_estimates_equal_the_production_estimator(
    population: cs.Population, wr_config: RunConfig
) -> None:
    design = cs.make_design(population, wr_config)
    draws = cs.draw_days(design, np.random.default_rng(5), 4)
    estimates = cs.estimate_days(population, design, draws)
    assert estimates.method == "pps_with_replacement"
    assert cs.verify_estimates(population, design, draws, estimates, wr_config, range(4)) < 1e-9


def test_poisson_design_is_unbiased_with_the_exact_variance(
    population: cs.Population, design: cs.PoissonDesign
) -> None:
    """Over 2,000 simulated days: the mean estimate is within 4 simulation SEs of the truth
    (exact HT variance ``sum (1/pi - 1) y^2 / X^2``), the mean estimated variance within 4
    simulation SEs of the exact variance, the empirical variance within 15% of it (domain
    ``all``), and the mean sample size within 4 SEs of ``n``."""
    days = 2_000
    selected = cs.draw_poisson(design, np.random.default_rng(11), days)
    estimates = cs.estimate_poisson(population, design, selected)
    truth, exact = population.prevalence(), cs.design_variance(population, design)
    tested = exact > 0
    assert tested[:, 0].all()
    v = estimates.variance
    with np.errstate(invalid="ignore", divide="ignore"):  # untested cells: 0 / 0
        z = (estimates.estimate.mean(axis=0) - truth) / np.sqrt(exact / days)
        z_var = (v.mean(axis=0) - exact) / (v.std(axis=0, ddof=1) / math.sqrt(days))
    assert np.abs(z[tested]).max() < 4.0
    assert np.abs(z_var[tested]).max() < 4.0
    ratio = estimates.estimate.var(axis=0, ddof=1)[:, 0] / exact[:, 0]
    assert np.all(np.abs(ratio - 1.0) < 0.15)
    size_se = math.sqrt(np.sum(design.pi * (1 - design.pi)) / days)
    assert abs(estimates.n_units.mean() - N_SMALL) < 4.0 * size_se
    certain = design.pi >= 1.0
    assert certain.any() and selected[:, certain].all()  # certainty units are always sampled


def test_variance_at_resolves_the_design_at_another_size(
    population: cs.Population,
    config: RunConfig,
    wr_config: RunConfig,
    design: cs.PoissonDesign,
    calibrations: tuple[Calibration, ...],
) -> None:
    np.testing.assert_allclose(
        cs.variance_at(population, design, N_SMALL), cs.design_variance(population, design)
    )
    larger = cs.make_design(population, config, n=3 * N_SMALL, calibrations=calibrations)
    np.testing.assert_allclose(
        cs.variance_at(population, design, 3 * N_SMALL),
        cs.design_variance(population, larger),
        rtol=1e-12,
    )
    v = [cs.variance_at(population, design, n)[:, 0] for n in (100, 300, 900, 2000)]
    assert all(np.all(a > b) for a, b in zip(v[:-1], v[1:], strict=True))
    census = cs.variance_at(population, design, float(len(design.units)))
    np.testing.assert_array_equal(census[:, 0], 0.0)
    wr = cs.make_design(population, wr_config)
    np.testing.assert_allclose(
        cs.variance_at(population, wr, 4 * N_SMALL), cs.design_variance(population, wr) / 4
    )


# --------------------------------------------------------------------------------------------
# Checks and incidents
# --------------------------------------------------------------------------------------------


def _result(outcome: str, statistic: float = 1.0) -> CheckResult:
    return CheckResult("day_over_day_rise", "adult", statistic, 3.0, 0.5, outcome)


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
    population: cs.Population, config: RunConfig, design: cs.PoissonDesign
) -> None:
    quiet = _quiet(config)
    null = cs.run_null(population, design, quiet, days=5, replications=3, seed=SEED)
    assert null.total_opened(cs.CHECKS).tolist() == [0, 0, 0]
    assert not null.opened_by and null.opened_after_skip.sum() == 0
    # the checks really ran (not skipped): the same sequence at the default levels has results
    burn_in = cs.history_days(config)
    draws = cs.draw_days(design, np.random.default_rng(2), burn_in + 1)
    estimates = cs.estimate_days(population, design, draws)
    dates, history, overall = histories(estimates, population, config, [burn_in])
    results = cs.checks_for_day(dates[-1], history, overall, config)
    outcomes = {(r.check_name, r.policy): r.outcome for r in results}
    n_cells = len(population.policies) * len(population.surfaces)
    assert sum(name == "baseline_change" for name, _ in outcomes) == n_cells
    for check in cs.CHECKS:
        ran = [o for (name, _), o in outcomes.items() if name == check]
        assert ran and any(o != "skipped" for o in ran), check
    cusum = [r for r in results if r.check_name == "cusum" and r.outcome != "skipped"]
    window = int(config.rule("cusum")["window_days"])
    assert max(r.details["days"] for r in cusum) == window
    limit = [r for r in results if r.check_name == "limit"]
    assert limit and all(math.isfinite(r.statistic) for r in limit)  # gamma_tcz CI lower bound


def test_a_huge_change_is_detected_by_every_check_on_the_day(
    population: cs.Population, config: RunConfig
) -> None:
    base = cs.relabel_to_prevalence(population, "harassment", 0.01, np.random.default_rng(1))
    changed = cs.relabel_to_prevalence(base, "harassment", 0.3, np.random.default_rng(2))
    det = cs.run_detection(
        base, changed, "harassment", config, n_draws=N_SMALL, replications=4, seed=SEED
    )
    assert det.after == pytest.approx(0.3, abs=1e-3)
    for check in (*cs.CHECKS, "any"):
        assert det.probability(check) == (1.0, 0.0), check


def test_no_change_is_never_detected_at_a_negligible_level(
    population: cs.Population, config: RunConfig, calibrations: tuple[Calibration, ...]
) -> None:
    base = cs.relabel_to_prevalence(population, "harassment", 0.01, np.random.default_rng(1))
    det = cs.run_detection(
        base,
        base,
        "harassment",
        _quiet(config),
        n_draws=N_SMALL,
        replications=4,
        seed=SEED,
        calibration_pool=[calibrations],
    )
    assert det.probability("any") == (0.0, 0.0)


def test_replications_do_not_depend_on_chunking(
    population: cs.Population, config: RunConfig, design: cs.PoissonDesign
) -> None:
    """Each replication has its own generator: a chunk of replications reproduces the same
    replications of a full run (so ``--workers`` cannot change the results)."""
    full = cs.run_null(population, design, config, days=3, replications=4, seed=1)
    exact_se = np.sqrt(cs.design_variance(population, design)[:, 0])[None, :]
    task = NullTask(population, (design,), config, 3, 1, exact_se)
    chunk = null_chunk(task, range(2, 4))
    np.testing.assert_array_equal(full.mean_estimate[2:], np.stack([r[1] for r in chunk]))
    for check in cs.CHECKS:
        assert full.opened[check][2:].tolist() == [r[0].opened[check] for r in chunk]


# --------------------------------------------------------------------------------------------
# Analytic requirements and CLI
# --------------------------------------------------------------------------------------------


def test_analytic_sample_sizes_give_the_target_power(
    population: cs.Population, config: RunConfig, calibrations: tuple[Calibration, ...]
) -> None:
    """At the returned n, the normal approximation of each check's power equals 0.9,
    recomputed here from :func:`variance_at` of independently built designs."""
    base, doubled, _ = cs.doubling_scenario(population, "harassment", 0.005, seed=4)
    needs = cs.analytic_requirements(
        base, doubled, "harassment", config, 0.9, calibrations=calibrations
    )
    j = population.policies.index("harassment")
    delta = doubled.prevalence()[j, 0] - base.prevalence()[j, 0]
    z_alpha = 3.090232306167813  # Phi^-1(1 - 0.001), the default rise_alpha
    z_b = 1.2815515655446004  # Phi^-1(0.9)

    def variances(n: float) -> tuple[float, float]:
        d0 = cs.make_design(base, config, n=n, calibrations=calibrations)
        d1 = cs.make_design(doubled, config, n=n, calibrations=calibrations)
        return cs.design_variance(base, d0)[j, 0], cs.design_variance(doubled, d1)[j, 0]

    n = needs["day_over_day_rise"]["n_draws"]
    v0, v1 = variances(n)
    assert delta / math.sqrt(v0 + v1) - z_alpha == pytest.approx(z_b, abs=2e-3)
    v0, v1 = variances(n - 1.0)  # smaller n: short of the target power
    assert delta / math.sqrt(v0 + v1) - z_alpha < z_b
    n = needs["cusum"]["n_draws"]
    v0, v1 = variances(n)
    h_plus_k = float(config.rule("cusum")["h"]) + float(config.rule("cusum")["k"])
    assert (delta - h_plus_k * math.sqrt(v0)) / math.sqrt(v1 + v0 / 28) == pytest.approx(
        z_b, abs=2e-3
    )
    assert needs["cusum"]["se_needed"] == pytest.approx(math.sqrt(v1), rel=1e-9)
    n = needs["baseline_rise_all"]["n_draws"]
    v0, v1 = variances(n)
    assert delta / math.sqrt(v1 + v0 / 14) - z_alpha == pytest.approx(z_b, abs=2e-3)
    assert math.isinf(needs["limit"]["n_draws"])  # 1% stays below harassment's 1.5% limit
    # the 14-day reference needs fewer labels than yesterday's
    assert needs["baseline_rise_all"]["n_draws"] < needs["day_over_day_rise"]["n_draws"]


def test_cli_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--days",
        "2",
        "--replications",
        "2",
        "--n-interactions",
        "2000",
        "--n-draws",
        "200",
        "--grid",
        "400",
        "--grid-replications",
        "2",
        "--realisations",
        "1",
        "--calibration-pool",
        "2",
        "--workers",
        "1",
        "--seed",
        "3",
        "--arl-sims",
        "200",
        "--arl-replications",
        "3",
    ]
    assert cs.main(argv) == 0
    out = capsys.readouterr().out
    assert "--days 2 --replications 2" in out
    assert "calibrated Poisson PPS" in out and "gamma_tcz" in out
    assert "a pool of 2 independent steady-state fits" in out
    assert "### (a) False alerts per 2 days" in out
    assert "### (b) Same-day detection" in out
    assert "### (c) Sample size for 90% same-day detection" in out
    assert "| all production checks |" in out and "| any production check |" in out
    assert "| baseline_rise_all |" in out and "proposed" not in out
    assert "### (d) In-control run lengths on normal data" in out
    assert "| CUSUM k = 0.5, h = 5 | 0 | 465 |" in out
    assert "| 6.6 |" in out and "| 465 |" in out  # the production check and its stated ARL
    assert "`horvitz_thompson_prevalence`" in out and "max relative difference" in out


def test_cli_keeps_the_with_replacement_design(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--days", "2", "--replications", "2", "--n-interactions", "2000", "--n-draws"]
    argv += ["200", "--grid", "", "--realisations", "0", "--workers", "1", "--seed", "3"]
    argv += ["--arl-sims", "0", "--arl-replications", "0"]
    assert cs.main([*argv, "--method", "pps_with_replacement"]) == 0
    out = capsys.readouterr().out
    assert "PPS with replacement, n_draws = 200, size_floor = 0.02" in out
    assert "`hansen_hurwitz_prevalence`" in out and "calibration:" not in out
