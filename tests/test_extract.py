"""Extraction against the real warehouse: stage_day_file (COPY through a PostgresHook), then
include/sql/extract_normalize.sql and check_extract_reconciles.sql, as the DAG runs them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import SQL_DIR, load_raw_day

from tsmetrics.errors import MissingInputError
from tsmetrics.extract import input_path, stage_day_file
from tsmetrics.simulate import SimulationConfig, simulate_day, write_day

pytestmark = pytest.mark.usefixtures("airflow_db_conn_env")

SEED = 424242


def _record(iid: str, day: date, **overrides: Any) -> dict[str, Any]:
    """A valid interaction record (overridden per bad-line case)."""
    record: dict[str, Any] = {
        "interaction_id": iid,
        "event_ts": f"{day.isoformat()}T12:00:00Z",
        "surface": "search",
        "components": [
            {
                "component_id": "q",
                "type": "user_query",
                "text": "a query",
                "impressions": 10,
                "risk_scores": {"adult": 0.1, "harassment": 0.2},
            },
            {
                "component_id": "r",
                "type": "system_response",
                "text": "a response",
                "impressions": 10,
                "risk_scores": {},
            },
        ],
    }
    record.update(overrides)
    return record


def _with_component(record: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    record["components"][index].update(changes)
    return record


def _bad_lines(day: date, first_line: str) -> list[tuple[str, str]]:
    """(line, expected quarantine reason) for every kind of bad input."""
    d = day.isoformat()
    nxt = date.fromordinal(day.toordinal() + 1).isoformat()
    prv = date.fromordinal(day.toordinal() - 1).isoformat()
    no_id = _record("x", day)
    del no_id["interaction_id"]
    no_ts = _record("bad-no-ts", day)
    del no_ts["event_ts"]
    cases: list[tuple[Any, str]] = [
        ('{"interaction_id": "bad-trunc", "event_ts": ', "unparseable JSON"),
        ("[1, 2, 3]", "line is not a JSON object"),
        ('"just a string"', "line is not a JSON object"),
        (no_id, "missing interaction_id"),
        (_record("", day), "missing interaction_id"),
        (_record("bad-no-surface", day, surface=""), "missing surface"),
        (
            _with_component(_record("bad-neg-imps", day), 0, impressions=-1),
            "negative impressions",
        ),
        (
            _with_component(_record("bad-frac-imps", day), 1, impressions=2.5),
            "impressions not a whole number",
        ),
        (
            _with_component(_record("bad-str-imps", day), 1, impressions="7"),
            "impressions missing or not a number",
        ),
        (
            _with_component(_record("bad-score", day), 0, risk_scores={"adult": 1.5}),
            "risk score outside [0, 1]: adult",
        ),
        (
            _with_component(_record("bad-neg-score", day), 1, risk_scores={"self_harm": -0.01}),
            "risk score outside [0, 1]: self_harm",
        ),
        (
            _with_component(_record("bad-str-score", day), 1, risk_scores={"adult": "0.3"}),
            "risk score not a number: adult",
        ),
        (
            _with_component(_record("bad-policy", day), 1, risk_scores={"violence": 0.3}),
            "unknown policy: violence",
        ),
        (
            _with_component(_record("bad-type", day), 1, type="video"),
            "unknown component type: video",
        ),
        (
            _with_component(_record("bad-dup-comp", day), 1, component_id="q"),
            "duplicate component_id: q",
        ),
        (_record("bad-ts-next", day, event_ts=f"{nxt}T00:00:00Z"), "event_ts outside the day"),
        (_record("bad-ts-prev", day, event_ts=f"{prv}T23:59:59Z"), "event_ts outside the day"),
        # 01:00 at UTC+02:00 is 23:00 UTC the previous day.
        (
            _record("bad-ts-offset", day, event_ts=f"{d}T01:00:00+02:00"),
            "event_ts outside the day",
        ),
        (no_ts, "missing or unparseable event_ts (ISO 8601 with time zone)"),
        (
            _record("bad-ts-naive", day, event_ts=f"{d}T12:00:00"),
            "missing or unparseable event_ts (ISO 8601 with time zone)",
        ),
        (
            _record("bad-ts-garbage", day, event_ts="yesterday-ish Z"),
            "missing or unparseable event_ts (ISO 8601 with time zone)",
        ),
        (first_line, "duplicate interaction_id"),
        (_record("bad-empty", day, components=[]), "no components"),
        (_record("bad-comp-obj", day, components={"q": 1}), "no components"),
    ]
    return [(case if isinstance(case, str) else json.dumps(case), reason) for case, reason in cases]


def _counts(conn: psycopg.Connection, day: date) -> dict[str, int]:
    out = {}
    for table in ("raw_interactions", "raw_components", "raw_risk_scores", "quarantine"):
        row = conn.execute(f"SELECT count(*) FROM tsm.{table} WHERE event_date = %s", (day,))
        out[table] = row.fetchone()[0]  # type: ignore[index]
    return out


def _quarantine(conn: psycopg.Connection, day: date) -> list[tuple[int, str, str, str]]:
    return conn.execute(
        "SELECT line_no, reason, raw_line, source_path FROM tsm.quarantine "
        "WHERE event_date = %s ORDER BY line_no",
        (day,),
    ).fetchall()


def _reconciles(conn: psycopg.Connection, day: date, load_id: int) -> dict[str, bool]:
    sql = (SQL_DIR / "check_extract_reconciles.sql").read_text().strip().rstrip(";")
    cur = conn.execute(sql, {"day": day.isoformat(), "load_id": str(load_id)})
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    return {col.name: value for col, value in zip(cur.description, row, strict=True)}


def _write_day_with_bad_lines(raw_dir: Path, day: date) -> tuple[list[str], list[tuple[str, str]]]:
    """A simulated day (2000 interactions) with every kind of bad line appended."""
    sim = simulate_day(day, SEED, SimulationConfig(n_interactions=2000))
    raw_path, _ = write_day(sim, raw_dir, raw_dir.parent / "truth")
    good = sim.jsonl.splitlines()
    bad = _bad_lines(day, good[0])
    with raw_path.open("a", encoding="utf-8", newline="\n") as fh:
        fh.writelines(line + "\n" for line, _ in bad)
    return good, bad


def test_extract_loads_good_lines_and_quarantines_bad_ones(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    raw_dir, day = tmp_path / "raw", date(2030, 1, 1)
    good, bad = _write_day_with_bad_lines(raw_dir, day)
    staged = load_raw_day(conn, raw_dir, day)
    assert staged.rows_read == len(good) + len(bad)
    assert staged.source_path == str(input_path(raw_dir, day))

    quarantined = _quarantine(conn, day)
    expected = [
        (len(good) + i + 1, reason, line, staged.source_path)
        for i, (line, reason) in enumerate(bad)
    ]
    assert quarantined == expected

    records = [json.loads(line) for line in good]
    n_components = sum(len(r["components"]) for r in records)
    n_scores = sum(len(c["risk_scores"]) for r in records for c in r["components"])
    assert _counts(conn, day) == {
        "raw_interactions": len(good),
        "raw_components": n_components,
        "raw_risk_scores": n_scores,
        "quarantine": len(bad),
    }

    batch = conn.execute(
        "SELECT rows_read, rows_loaded, rows_quarantined, finished_at IS NOT NULL "
        "FROM tsm.load_batches WHERE load_id = %s",
        (staged.load_id,),
    ).fetchone()
    assert batch == (len(good) + len(bad), len(good), len(bad), True)
    assert _reconciles(conn, day, staged.load_id) == {
        "some_rows_loaded": True,
        "read_equals_loaded_plus_quarantined": True,
        "raw_rows_equal_loaded": True,
        "quarantine_rows_equal_quarantined": True,
    }

    # The duplicate kept the first line's content; every loaded row points at this load.
    first = records[0]
    row = conn.execute(
        "SELECT surface, event_ts, load_id FROM tsm.raw_interactions "
        "WHERE event_date = %s AND interaction_id = %s",
        (day, first["interaction_id"]),
    ).fetchone()
    assert row is not None
    assert row[0] == first["surface"]
    assert row[1].isoformat().replace("+00:00", "Z") == first["event_ts"]
    assert row[2] == staged.load_id
    # The stage table is dropped after normalizing.
    assert conn.execute("SELECT to_regclass(%s)", (staged.stage_table,)).fetchone() == (None,)


def test_extract_values_round_trip(conn: psycopg.Connection, tmp_path: Path) -> None:
    """Component columns and scores land exactly as in the file."""
    day = date(2030, 1, 2)
    sim = simulate_day(day, SEED, SimulationConfig(n_interactions=300, missing_score_rate=0.3))
    write_day(sim, tmp_path / "raw", tmp_path / "truth")
    load_raw_day(conn, tmp_path / "raw", day)

    expected_components = {
        (r["interaction_id"], c["component_id"]): (
            c["type"],
            pos,
            c.get("text"),
            c.get("pin_id"),
            c.get("image_url"),
            c["impressions"],
        )
        for r in sim.records
        for pos, c in enumerate(r["components"], start=1)
    }
    rows = conn.execute(
        "SELECT interaction_id, component_id, component_type, position, content_text, pin_id, "
        "image_url, impressions FROM tsm.raw_components WHERE event_date = %s",
        (day,),
    ).fetchall()
    assert {(r[0], r[1]): tuple(r[2:]) for r in rows} == expected_components

    expected_scores = {
        (r["interaction_id"], c["component_id"], policy): score
        for r in sim.records
        for c in r["components"]
        for policy, score in c["risk_scores"].items()
    }
    rows = conn.execute(
        "SELECT interaction_id, component_id, policy, score FROM tsm.raw_risk_scores "
        "WHERE event_date = %s",
        (day,),
    ).fetchall()
    assert {(r[0], r[1], r[2]): r[3] for r in rows} == expected_scores


def test_rerunning_a_day_replaces_it(conn: psycopg.Connection, tmp_path: Path) -> None:
    raw_dir, day = tmp_path / "raw", date(2030, 1, 3)
    good, bad = _write_day_with_bad_lines(raw_dir, day)

    first = load_raw_day(conn, raw_dir, day)
    counts_first = _counts(conn, day)
    quarantine_first = [row[:3] for row in _quarantine(conn, day)]

    second = load_raw_day(conn, raw_dir, day)
    assert second.load_id != first.load_id
    assert second.stage_table == first.stage_table
    assert _counts(conn, day) == counts_first
    assert counts_first["raw_interactions"] == len(good)
    assert [row[:3] for row in _quarantine(conn, day)] == quarantine_first
    assert len(quarantine_first) == len(bad)
    # The day now belongs to the second load only.
    load_ids = conn.execute(
        "SELECT DISTINCT load_id FROM tsm.raw_interactions WHERE event_date = %s", (day,)
    ).fetchall()
    assert load_ids == [(second.load_id,)]
    q_load_ids = conn.execute(
        "SELECT DISTINCT load_id FROM tsm.quarantine WHERE event_date = %s", (day,)
    ).fetchall()
    assert q_load_ids == [(second.load_id,)]
    assert all(_reconciles(conn, day, second.load_id).values())


def test_missing_file_raises_missing_input_error(tmp_path: Path) -> None:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    day = date(2030, 1, 4)
    hook = PostgresHook(postgres_conn_id="tsmetrics_db")
    with pytest.raises(MissingInputError) as info:
        stage_day_file(hook, tmp_path / "raw", day)
    assert str(input_path(tmp_path / "raw", day)) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert not input_path(tmp_path / "raw", day).exists()


def test_json_escapes_survive_copy(conn: psycopg.Connection, tmp_path: Path) -> None:
    """COPY (csv with exotic delimiter/quote) must hand every line to Postgres unchanged."""
    day = date(2030, 1, 5)
    texts = [
        'she said "hi" \\ back\\slash \\n not a newline',
        "caf\u00e9 \u2603 \U0001f600 tab\there newline\nthere \u001f\u001e control",
        "\\N and \\. and , ; | delimiters",
        "line\r\nwith crlf",
    ]
    lines = []
    for i, text in enumerate(texts):
        record = _record(f"esc-{i}", day)
        record["components"][0]["text"] = text
        # ensure_ascii: \" \\ \uXXXX escapes (surrogate pairs too); otherwise raw UTF-8.
        lines.append(json.dumps(record, ensure_ascii=i % 2 == 0))
    path = input_path(tmp_path / "raw", day)
    path.parent.mkdir(parents=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    assert all("\n" not in line for line in lines)

    staged = load_raw_day(conn, tmp_path / "raw", day)
    assert staged.rows_read == len(lines)
    assert _quarantine(conn, day) == []
    rows = conn.execute(
        "SELECT interaction_id, content_text FROM tsm.raw_components "
        "WHERE event_date = %s AND component_id = 'q' ORDER BY interaction_id",
        (day,),
    ).fetchall()
    assert rows == [(f"esc-{i}", text) for i, text in enumerate(texts)]


def test_date_only_event_ts_is_quarantined(conn: psycopg.Connection, tmp_path: Path) -> None:
    day = date(2030, 1, 6)
    lines = [
        json.dumps(_record("ok-1", day)),
        json.dumps(_record("date-only", day, event_ts=day.isoformat())),
    ]
    path = input_path(tmp_path / "raw", day)
    path.parent.mkdir(parents=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    load_raw_day(conn, tmp_path / "raw", day)
    assert [row[:2] for row in _quarantine(conn, day)] == [
        (2, "missing or unparseable event_ts (ISO 8601 with time zone)")
    ]


def test_stray_quote_bytes_do_not_merge_lines(conn: psycopg.Connection, tmp_path: Path) -> None:
    day = date(2030, 1, 7)
    good = [json.dumps(_record(f"ok-{i}", day)).encode() for i in range(4)]
    lines = [good[0], b'{"interaction_id": "\x1ebroken', good[1], good[2], b'broken\x1e"}', good[3]]
    path = input_path(tmp_path / "raw", day)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    staged = load_raw_day(conn, tmp_path / "raw", day)
    loaded = conn.execute(
        "SELECT interaction_id FROM tsm.raw_interactions WHERE event_date = %s ORDER BY 1", (day,)
    ).fetchall()
    assert loaded == [(f"ok-{i}",) for i in range(4)]
    assert staged.rows_read == len(lines)
