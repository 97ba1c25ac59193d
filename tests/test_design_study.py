"""The design study's machinery (docs/design_study.md): its generative model, anticipated
variances and the default design's efficiency and coverage, on small runs that can fail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tsmetrics import design_study as ds
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


def test_default_interval_covers_on_a_short_run() -> None:
    model = ds.PopulationModel(prevalences=(0.02, 0.005), n_units=20_000)
    calibrations = ds.fit_calibrations(model, 11, 3, 800)
    rows = ds.run_coverage(model, calibrations, days=200, seed=11, n=800, ci_methods=("gamma_tcz",))
    default = [r for r in rows if (r.design, r.estimator) == ("calibrated", "ht")]
    assert len(default) == 2
    for row in default:
        tolerance = 3 * math.sqrt(0.95 * 0.05 / row.days)
        assert 0.95 - tolerance <= row.coverage <= 0.99, row
        assert abs(row.bias_in_se) < 3, row
