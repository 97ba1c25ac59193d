"""End to end: three simulated days through ``prevalence_daily`` run by Airflow (``dag.test()``),
on a real Postgres, alerting a real local webhook server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import PROJECT_DIR
from webhook_server import WebhookServer, running_webhook_server

from tsmetrics.demo import results_table
from tsmetrics.local_airflow import (
    airflow_environment,
    migrate_metadata_db,
    run_day_subprocess,
)
from tsmetrics.simulate import SimulationConfig, read_truth, simulate

pytestmark = pytest.mark.e2e

START = date(2026, 11, 1)
SEED = 11
COMMON_POLICIES = ("adult", "harassment")  # simulated base prevalence >= 0.5%
DAY_TABLES = (
    "raw_interactions",
    "raw_components",
    "raw_risk_scores",
    "quarantine",
    "units",
    "unit_risk",
    "samples",
    "label_tasks",
    "labels",
    "estimates",
    "agreement",
    "checks",
)


@dataclass
class Pipeline:
    database_url: str
    env: dict[str, str]
    days: list[date]
    truth_dir: Path
    log: Path
    webhook: WebhookServer

    def run(self, day: date, conf: dict[str, Any] | None = None) -> None:
        run_day_subprocess(self.env, day, self.log, conf)

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def estimates(self, day: date) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT policy, domain, estimator, estimate, std_error, ci_lower, ci_upper, n_draws, "
            "n_positive_draws FROM tsm.estimates WHERE event_date = %s AND domain = 'all' "
            "AND estimator = 'horvitz_thompson' ORDER BY policy",
            day,
        )

    def day_counts(self, day: date) -> dict[str, int]:
        return {
            table: self.query(f"SELECT count(*) FROM tsm.{table} WHERE event_date = %s", day)[0][0]
            for table in DAY_TABLES
        }


@pytest.fixture(scope="module")
def pipeline(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("tsmetrics_home")
    database_url = make_database()
    days = simulate(
        days=3,
        seed=SEED,
        start=START,
        raw_dir=home / "raw",
        truth_dir=home / "truth",
        config=SimulationConfig(n_interactions=30_000),
    )
    with running_webhook_server() as webhook:
        env = airflow_environment(
            PROJECT_DIR,
            home / "airflow",
            database_url,
            {
                "TSMETRICS_HOME": str(home),
                "TSMETRICS_RAW_DIR": str(home / "raw"),
                "TSMETRICS_REPORTS_DIR": str(home / "reports"),
                "AIRFLOW_CONN_TSMETRICS_SLACK": webhook.connection_json(),
            },
        )
        log = home / "airflow.log"
        migrate_metadata_db(env, log)
        result = Pipeline(database_url, env, days, home / "truth", log, webhook)
        for day in days:
            result.run(day)
        yield result


def test_each_common_policy_ci_contains_the_truth(pipeline: Pipeline) -> None:
    for day in pipeline.days:
        truth = read_truth(pipeline.truth_dir, day)["policies"]
        rows = {r[0]: r for r in pipeline.estimates(day)}
        assert set(rows) == {"adult", "harassment", "self_harm", "misinformation"}
        for policy in COMMON_POLICIES:
            _, _, _, estimate, _, lower, upper, _, _ = rows[policy]
            true_value = truth[policy]["unit_prevalence"]
            assert lower <= true_value <= upper, (day, policy, estimate, lower, upper, true_value)


def test_component_level_is_stored_and_printed_next_to_the_unit_level(
    pipeline: Pipeline,
) -> None:
    for day in pipeline.days:
        truth = read_truth(pipeline.truth_dir, day)["policies"]
        rows = {
            r[0]: r
            for r in pipeline.query(
                "SELECT policy, estimate, ci_lower, ci_upper, level FROM tsm.estimates "
                "WHERE event_date = %s AND domain = 'all' "
                "AND estimator = 'horvitz_thompson_component'",
                day,
            )
        }
        assert set(rows) == {"adult", "harassment", "self_harm", "misinformation"}
        units = {r[0]: r[3] for r in pipeline.estimates(day)}
        for policy, (_, estimate, lower, upper, level) in rows.items():
            assert level == "component" and estimate <= units[policy]
            if policy in COMMON_POLICIES:
                assert lower <= truth[policy]["component_prevalence"] <= upper, (day, policy)
    labelled = pipeline.query(
        "SELECT count(*) FILTER (WHERE violating_components IS NOT NULL), count(*) FROM tsm.labels"
    )[0]
    assert labelled[0] == labelled[1] > 0  # the simulated labelers give component verdicts
    table = results_table(pipeline.database_url, pipeline.days, pipeline.truth_dir)
    assert table.count(" component ") == table.count(" unit ") == 4 * len(pipeline.days)


def test_no_alert_without_a_breach(pipeline: Pipeline) -> None:
    breaches = pipeline.query("SELECT count(*) FROM tsm.checks WHERE outcome = 'breach'")[0][0]
    assert breaches == 0
    assert pipeline.webhook.received == []


def test_rerunning_a_day_gives_identical_estimates_and_no_duplicates(pipeline: Pipeline) -> None:
    day = pipeline.days[1]
    before, counts_before = pipeline.estimates(day), pipeline.day_counts(day)
    surfaces = pipeline.query(
        "SELECT count(DISTINCT surface) FROM tsm.units WHERE event_date = %s", day
    )[0][0]
    # unit and component level x (overall + one per surface domain) x 4 policies
    assert counts_before["estimates"] == 2 * 4 * (1 + surfaces)
    assert counts_before["raw_interactions"] > 0
    pipeline.run(day)
    assert pipeline.estimates(day) == before
    assert pipeline.day_counts(day) == counts_before
    loads = pipeline.query(
        "SELECT rows_read, rows_loaded, rows_quarantined FROM tsm.load_batches "
        "WHERE event_date = %s ORDER BY load_id",
        day,
    )
    assert len(loads) == 2 and loads[0] == loads[1]


def test_an_injected_breach_posts_exactly_one_slack_message(pipeline: Pipeline) -> None:
    day = pipeline.days[2]
    adult = {r[0]: r for r in pipeline.estimates(day)}["adult"]
    estimate, lower, upper = adult[3], adult[5], adult[6]
    limit = lower / 2  # the CI lower bound is now well above the limit: a breach
    pipeline.run(day, {"policy_limits": {"adult": limit}})
    texts = pipeline.webhook.texts()
    assert len(texts) == 1
    text = texts[0]
    assert "adult" in text and day.isoformat() in text
    assert f"{estimate:.4%}" in text and f"{lower:.4%}" in text and f"{upper:.4%}" in text
    assert "limit" in text
    pipeline.run(day, {"policy_limits": {"adult": limit}})  # same breach again: not re-posted
    assert len(pipeline.webhook.texts()) == 1


def test_a_failed_task_alerts_through_the_failure_callback(pipeline: Pipeline) -> None:
    missing_day = date(2026, 10, 1)  # no input file for it
    with pytest.raises(RuntimeError, match="failed"):
        pipeline.run(missing_day)
    failures = [t for t in pipeline.webhook.texts() if "task failed" in t]
    assert len(failures) == 1 and "stage_raw" in failures[0]
    assert "no input for 2026-10-01" in pipeline.log.read_text()
