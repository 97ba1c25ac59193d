"""Migrations: applied once each, in order, idempotently."""

from __future__ import annotations

import psycopg

from tsmetrics.db.migrate import available_migrations, upgrade


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in available_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_upgrade_is_idempotent_and_records_versions(make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database()  # already upgraded once by the fixture
    assert upgrade(url) == []
    with psycopg.connect(url) as conn:
        recorded = [r[0] for r in conn.execute("SELECT version FROM tsm.schema_migrations")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'tsm'"
            )
        }
    assert recorded == [m.version for m in available_migrations()]
    assert {
        "raw_interactions",
        "units",
        "samples",
        "labels",
        "estimates",
        "checks",
        "alerts",
        "quarantine",
    } <= tables
