"""Alerts: breaches become rows in an outbox (``tsm.alerts``), then Slack webhook posts.

A breach is written once (unique ``dedup_key`` = day | check | policy), so re-running a day never
re-posts it. Delivery sends every pending alert in creation order; a failed post stays pending
with its error and attempt count, and the task fails after trying the rest, so Airflow retries it
(and the next run retries it again): no alert is lost or sent twice. Messages carry aggregates,
the rule and links only, never user content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tsmetrics.checks import CheckResult
from tsmetrics.errors import AlertDeliveryError

log = logging.getLogger(__name__)

RULE_TEXT = {
    "limit": "95% CI lower bound above the policy limit",
    "day_over_day_rise": "significant rise against the previous day",
    "baseline_change": "significant change against the trailing baseline (BH across cells)",
    "cusum": "sustained shift (tabular CUSUM on standardized daily values)",
}


def split_cell(check_policy: str) -> tuple[str, str]:
    """``"adult|surface=search"`` -> ``("adult", "surface=search")``; plain policy -> domain all."""
    policy, _, domain = check_policy.partition("|")
    return policy, domain or "all"


@dataclass(frozen=True)
class AlertContext:
    """Where an alert points to: the Airflow run and the day's report."""

    run_url: str | None = None
    report_path: str | None = None


def breach_message(
    day: date, result: CheckResult, estimate: tuple[float, float, float], links: AlertContext
) -> dict[str, Any]:
    """The Slack message body for one breach: policy, date, value, CI, rule and links."""
    value, ci_lower, ci_upper = estimate
    rule = RULE_TEXT.get(result.check_name, result.check_name)
    policy, domain = split_cell(result.policy)
    where = "" if domain == "all" else f", {domain.replace('=', ' ')}"
    lines = [
        f":rotating_light: *tsmetrics breach* - policy *{policy}*{where} on {day.isoformat()}",
        f"prevalence {value:.4%} (95% CI {ci_lower:.4%} to {ci_upper:.4%})",
        f"rule: {result.check_name} ({rule}); statistic {result.statistic:.6g}, "
        f"threshold {result.threshold:.6g}"
        + ("" if result.p_value is None else f", p-value {result.p_value:.3g}"),
    ]
    baseline = result.details.get("baseline_mean", result.details.get("mu0"))
    if baseline is not None:
        lines.append(f"baseline {float(baseline):.4%}")
    severity, owner = result.details.get("severity"), result.details.get("owner")
    if severity or owner:
        lines.append(f"severity {severity or '-'}, owner {owner or '-'}")
    if links.run_url:
        lines.append(f"Airflow run: {links.run_url}")
    if links.report_path:
        lines.append(f"report: {links.report_path}")
    return {"text": "\n".join(lines)}


def record_breaches(
    conn: psycopg.Connection,
    day: date,
    results: Sequence[CheckResult],
    estimates: dict[tuple[str, str], tuple[float, float, float]],
    links: AlertContext,
) -> int:
    """Add one outbox row per breach not already recorded; return how many were new.

    ``estimates`` maps (policy, domain) to (estimate, CI lower, CI upper).
    """
    new = 0
    for result in results:
        if result.outcome != "breach":
            continue
        message = breach_message(day, result, estimates[split_cell(result.policy)], links)
        inserted = conn.execute(
            "INSERT INTO tsm.alerts (event_date, dedup_key, policy, check_name, message) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING RETURNING alert_id",
            (
                day,
                f"{day.isoformat()}|{result.check_name}|{result.policy}",
                result.policy,
                result.check_name,
                Jsonb(message),
            ),
        ).fetchone()
        new += inserted is not None
    conn.commit()
    return new


def deliver_pending(conn: psycopg.Connection, send: Callable[[dict[str, Any]], None]) -> int:
    """Send every pending alert (oldest first) with ``send``; return how many were sent.

    Raises :class:`AlertDeliveryError` after trying all when any failed; failed ones stay pending.
    """
    pending = conn.execute(
        "SELECT alert_id, message FROM tsm.alerts WHERE status = 'pending' ORDER BY alert_id"
    ).fetchall()
    conn.commit()
    sent, errors = 0, []
    for alert_id, message in pending:
        try:
            send(message)
        except Exception as error:  # any delivery failure: keep pending, record, retry later
            errors.append(f"alert {alert_id}: {type(error).__name__}")
            conn.execute(
                "UPDATE tsm.alerts SET attempts = attempts + 1, last_error = %s "
                "WHERE alert_id = %s",
                (f"{type(error).__name__}: {error}"[:500], alert_id),
            )
        else:
            sent += 1
            conn.execute(
                "UPDATE tsm.alerts SET attempts = attempts + 1, status = 'sent', sent_at = now(), "
                "last_error = NULL WHERE alert_id = %s",
                (alert_id,),
            )
        conn.commit()
    if errors:
        raise AlertDeliveryError(f"{len(errors)} alert(s) not delivered, kept pending: {errors}")
    return sent
