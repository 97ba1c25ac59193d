"""The DAG folder parses cleanly, cheaply and without touching a database or the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from conftest import PROJECT_DIR

# Runs in a fresh interpreter: any socket connection during parsing raises, so a DAG file that
# reaches a database or the network at parse time fails this test.
PARSE_SCRIPT = r"""
import json, sys

def forbid_network(event, args):
    if event == "socket.connect":
        raise RuntimeError(f"DAG parsing opened a network connection: {args[1:]}")

sys.addaudithook(forbid_network)
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "owners": sorted({t.owner for t in dag.tasks}),
        "tags": sorted(dag.tags),
        "timetable": type(dag.timetable).__name__,
        "failure_callbacks": all(t.on_failure_callback for t in dag.tasks),
        "tasks": [t.task_id for t in dag.topological_sort()]
        if hasattr(dag, "topological_sort") else sorted(dag.task_ids),
        "catchup": dag.catchup,
    }
print(json.dumps(out))
"""


def parse_dags(folder: Path = PROJECT_DIR / "dags") -> dict:  # type: ignore[type-arg]
    env = {
        **os.environ,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # An unreachable warehouse: parsing must not need it.
        "AIRFLOW_CONN_TSMETRICS_DB": json.dumps(
            {"conn_type": "postgres", "host": "203.0.113.1", "port": 1}
        ),
    }
    result = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_dags_parse_without_errors_or_connections() -> None:
    parsed = parse_dags()
    assert parsed["import_errors"] == {}
    dag = parsed["dags"]["prevalence_daily"]
    assert dag["owners"] == ["trust-safety-measurement"]
    assert "tsmetrics" in dag["tags"]
    assert dag["timetable"] == "CronDataIntervalTimetable"
    assert dag["failure_callbacks"]
    assert dag["catchup"] is False


def test_a_dag_file_that_connects_at_parse_time_is_caught(tmp_path: Path) -> None:
    (tmp_path / "greedy_dag.py").write_text(
        "import socket\n"
        "from airflow.sdk import DAG\n"
        "socket.create_connection(('127.0.0.1', 5432), timeout=1)\n"
        "dag = DAG(dag_id='greedy', schedule=None)\n"
    )
    parsed = parse_dags(tmp_path)
    assert "network connection" in next(iter(parsed["import_errors"].values()))


def test_the_data_interval_is_the_previous_full_utc_day() -> None:
    from airflow.sdk import CronDataIntervalTimetable
    from airflow.serialization.encoders import coerce_to_core_timetable

    from tsmetrics.schedule import processing_day

    timetable = coerce_to_core_timetable(CronDataIntervalTimetable("0 0 * * *", timezone="UTC"))
    interval = timetable.infer_manual_data_interval(
        run_after=datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    )
    assert (interval.start, interval.end) == (
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
    )
    assert processing_day(interval.start, interval.end).isoformat() == "2026-11-20"
