"""End to end with an LLM labeler: one simulated day through ``prevalence_daily`` (Airflow
``dag.test()``), the overlap labeler being the OpenAI-compatible LLM labeler pointed (through an
Airflow connection) at a real local chat-completions server that answers badly at first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from conftest import PROJECT_DIR
from openai_server import (
    MALFORMED_JSON,
    RATE_LIMITED,
    REFUSAL,
    TRUNCATED,
    OpenAIServer,
    Step,
    running_openai_server,
)
from webhook_server import running_webhook_server

from tsmetrics.local_airflow import airflow_environment, migrate_metadata_db, run_day_subprocess
from tsmetrics.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.e2e

DAY = date(2026, 10, 12)
LLM_ID = "llm_labeler_v1"


@dataclass
class LLMRun:
    database_url: str
    server: OpenAIServer
    log: Path

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()


def _policies_file(path: Path) -> Path:
    config = yaml.safe_load((PROJECT_DIR / "src/tsmetrics/config/policies.yaml").read_text())
    config["sampling"]["n_draws"] = 300
    config["labeling"]["overlap"] = {
        "labeler_id": LLM_ID,
        "backend": "llm",
        "conn_id": "tsmetrics_llm",
        "fraction": 0.1,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def llm_run(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMRun]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("tsmetrics_llm")
    database_url = make_database()
    simulate(
        days=1,
        seed=5,
        start=DAY,
        raw_dir=home / "raw",
        truth_dir=home / "truth",
        config=SimulationConfig(n_interactions=5_000),
    )
    with running_webhook_server() as webhook, running_openai_server() as server:
        # The first answers are bad or refused: each is a failed attempt, retried later.
        server.script(
            MALFORMED_JSON, REFUSAL, TRUNCATED, Step(RATE_LIMITED, retry_after="0"), MALFORMED_JSON
        )
        connection = {
            "conn_type": "http",
            "host": server.base_url,
            "password": server.api_key,
            "extra": json.dumps({"model": server.model, "max_retries": 2, "timeout": 10}),
        }
        env = airflow_environment(
            PROJECT_DIR,
            home / "airflow",
            database_url,
            {
                "TSMETRICS_HOME": str(home),
                "TSMETRICS_RAW_DIR": str(home / "raw"),
                "TSMETRICS_REPORTS_DIR": str(home / "reports"),
                "TSMETRICS_POLICIES_FILE": str(_policies_file(home / "policies.yaml")),
                "AIRFLOW_CONN_TSMETRICS_SLACK": webhook.connection_json(),
                "AIRFLOW_CONN_TSMETRICS_LLM": json.dumps(connection),
            },
        )
        log = home / "airflow.log"
        migrate_metadata_db(env, log)
        run_day_subprocess(env, DAY, log)
        yield LLMRun(database_url, server, log)


def test_every_llm_task_ends_labelled_with_its_prompt_version(llm_run: LLMRun) -> None:
    tasks = llm_run.query(
        "SELECT status, count(*) FROM tsm.label_tasks WHERE event_date = %s AND labeler_id = %s "
        "GROUP BY status",
        DAY,
        LLM_ID,
    )
    assert dict(tasks).keys() == {"done"} and dict(tasks)["done"] > 10
    labels = llm_run.query(
        "SELECT DISTINCT prompt_version, model FROM tsm.labels WHERE event_date = %s "
        "AND labeler_id = %s",
        DAY,
        LLM_ID,
    )
    assert len(labels) == 1
    prompt_version, model = labels[0]
    assert prompt_version.startswith("label_unit_v2-") and model == llm_run.server.model


def test_bad_answers_are_audited_failed_attempts_never_labels(llm_run: LLMRun) -> None:
    attempts = llm_run.query(
        "SELECT error_reason, count(*) FROM tsm.label_attempts WHERE event_date = %s "
        "GROUP BY error_reason",
        DAY,
    )
    by_reason = {reason: count for reason, count in attempts}
    assert by_reason["non_json"] == 2 and by_reason["refusal"] == 1
    assert by_reason["truncated"] == 1 and by_reason["rate_limited"] == 1
    # Every HTTP request the server saw is in the audit trail, with tokens and latency.
    assert sum(by_reason.values()) == len(llm_run.server.chat_requests())
    failed_tasks = llm_run.query(
        "SELECT count(*) FROM tsm.label_tasks WHERE event_date = %s AND labeler_id = %s "
        "AND attempts > 1",
        DAY,
        LLM_ID,
    )[0][0]
    assert failed_tasks == 4  # malformed x2, refusal, truncated; the 429 was retried in-call


def test_llm_agrees_with_the_primary_labeler(llm_run: LLMRun) -> None:
    """The scripted model reads the simulator's violation tokens, as the primary labeler does."""
    rows = llm_run.query(
        "SELECT metric, value, percent_agreement, n_items FROM tsm.agreement "
        "WHERE event_date = %s AND labeler_b = %s",
        DAY,
        LLM_ID,
    )
    assert rows and all(r[2] == 1.0 and r[3] > 10 for r in rows)


def test_the_api_key_never_reaches_the_logs(llm_run: LLMRun) -> None:
    assert llm_run.server.api_key not in llm_run.log.read_text()
    raw = llm_run.query("SELECT string_agg(coalesce(raw_response, ''), '') FROM tsm.label_attempts")
    assert llm_run.server.api_key not in (raw[0][0] or "")
