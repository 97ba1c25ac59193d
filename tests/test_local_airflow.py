"""Tests of tsmetrics.local_airflow's metadata database set-up (real Postgres)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from conftest import PROJECT_DIR
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from tsmetrics.local_airflow import (
    METADATA_URL_ENV,
    airflow_environment,
    ensure_database,
    metadata_database_url,
    sqlalchemy_url,
)


def test_metadata_database_is_a_dedicated_database_on_the_same_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(METADATA_URL_ENV, raising=False)
    url = metadata_database_url("postgresql://alice:pw@db.example:6543/warehouse")
    assert conninfo_to_dict(url) == {
        "user": "alice",
        "password": "pw",
        "host": "db.example",
        "port": "6543",
        "dbname": "warehouse_airflow",
    }
    monkeypatch.setenv(METADATA_URL_ENV, "postgresql://bob@elsewhere/meta")
    assert metadata_database_url("postgresql://alice@db.example/warehouse") == (
        "postgresql://bob@elsewhere/meta"
    )


def test_sqlalchemy_url_keeps_tcp_and_socket_hosts() -> None:
    tcp = make_url(sqlalchemy_url("postgresql://alice:p%40ss@db.example:6543/meta"))
    assert (tcp.drivername, tcp.username, tcp.password, tcp.host, tcp.port, tcp.database) == (
        "postgresql+psycopg2",
        "alice",
        "p@ss",
        "db.example",
        6543,
        "meta",
    )
    socket = make_url(sqlalchemy_url("postgresql://postgres@/meta?host=/tmp/pg%20sock&port=5433"))
    assert socket.host is None and socket.query["host"] == "/tmp/pg sock"
    assert socket.port == 5433 and socket.database == "meta"


def test_ensure_database_creates_once_and_the_environment_points_airflow_at_it(
    make_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(METADATA_URL_ENV, raising=False)
    warehouse = make_database()
    meta = metadata_database_url(warehouse)
    name = conninfo_to_dict(meta)["dbname"]

    def exists() -> bool:
        with psycopg.connect(warehouse) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    assert not exists()
    env = airflow_environment(PROJECT_DIR, tmp_path / "airflow", warehouse)
    assert exists()
    ensure_database(meta, via=warehouse)  # idempotent
    alchemy = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert alchemy.drivername == "postgresql+psycopg2" and alchemy.database == name
    assert "sqlite" not in " ".join(env.values())
    with psycopg.connect(meta) as conn:  # a real, reachable database
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
