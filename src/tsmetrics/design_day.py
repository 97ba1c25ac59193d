"""The day's sampling design: calibrate each policy's risk score on earlier days' labels, then
draw the sample inside the warehouse.

:func:`calibrate_day` reads sample-sized data (the labelled units of the calibration window,
thousands of rows) and writes one row per policy to ``tsm.score_calibrations``; the day-sized
work (sizes over every unit, inclusion probabilities, selection) runs in Postgres
(``include/sql/sample_poisson_design.sql`` via ``tsm.poisson_pps_sample``). Both replace the
day's rows, so re-running a day gives the same calibration and the same sample: the window is
``[day - window_days, day)``, fixed by the data interval, never by the wall clock.
"""

from __future__ import annotations

import logging
import sys
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from tsmetrics.calibration import DEFAULT_EPS, Calibration, fit_calibration
from tsmetrics.config import RunConfig, SamplingConfig
from tsmetrics.designs import design_of
from tsmetrics.planning import SimpleTarget, plan_labels

log = logging.getLogger(__name__)


def calibration_training_data(
    conn: psycopg.Connection, day: date, config: RunConfig
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]]:
    """Per policy: (scores, labels, design weights, days) of the window's labelled units.

    One row per labelled draw (PPS with replacement: weight ``1 / (n p)`` per draw; Poisson:
    ``1 / pi`` per unit), primary labeler only, units whose risk was observed (an imputed risk
    is not a model score), shared designs only (``params->>'policy'`` null): a unit also in a
    per-policy sample would otherwise count twice with two different weights.
    """
    window = config.sampling.calibration_window_days
    rows = conn.execute(
        """
        SELECT l.policy, r.risk, l.is_violating,
            CASE d.method WHEN 'pps_with_replacement' THEN 1.0 / (d.n_draws * s.selection_prob)
                          ELSE 1.0 / s.selection_prob END AS weight,
            s.event_date
        FROM tsm.samples AS s
        JOIN tsm.sample_designs AS d USING (event_date, design_id)
        JOIN tsm.labels AS l
            ON l.event_date = s.event_date AND l.unit_id = s.unit_id AND l.labeler_id = %(labeler)s
        JOIN tsm.unit_risk AS r
            ON r.event_date = s.event_date AND r.unit_id = s.unit_id AND r.policy = l.policy
        WHERE s.event_date >= %(start)s AND s.event_date < %(day)s AND NOT r.risk_imputed
            AND d.params->>'policy' IS NULL
        ORDER BY s.event_date, s.design_id, s.draw_no, l.policy
        """,
        {
            "labeler": config.primary_labeler.labeler_id,
            "start": day - timedelta(days=window),
            "day": day,
        },
    ).fetchall()
    out = {}
    for policy in config.policy_names:
        mine = [r for r in rows if r[0] == policy]
        out[policy] = (
            np.array([r[1] for r in mine], dtype=np.float64),
            np.array([r[2] for r in mine], dtype=bool),
            np.array([r[3] for r in mine], dtype=np.float64),
            sorted({r[4].isoformat() for r in mine}),
        )
    return out


def fit_day_calibrations(
    training: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]], config: RunConfig
) -> dict[str, Calibration]:
    """The configured calibration per policy, with the fallback rules of
    :func:`tsmetrics.calibration.fit_calibration` (identity without enough labels). With
    ``method: platt`` (the default) isotonic is never chosen: on rare policies the isotonic step
    function is too noisy to steer the sample (``docs/design_study.md``)."""
    settings = config.sampling
    min_isotonic = settings.calibration_min_positives
    if settings.calibration_method == "platt":
        min_isotonic = sys.float_info.max  # never isotonic
    fitted = {}
    for policy, (scores, labels, weights, days) in training.items():
        fitted[policy] = fit_calibration(
            scores,
            labels,
            weights,
            policy=policy,
            fitted_on=days,
            min_positives_isotonic=min_isotonic,
            min_positives_platt=min(settings.calibration_min_positives, min_isotonic),
        )
    return fitted


def calibrate_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[dict[str, Any]]:
    """Fit and store the day's calibrations (replacing the day's rows); returns them."""
    calibrations = fit_day_calibrations(calibration_training_data(conn, day, config), config)
    rows = [_calibration_row(day, c) for c in calibrations.values()]
    with conn.transaction():
        conn.execute("DELETE FROM tsm.score_calibrations WHERE event_date = %s", (day,))
        conn.cursor().executemany(
            """
            INSERT INTO tsm.score_calibrations (event_date, policy, version, method, eps, a, b,
                thresholds, q_values, fitted_from, fitted_to, n_labels, n_positive, calibration)
            VALUES (%(event_date)s, %(policy)s, %(version)s, %(method)s, %(eps)s, %(a)s, %(b)s,
                %(thresholds)s, %(q_values)s, %(fitted_from)s, %(fitted_to)s, %(n_labels)s,
                %(n_positive)s, %(calibration)s)
            """,
            rows,
        )
    conn.commit()
    for row in rows:
        log.info(
            "calibration %s for %s: %s (%d labels, %s days)",
            row["version"],
            row["policy"],
            row["method"],
            row["n_labels"],
            row["fitted_from"] and f"{row['fitted_from']}..{row['fitted_to']}",
        )
    return [{k: v for k, v in r.items() if k != "calibration"} for r in rows]


def _calibration_row(day: date, calibration: Calibration) -> dict[str, Any]:
    params = calibration.params.to_dict()
    days = list(calibration.fitted_on)
    return {
        "event_date": day,
        "policy": calibration.policy,
        "version": calibration.version,
        "method": calibration.method,
        "eps": params.get("eps", DEFAULT_EPS),
        "a": params.get("a"),
        "b": params.get("b"),
        "thresholds": params.get("thresholds"),
        "q_values": params.get("values"),
        "fitted_from": min(days) if days else None,
        "fitted_to": max(days) if days else None,
        "n_labels": int(calibration.n_labels),
        "n_positive": float(calibration.n_positive),
        "calibration": Jsonb(calibration.to_dict()),
    }


def plan_expected_n(
    conn: psycopg.Connection, day: date, config: RunConfig, spec: SamplingConfig | None = None
) -> dict[str, Any]:
    """The day's expected sample size of a design (default: the shared one) from the last
    ``planning_window_days`` days' estimates of that design for its policies.

    Per policy, the window's impression-weighted prevalence and mean design effect (from the
    design's own ``domain = all`` estimates) give the labels needed for the target relative CI
    half-width, ``deff z^2 (1 - p) / (r^2 p)`` (:func:`tsmetrics.planning.plan_labels`, one shared
    sample: the largest need wins), capped by ``label_budget``. Policies without a violating
    unit in the window, or days without history, fall back to the budget; without a budget the
    configured ``n_draws`` is used unchanged, and so do designs whose size is not planned
    (``tsmetrics.designs``: PPS with replacement). Returns ``expected_n`` and the summary.
    """
    sampling = spec or config.sampling
    policies = config.design_policies(sampling)
    if sampling.label_budget is None or not design_of(sampling.method).plans_size:
        return {"expected_n": sampling.n_draws, "planned": False}
    rows = conn.execute(
        "SELECT policy, sum(estimate * total_impressions) / sum(total_impressions), "
        "avg(n_draws / nullif(effective_sample_size, 0)) FROM tsm.estimates "
        "WHERE design_id = %s AND estimator = %s AND domain = 'all' AND event_date < %s "
        "AND event_date >= %s GROUP BY policy",
        (
            sampling.design_id,
            design_of(sampling.method).estimator,
            day,
            day - timedelta(days=sampling.planning_window_days),
        ),
    ).fetchall()
    targets = [
        SimpleTarget(policy, float(p), float(deff))
        for policy, p, deff in rows
        if policy in policies and p is not None and 0 < p < 1 and deff and deff > 0
    ]
    if len(targets) < len(policies):
        return {"expected_n": sampling.label_budget, "planned": False}
    plan = plan_labels(
        targets,
        sampling.label_budget,
        relative_half_width=sampling.target_relative_half_width,
        confidence=config.confidence,
    )
    return {
        "expected_n": max(plan.chosen_n, 2),
        "planned": True,
        "missing_target": list(plan.missing_target),
        "needed": {p.policy: p.needed_n for p in plan.policies},
    }
