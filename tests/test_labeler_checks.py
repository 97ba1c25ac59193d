"""Tests of tsmetrics.labeler_checks: agreement floor and drop, rising LLM-human disagreement."""

from __future__ import annotations

from tsmetrics.labeler_checks import agreement_checks, disagreement_checks


def test_agreement_floor_and_drop() -> None:
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


def test_rising_disagreement_and_its_ceiling() -> None:
    rule = {"max_value": 0.05, "rise_alpha": 0.001}
    baseline = {"adult": [(0.01, 0.002)] * 10}
    steady = disagreement_checks({"adult": (0.012, 0.002)}, baseline, rule)
    rising = disagreement_checks({"adult": (0.03, 0.003)}, baseline, rule)
    too_high = disagreement_checks({"adult": (0.08, 0.01)}, {}, rule)
    assert [r.outcome for r in steady + rising + too_high] == ["pass", "breach", "breach"]
    assert rising[0].p_value is not None and rising[0].p_value < 1e-6
