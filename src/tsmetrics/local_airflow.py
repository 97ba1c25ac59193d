"""Run the DAGs locally through Airflow itself (``dag.test()``), for the demo and the tests.

``airflow_environment`` builds the environment a local Airflow needs: a project-local
``AIRFLOW_HOME`` with a SQLite metadata database, the project's ``dags/`` folder, and the
warehouse as an ``AIRFLOW_CONN_*`` connection. ``run_day`` must run in a process started with
that environment (Airflow reads its configuration at import time).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

DAG_ID = "prevalence_daily"


def airflow_connection_json(database_url: str) -> str:
    """An Airflow connection (JSON form) for a libpq URL, including socket-directory hosts."""
    parts = conninfo_to_dict(database_url.replace("postgresql+psycopg://", "postgresql://"))
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": parts.get("host", "localhost"),
            "port": int(str(parts.get("port") or 5432)),
            "login": parts.get("user", "postgres"),
            "password": parts.get("password") or None,
            "schema": parts.get("dbname", "postgres"),
        }
    )


def airflow_environment(
    project_dir: Path, airflow_home: Path, database_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment variables for a local Airflow running this project's DAGs."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project_dir / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project_dir / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "TSMETRICS_TASK_RETRIES": "0",
        "AIRFLOW_CONN_TSMETRICS_DB": airflow_connection_json(database_url),
        "TSMETRICS_DATABASE_URL": database_url,
    }
    env.update(extra or {})
    return env


def migrate_metadata_db(env: dict[str, str], log_path: Path) -> None:
    """``airflow db migrate`` for the local metadata database (idempotent)."""
    with log_path.open("a") as log:
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )


def run_day_subprocess(
    env: dict[str, str], day: date, log_path: Path, conf: dict[str, Any] | None = None
) -> None:
    """Run the DAG for ``day`` in a fresh process with ``env``; raise if the run failed."""
    command = [
        sys.executable,
        "-m",
        "tsmetrics.local_airflow",
        day.isoformat(),
        json.dumps(conf or {}),
    ]
    with log_path.open("a") as log:
        result = subprocess.run(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        raise RuntimeError(f"DAG run for {day} failed (exit {result.returncode}); see {log_path}")


def load_dag(dags_folder: Path, dag_id: str = DAG_ID) -> Any:
    spec = importlib.util.spec_from_file_location(f"_dag_{dag_id}", dags_folder / f"{dag_id}.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no DAG file for {dag_id} in {dags_folder}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run_day(day: date, conf: dict[str, Any] | None = None) -> str:
    """``dag.test()`` for ``day`` in this process; return the run's final state."""
    dag = load_dag(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]))
    # A manual run's data interval is the last complete interval before its logical date
    # (Airflow 3), so the run that measures day D is the one at D+1 00:00 UTC.
    logical_date = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    run = dag.test(logical_date=logical_date, run_conf=conf or None)
    return str(run.state)


if __name__ == "__main__":
    final_state = run_day(
        date.fromisoformat(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    )
    print(f"dag run state: {final_state}")
    sys.exit(0 if final_state.endswith("success") else 1)
