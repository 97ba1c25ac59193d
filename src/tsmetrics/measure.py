"""Estimate, agreement and checks for one day: read the warehouse, call the pure statistics in
:mod:`tsmetrics.estimation`, :mod:`tsmetrics.agreement` and :mod:`tsmetrics.checks`, write rows.

Each ``*_day`` function replaces that day's rows in one transaction, so re-running a day gives the
same rows, never duplicates. Work here is sample-sized (thousands of draws), never day-sized.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from tsmetrics.agreement import cohen_kappa
from tsmetrics.checks import CheckResult, day_over_day_check, limit_check
from tsmetrics.config import RunConfig
from tsmetrics.estimation import PrevalenceEstimate, hansen_hurwitz_prevalence

log = logging.getLogger(__name__)

DOMAIN_ALL = "all"


def _draws_with_labels(conn: psycopg.Connection, day: date, config: RunConfig) -> dict[str, Any]:
    rows = conn.execute(
        """
        SELECT s.draw_no, s.unit_id, s.impressions, s.selection_prob, d.total_impressions,
               l.policy, l.is_violating
        FROM tsm.samples AS s
        JOIN tsm.sample_designs AS d USING (event_date, design_id)
        LEFT JOIN tsm.labels AS l
            ON l.event_date = s.event_date AND l.unit_id = s.unit_id AND l.labeler_id = %s
        WHERE s.event_date = %s AND s.design_id = %s
        ORDER BY s.draw_no, l.policy
        """,
        (config.primary_labeler.labeler_id, day, config.sampling.design_id),
    ).fetchall()
    if not rows:
        raise ValueError(f"no sample for {day} under design {config.sampling.design_id!r}")
    draws: dict[int, tuple[str, int, float]] = {}
    verdicts: dict[tuple[int, str], bool] = {}
    total_impressions = int(rows[0][4])
    for draw_no, unit_id, impressions, prob, _total, policy, violating in rows:
        draws[draw_no] = (unit_id, int(impressions), float(prob))
        if policy is not None:
            verdicts[(draw_no, policy)] = bool(violating)
    return {"draws": draws, "verdicts": verdicts, "total_impressions": total_impressions}


def estimate_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[dict[str, Any]]:
    """Hansen-Hurwitz impression-weighted prevalence per policy for ``day``; rows written.

    Draws whose unit has no valid label for a policy are left out of that policy's estimate
    (and counted: the label-completeness check reports them); they are never "not violating".
    """
    data = _draws_with_labels(conn, day, config)
    draws, verdicts = data["draws"], data["verdicts"]
    rows = []
    for policy in config.policy_names:
        labeled = [(k, v) for k, v in draws.items() if (k, policy) in verdicts]
        if len(labeled) < 2:
            log.warning(
                "policy %s on %s: only %d labeled draws, no estimate", policy, day, len(labeled)
            )
            continue
        impressions = np.array([v[1] for _, v in labeled], dtype=float)
        violating = np.array([verdicts[(k, policy)] for k, _ in labeled], dtype=bool)
        result = hansen_hurwitz_prevalence(
            np.where(violating, impressions, 0.0),
            np.array([v[2] for _, v in labeled], dtype=float),
            float(data["total_impressions"]),
            confidence=config.confidence,
            ci_method=config.ci_method,
            unit_ids=np.array([v[0] for _, v in labeled]),
        )
        rows.append(_estimate_row(day, config, policy, result, data["total_impressions"]))
        rows[-1]["n_unlabeled_draws"] = len(draws) - len(labeled)
    with conn.transaction():
        conn.execute(
            "DELETE FROM tsm.estimates WHERE event_date = %s AND design_id = %s",
            (day, config.sampling.design_id),
        )
        conn.cursor().executemany(
            """
            INSERT INTO tsm.estimates (
                event_date, design_id, policy, domain, estimator, estimate, std_error, ci_lower,
                ci_upper, ci_method, confidence, n_draws, n_distinct_units, n_positive_draws,
                effective_sample_size, total_impressions)
            VALUES (%(event_date)s, %(design_id)s, %(policy)s, %(domain)s, %(estimator)s,
                %(estimate)s, %(std_error)s, %(ci_lower)s, %(ci_upper)s, %(ci_method)s,
                %(confidence)s, %(n_draws)s, %(n_distinct_units)s, %(n_positive_draws)s,
                %(effective_sample_size)s, %(total_impressions)s)
            """,
            rows,
        )
    conn.commit()
    return rows


def _estimate_row(
    day: date, config: RunConfig, policy: str, result: PrevalenceEstimate, total: int
) -> dict[str, Any]:
    return {
        "event_date": day,
        "design_id": config.sampling.design_id,
        "policy": policy,
        "domain": DOMAIN_ALL,
        "estimator": config.estimator,
        "estimate": result.estimate,
        "std_error": result.std_error,
        "ci_lower": result.ci_lower,
        "ci_upper": result.ci_upper,
        "ci_method": result.ci_method,
        "confidence": result.confidence,
        "n_draws": result.n_draws,
        "n_distinct_units": result.n_distinct_units,
        "n_positive_draws": result.n_positive_draws,
        "effective_sample_size": result.effective_sample_size,
        "total_impressions": total,
    }


def agreement_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[dict[str, Any]]:
    """Cohen's kappa per policy between the primary and overlap labelers on doubly-labeled units."""
    first, second = config.primary_labeler.labeler_id, config.overlap_labeler.labeler_id
    pairs = conn.execute(
        """
        SELECT a.policy, a.is_violating, b.is_violating
        FROM tsm.labels AS a
        JOIN tsm.labels AS b
            ON b.event_date = a.event_date AND b.unit_id = a.unit_id AND b.policy = a.policy
        WHERE a.event_date = %s AND a.labeler_id = %s AND b.labeler_id = %s
        """,
        (day, first, second),
    ).fetchall()
    rows = []
    for policy in config.policy_names:
        a = np.array([p[1] for p in pairs if p[0] == policy], dtype=bool)
        b = np.array([p[2] for p in pairs if p[0] == policy], dtype=bool)
        if a.size == 0:
            continue
        kappa = cohen_kappa(a, b)
        rows.append(
            {
                "event_date": day,
                "policy": policy,
                "labeler_a": first,
                "labeler_b": second,
                "metric": "cohen_kappa",
                "value": None if np.isnan(kappa.kappa) else kappa.kappa,
                "std_error": None if np.isnan(kappa.std_error) else kappa.std_error,
                "percent_agreement": kappa.percent_agreement,
                "n_items": kappa.n_items,
            }
        )
    with conn.transaction():
        conn.execute("DELETE FROM tsm.agreement WHERE event_date = %s", (day,))
        conn.cursor().executemany(
            """
            INSERT INTO tsm.agreement (event_date, policy, labeler_a, labeler_b, metric, value,
                std_error, percent_agreement, n_items)
            VALUES (%(event_date)s, %(policy)s, %(labeler_a)s, %(labeler_b)s, %(metric)s,
                %(value)s, %(std_error)s, %(percent_agreement)s, %(n_items)s)
            """,
            rows,
        )
    conn.commit()
    return rows


def _estimates_by_policy(
    conn: psycopg.Connection, day: date, config: RunConfig
) -> dict[str, tuple[float, float, float, float]]:
    rows = conn.execute(
        "SELECT policy, estimate, std_error, ci_lower, ci_upper FROM tsm.estimates "
        "WHERE event_date = %s AND design_id = %s AND domain = %s AND estimator = %s",
        (day, config.sampling.design_id, DOMAIN_ALL, config.estimator),
    ).fetchall()
    return {r[0]: (float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows}


def checks_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[CheckResult]:
    """Run the day's checks (limit on the CI lower bound, day-over-day rise); rows written."""
    today = _estimates_by_policy(conn, day, config)
    yesterday = _estimates_by_policy(conn, day - timedelta(days=1), config)
    results: list[CheckResult] = []
    for policy in config.policies:
        if policy.name not in today:
            continue
        estimate, std_error, ci_lower, ci_upper = today[policy.name]
        results.append(limit_check(policy.name, estimate, ci_lower, ci_upper, policy.limit))
        previous = yesterday.get(policy.name)
        results.append(
            day_over_day_check(
                policy.name,
                estimate,
                std_error,
                None if previous is None else previous[0],
                None if previous is None else previous[1],
                alpha=config.rise_alpha,
            )
        )
    with conn.transaction():
        conn.execute("DELETE FROM tsm.checks WHERE event_date = %s", (day,))
        conn.cursor().executemany(
            "INSERT INTO tsm.checks (event_date, check_name, policy, statistic, threshold, "
            "p_value, outcome, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    day,
                    r.check_name,
                    r.policy,
                    r.statistic,
                    r.threshold,
                    r.p_value,
                    r.outcome,
                    Jsonb(_jsonable(r.details)),
                )
                for r in results
            ],
        )
    conn.commit()
    return results


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out[key] = value
    return out
