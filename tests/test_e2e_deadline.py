"""End to end: the DAG's deadline alert, through Airflow's own scheduler and triggerer, posts a
missed deadline once to a real local webhook server.

The DAG (``dags/prevalence_daily.py``) carries a ``DeadlineAlert`` on ``DAGRUN_QUEUED_AT`` with
an ``AsyncCallback`` of the Slack provider's ``SlackWebhookNotifier``. Here its interval is
0.6 s (``TSMETRICS_DEADLINE_MINUTES``); the DAG is serialized into a Postgres metadata
database (``airflow dags reserialize``), a run is queued (``airflow dags trigger``; the DAG is
paused at creation, so the run cannot finish), one scheduler loop marks the deadline missed and
queues the callback, and the triggerer runs the notifier, which posts to the webhook server.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from conftest import PROJECT_DIR
from webhook_server import running_webhook_server

from tsmetrics.local_airflow import (
    airflow_command,
    airflow_environment,
    airflow_service,
    metadata_database_url,
    migrate_metadata_db,
)

pytestmark = pytest.mark.e2e

RUN_ID = "manual__deadline_test"


def test_a_missed_deadline_posts_once_to_slack(make_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    database_url = make_database()
    log = tmp_path / "airflow.log"
    with running_webhook_server() as webhook:
        env = airflow_environment(
            PROJECT_DIR,
            tmp_path / "airflow",
            database_url,
            {
                "TSMETRICS_HOME": str(tmp_path),
                "AIRFLOW_CONN_TSMETRICS_SLACK": webhook.connection_json(),
                "TSMETRICS_DEADLINE_MINUTES": "0.01",
                "TSMETRICS_AIRFLOW_BASE_URL": "http://airflow.example:8080",
            },
        )
        metadata = metadata_database_url(database_url)
        migrate_metadata_db(env, log)
        airflow_command(env, log, "dags", "reserialize")
        airflow_command(env, log, "dags", "trigger", "prevalence_daily", "--run-id", RUN_ID)
        with psycopg.connect(metadata) as conn:
            ((paused,),) = conn.execute(
                "SELECT is_paused FROM dag WHERE dag_id = 'prevalence_daily'"
            ).fetchall()
            ((state, queued_at, deadline_time, missed),) = conn.execute(
                "SELECT r.state, r.queued_at, d.deadline_time, d.missed FROM dag_run AS r "
                "JOIN deadline AS d ON d.dagrun_id = r.id WHERE r.run_id = %s",
                (RUN_ID,),
            ).fetchall()
        assert paused and state == "queued" and not missed  # the run cannot finish
        assert (deadline_time - queued_at).total_seconds() == pytest.approx(0.6, abs=1e-3)
        while datetime.now(UTC) <= deadline_time:
            time.sleep(0.2)
        airflow_command(env, log, "scheduler", "--num-runs", "1", "--skip-serve-logs")
        with psycopg.connect(metadata) as conn:
            ((missed, callback_type, callback_state),) = conn.execute(
                "SELECT d.missed, c.type, c.state FROM deadline AS d "
                "JOIN callback AS c ON c.id = d.callback_id"
            ).fetchall()
        assert missed and callback_type == "triggerer" and callback_state == "queued"
        assert webhook.received == []  # nothing is posted before the triggerer runs it
        with airflow_service(env, log, "triggerer"):
            give_up = time.monotonic() + 180
            while not webhook.received and time.monotonic() < give_up:
                time.sleep(0.5)
            time.sleep(5)  # would a second post follow?
        with psycopg.connect(metadata) as conn:
            ((callback_state,),) = conn.execute("SELECT state FROM callback").fetchall()
    assert len(webhook.received) == 1, webhook.received
    (text,) = webhook.texts()
    assert text.startswith(":alarm_clock: tsmetrics missed deadline: prevalence_daily run ")
    assert RUN_ID in text and "had not finished by" in text
    assert f"Airflow run: http://airflow.example:8080/dags/prevalence_daily/runs/{RUN_ID}" in text
    assert callback_state == "success"
    assert webhook.url.split("/services/")[1] not in log.read_text()  # the secret stays out
