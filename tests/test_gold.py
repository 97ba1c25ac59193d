"""Tests of tsmetrics.gold: gold file validation and loading, blind injection
(include/sql/inject_gold_tasks.sql) and scoring against the SME answers, on the real
warehouse tables."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import run_sql_file
from human_queue_helpers import write_gold_file

from tsmetrics.config import load_config
from tsmetrics.gold import (
    Confusion,
    GoldFileError,
    gold_answers,
    gold_confusion,
    load_gold_file,
    parse_gold_file,
)
from tsmetrics.human_labeling import queue_key

POLICIES = {p.name: p.sub_policies for p in load_config().policies}


def _item(gold_id: str = "g-1", **change: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "gold_id": gold_id,
        "surface": "search",
        "components": [{"component_id": "q", "type": "user_query", "text": "a query"}],
        "answers": {"adult": {"is_violating": True, "sub_policy": "nudity"}},
    }
    item.update(change)
    return item


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_a_valid_gold_file_parses_into_items(tmp_path: Path) -> None:
    items = parse_gold_file(write_gold_file(tmp_path / "g.jsonl", 2, 1, 1), POLICIES)
    assert [i.gold_id for i in items] == ["g-0000", "g-0001", "g-0002", "g-0003"]
    assert items[0].answers["adult"].is_violating and items[0].answers["adult"].sub_policy == (
        "nudity"
    )
    assert items[3].answers["harassment"].sub_policy == "insults"
    assert items[0].components[2] == {
        "component_id": "p1",
        "type": "pin_image",
        "text": "synthetic pin pin-810000000 caption: fashion",
        "pin_id": "pin-810000000",
        "image_url": "https://i.example.com/pins/pin-810000000.jpg",
    }


def test_a_gold_file_with_bad_lines_is_refused_whole_with_every_reason(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.jsonl",
        [
            _item("g-1"),
            "{broken",
            _item("g-2", answers={"spam": {"is_violating": True, "sub_policy": None}}),
            _item("g-3", answers={"adult": {"is_violating": True, "sub_policy": None}}),
            _item("g-4", answers={"adult": {"is_violating": False, "sub_policy": "nudity"}}),
            _item("g-5", components=[{"component_id": "q", "type": "video"}]),
            _item("g-1"),
            _item("g-6", impressions=0, extra=1),
            [1, 2],
        ],
    )
    with pytest.raises(GoldFileError) as caught:
        parse_gold_file(path, POLICIES)
    message = str(caught.value)
    assert "nothing loaded" in message
    for expected in (
        "bad.jsonl:2: not valid JSON",
        "bad.jsonl:3: answers.spam: unknown policy",
        "bad.jsonl:4: answers.adult.sub_policy: expected one of ['nudity', 'sexual_activity']",
        "bad.jsonl:5: answers.adult.sub_policy: must be null when not violating",
        "bad.jsonl:6: components[0].type: expected one of",
        "bad.jsonl:7: gold_id 'g-1' already on line 1",
        "bad.jsonl:8: unknown keys ['extra']",
        "bad.jsonl:8: impressions: expected a whole number >= 1, got 0",
        "bad.jsonl:9: expected a JSON object, got list",
    ):
        assert expected in message, expected
    with pytest.raises(GoldFileError, match="no gold items"):
        parse_gold_file(_write(tmp_path / "empty.jsonl", [""]), POLICIES)


def test_loading_is_idempotent_and_picks_up_changes(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    conn.execute("DELETE FROM tsm.gold_items WHERE gold_id LIKE 'load-%'")
    conn.commit()
    path = _write(tmp_path / "g.jsonl", [_item("load-1"), _item("load-2")])
    assert load_gold_file(conn, path, POLICIES) == 2
    assert load_gold_file(conn, path, POLICIES) == 0
    changed = _item("load-2", answers={"adult": {"is_violating": False, "sub_policy": None}})
    assert load_gold_file(conn, _write(path, [_item("load-1"), changed]), POLICIES) == 1
    row = conn.execute(
        "SELECT answers, source FROM tsm.gold_items WHERE gold_id = 'load-2'"
    ).fetchone()
    conn.commit()
    assert row is not None and row[0]["adult"] == {"is_violating": False, "sub_policy": None}


def _real_tasks(conn: psycopg.Connection, day: date, labeler: str, n: int) -> list[dict[str, Any]]:
    conn.execute("DELETE FROM tsm.labels WHERE event_date = %s", (day,))
    conn.execute("DELETE FROM tsm.label_tasks WHERE event_date = %s", (day,))
    payloads = []
    for k in range(n):
        payload = {
            "unit_id": f"{day:%Y%m%d}-{k:06d}",
            "event_date": day.isoformat(),
            "surface": "search",
            "impressions": 10,
            "components": [{"component_id": "q", "type": "user_query", "text": f"q {k}"}],
        }
        conn.execute(
            "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload) "
            "VALUES (%s, %s, %s, 'primary', %s)",
            (day, payload["unit_id"], labeler, json.dumps(payload)),
        )
        payloads.append(payload)
    conn.commit()
    return payloads


def _gold_set(conn: psycopg.Connection, tmp_path: Path, n: int) -> None:
    conn.execute("DELETE FROM tsm.label_tasks WHERE purpose = 'gold'")
    conn.execute("DELETE FROM tsm.gold_items")
    conn.commit()
    load_gold_file(conn, write_gold_file(tmp_path / "gold.jsonl", n // 2, n - n // 2, 0), POLICIES)


def _inject(
    conn: psycopg.Connection, day: date, labeler: str, rate: float
) -> list[tuple[Any, ...]]:
    run_sql_file(
        conn, "inject_gold_tasks.sql", {"day": day.isoformat(), "labeler_id": labeler, "rate": rate}
    )
    rows = conn.execute(
        "SELECT unit_id, gold_id, queue_key, payload FROM tsm.label_tasks "
        "WHERE event_date = %s AND labeler_id = %s AND purpose = 'gold' ORDER BY gold_id",
        (day, labeler),
    ).fetchall()
    conn.commit()
    return rows


def test_injection_adds_the_configured_share_blind_and_idempotently(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    _gold_set(conn, tmp_path, 30)
    day = date(2032, 1, 10)
    real = _real_tasks(conn, day, "lab_a", 95)
    rows = _inject(conn, day, "lab_a", 0.05)
    assert len(rows) == round(95 * 0.05 / 0.95) == 5
    for unit_id, gold_id, key, payload in rows:
        assert unit_id == f"gold:{gold_id}"
        assert key == queue_key(day, unit_id, "lab_a") == payload["unit_id"]
        assert set(payload) == set(real[0])  # the same record shape as a sampled unit's
        assert payload["event_date"] == day.isoformat()
        assert set(payload["components"][0]) <= {
            "component_id",
            "type",
            "text",
            "pin_id",
            "image_url",
        }
    assert _inject(conn, day, "lab_a", 0.05) == rows  # a re-run adds nothing
    assert _inject(conn, day, "lab_a", 0.2) == rows  # the day's first injection stands
    # more gold than the set holds: the whole active set, once each
    day2 = date(2032, 1, 11)
    _real_tasks(conn, day2, "lab_a", 400)
    assert len(_inject(conn, day2, "lab_a", 0.3)) == 30


def test_injection_prefers_items_the_labeler_has_seen_least(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    _gold_set(conn, tmp_path, 12)
    seen: set[str] = set()
    for offset in range(3):  # 3 days x 4 items cover the 12 items exactly once
        day = date(2032, 2, 1 + offset)
        _real_tasks(conn, day, "lab_b", 36)
        today = {r[1] for r in _inject(conn, day, "lab_b", 0.1)}
        assert len(today) == 4 and not today & seen
        seen |= today
    assert len(seen) == 12


def test_gold_confusion_scores_labels_against_the_sme_answers(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    _gold_set(conn, tmp_path, 20)  # g-0000..g-0009 adult violating, g-0010..g-0019 clean
    day = date(2032, 3, 1)
    _real_tasks(conn, day, "lab_c", 180)
    rows = _inject(conn, day, "lab_c", 0.1)
    assert len(rows) == 20
    truth = gold_answers(conn, day)
    expected = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for k, (unit_id, gold_id, _, _) in enumerate(rows):
        violating = int(gold_id[-4:]) < 10
        said = violating if k % 5 else not violating  # every 5th answer is wrong
        key = ("t" if said == violating else "f") + ("p" if said else "n")
        expected[key] += 1
        conn.execute(
            "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating) "
            "VALUES (%s, %s, 'lab_c', 'adult', %s)",
            (day, unit_id, said),
        )
        assert truth[(unit_id, "adult")] is violating
    conn.commit()
    (confusion,) = [c for c in gold_confusion(conn, day, day) if c.policy == "adult"]
    assert confusion == Confusion(
        "lab_c", "adult", expected["tp"], expected["fp"], expected["fn"], expected["tn"]
    )
    assert confusion.accuracy == pytest.approx(16 / 20)
    assert confusion.accuracy_se == pytest.approx((0.8 * 0.2 / 20) ** 0.5)
    assert confusion.sensitivity == pytest.approx(expected["tp"] / 10)
    assert confusion.specificity == pytest.approx(expected["tn"] / 10)
    # real units' labels never count: they are not gold tasks
    conn.execute(
        "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating) "
        "VALUES (%s, %s, 'lab_c', 'adult', true)",
        (day, f"{day:%Y%m%d}-000001"),
    )
    conn.commit()
    assert [c for c in gold_confusion(conn, day, day) if c.policy == "adult"] == [confusion]


def test_the_cli_loads_a_gold_file(database_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tsmetrics.cli import main

    monkeypatch.setenv("TSMETRICS_DATABASE_URL", database_url)
    path = _write(tmp_path / "cli.jsonl", [_item("cli-1")])
    assert main(["gold", "load", str(path)]) == 0
    assert main(["gold", "load", str(path)]) == 0  # idempotent
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM tsm.gold_items WHERE gold_id = 'cli-1'"
        ).fetchone() == (1,)
    with pytest.raises(GoldFileError):
        main(["gold", "load", str(_write(tmp_path / "bad.jsonl", ["{"]))])
