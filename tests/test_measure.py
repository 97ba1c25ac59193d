"""Check builders on a history of stored estimates (pure parts of tsmetrics.measure)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from tsmetrics.measure import baseline_change_checks, cusum_checks

DAY = date(2026, 3, 31)
RULE = {"baseline_days": 14, "min_baseline_days": 3, "q": 0.001, "alternative": "greater"}
CUSUM = {"k": 0.5, "h": 5.0, "baseline_days": 28, "min_baseline_days": 7, "window_days": 14}


def history(days: int, level: float, se: float, seed: int, jump_last: int = 0, jump: float = 0.0):  # type: ignore[no-untyped-def]
    """(policy, domain) -> {day: (estimate, SE)} with normal noise of the given SE."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in [("adult", "all"), ("adult", "surface=search"), ("adult", "surface=home_feed")]:
        series = {}
        for i in range(days):
            d = DAY - timedelta(days=days - 1 - i)
            shift = jump if i >= days - jump_last else 0.0
            series[d] = (level + shift + rng.normal(0, se), se)
        out[key] = series
    return out


def test_stable_series_pass_and_a_jump_in_one_cell_breaches() -> None:
    stable = history(15, 0.01, 0.001, seed=1)
    results = baseline_change_checks(DAY, stable, RULE)
    assert [r.policy for r in results] == ["adult|surface=home_feed", "adult|surface=search"]
    assert all(r.outcome == "pass" for r in results)
    jumped = history(15, 0.01, 0.001, seed=1)
    jumped[("adult", "surface=search")][DAY] = (0.02, 0.001)  # +10 standard errors
    outcome = {r.policy: r.outcome for r in baseline_change_checks(DAY, jumped, RULE)}
    assert outcome == {"adult|surface=search": "breach", "adult|surface=home_feed": "pass"}


def test_too_short_a_baseline_is_skipped() -> None:
    short = history(3, 0.01, 0.001, seed=2)
    assert {r.outcome for r in baseline_change_checks(DAY, short, RULE)} == {"skipped"}


def test_cusum_passes_in_control_and_signals_a_sustained_shift() -> None:
    stable = history(42, 0.01, 0.001, seed=3)
    assert [r.outcome for r in cusum_checks(DAY, stable, ["adult"], CUSUM)] == ["pass"]
    shifted = history(42, 0.01, 0.001, seed=3, jump_last=7, jump=0.002)  # 2 SE for a week
    (result,) = cusum_checks(DAY, shifted, ["adult"], CUSUM)
    assert result.outcome == "breach" and result.statistic > 5.0


def test_cusum_without_history_is_skipped() -> None:
    (result,) = cusum_checks(DAY, history(5, 0.01, 0.001, seed=4), ["adult"], CUSUM)
    assert result.outcome == "skipped" and "baseline days" in result.details["reason"]


def test_agreement_floor_and_drop() -> None:
    from tsmetrics.measure import agreement_checks

    rule = {"min_value": 0.6, "drop_alpha": 0.001}
    baseline = {"adult": [(0.9, 0.02)] * 7, "self_harm": [(0.9, 0.02)] * 7}
    today = {
        "adult": (0.88, 0.02),
        "self_harm": (0.7, 0.02),
        "harassment": (0.5, 0.05),
        "misinformation": (None, None),
    }
    outcome = {r.policy: r.outcome for r in agreement_checks(today, baseline, rule)}
    assert outcome == {
        "adult": "pass",
        "self_harm": "breach",
        "harassment": "breach",
        "misinformation": "skipped",
    }


def test_llm_versus_human_scores_and_rising_disagreement() -> None:
    from tsmetrics.measure import _versus_reference, disagreement_checks

    llm = np.array([True, True, False, False, True, False, False, False])
    human = np.array([True, False, False, False, True, True, False, False])
    scores = {m: (v, se) for m, v, se in _versus_reference(llm, human)}
    assert scores["disagreement_rate"][0] == 2 / 8
    assert scores["precision"][0] == 2 / 3 and scores["recall"][0] == 2 / 3
    assert scores["precision"][1] == np.sqrt((2 / 3) * (1 / 3) / 3)

    rule = {"max_value": 0.05, "rise_alpha": 0.001}
    baseline = {"adult": [(0.01, 0.002)] * 10}
    steady = disagreement_checks({"adult": (0.012, 0.002)}, baseline, rule)
    rising = disagreement_checks({"adult": (0.03, 0.003)}, baseline, rule)
    too_high = disagreement_checks({"adult": (0.08, 0.01)}, {}, rule)
    assert [r.outcome for r in steady + rising + too_high] == ["pass", "breach", "breach"]
    assert rising[0].p_value is not None and rising[0].p_value < 1e-6
