"""Checks on the labelers: agreement on the overlap subsample, and LLM-versus-human disagreement.

Pure functions of the day's agreement rows (``tsm.agreement``) and their trailing baseline;
:func:`tsmetrics.measure.checks_day` reads them and writes the results to ``tsm.checks``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from tsmetrics.checks import CheckResult

__all__ = ["agreement_checks", "disagreement_checks"]


def disagreement_checks(
    today: dict[str, tuple[float | None, float | None]],
    baseline: dict[str, list[tuple[float, float]]],
    rule: dict[str, Any],
) -> list[CheckResult]:
    """Per policy: the primary-versus-overlap (LLM-versus-human) disagreement rate rising above
    its trailing baseline mean, ``z = (d_t - mean_b) / sqrt(SE_t^2 + sum SE_i^2 / k^2)`` above
    ``z_{1-alpha}`` (one-sided), or above the ceiling ``max_value``. Skipped without baseline
    days and under the ceiling."""
    ceiling, alpha = float(rule.get("max_value", 0.05)), float(rule.get("rise_alpha", 0.001))
    results = []
    for policy, (value, std_error) in sorted(today.items()):
        if value is None:
            continue
        history = [b for b in baseline.get(policy, []) if b[1] is not None]
        p_value = None
        if history and std_error is not None:
            mean = float(np.mean([b[0] for b in history]))
            variance = std_error**2 + sum(b[1] ** 2 for b in history) / len(history) ** 2
            if variance > 0:
                p_value = float(stats.norm.sf((value - mean) / np.sqrt(variance)))
        breach = value > ceiling or (p_value is not None and p_value < alpha)
        results.append(
            CheckResult(
                "labeler_disagreement",
                policy,
                value,
                ceiling,
                p_value,
                "breach" if breach else "pass",
                {"baseline_days": len(history)},
            )
        )
    return results


def agreement_checks(
    today: dict[str, tuple[float | None, float | None]],
    baseline: dict[str, list[tuple[float, float]]],
    rule: dict[str, Any],
) -> list[CheckResult]:
    """Per policy: agreement (``rule['metric']``, default Krippendorff's alpha) under the floor
    ``min_value``, or a significant drop against the trailing baseline mean,
    ``z = (a_t - mean_b) / sqrt(SE_t^2 + sum SE_i^2 / k^2)`` below ``-z_{1-alpha}``.
    An undefined value (every label the same: no disagreement possible) is skipped."""
    floor, alpha = float(rule.get("min_value", 0.6)), float(rule.get("drop_alpha", 0.001))
    results = []
    for policy, (value, std_error) in sorted(today.items()):
        if value is None:
            results.append(
                CheckResult(
                    "agreement",
                    policy,
                    float("nan"),
                    floor,
                    None,
                    "skipped",
                    {"reason": "agreement undefined (no variation in labels)"},
                )
            )
            continue
        history = [b for b in baseline.get(policy, []) if b[1] is not None]
        p_value = None
        if history and std_error is not None:
            mean = float(np.mean([b[0] for b in history]))
            variance = std_error**2 + sum(b[1] ** 2 for b in history) / len(history) ** 2
            if variance > 0:
                p_value = float(stats.norm.cdf((value - mean) / np.sqrt(variance)))
        breach = value < floor or (p_value is not None and p_value < alpha)
        results.append(
            CheckResult(
                "agreement",
                policy,
                value,
                floor,
                p_value,
                "breach" if breach else "pass",
                {"metric": rule.get("metric", "krippendorff_alpha"), "baseline_days": len(history)},
            )
        )
    return results
