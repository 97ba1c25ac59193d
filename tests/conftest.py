"""Shared fixtures: a real Postgres (the machine's at 127.0.0.1:5432, or an embedded one)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tsmetrics.db.migrate import upgrade

PROJECT_DIR = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_DIR / "include" / "sql"


def _local_postgres_reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a Postgres server's maintenance database: $TSMETRICS_TEST_SERVER_URL, the local
    server at 127.0.0.1:5432, or else an embedded server started for the session."""
    configured = os.environ.get("TSMETRICS_TEST_SERVER_URL")
    if configured:
        return configured
    if _local_postgres_reachable():
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    from tsmetrics.db.embedded import start_embedded

    return start_embedded(tmp_path_factory.mktemp("pgdata"))


def _with_dbname(url: str, dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def make_database(server_url: str) -> Iterator[object]:
    """Factory: a fresh, migrated database (dropped at the end of the session)."""
    created: list[str] = []

    def make() -> str:
        name = f"tsm_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        url = _with_dbname(server_url, name)
        upgrade(url)
        return url

    yield make
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            # the local Airflow's metadata database (tsmetrics.local_airflow), if one was made
            conn.execute(f'DROP DATABASE IF EXISTS "{name}_airflow" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(make_database) -> str:  # type: ignore[no-untyped-def]
    """One migrated database shared by the session's unit tests (each test uses its own days)."""
    return make_database()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as connection:
        yield connection


@pytest.fixture(scope="session")
def airflow_db_conn_env(database_url: str) -> Iterator[None]:
    """Expose the test warehouse as the Airflow connection ``tsmetrics_db`` (for PostgresHook)."""
    from tsmetrics.local_airflow import airflow_connection_json

    previous = os.environ.get("AIRFLOW_CONN_TSMETRICS_DB")
    os.environ["AIRFLOW_CONN_TSMETRICS_DB"] = airflow_connection_json(database_url)
    yield
    if previous is None:
        os.environ.pop("AIRFLOW_CONN_TSMETRICS_DB", None)
    else:
        os.environ["AIRFLOW_CONN_TSMETRICS_DB"] = previous


def run_sql_file(
    conn: psycopg.Connection,
    name: str,
    params: dict[str, object],
    identifiers: dict[str, str] | None = None,
) -> None:
    """Run an include/sql file the way SQLExecuteQueryOperator does: Jinja, split, one txn."""
    import jinja2
    import sqlparse

    text = (SQL_DIR / name).read_text()
    rendered = jinja2.Template(text).render(**(identifiers or {}))
    statements = [
        s.strip().rstrip(";")
        for s in sqlparse.split(rendered)
        if sqlparse.format(s, strip_comments=True).strip()
    ]
    with conn.transaction():
        for statement in statements:
            conn.execute(statement, params)


@pytest.fixture
def webhook_server() -> Iterator[object]:
    """A real local Slack-webhook-protocol HTTP server (see tests/webhook_server.py)."""
    from webhook_server import running_webhook_server

    with running_webhook_server() as server:
        yield server


# --------------------------------------------------------------------------------------------
# Extract helpers (test_extract, test_units_and_sampling): stage + normalize a day like the DAG.
# --------------------------------------------------------------------------------------------

from datetime import date  # noqa: E402

from tsmetrics.extract import StagedFile, stage_day_file  # noqa: E402

POLICIES_PARAM = "adult,harassment,self_harm,misinformation"


class StagedXcom:
    """Stands in for ``ti`` when rendering extract_normalize.sql (``ti.xcom_pull``)."""

    def __init__(self, stage_table: str) -> None:
        self.stage_table = stage_table

    def xcom_pull(self, task_ids: str) -> dict[str, str]:
        assert task_ids == "stage_raw", task_ids
        return {"stage_table": self.stage_table}


def load_raw_day(
    conn: psycopg.Connection, raw_dir: Path, day: date, policies: str = POLICIES_PARAM
) -> StagedFile:
    """stage_day_file (real PostgresHook ``tsmetrics_db``) then extract_normalize.sql; needs the
    ``airflow_db_conn_env`` fixture. Returns the StagedFile."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn.commit()  # run_sql_file must open (and commit) its own transaction
    staged = stage_day_file(PostgresHook(postgres_conn_id="tsmetrics_db"), raw_dir, day)
    run_sql_file(
        conn,
        "extract_normalize.sql",
        {"day": staged.day.isoformat(), "load_id": str(staged.load_id), "policies": policies},
        identifiers={"ti": StagedXcom(staged.stage_table)},  # type: ignore[dict-item]
    )
    return staged
