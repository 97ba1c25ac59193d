"""End to end with a REAL Label Studio server (label-studio==1.23.2 in its own virtualenv,
``TSMETRICS_LABEL_STUDIO_VENV``): one simulated day through ``prevalence_daily`` (Airflow
``dag.test()``), the overlap labeler being a Label Studio project reached through an Airflow
connection (URL + personal access token). A test-side annotator labels a third of the tasks
in Label Studio, waits while the sensor is deferred, then labels the rest; estimation runs
once the completion is reached."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from conftest import PROJECT_DIR
from human_queue_helpers import DagRunThread, answers_from_text, write_gold_file
from label_studio_server import LS_VENV, USER, LabelStudioStartError, Server, running_label_studio

from tsmetrics.label_studio import NOTES_TAG, LabelStudioClient
from tsmetrics.local_airflow import airflow_environment, migrate_metadata_db
from tsmetrics.simulate import SimulationConfig, simulate

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.labelstudio,
    pytest.mark.skipif(
        not LS_VENV, reason="set TSMETRICS_LABEL_STUDIO_VENV to a venv with label-studio==1.23.2"
    ),
]

DAY = date(2026, 8, 3)
REVIEWERS = "ls_reviewers"
PRIMARY = "simulated_labeler_a"


class Annotator:
    """A human in Label Studio: reads the project's tasks and submits annotations as the
    editor does (``POST /api/tasks/{id}/annotations/``)."""

    def __init__(self, server: Server, title: str) -> None:
        self.client = LabelStudioClient(
            server.url, personal_access_token=server.personal_access_token
        )
        self.title = title

    def project(self) -> dict[str, Any] | None:
        body = self.client.request("GET", "/api/projects/", params={"title": self.title})
        projects = body.get("results", []) if isinstance(body, dict) else body
        return next((p for p in projects if p["title"] == self.title), None)

    def tasks(self, timeout: float = 900.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            project = self.project()
            if project and project.get("task_number"):
                body = self.client.request(
                    "GET",
                    f"/api/projects/{project['id']}/export",
                    params={"exportType": "JSON", "download_all_tasks": "true"},
                )
                return sorted(body, key=lambda t: t["data"]["unit_id"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"no tasks in Label Studio project {self.title!r}")
            time.sleep(1)

    def annotate(self, tasks: list[dict[str, Any]]) -> None:
        for task in tasks:
            data = task["data"]
            answers = answers_from_text(" ".join(data[k] for k in ("query", "response", "pins")))
            result: list[dict[str, Any]] = []
            for policy, (verdict, sub) in answers.items():
                result.append(_choice(policy, verdict))
                if sub:
                    result.append(_choice(f"{policy}__sub_policy", sub))
            result.append(
                {
                    "from_name": NOTES_TAG,
                    "to_name": "unit_response",
                    "type": "textarea",
                    "value": {"text": ["looked at every pin"]},
                }
            )
            self.client.request(
                "POST",
                f"/api/tasks/{task['id']}/annotations/",
                json_body={"result": result, "was_cancelled": False, "lead_time": 9.0},
                expected=(201,),
            )


def _choice(name: str, value: str) -> dict[str, Any]:
    return {
        "from_name": name,
        "to_name": "unit_response",
        "type": "choices",
        "value": {"choices": [value]},
    }


@dataclass
class LSRun:
    database_url: str
    home: Path
    tasks: list[dict[str, Any]]
    seconds: float

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def ls_run(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LSRun]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("tsmetrics_ls")
    database_url = make_database()
    simulate(
        days=1,
        seed=33,
        start=DAY,
        raw_dir=home / "raw",
        truth_dir=home / "truth",
        config=SimulationConfig(n_interactions=3_000),
    )
    prefix = f"tsm-e2e-{uuid.uuid4().hex[:6]}"
    config = yaml.safe_load((PROJECT_DIR / "src/tsmetrics/config/policies.yaml").read_text())
    config["sampling"]["n_draws"] = 120
    config["sampling"]["planning"]["label_budget"] = 120
    config["labeling"]["overlap"] = {
        "labeler_id": REVIEWERS,
        "backend": "label_studio",
        "conn_id": "tsmetrics_label_studio",
        "fraction": 0.3,
    }
    gold = write_gold_file(home / "gold.jsonl", n_violating=6, n_clean=6, n_hard=2)
    config["labeling"]["gold"] = {"rate": 0.1, "file": str(gold)}
    config["labeling"]["wait"] = {
        "min_completion": 0.9,
        "deadline_hours": 0.15,
        "poll_seconds": 1,
        "max_idle_minutes": 10,
    }
    config["estimation"]["adjudication"] = {"method": "dawid_skene"}
    (home / "policies.yaml").write_text(yaml.safe_dump(config))
    try:
        with running_label_studio(tmp_path_factory.mktemp("label_studio")) as server:
            connection = {
                "conn_type": "http",
                "host": server.url,
                "password": server.personal_access_token,
                "extra": {"title_prefix": prefix},
            }
            env = airflow_environment(
                PROJECT_DIR,
                home / "airflow",
                database_url,
                {
                    "TSMETRICS_HOME": str(home),
                    "TSMETRICS_RAW_DIR": str(home / "raw"),
                    "TSMETRICS_REPORTS_DIR": str(home / "reports"),
                    "TSMETRICS_POLICIES_FILE": str(home / "policies.yaml"),
                    "AIRFLOW_CONN_TSMETRICS_LABEL_STUDIO": json.dumps(connection),
                },
            )
            log = home / "airflow.log"
            migrate_metadata_db(env, log)
            from tsmetrics.label_studio import project_title
            from tsmetrics.prompts import load_policies

            annotator = Annotator(server, project_title(list(load_policies().values()), prefix))
            run = DagRunThread(env, DAY, log)
            run.start()
            tasks = annotator.tasks()
            annotator.annotate(tasks[: len(tasks) // 3])
            time.sleep(5)  # a third cannot complete the day: the sensor defers and polls
            annotator.annotate(tasks[len(tasks) // 3 :])
            run.join_checked()
            assert server.personal_access_token not in log.read_text()
            yield LSRun(database_url, home, tasks, run.seconds)
    except LabelStudioStartError as error:
        pytest.fail(str(error))


def test_label_studio_labels_arrive_while_the_sensor_waits(ls_run: LSRun) -> None:
    rows = ls_run.query(
        "SELECT policy, tasks, done, completion, outcome, cut_by_deadline, wait_rounds, "
        "gold_tasks, gold_done FROM tsm.label_completion WHERE event_date = %s "
        "AND labeler_id = %s",
        DAY,
        REVIEWERS,
    )
    assert rows and all(r[4] == "complete" and r[5] is False and r[6] >= 2 for r in rows)
    # estimation went ahead at 90%, possibly before the annotator's last answers
    assert all(r[1] > 5 and r[2] >= 0.9 * r[1] and r[3] >= 0.9 and r[7] > 0 for r in rows)
    labels = ls_run.query(
        "SELECT DISTINCT annotator, notes FROM tsm.labels WHERE event_date = %s "
        "AND labeler_id = %s",
        DAY,
        REVIEWERS,
    )
    assert labels == [(USER, "looked at every pin")]
    print(f"\nDAG run with Label Studio: {ls_run.seconds:.0f} s, {len(ls_run.tasks)} tasks")


def test_label_studio_sees_blind_keys_only(ls_run: LSRun) -> None:
    keys = {
        r[0]: r[1]
        for r in ls_run.query(
            "SELECT queue_key, purpose FROM tsm.label_tasks WHERE event_date = %s "
            "AND labeler_id = %s",
            DAY,
            REVIEWERS,
        )
    }
    assert {t["data"]["unit_id"] for t in ls_run.tasks} == set(keys)
    assert "gold" in keys.values()
    for task in ls_run.tasks:
        data = task["data"]
        assert re.fullmatch(r"u[0-9a-f]{19}", data["unit_id"])
        assert data["meta"] == f"unit {data['unit_id']} | surface {data['surface']} | day {DAY}"
        text = json.dumps(data).lower()
        assert "gold" not in text and "20260803-" not in text


def test_gold_accuracy_and_adjudication_are_recorded(ls_run: LSRun) -> None:
    gold = {
        (r[0], r[1]): r[2:]
        for r in ls_run.query(
            "SELECT labeler_id, policy, n_items, accuracy, sensitivity FROM tsm.labeler_confusion "
            "WHERE event_date = %s AND reference = 'gold'",
            DAY,
        )
    }
    injected = {
        (r[0], r[1]): r[2]
        for r in ls_run.query(
            "SELECT t.labeler_id, a.key, "
            "count(*) FILTER (WHERE (a.value ->> 'is_violating')::bool) "
            "FROM tsm.label_tasks AS t JOIN tsm.gold_items AS g USING (gold_id) "
            "CROSS JOIN LATERAL jsonb_each(g.answers) AS a "
            "WHERE t.event_date = %s AND t.purpose = 'gold' GROUP BY 1, 2",
            DAY,
        )
    }
    for labeler in (PRIMARY, REVIEWERS):
        n, accuracy, sensitivity = gold[(labeler, "adult")]
        assert n > 0 and accuracy == 1.0  # every labeler reads the tokens right
        assert sensitivity in (1.0, None)
        # the "hard" items (SME: harassment, no token) are missed by both labelers
        assert gold[(labeler, "harassment")][2] in (0.0, None)
    # the simulated primary labelled all its gold tasks during the run: its rates are exact
    assert gold[(PRIMARY, "adult")][2] == (1.0 if injected[(PRIMARY, "adult")] else None)
    hard = injected[(PRIMARY, "harassment")]
    assert gold[(PRIMARY, "harassment")][2] == (0.0 if hard else None)
    adjudication = ls_run.query(
        "SELECT DISTINCT adjudication FROM tsm.estimates WHERE event_date = %s "
        "AND estimator = 'horvitz_thompson'",
        DAY,
    )
    assert adjudication == [("dawid_skene",)]
    assert (
        ls_run.query(
            "SELECT count(*) FROM tsm.labeler_confusion WHERE event_date = %s "
            "AND reference = 'dawid_skene'",
            DAY,
        )[0][0]
        == 2 * 4
    )
