"""The alert outbox against a real Postgres and a real local webhook server."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from datetime import date

import psycopg
import pytest

from tsmetrics.alerts import (
    AlertContext,
    Transition,
    breach_message,
    deliver_pending,
    incident_transitions,
    record_transitions,
    redact_urls,
)
from tsmetrics.checks import CheckResult
from tsmetrics.errors import AlertDeliveryError
from tsmetrics.tasks import _slack_sender

DAY = date(2031, 5, 4)
ESTIMATES = {
    ("adult", "all"): (0.021, 0.015, 0.028),
    ("self_harm", "all"): (0.004, 0.002, 0.007),
    ("adult", "surface=search"): (0.03, 0.02, 0.045),
}


def breach(policy: str, check: str = "limit", statistic: float = 0.015) -> CheckResult:
    return CheckResult(check, policy, statistic, 0.01, None, "breach", {})


def passed(policy: str, check: str = "limit") -> CheckResult:
    return CheckResult(check, policy, 0.005, 0.01, None, "pass", {})


def record_breaches(conn, day, results, estimates, links) -> int:  # type: ignore[no-untyped-def]
    """Record today's breaches as if nothing breached yesterday (every breach opens)."""
    return record_transitions(conn, day, incident_transitions(results, {}), estimates, links)


def test_incidents_open_stay_quiet_escalate_and_clear() -> None:
    def kinds(today, yesterday):  # type: ignore[no-untyped-def]
        return [(e.kind, e.result.policy) for e in incident_transitions(today, yesterday)]

    assert kinds([breach("adult")], {}) == [("opened", "adult")]
    ongoing = {("limit", "adult"): ("breach", 0.015, 0.01)}
    assert kinds([breach("adult")], ongoing) == []  # not re-posted every day
    assert kinds([breach("adult", statistic=0.03)], ongoing) == [("escalated", "adult")]
    assert kinds([passed("adult")], ongoing) == [("cleared", "adult")]
    skipped = CheckResult("limit", "adult", float("nan"), 0.01, None, "skipped", {})
    assert kinds([skipped], ongoing) == []
    assert kinds([passed("adult")], {}) == []


def test_a_cleared_incident_posts_once(outbox: psycopg.Connection) -> None:
    event = [Transition("cleared", passed("adult"))]
    assert record_transitions(outbox, DAY, event, ESTIMATES, AlertContext()) == 1
    assert record_transitions(outbox, DAY, event, ESTIMATES, AlertContext()) == 0
    (message,) = outbox.execute("SELECT message FROM tsm.alerts").fetchone()
    assert "cleared" in message["text"]


@pytest.fixture
def outbox(make_database) -> Iterator[psycopg.Connection]:  # type: ignore[no-untyped-def]
    """A fresh warehouse per test: the outbox is global, so tests must not share it."""
    with psycopg.connect(make_database()) as connection:
        yield connection


@pytest.fixture
def slack_conn(webhook_server) -> Iterator[object]:  # type: ignore[no-untyped-def]
    os.environ["AIRFLOW_CONN_TSMETRICS_SLACK_TEST"] = webhook_server.connection_json()
    yield webhook_server
    os.environ.pop("AIRFLOW_CONN_TSMETRICS_SLACK_TEST", None)


def test_message_names_policy_date_value_ci_rule_and_links() -> None:
    links = AlertContext("http://airflow/dags/prevalence_daily/runs/r1", "/reports/x.html")
    text = breach_message(DAY, breach("adult"), ESTIMATES[("adult", "all")], links)["text"]
    for expected in (
        "adult",
        "2031-05-04",
        "2.1000%",
        "1.5000%",
        "2.8000%",
        "limit",
        "http://airflow/dags/prevalence_daily/runs/r1",
        "/reports/x.html",
    ):
        assert expected in text


def test_a_surface_cell_message_names_surface_baseline_severity_and_owner() -> None:
    result = CheckResult(
        "baseline_change",
        "adult|surface=search",
        4.2,
        3.1,
        1e-5,
        "breach",
        {"baseline_mean": 0.012, "severity": "warning", "owner": "ts-measurement"},
    )
    text = breach_message(DAY, result, ESTIMATES[("adult", "surface=search")], AlertContext())[
        "text"
    ]
    for expected in (
        "adult",
        "surface search",
        "3.0000%",
        "baseline 1.2000%",
        "warning",
        "ts-measurement",
        "baseline_change",
    ):
        assert expected in text


def test_a_pipeline_breach_without_estimate_or_statistic_still_makes_a_message() -> None:
    result = CheckResult("input_volume", "*", None, 0.5, None, "breach", {"severity": "critical"})  # type: ignore[arg-type]
    text = breach_message(DAY, result, None, AlertContext())["text"]
    assert "pipeline" in text and "input_volume" in text and "n/a" in text and "critical" in text


def test_breaches_are_recorded_once(outbox: psycopg.Connection) -> None:
    results = [breach("adult"), CheckResult("limit", "self_harm", 0.0, 0.01, None, "pass", {})]
    assert record_breaches(outbox, DAY, results, ESTIMATES, AlertContext()) == 1
    assert record_breaches(outbox, DAY, results, ESTIMATES, AlertContext()) == 0
    assert outbox.execute("SELECT count(*) FROM tsm.alerts").fetchone() == (1,)


def test_pending_alerts_are_posted_in_order_and_only_once(
    outbox: psycopg.Connection, slack_conn
) -> None:  # type: ignore[no-untyped-def]
    record_breaches(outbox, DAY, [breach("adult"), breach("self_harm")], ESTIMATES, AlertContext())
    send = _slack_sender("tsmetrics_slack_test")
    assert deliver_pending(outbox, send) == 2
    assert deliver_pending(outbox, send) == 0
    texts = slack_conn.texts()
    assert len(texts) == 2 and "adult" in texts[0] and "self_harm" in texts[1]


def test_a_500_keeps_the_alert_pending_and_the_next_run_delivers_it(
    outbox: psycopg.Connection, slack_conn
) -> None:  # type: ignore[no-untyped-def]
    record_breaches(outbox, DAY, [breach("adult")], ESTIMATES, AlertContext())
    slack_conn.fail_next(1, status=500)
    send = _slack_sender("tsmetrics_slack_test")
    with pytest.raises(AlertDeliveryError):
        deliver_pending(outbox, send)
    status, attempts, error = outbox.execute(
        "SELECT status, attempts, last_error FROM tsm.alerts"
    ).fetchone()
    assert (status, attempts) == ("pending", 1) and error
    assert slack_conn.received == []
    assert deliver_pending(outbox, send) == 1
    assert len(slack_conn.received) == 1
    assert outbox.execute("SELECT status, attempts FROM tsm.alerts").fetchone() == ("sent", 2)


def test_an_unreachable_server_loses_nothing(outbox: psycopg.Connection, webhook_server) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:  # a port with nothing listening: connection refused
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    os.environ["AIRFLOW_CONN_TSMETRICS_SLACK_DOWN"] = webhook_server.connection_json().replace(
        str(webhook_server.port), str(closed_port)
    )
    try:
        record_breaches(outbox, DAY, [breach("adult")], ESTIMATES, AlertContext())
        with pytest.raises(AlertDeliveryError):
            deliver_pending(outbox, _slack_sender("tsmetrics_slack_down"))
    finally:
        os.environ.pop("AIRFLOW_CONN_TSMETRICS_SLACK_DOWN", None)
    os.environ["AIRFLOW_CONN_TSMETRICS_SLACK_UP"] = webhook_server.connection_json()
    try:
        assert deliver_pending(outbox, _slack_sender("tsmetrics_slack_up")) == 1
    finally:
        os.environ.pop("AIRFLOW_CONN_TSMETRICS_SLACK_UP", None)
    assert len(webhook_server.received) == 1


def test_no_connection_configured_means_no_sender() -> None:
    assert _slack_sender("tsmetrics_slack_not_configured") is None


def test_recovery_after_the_server_was_down_on_the_same_url(
    outbox: psycopg.Connection, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """The webhook server is stopped while alerts are pending: the posts fail (connection
    refused, slack_sdk retries and logs), nothing is lost and no URL reaches the logs or the
    outbox; the server comes back on the same port and the next run delivers every alert once,
    in order."""
    from webhook_server import running_webhook_server

    with running_webhook_server() as first:
        port, url = first.port, first.url
        connection = first.connection_json()
    os.environ["AIRFLOW_CONN_TSMETRICS_SLACK_FLAKY"] = connection
    try:
        record_breaches(
            outbox, DAY, [breach("adult"), breach("self_harm")], ESTIMATES, AlertContext()
        )
        caplog.set_level(logging.DEBUG)
        with pytest.raises(AlertDeliveryError) as failure:
            deliver_pending(outbox, _slack_sender("tsmetrics_slack_flaky"))
        rows = outbox.execute(
            "SELECT status, attempts, last_error FROM tsm.alerts ORDER BY alert_id"
        ).fetchall()
        assert [(r[0], r[1]) for r in rows] == [("pending", 1), ("pending", 1)]
        secret = url.split("/services/")[1]
        # Airflow's logging writes the client's records (retries, errors) to stderr
        logged = caplog.text + "".join(capfd.readouterr())
        assert "Failed to send a request to Slack" in logged
        for text in (logged, str(failure.value), *(r[2] for r in rows)):
            assert secret not in text and "/services/" not in text, text
        with running_webhook_server(port) as again:
            assert deliver_pending(outbox, _slack_sender("tsmetrics_slack_flaky")) == 2
            assert deliver_pending(outbox, _slack_sender("tsmetrics_slack_flaky")) == 0
            texts = again.texts()
        assert len(texts) == 2 and "adult" in texts[0] and "self_harm" in texts[1]
        assert secret not in caplog.text + "".join(capfd.readouterr())
    finally:
        os.environ.pop("AIRFLOW_CONN_TSMETRICS_SLACK_FLAKY", None)


def test_redact_urls_removes_every_url() -> None:
    text = "POST https://hooks.slack.com/services/T1/B2/xyz failed; see http://a.b/c?d=1 ok"
    assert redact_urls(text) == "POST <url redacted> failed; see <url redacted> ok"
    assert redact_urls("no url here") == "no url here"
