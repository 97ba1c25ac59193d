"""The design study's machinery (docs/design_study.md): its generative model, anticipated
variances and the default design's efficiency and coverage, on small runs that can fail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tsmetrics import design_study as ds
from tsmetrics import design_study_stratified as strat
from tsmetrics.design_study_labels import LabelErrorModel, label_estimates
from tsmetrics.sampling import poisson_pps_inclusion


def test_scores_have_the_requested_auc() -> None:
    model = ds.PopulationModel(prevalences=(0.2,), auc=0.9, n_units=20_000, missing_score_rate=0)
    day = ds.generate_day(model, np.random.default_rng(1))
    pos, neg = day.score[day.violates[:, 0], 0], day.score[~day.violates[:, 0], 0]
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1
    auc = (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    assert auc == pytest.approx(0.9, abs=0.01)
    # q_true is the posterior: its mean over units is the prevalence.
    assert day.q_true.mean() == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("estimator", ["ht", "ratio", "difference"])
def test_anticipated_variance_matches_simulation(estimator: str) -> None:
    """Redraw violations from q (given the scores) and the Poisson sample: the empirical
    variance of the estimator matches the anticipated variance."""
    model = ds.PopulationModel(prevalences=(0.02,), auc=0.9, n_units=5_000)
    rng = np.random.default_rng(7)
    base = ds.generate_day(model, rng)
    qhat = np.clip(base.q_true * 1.3, 1e-6, 0.5)  # an imperfect model for the difference estimator
    pi = poisson_pps_inclusion(ds.naive_size(base), 400)
    expected = float(ds.anticipated_variance(base, pi, estimator, qhat)[0])
    errors = []
    for _ in range(1500):
        violates = rng.random(base.q_true.shape) < base.q_true
        day = ds.Day(base.impressions, base.score, base.score_missing, base.q_true, violates)
        selected = rng.random(len(pi)) < pi
        result = ds.poisson_estimates(day, pi, selected, estimator, qhat)
        errors.append(result.estimate[0] - day.truth()[0])
    empirical = float(np.var(errors, ddof=1))
    # var of a sample variance over 1500 reps: relative SE about sqrt(2/1500) (more with tails)
    assert empirical == pytest.approx(expected, rel=0.15)


def test_default_design_beats_uniform_views_and_approaches_the_oracle() -> None:
    row = ds.efficiency_for(
        ds.PopulationModel(prevalences=(0.005,), auc=0.98, n_units=50_000),
        seed=3,
        n=1000,
        populations=3,
        training_days=5,
    )
    assert row.efficiency_vs_oracle(ds.DEFAULT_ARM) > 0.8
    assert row.narrower_than_uniform(ds.DEFAULT_ARM) > 2.5
    # With replacement wastes draws on giant units: clearly worse than Poisson, same size.
    assert row.variances["pps_wr_naive/hh"] > 1.5 * row.variances["naive/ht"]


# --------------------------------------------------------------------------------------------
# The arms added with the mid-p interval: a quick version of the study that can fail
# --------------------------------------------------------------------------------------------

QUICK = ds.PopulationModel(prevalences=(0.02, 0.005), n_units=20_000)


@pytest.fixture(scope="module")
def quick_coverage() -> dict[tuple[str, str, str, float], ds.CoverageRow]:
    calibrations = ds.fit_calibrations(QUICK, 11, 3, 800)
    rows = ds.run_coverage(
        QUICK,
        calibrations,
        days=200,
        seed=11,
        n=800,
        ci_methods=("gamma_midp", "gamma_midp+scale", "gamma_tcz"),
        training_days=3,
    )
    return {(r.design, r.estimator, r.ci_method, r.prevalence): r for r in rows}


def test_default_and_midp_intervals_cover_on_a_short_run(
    quick_coverage: dict[tuple[str, str, str, float], ds.CoverageRow],
) -> None:
    for prevalence in QUICK.prevalences:
        midp = quick_coverage[("calibrated", "ht", "gamma_midp", prevalence)]
        tcz = quick_coverage[("calibrated", "ht", "gamma_tcz", prevalence)]
        tolerance = 3 * math.sqrt(0.95 * 0.05 / midp.days)
        assert 0.95 - tolerance <= tcz.coverage <= 0.99, tcz
        assert abs(tcz.bias_in_se) < 3, tcz
        assert 0.95 - tolerance <= midp.coverage <= 0.97 + tolerance, midp
        # the same days: mid-p limits lie inside the conventional ones here
        assert midp.mean_relative_half_width < tcz.mean_relative_half_width
        assert midp.coverage <= tcz.coverage
        assert midp.below + midp.above == pytest.approx(1.0 - midp.coverage)


def test_stratified_arm_is_unbiased_and_covers(
    quick_coverage: dict[tuple[str, str, str, float], ds.CoverageRow],
) -> None:
    for prevalence in QUICK.prevalences:
        row = quick_coverage[("stratified_size", "stratified", "gamma_midp", prevalence)]
        assert abs(row.bias_in_se) < 3, row
        assert row.coverage >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / row.days), row


def test_stratified_design_allocates_from_earlier_labels() -> None:
    model = ds.PopulationModel(prevalences=(0.02, 0.005), n_units=20_000)
    calibrations = ds.fit_calibrations(model, 5, 3, 800)
    training = strat.training_sample(
        model, calibrations, seed=5, training_days=3, n=800, relative_floor=0.03
    )
    assert training.violating_impressions.shape[1] == 2
    assert len(training.weight) == len(training.scores["size"]) > 1500  # ~3 x 800 labels
    day = ds.generate_day(model, np.random.default_rng(99))
    qhat, raw = calibrations.predict(day), calibrations.predict_raw(day)
    plan = strat.stratified_design(
        day, qhat, raw, training, score="size", n=800, relative_floor=0.03
    )
    assert plan.sample_sizes.sum() == 800
    assert np.all(plan.sample_sizes >= 2) and np.all(plan.sample_sizes <= plan.stratum_sizes)
    # the top stratum (risk x reach) is small and taken (nearly) whole; the bottom one is thin
    assert plan.sample_sizes[-1] / plan.stratum_sizes[-1] > 0.5
    assert plan.sample_sizes[0] / plan.stratum_sizes[0] < 0.05
    assert np.bincount(plan.stratum).tolist() == plan.stratum_sizes.tolist()


def test_stratified_anticipated_variance_matches_simulation() -> None:
    """Redraw the violations from q and the stratified sample: the empirical variance of the
    stratified estimator matches its anticipated variance."""
    model = ds.PopulationModel(prevalences=(0.02,), n_units=5_000)
    calibrations = ds.fit_calibrations(model, 8, 3, 400)
    training = strat.training_sample(
        model, calibrations, seed=8, training_days=3, n=400, relative_floor=0.03
    )
    rng = np.random.default_rng(8)
    base = ds.generate_day(model, rng)
    qhat, raw = calibrations.predict(base), calibrations.predict_raw(base)
    plan = strat.stratified_design(
        base, qhat, raw, training, score="size", n=400, relative_floor=0.03
    )
    expected = float(strat.anticipated_variance(base, plan)[0])
    errors = []
    for _ in range(1500):
        violates = rng.random(base.q_true.shape) < base.q_true
        day = ds.Day(base.impressions, base.score, base.score_missing, base.q_true, violates)
        result = strat.stratified_estimates(day, plan, qhat, rng)
        errors.append(result.estimate[0] - day.truth()[0])
    assert float(np.var(errors, ddof=1)) == pytest.approx(expected, rel=0.15)


def test_label_arm_shows_the_naive_inflation_and_corrects_it() -> None:
    model = ds.PopulationModel(prevalences=(0.02, 0.001), n_units=20_000)
    calibrations = ds.fit_calibrations(model, 13, 3, 800)
    errors = LabelErrorModel(fpr=0.01, fnr=0.10, validation_rate=0.25)
    rows = ds.run_label_correction(
        model, calibrations, errors, days=150, seed=13, n=800, ci_methods=("wilson_kg",)
    )
    by = {(r.estimator, r.prevalence): r for r in rows}
    for prevalence in model.prevalences:
        naive = by[("llm_naive", prevalence)]
        assert naive.bias_in_se > 3 and naive.below > 0.3 > naive.above, naive  # CIs above truth
        for name in ("ppi_corrected", "human_only"):
            assert abs(by[(name, prevalence)].bias_in_se) < 3, by[(name, prevalence)]
    # the tuned lambda: PPI++ is not wider than the human labels alone (on average; equal
    # when the LLM carries no information, as at 0.1% with 1% false positives)
    for prevalence in model.prevalences:
        corrected, human = by[("ppi_corrected", prevalence)], by[("human_only", prevalence)]
        assert corrected.mean_relative_half_width <= 1.01 * human.mean_relative_half_width


def test_naive_llm_estimate_is_inflated_as_its_error_rates_say() -> None:
    """E(naive) = P (1 - fnr) + (1 - P) fpr: 10.9 x the truth at 0.1% with 1% FPR, 10% FNR.
    Compared with that expectation rather than with the realised truth, whose mean converges
    slowly under Pareto-tailed impressions."""
    errors = LabelErrorModel(fpr=0.01, fnr=0.10, validation_rate=0.25)
    assert errors.naive_expectation(0.001) / 0.001 == pytest.approx(10.89)
    model = ds.PopulationModel(prevalences=(0.001,), n_units=20_000)
    rng = np.random.default_rng(17)
    naive = []
    for _ in range(60):
        day = ds.generate_day(model, rng)
        pi = poisson_pps_inclusion(ds.naive_size(day), 800)
        selected = rng.random(len(pi)) < pi
        naive.append(label_estimates(day, pi, selected, errors, rng)["llm_naive"][0][0])
    # 60 days x ~800 labels with ~8 false positives each: relative SE of the mean ~ 2%
    assert float(np.mean(naive)) == pytest.approx(errors.naive_expectation(0.001), rel=0.08)
