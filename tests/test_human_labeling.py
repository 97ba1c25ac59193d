"""Tests of tsmetrics.human_labeling and tsmetrics.label_wait: blind keys, queues built from
Airflow-style connections, submit/collect through a real vendor file queue and the real
warehouse tables, completion and the wait decision, and the trigger run on an event loop
against a real inbox directory and the real warehouse."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from human_queue_helpers import VendorHuman
from hypothesis import given, settings
from hypothesis import strategies as st

from tsmetrics.config import LabelerConfig, load_config
from tsmetrics.human_labeling import (
    LabelStudioSettings,
    PolicyCompletion,
    build_human_queues,
    collect_answers,
    completion_state,
    queue_key,
    queue_round,
    record_completion,
    submit_tasks,
    vendor_directory,
    wait_outcome,
)
from tsmetrics.label_wait import LabelArrivalTrigger, postgres_conninfo, vendor_signal
from tsmetrics.local_airflow import airflow_connection_json

VENDOR = "bpo_test"


def _vendor_config(root: Path, overlap: bool = True) -> Any:
    import dataclasses

    config = load_config()
    human = LabelerConfig(VENDOR, backend="vendor_files", conn_id="vendor_conn", fraction=0.5)
    return dataclasses.replace(config, overlap_labeler=human) if overlap else config


def _connections(root: Path) -> Any:
    conns = {"vendor_conn": {"conn_type": "fs", "extra": json.dumps({"path": str(root)})}}
    return conns.__getitem__


@settings(max_examples=60, deadline=None)
# Unit ids are Postgres text: no NUL and no lone UTF-16 surrogates (category Cs) can exist.
@given(
    unit_id=st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        max_size=40,
    )
)
def test_the_blind_key_mirrors_the_sql_function(database_url: str, unit_id: str) -> None:
    day = date(2026, 9, 14)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT tsm.queue_key(%s, %s, %s)", (day, unit_id, "lab")).fetchone()
    assert row is not None and row[0] == queue_key(day, unit_id, "lab")
    assert len(row[0]) == 20 and row[0].startswith("u")


def test_connections_map_to_queues_without_showing_secrets(tmp_path: Path) -> None:
    settings_ = LabelStudioSettings.from_connection(
        {"host": "labels.internal", "port": 8443, "password": " pat-secret ", "extra": "{}"}
    )
    assert settings_.base_url == "https://labels.internal:8443" and settings_.token == "pat-secret"
    assert "pat-secret" not in repr(settings_)
    legacy = LabelStudioSettings.from_connection(
        {
            "host": "http://127.0.0.1:8080/",
            "password": "tok",
            "extra": {"token_type": "legacy", "title_prefix": "tsm-x"},
        }
    )
    assert (legacy.base_url, legacy.token_type, legacy.title_prefix) == (
        "http://127.0.0.1:8080",
        "legacy",
        "tsm-x",
    )
    for conn, message in (
        ({"host": "", "password": "x"}, "conn.host"),
        ({"host": "h", "password": ""}, "conn.password"),
        ({"host": "h", "password": "x", "extra": {"token": "y"}}, "unknown key 'token'"),
        ({"host": "h", "password": "x", "extra": {"token_type": "jwt"}}, "token_type"),
    ):
        with pytest.raises(ValueError, match=message):
            LabelStudioSettings.from_connection(conn)
    assert vendor_directory({"extra": {"path": str(tmp_path)}}) == tmp_path
    with pytest.raises(ValueError, match="conn.extra.path"):
        vendor_directory({"extra": {}})
    queues = build_human_queues(_vendor_config(tmp_path), _connections(tmp_path))
    assert list(queues) == [VENDOR] and queues[VENDOR].queue_id == VENDOR
    assert build_human_queues(load_config(), _connections(tmp_path)) == {}


def _tasks(conn: psycopg.Connection, day: date, labeler: str, units: list[str]) -> None:
    conn.execute("DELETE FROM tsm.labels WHERE event_date = %s", (day,))
    conn.execute("DELETE FROM tsm.label_tasks WHERE event_date = %s", (day,))
    for k, unit in enumerate(units):
        text = "synthetic query" + (" [[violates:adult/nudity]]" if k % 3 == 0 else "")
        payload = {
            "unit_id": unit,
            "event_date": day.isoformat(),
            "surface": "search",
            "impressions": 5,
            "components": [{"component_id": "q", "type": "user_query", "text": text}],
        }
        conn.execute(
            "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload) "
            "VALUES (%s, %s, %s, 'overlap', %s)",
            (day, unit, labeler, json.dumps(payload)),
        )
    conn.commit()


def test_submit_and_collect_go_through_blind_keys(conn: psycopg.Connection, tmp_path: Path) -> None:
    day = date(2032, 5, 1)
    units = [f"20320501-{k:06d}" for k in range(9)]
    _tasks(conn, day, VENDOR, units)
    queue = build_human_queues(_vendor_config(tmp_path), _connections(tmp_path))[VENDOR]
    assert submit_tasks(conn, day.isoformat(), VENDOR, queue) == 9
    assert submit_tasks(conn, day.isoformat(), VENDOR, queue) == 9  # the queue dedups by key
    human = VendorHuman(tmp_path)
    header, rows = human.rows_of(day, timeout=1)
    keys = [queue_key(day, u, VENDOR) for u in units]
    assert [r["unit_id"] for r in rows] == sorted(keys)  # sent in key order, ids hidden
    assert not any(u in json.dumps(rows) for u in units)
    human.answer(rows[:6], header)
    summary = collect_answers(conn, day.isoformat(), VENDOR, queue)
    assert (summary.recorded.labeled, summary.other_days) == (6, 0)
    labelled = conn.execute(
        "SELECT unit_id, is_violating, annotator FROM tsm.labels WHERE event_date = %s "
        "AND labeler_id = %s AND policy = 'adult'",
        (day, VENDOR),
    ).fetchall()
    conn.commit()
    key_of = dict(zip(keys, units, strict=True))
    expected = {key_of[r["unit_id"]] for r in rows[:6]}
    assert {r[0] for r in labelled} == expected
    assert all(r[1] == (units.index(r[0]) % 3 == 0) and r[2] == "vendor-agent-1" for r in labelled)
    # another day's tasks do not see these answers; a third submit still sends nothing twice
    other = date(2032, 5, 2)
    _tasks(conn, other, VENDOR, [f"20320502-{k:06d}" for k in range(2)])
    assert collect_answers(conn, other.isoformat(), VENDOR, queue).other_days == 6
    rounds = queue_round(conn, day.isoformat(), {VENDOR: queue})
    assert rounds[VENDOR]["open_tasks_sent"] == 3 and rounds[VENDOR]["labeled"] == 6
    assert len(human.outbox_rows()[1]) == 9  # nothing sent twice


def test_completion_and_the_wait_decision(conn: psycopg.Connection, tmp_path: Path) -> None:
    day = date(2032, 5, 3)
    units = [f"20320503-{k:06d}" for k in range(10)]
    _tasks(conn, day, VENDOR, units)
    conn.execute(
        "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, gold_id, payload) "
        "VALUES (%s, 'gold:g-1', %s, 'gold', 'g-1', '{}')",
        (day, VENDOR),
    )
    config = _vendor_config(tmp_path)
    for unit in units[:7]:
        for policy in config.policy_names:
            conn.execute(
                "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating) "
                "VALUES (%s, %s, %s, %s, false)",
                (day, unit, VENDOR, policy),
            )
    conn.execute(
        "UPDATE tsm.label_tasks SET status = 'done' WHERE event_date = %s AND unit_id = ANY(%s)",
        (day, units[:7]),
    )
    conn.execute(
        "UPDATE tsm.label_tasks SET status = 'failed', last_error = 'x' "
        "WHERE event_date = %s AND unit_id = %s",
        (day, units[7]),
    )
    conn.commit()
    state = {(s.labeler_id, s.policy): s for s in completion_state(conn, day, config)}
    vendor = state[(VENDOR, "adult")]
    assert (vendor.tasks, vendor.done, vendor.failed, vendor.pending) == (10, 7, 1, 2)
    assert (vendor.completion, vendor.gold_tasks, vendor.gold_done) == (0.7, 1, 0)
    assert state[(config.primary_labeler.labeler_id, "adult")].tasks == 0
    now = datetime(2032, 5, 4, 12, tzinfo=UTC)
    states = list(state.values())
    assert wait_outcome(states, [VENDOR], 0.7, now + timedelta(hours=1), now) == "complete"
    assert wait_outcome(states, [VENDOR], 0.8, now + timedelta(hours=1), now) == "wait"
    assert wait_outcome(states, [VENDOR], 0.8, now, now) == "deadline"
    assert wait_outcome(states, [], 0.8, None, now) == "no_wait"
    rows = record_completion(conn, day, states, "deadline", 0.8, now, 3, 12.5)
    again = record_completion(conn, day, states, "deadline", 0.8, now, 3, 12.5)  # replaces
    stored = conn.execute(
        "SELECT labeler_id, policy, completion, cut_by_deadline, wait_rounds FROM "
        "tsm.label_completion WHERE event_date = %s",
        (day,),
    ).fetchall()
    conn.commit()
    assert len(stored) == len(rows) == len(again) == 2 * len(config.policy_names)
    assert (VENDOR, "adult", 0.7, True, 3) in stored
    primary = config.primary_labeler.labeler_id
    assert (primary, "adult", None, False, 3) in stored  # no tasks: nothing to cut
    # a synchronous labeler left incomplete (an LLM's cap) is not "cut by the deadline"
    behind = [dataclasses.replace(s, backend="llm") for s in states if s.labeler_id == VENDOR]
    rows = record_completion(conn, day, behind, "deadline", 0.8, now, 1, 0.0)
    assert not any(r["cut_by_deadline"] for r in rows)


def test_policy_completion_counts_pending_as_the_rest() -> None:
    c = PolicyCompletion("x", "adult", "vendor_files", 10, 6, 1, 2, 2)
    assert (c.pending, c.completion) == (3, 0.6)
    assert PolicyCompletion("x", "adult", "llm", 0, 0, 0, 0, 0).completion is None


# --------------------------------------------------------------------------------------------
# The trigger, on an event loop, against a real inbox and the real warehouse
# --------------------------------------------------------------------------------------------


@pytest.fixture
def trigger_env(database_url: str, tmp_path: Path) -> Iterator[Path]:
    saved = {k: os.environ.get(k) for k in ("AIRFLOW_CONN_TSM_WAIT_DB", "AIRFLOW_CONN_TSM_VENDOR")}
    os.environ["AIRFLOW_CONN_TSM_WAIT_DB"] = airflow_connection_json(database_url)
    os.environ["AIRFLOW_CONN_TSM_VENDOR"] = json.dumps(
        {"conn_type": "fs", "extra": {"path": str(tmp_path)}}
    )
    (tmp_path / "inbox").mkdir()
    yield tmp_path
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _trigger(root: Path, day: str, **change: Any) -> LabelArrivalTrigger:
    watch = [
        {
            "labeler_id": VENDOR,
            "backend": "vendor_files",
            "conn_id": "tsm_vendor",
            "inbox": str(root / "inbox"),
        }
    ]
    kwargs: dict[str, Any] = {
        "day": day,
        "db_conn_id": "tsm_wait_db",
        "watch": watch,
        "baseline": {},
        "deadline_at": None,
        "poll_seconds": 0.2,
        "max_idle_seconds": 60.0,
        "state": {"rounds": 1, "started_at": "2032-01-01T00:00:00+00:00"},
    }
    kwargs.update(change)
    return LabelArrivalTrigger(**kwargs)


async def _first_event(trigger: LabelArrivalTrigger) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    event = await anext(trigger.run())
    return dict(event.payload), time.monotonic() - started


def _baseline(trigger: LabelArrivalTrigger) -> dict[str, str]:
    return asyncio.run(trigger._signals())  # noqa: SLF001 -- what the sensor's round records


def test_trigger_fires_when_a_vendor_file_arrives(trigger_env: Path) -> None:
    trigger = _trigger(trigger_env, "2032-06-01")
    trigger.baseline = _baseline(trigger)
    serialized = trigger.serialize()
    assert serialized[0] == "tsmetrics.label_wait.LabelArrivalTrigger"
    assert "password" not in json.dumps(serialized[1])
    arrival = threading.Timer(0.8, lambda: (trigger_env / "inbox" / "r.csv").write_text("x"))
    arrival.start()
    event, seconds = asyncio.run(_first_event(LabelArrivalTrigger(**serialized[1])))
    arrival.join()
    assert event["reason"] == "news" and event["changed"] == [VENDOR]
    assert event["state"]["rounds"] == 1 and 0.7 < seconds < 10


def test_trigger_fires_when_labels_reach_the_warehouse(
    trigger_env: Path, conn: psycopg.Connection
) -> None:
    day = date(2032, 6, 2)
    _tasks(conn, day, VENDOR, ["20320602-000001"])
    trigger = _trigger(trigger_env, day.isoformat())
    trigger.baseline = _baseline(trigger)

    def label() -> None:
        with psycopg.connect(
            postgres_conninfo(json.loads(os.environ["AIRFLOW_CONN_TSM_WAIT_DB"]))
        ) as c:
            c.execute("UPDATE tsm.label_tasks SET status = 'done' WHERE event_date = %s", (day,))

    arrival = threading.Timer(0.8, label)
    arrival.start()
    event, _ = asyncio.run(_first_event(trigger))
    arrival.join()
    assert event["reason"] == "news" and event["changed"] == ["db"]


def test_trigger_fires_at_the_deadline_and_when_idle(trigger_env: Path) -> None:
    trigger = _trigger(trigger_env, "2032-06-03")
    baseline = _baseline(trigger)
    deadline = (datetime.now(UTC) + timedelta(seconds=1.0)).isoformat()
    event, seconds = asyncio.run(
        _first_event(_trigger(trigger_env, "2032-06-03", baseline=baseline, deadline_at=deadline))
    )
    assert event["reason"] == "deadline" and 0.5 < seconds < 10
    event, seconds = asyncio.run(
        _first_event(_trigger(trigger_env, "2032-06-03", baseline=baseline, max_idle_seconds=1.0))
    )
    assert event["reason"] == "idle" and 0.9 < seconds < 10
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    event, seconds = asyncio.run(_first_event(_trigger(trigger_env, "x", deadline_at=past)))
    assert event["reason"] == "deadline" and seconds < 1


def test_a_queue_that_cannot_be_read_keeps_the_trigger_waiting(trigger_env: Path) -> None:
    broken = [{"labeler_id": "ls", "backend": "label_studio", "conn_id": "nope", "project_id": 1}]
    deadline = (datetime.now(UTC) + timedelta(seconds=1.0)).isoformat()
    event, _ = asyncio.run(
        _first_event(_trigger(trigger_env, "2032-06-04", watch=broken, deadline_at=deadline))
    )
    assert event["reason"] == "deadline"  # no false "news" from an unavailable queue


def test_vendor_signal_tracks_the_inbox_listing(tmp_path: Path) -> None:
    spec = {"inbox": str(tmp_path)}
    empty = asyncio.run(vendor_signal(spec, None))
    (tmp_path / "a.csv").write_text("1")
    one = asyncio.run(vendor_signal(spec, None))
    assert one != empty and asyncio.run(vendor_signal(spec, None)) == one
    assert asyncio.run(vendor_signal({"inbox": str(tmp_path / "missing")}, None)) == empty
