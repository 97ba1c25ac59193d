"""Alerts: incident transitions become rows in an outbox (``tsm.alerts``), then Slack posts.

Incidents are derived from the day's checks and each cell's last decided (not skipped) outcome
before it (stateless, so re-runs and backfills agree): a breach that was not breaching *opens*
an incident (posted); an
ongoing breach is not re-posted unless it *escalates* (its statistic-to-threshold ratio grew by
the rule's ``escalate_ratio``, default 1.5); a cell that breached yesterday and passes today is
*cleared* (posted once). Each transition is written once (unique ``dedup_key`` = day | kind |
check | cell), so re-running a day never re-posts it.

Delivery sends every pending alert in creation order; a failed post stays pending with its
error and attempt count, and the task fails after trying the rest, so Airflow retries it (and
the next run retries it again): no alert is lost or sent twice. Messages carry aggregates, the
rule and links only, never user content.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tsmetrics.checks import CheckResult
from tsmetrics.errors import AlertDeliveryError
from tsmetrics.health import HEALTH_RULE_TEXT

log = logging.getLogger(__name__)

RULE_TEXT = {
    "limit": "95% CI lower bound above the policy limit",
    "day_over_day_rise": "significant rise against the previous day",
    "baseline_change": "significant change against the trailing baseline (BH across cells)",
    "baseline_rise_all": "significant rise against the trailing 14-day mean",
    "cusum": "sustained shift (tabular CUSUM on normal scores of the daily estimates)",
    "agreement": "labeler agreement under its floor or significantly down",
    "labeler_disagreement": "LLM-versus-human disagreement above its ceiling or rising",
}


RULE_TEXT.update(HEALTH_RULE_TEXT)


def split_cell(check_policy: str) -> tuple[str, str]:
    """``"adult|surface=search"`` -> ``("adult", "surface=search")``; plain policy -> domain all."""
    policy, _, domain = check_policy.partition("|")
    return policy, domain or "all"


@dataclass(frozen=True)
class AlertContext:
    """Where an alert points to: the Airflow run and the day's report."""

    run_url: str | None = None
    report_path: str | None = None


HEADLINE = {
    "opened": ":rotating_light: *tsmetrics breach*",
    "escalated": ":arrow_double_up: *tsmetrics breach escalated*",
    "cleared": ":white_check_mark: *tsmetrics breach cleared*",
}
DEFAULT_ESCALATE_RATIO = 1.5


@dataclass(frozen=True)
class Transition:
    """An incident event for one check and cell: ``opened``, ``escalated`` or ``cleared``."""

    kind: str
    result: CheckResult


def _severity_ratio(statistic: float | None, threshold: float | None) -> float:
    if statistic is None or threshold is None or threshold == 0:
        return float("nan")
    return abs(statistic / threshold)


def incident_transitions(
    today: Sequence[CheckResult],
    yesterday: dict[tuple[str, str], tuple[str, float | None, float | None]],
    escalate_ratio: dict[str, float] | None = None,
) -> list[Transition]:
    """What to post today, given today's checks and, per (check, cell), the last decided
    (outcome, statistic, threshold) before today. Skipped checks change nothing (no evidence
    either way): pass ``previous`` without skipped rows."""
    ratios = escalate_ratio or {}
    events = []
    for result in today:
        before = yesterday.get((result.check_name, result.policy))
        was_breach = before is not None and before[0] == "breach"
        if result.outcome == "breach" and not was_breach:
            events.append(Transition("opened", result))
        elif result.outcome == "breach" and before is not None:
            grew = _severity_ratio(result.statistic, result.threshold) / _severity_ratio(
                before[1], before[2]
            )
            if grew >= ratios.get(result.check_name, DEFAULT_ESCALATE_RATIO):
                events.append(Transition("escalated", result))
        elif result.outcome == "pass" and was_breach:
            events.append(Transition("cleared", result))
    return events


def _number(value: float | None, spec: str = ".6g") -> str:
    """A statistic for a message; stored non-finite values come back as NULL."""
    return "n/a" if value is None else format(value, spec)


def breach_message(
    day: date,
    result: CheckResult,
    estimate: tuple[float, float, float] | None,
    links: AlertContext,
    kind: str = "opened",
) -> dict[str, Any]:
    """The Slack message body for one incident event: policy, surface, date, value, CI,
    baseline, rule, severity, owner and links (aggregates only, never user content)."""
    rule = RULE_TEXT.get(result.check_name, result.check_name)
    policy, domain = split_cell(result.policy)
    where = "" if domain == "all" else f", {domain.replace('=', ' ')}"
    subject = "pipeline" if policy == "*" else f"policy *{policy}*{where}"
    lines = [f"{HEADLINE[kind]} - {subject} on {day.isoformat()}"]
    if estimate is not None:
        value, ci_lower, ci_upper = estimate
        lines.append(f"prevalence {value:.4%} (95% CI {ci_lower:.4%} to {ci_upper:.4%})")
    lines += [
        f"rule: {result.check_name} ({rule}); statistic {_number(result.statistic)}, "
        f"threshold {_number(result.threshold)}"
        + ("" if result.p_value is None else f", p-value {_number(result.p_value, '.3g')}"),
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


def record_transitions(
    conn: psycopg.Connection,
    day: date,
    transitions: Sequence[Transition],
    estimates: dict[tuple[str, str], tuple[float, float, float]],
    links: AlertContext,
) -> int:
    """Add one outbox row per incident event not already recorded; return how many were new.

    ``estimates`` maps (policy, domain) to (estimate, CI lower, CI upper).
    """
    new = 0
    for event in transitions:
        result = event.result
        message = breach_message(
            day, result, estimates.get(split_cell(result.policy)), links, event.kind
        )
        inserted = conn.execute(
            "INSERT INTO tsm.alerts (event_date, dedup_key, policy, check_name, message) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING RETURNING alert_id",
            (
                day,
                f"{day.isoformat()}|{event.kind}|{result.check_name}|{result.policy}",
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
                (redact_urls(f"{type(error).__name__}: {error}")[:500], alert_id),
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


def record_day_alerts(
    conn: psycopg.Connection,
    day: date,
    estimates_of_day: dict[tuple[str, str], tuple[float, float, float]],
    escalate_ratio: dict[str, float],
    links: AlertContext,
    lookback_days: int = 14,
) -> int:
    """Turn the day's checks (``tsm.checks``) into outbox rows: each (check, cell)'s incident
    transition against its last decided (not skipped) outcome in the ``lookback_days`` before
    the day (:func:`incident_transitions`), recorded once each (:func:`record_transitions`).
    ``estimates_of_day`` maps (policy, domain) to (estimate, CI lower, CI upper) for the
    messages. Returns the number of new outbox rows."""
    checks = conn.execute(
        "SELECT check_name, policy, statistic, threshold, p_value, outcome, details "
        "FROM tsm.checks WHERE event_date = %s ORDER BY policy, check_name",
        (day,),
    ).fetchall()
    last_decided = {
        (row[0], row[1]): (row[2], row[3], row[4])
        for row in conn.execute(
            "SELECT DISTINCT ON (check_name, policy) check_name, policy, outcome, "
            "statistic, threshold FROM tsm.checks "
            "WHERE event_date < %s AND event_date >= %s AND outcome <> 'skipped' "
            "ORDER BY check_name, policy, event_date DESC",
            (day, day - timedelta(days=lookback_days)),
        )
    }
    events = incident_transitions(
        [CheckResult(*row) for row in checks], last_decided, escalate_ratio
    )
    return record_transitions(conn, day, events, estimates_of_day, links)


def pending_count(conn: psycopg.Connection) -> int:
    """Alerts in the outbox not yet delivered."""
    row = conn.execute("SELECT count(*) FROM tsm.alerts WHERE status = 'pending'").fetchone()
    return int(row[0]) if row else 0


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_urls(text: str) -> str:
    """``text`` with every URL replaced by ``<url redacted>`` (a webhook URL is a secret)."""
    return _URL.sub("<url redacted>", text)


class RedactUrls(logging.Filter):
    """Logging filter rewriting a record's message with :func:`redact_urls` (slack_sdk logs the
    webhook URL it posts to on retries and at debug level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def webhook_client_logger() -> logging.Logger:
    """The stdlib logger handed to the Slack webhook client, with :class:`RedactUrls`."""
    logger = logging.getLogger("tsmetrics.alerts.slack_client")
    if not any(isinstance(f, RedactUrls) for f in logger.filters):
        logger.addFilter(RedactUrls())
    return logger
