"""Run the DAGs locally through Airflow itself (``dag.test()``), for the demo and the tests.

``airflow_environment`` builds the environment a local Airflow needs: a project-local
``AIRFLOW_HOME``, a Postgres metadata database, the project's ``dags/`` folder, and the
warehouse as an ``AIRFLOW_CONN_*`` connection. The metadata database is a dedicated database on
the warehouse's server (``<warehouse database>_airflow``, created if missing; the embedded
Postgres when no URL is configured), or ``TSMETRICS_AIRFLOW_DATABASE_URL``. SQLite is not used:
Airflow 3.3 cannot read a DAG's ``DeadlineAlert`` back from SQLite. ``run_day`` must run in a
process started with that environment (Airflow reads its configuration at import time).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import URL

DAG_ID = "prevalence_daily"
METADATA_URL_ENV = "TSMETRICS_AIRFLOW_DATABASE_URL"
METADATA_SUFFIX = "_airflow"


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


def _libpq(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def metadata_database_url(database_url: str) -> str:
    """The libpq URL of the local Airflow metadata database: ``$TSMETRICS_AIRFLOW_DATABASE_URL``
    or, on the warehouse's server, the database ``<warehouse database>_airflow``."""
    configured = os.environ.get(METADATA_URL_ENV)
    if configured:
        return _libpq(configured)
    parts = conninfo_to_dict(_libpq(database_url))
    return make_conninfo(_libpq(database_url), dbname=f"{parts.get('dbname', 'postgres')}_airflow")


def ensure_database(database_url: str, via: str) -> None:
    """Create the database of ``database_url`` if it does not exist, connecting through the
    existing database ``via`` on the same server (concurrent creation is tolerated)."""
    name = conninfo_to_dict(_libpq(database_url)).get("dbname")
    if not name:
        raise ValueError(f"database_url: expected a database name, got {database_url!r}")
    with psycopg.connect(_libpq(via), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))
        except psycopg.errors.DuplicateDatabase:
            pass


def sqlalchemy_url(database_url: str) -> str:
    """An SQLAlchemy (psycopg2) URL for a libpq URL; a socket-directory host goes in the query."""
    parts = conninfo_to_dict(_libpq(database_url))
    host = str(parts.get("host") or "localhost")
    query: dict[str, str] = {}
    if host.startswith("/"):
        query["host"] = host
    url = URL.create(
        "postgresql+psycopg2",
        username=str(parts["user"]) if parts.get("user") else None,
        password=str(parts["password"]) if parts.get("password") else None,
        host=None if host.startswith("/") else host,
        port=int(str(parts["port"])) if parts.get("port") else None,
        database=str(parts.get("dbname") or "postgres"),
        query=query,
    )
    return url.render_as_string(hide_password=False)


def airflow_environment(
    project_dir: Path, airflow_home: Path, database_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment variables for a local Airflow running this project's DAGs, with its metadata
    in Postgres (:func:`metadata_database_url`, created here if missing)."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    metadata_url = metadata_database_url(database_url)
    ensure_database(metadata_url, via=database_url)
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project_dir / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project_dir / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(metadata_url),
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


def airflow_command(env: dict[str, str], log_path: Path, *args: str) -> None:
    """Run the ``airflow`` CLI with ``env`` (e.g. ``dags reserialize``); raise if it fails."""
    with log_path.open("a") as log:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"airflow {' '.join(args)} failed (exit {result.returncode}); see {log_path}"
        )


@contextlib.contextmanager
def airflow_service(env: dict[str, str], log_path: Path, *args: str) -> Iterator[int]:
    """Run a long-lived Airflow component (e.g. ``triggerer``) with ``env`` in its own process
    group while the block runs; yield its pid; stop the group (SIGTERM, then SIGKILL) on exit."""
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process.pid
        finally:
            for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue


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
    # dag.test() (Airflow 3.3.2) round-trips the DAG in memory, so when the run succeeds it
    # looks its deadline alerts up by their serialized dicts instead of their ids and fails
    # ("can't adapt type 'dict'" on Postgres, "'dict' object has no attribute 'hex'" on SQLite);
    # and its runs are never queued, so a DAGRUN_QUEUED_AT deadline is never created for them
    # anyway. Locally the alert is dropped; it is tested through the real scheduler and
    # triggerer instead (tests/test_e2e_deadline.py).
    dag.deadline = None
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
