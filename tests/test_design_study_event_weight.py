"""The event-weight study (docs/design_study.md): the sweep's rules and scoring on small runs."""

from __future__ import annotations

import numpy as np
import pytest

from tsmetrics import design_study as ds
from tsmetrics import design_study_event_weight as ew
from tsmetrics.gamma_interval import (
    GAMMA_METHOD,
    GAMMA_MIDP_METHOD,
    model_event_scale,
    model_violator_weight,
)

SMALL = ds.PopulationModel(prevalences=(0.02, 0.002), n_units=20_000)


@pytest.fixture(scope="module")
def small_days() -> ew.SimulatedDays:
    calibrations = ds.fit_calibrations(SMALL, seed=3, training_days=3, n=600)
    return ew.simulate_days(SMALL, calibrations, days=150, seed=3, n=600)


def test_model_violator_weight_by_hand() -> None:
    w = np.array([1.0, 2.0, 4.0, 8.0])
    certain = np.array([False, False, False, True])
    q = np.array([[0.5, 0.0], [0.25, 0.0], [0.25, 0.0], [0.9, 0.0]])
    got = model_violator_weight(w, certain, q)
    # policy 0: (0.5 * 1 + 0.25 * 2 + 0.25 * 4) / 1.0 = 2; policy 1 expects no event: mean of
    # the uncertain weights, (1 + 2 + 4) / 3
    assert got == pytest.approx([2.0, 7.0 / 3.0])
    # the size-biased model scale is never below it (Cauchy-Schwarz)
    scale = model_event_scale(w, certain, q[:, :1])
    assert scale[0] == pytest.approx((0.5 + 0.25 * 4 + 0.25 * 16) / 2.0)
    assert scale[0] >= got[0]


def test_simulated_days_are_reproducible_and_consistent(small_days: ew.SimulatedDays) -> None:
    assert small_days.truth.shape == (150, 2)
    assert np.all(small_days.variance >= 0) and np.all(small_days.mean_weight > 0)
    assert np.all(small_days.violator_weight > 0) and np.all(small_days.model_scale > 0)
    # a day has at least one violating sampled unit whenever its estimate is positive
    assert np.array_equal(small_days.violators > 0, small_days.estimate > 0)
    counts = ew.render_violator_counts(small_days, SMALL.prevalences)
    assert counts.count("\n") == 1 + len(SMALL.prevalences)
    # the design oversamples risky units, so a violator's expected weight is below the mean
    assert np.median(small_days.violator_weight[:, 1] / small_days.mean_weight[:, 1]) < 1.0
    calibrations = ds.fit_calibrations(SMALL, seed=3, training_days=3, n=600)
    again = ew.simulate_day(ew._DaysTask(SMALL, calibrations, 3, 600), 7)
    np.testing.assert_array_equal(again[1], small_days.estimate[7])


def test_sweep_scores_every_rule_and_a_smaller_event_weight_narrows(
    small_days: ew.SimulatedDays,
) -> None:
    rows = ew.sweep(small_days, SMALL.prevalences)
    rules = {(r.ci_method, r.rule, r.confidence) for r in rows}
    assert len(rows) == len(rules) * len(SMALL.prevalences)
    for r in rows:
        assert r.coverage + r.below + r.above == pytest.approx(1.0)
    by_key = {(r.ci_method, r.rule, r.confidence, r.prevalence): r for r in rows}
    full = by_key[(GAMMA_MIDP_METHOD, "mean x 1", 0.95, 0.002)]
    tenth = by_key[(GAMMA_MIDP_METHOD, "mean x 0.1", 0.95, 0.002)]
    lower_level = by_key[(GAMMA_MIDP_METHOD, "mean x 1", 0.85, 0.002)]
    # in the Fay-Feuer interval the event weight only moves the upper limit (in the mid-p one
    # it also moves the lower limit, through the mixture)
    tcz_full = by_key[(GAMMA_METHOD, "mean x 1", 0.95, 0.002)]
    tcz_tenth = by_key[(GAMMA_METHOD, "mean x 0.1", 0.95, 0.002)]
    assert tcz_tenth.below == tcz_full.below and tcz_tenth.above >= tcz_full.above
    assert tenth.mean_relative_half_width < full.mean_relative_half_width
    assert tenth.above >= full.above
    assert lower_level.coverage <= full.coverage
    table = ew.render_markdown(rows, SMALL.prevalences)
    assert table.count("\n") == len(rules) + 1


def test_command_line_prints_both_tables(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--days", "12", "--units", "5000", "--n", "300", "--training-days", "2"]
    assert ew.main([*argv, "--prevalences", "0.02,0.002"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Reproduce with `python -m tsmetrics.design_study_event_weight --days")
    assert "2.00%: coverage (SE)" in out and "0.20%: coverage (SE)" in out
    assert "| 0.20% |" in out  # the violator-count table
