"""Tests of tsmetrics.vendor_queue: real batch files in tmp_path (export, manifest, returned
files with malformed rows, idempotent re-import) and the warehouse glue against the real
tsm.label_tasks / tsm.labels tables."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsmetrics.errors import InvalidLabelError
from tsmetrics.labeling import Label
from tsmetrics.prompts import load_policies
from tsmetrics.vendor_queue import (
    BASE_COLUMNS,
    HumanAnswer,
    ImportReport,
    VendorQueue,
    answers_from_choices,
    policy_set_version,
    record_human_answers,
    record_view,
    sub_policy_column,
    submit_pending_tasks,
)

POLICIES = tuple(load_policies().values())
IDS = [p.id for p in POLICIES]
SUBS = {p.id: p.sub_policy_ids for p in POLICIES}


def _record(unit_id: str, day: str = "2026-11-20", query: str = "how to x?") -> dict[str, Any]:
    """A unified unit record shaped like dispatch_label_tasks.sql's payload."""
    return {
        "unit_id": unit_id,
        "event_date": day,
        "surface": "search",
        "impressions": 120,
        "components": [
            {"component_id": "q", "type": "user_query", "text": query},
            {"component_id": "r", "type": "system_response", "text": f"answer for {unit_id}"},
            {
                "component_id": "p1",
                "type": "pin_image",
                "pin_id": "pin-1",
                "image_url": f"https://i.example.com/{unit_id}-1.jpg",
                "text": "first pin",
            },
            {
                "component_id": "p2",
                "type": "pin_image",
                "pin_id": "pin-2",
                "image_url": f"https://i.example.com/{unit_id}-2.jpg",
            },
        ],
    }


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(header), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def _fill(row: dict[str, str], answers: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """What the vendor does: fill every policy's verdict and sub-policy cells."""
    out = dict(row)
    for policy in IDS:
        verdict, sub = answers.get(policy, ("not_violating", ""))
        out[policy] = verdict
        out[sub_policy_column(policy)] = sub
    return out


CLEAN = {p: ("not_violating", "") for p in IDS}


# --------------------------------------------------------------------------------------------
# Policy version, answers, record view
# --------------------------------------------------------------------------------------------


def test_policy_set_version_is_stable_order_free_and_tracks_every_text_change() -> None:
    version = policy_set_version(POLICIES)
    assert re.fullmatch(r"ps-[0-9a-f]{12}", version)
    assert policy_set_version(POLICIES[::-1]) == version
    first = POLICIES[0]
    for change in (
        {"version": first.version + 1},
        {"definition": first.definition + " More."},
        {"sub_policies": first.sub_policies[:-1]},
        {"negative_examples": (*first.negative_examples, "another")},
    ):
        changed = (dataclasses.replace(first, **change), *POLICIES[1:])
        assert policy_set_version(changed) != version, change
    with pytest.raises(ValueError, match="policies"):
        policy_set_version([])
    with pytest.raises(ValueError, match="duplicate"):
        policy_set_version([first, first])


def test_answers_from_choices_accepts_valid_and_normalises_spelling() -> None:
    choices: dict[str, tuple[str, str | None]] = {p: ("Not Violating", None) for p in IDS}
    choices["adult"] = ("  VIOLATING ", "Sexual-Activity")
    answers = answers_from_choices(choices, POLICIES)
    assert [a["policy"] for a in answers] == IDS
    assert answers[IDS.index("adult")] == {
        "policy": "adult",
        "is_violating": True,
        "sub_policy": "sexual_activity",
        "confidence": None,
    }
    assert all(
        not a["is_violating"] and a["sub_policy"] is None for a in answers if a["policy"] != "adult"
    )


@pytest.mark.parametrize(
    ("adult", "message"),
    [
        ((None, None), "missing verdict for 'adult'"),
        (("", ""), "missing verdict for 'adult'"),
        (("maybe", ""), "invalid verdict 'maybe' for 'adult'"),
        ((True, None), "invalid verdict True for 'adult'"),
        (("violating", ""), "missing sub-policy for violating 'adult' (expected one of nudity"),
        (("violating", "gore"), "unknown sub-policy 'gore' for 'adult'"),
        (("not_violating", "nudity"), "sub-policy 'nudity' given but 'adult' is not_violating"),
    ],
)
def test_answers_from_choices_rejects_malformed(adult: tuple[Any, Any], message: str) -> None:
    choices: dict[str, tuple[Any, Any]] = dict(CLEAN)
    choices["adult"] = adult
    with pytest.raises(InvalidLabelError) as caught:
        answers_from_choices(choices, POLICIES)
    assert message in str(caught.value)


def test_answers_from_choices_reports_every_problem() -> None:
    choices: dict[str, tuple[Any, Any]] = {"adult": ("violating", None)}
    with pytest.raises(InvalidLabelError) as caught:
        answers_from_choices(choices, POLICIES)
    text = str(caught.value)
    assert "missing sub-policy for violating 'adult'" in text
    for policy in IDS[1:]:
        assert f"missing verdict for {policy!r}" in text


def test_record_view_splits_components_in_order() -> None:
    view = record_view(_record("u1", query="first"))
    assert view == {
        "unit_id": "u1",
        "event_date": "2026-11-20",
        "surface": "search",
        "query": "first",
        "response": "answer for u1",
        "pin_texts": "[pin-1] first pin",
        "image_urls": ["https://i.example.com/u1-1.jpg", "https://i.example.com/u1-2.jpg"],
    }
    with pytest.raises(ValueError, match=r"record\['unit_id'\]"):
        record_view({"components": []})
    with pytest.raises(ValueError, match=r"record\['components'\]\[0\]\['text'\]"):
        record_view({"unit_id": "u", "components": [{"type": "user_query", "text": 3}]})


def test_human_answer_is_either_labels_or_error() -> None:
    label = Label("adult", False)
    assert HumanAnswer("u", (label,)).ok
    assert not HumanAnswer("u", error="bad").ok
    with pytest.raises(ValueError, match="either labels"):
        HumanAnswer("u")
    with pytest.raises(ValueError, match="either labels"):
        HumanAnswer("u", (label,), error="bad")


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def test_export_writes_csv_jsonl_and_manifest_with_true_hashes(tmp_path: Path) -> None:
    queue = VendorQueue(tmp_path / "q", POLICIES, queue_id="bpo_a")
    records = [_record("u1"), _record("u2", query='=HYPERLINK("http://x")'), _record("u1")]
    manifest = queue.export_batch(records)
    assert manifest is not None
    assert manifest.unit_count == 2 and manifest.unit_ids == ("u1", "u2")
    assert manifest.policy_version == queue.policy_version == policy_set_version(POLICIES)
    assert manifest.batch_id.startswith(queue.policy_version + "-")
    for fmt in ("csv", "jsonl"):
        info = manifest.files[fmt]
        data = (queue.outbox / info["name"]).read_bytes()
        assert info["sha256"] == hashlib.sha256(data).hexdigest()
        assert info["bytes"] == len(data)
    raw = json.loads(manifest.path.read_text())
    assert raw["policies"][0]["sub_policies"] == list(POLICIES[0].sub_policy_ids)

    header, rows = _read_csv(queue.outbox / manifest.files["csv"]["name"])
    expected_columns = list(BASE_COLUMNS)
    for policy in IDS:
        expected_columns += [policy, f"{policy}__sub_policy"]
    assert header == expected_columns == list(manifest.columns)
    assert [r["unit_id"] for r in rows] == ["u1", "u2"]
    assert all(r[c] == "" for r in rows for c in expected_columns[len(BASE_COLUMNS) :])
    assert rows[0]["image_urls"].split("\n") == [
        "https://i.example.com/u1-1.jpg",
        "https://i.example.com/u1-2.jpg",
    ]
    assert rows[0]["pin_texts"] == "[pin-1] first pin"
    # a text that a spreadsheet would run as a formula is defused
    assert rows[1]["query"] == '\'=HYPERLINK("http://x")'

    lines = (queue.outbox / manifest.files["jsonl"]["name"]).read_text().splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["unit_id"] for o in objects] == ["u1", "u2"]
    assert objects[1]["query"] == '=HYPERLINK("http://x")'  # JSON is data, never a formula
    assert objects[0]["image_urls"] == [
        "https://i.example.com/u1-1.jpg",
        "https://i.example.com/u1-2.jpg",
    ]
    assert all(o[p] is None and o[f"{p}__sub_policy"] is None for o in objects for p in IDS)


def test_export_is_idempotent_per_policy_version(tmp_path: Path) -> None:
    queue = VendorQueue(tmp_path, POLICIES)
    first = queue.export_batch([_record("u1"), _record("u2")])
    assert first is not None
    assert queue.export_batch([_record("u2"), _record("u1")]) is None
    queue.submit([_record("u1")])
    assert len(queue.manifests()) == 1
    second = queue.export_batch([_record("u1"), _record("u3"), _record("u2"), _record("u4")])
    assert second is not None and second.unit_ids == ("u3", "u4")
    assert queue.exported_units() == {
        "u1": first.batch_id,
        "u2": first.batch_id,
        "u3": second.batch_id,
        "u4": second.batch_id,
    }
    # a new policy text is a new version: every unit is sent again, once
    bumped = (dataclasses.replace(POLICIES[0], version=POLICIES[0].version + 1), *POLICIES[1:])
    queue_v2 = VendorQueue(tmp_path, bumped)
    assert queue_v2.policy_version != queue.policy_version
    third = queue_v2.export_batch([_record("u1"), _record("u2")])
    assert third is not None and third.unit_ids == ("u1", "u2")
    assert queue_v2.export_batch([_record("u1")]) is None
    assert len(queue.manifests()) == 2  # the old version's batches are untouched


def test_export_rejects_bad_input(tmp_path: Path) -> None:
    queue = VendorQueue(tmp_path, POLICIES)
    with pytest.raises(ValueError, match="records"):
        queue.export_batch(_record("u1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"record\['unit_id'\]"):
        queue.export_batch([{"unit_id": "", "components": []}])
    with pytest.raises(ValueError, match="queue_id"):
        VendorQueue(tmp_path, POLICIES, queue_id="no spaces/allowed")
    clash = dataclasses.replace(POLICIES[0], id="query")
    with pytest.raises(ValueError, match="clashes"):
        VendorQueue(tmp_path, [clash])


# --------------------------------------------------------------------------------------------
# Import of returned files
# --------------------------------------------------------------------------------------------


def _exported(tmp_path: Path, n: int = 12) -> tuple[VendorQueue, list[str], list[dict[str, str]]]:
    queue = VendorQueue(tmp_path / "queue", POLICIES, queue_id="bpo")
    manifest = queue.export_batch([_record(f"u{i:02d}") for i in range(n)])
    assert manifest is not None
    header, rows = _read_csv(queue.outbox / manifest.files["csv"]["name"])
    return queue, header, rows


def _line(k: int) -> int:
    """Physical line where exported data row ``k`` (0-based) starts: each row of _record spans
    two lines (its two image URLs are newline-separated inside one quoted cell)."""
    return 2 + 2 * k


def test_import_csv_accepts_good_rows_and_rejects_each_malformed_row(tmp_path: Path) -> None:
    queue, header, rows = _exported(tmp_path)
    returned = [
        _fill(rows[0], {"adult": ("violating", "nudity")}),
        _fill(rows[1], {"self_harm": ("Violating", "Instructions")}),
        _fill(rows[2], {"adult": ("violating", "")}),  # missing sub-policy
        _fill(rows[3], {"adult": ("maybe", "")}),  # invalid verdict
        {**_fill(rows[4], {}), "harassment": ""},  # missing verdict
        _fill(rows[5], {"adult": ("violating", "gore")}),  # unknown sub-policy
        _fill(rows[6], {"adult": ("not_violating", "nudity")}),  # contradictory
        {**_fill(rows[7], {}), "policy_version": "ps-000000000000"},  # wrong version
        {**_fill(rows[8], {}), "unit_id": "u99"},  # unknown unit
        {**_fill(rows[9], {}), "unit_id": ""},  # missing unit id
        _fill(rows[10], {}),  # u10 twice, with different answers
        _fill(rows[10], {"adult": ("violating", "nudity")}),
        {**_fill(rows[11], {}), "batch_id": "some-other-batch"},  # wrong batch
    ]
    path = _write_csv(queue.inbox / "return_1.csv", [*header, "vendor_note"], returned)
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write("\r\n")  # a blank line is not a row
        handle.write("u-short,only,three\r\n")  # a short row is rejected, not skipped
    report = queue.import_return(path)

    assert report.file_error is None
    assert report.rows_read == 14 == len(report.accepted) + len(report.rejected)
    assert [(a.unit_id, a.line) for a in report.accepted] == [("u00", 2), ("u01", 4)]
    assert report.ignored_columns == ("vendor_note",)
    reasons = {r.line: r.reason for r in report.rejected}
    short_line = _line(13) + 1  # after the 13 rows and the blank line
    expected = {
        _line(2): "missing sub-policy for violating 'adult'",
        _line(3): "invalid verdict 'maybe' for 'adult'",
        _line(4): "missing verdict for 'harassment'",
        _line(5): "unknown sub-policy 'gore' for 'adult'",
        _line(6): "sub-policy 'nudity' given but 'adult' is not_violating",
        _line(7): "wrong policy_version 'ps-000000000000'",
        _line(8): "unknown unit_id 'u99' (not in any exported batch)",
        _line(9): "missing unit_id",
        _line(10): f"unit_id 'u10' appears on lines {_line(10)}, {_line(11)} of this file",
        _line(11): f"unit_id 'u10' appears on lines {_line(10)}, {_line(11)} of this file",
        _line(12): "unit_id 'u11' is not in batch 'some-other-batch'",
        short_line: "row has 3 fields, header has",
    }
    assert set(reasons) == set(expected)
    for line, text in expected.items():
        assert text in reasons[line], (line, reasons[line])
    assert {r.unit_id for r in report.rejected if r.line == _line(9)} == {None}

    answers = {a.unit_id: a for a in queue.collect()}
    assert answers["u00"].labels[IDS.index("adult")] == Label("adult", True, "nudity", None)
    assert all(not lab.is_violating for lab in answers["u00"].labels if lab.policy != "adult")
    assert answers["u01"].labels[IDS.index("self_harm")] == Label("self_harm", True, "instructions")
    assert answers["u00"].ref == "return_1.csv:2"
    # rejected rows of known units are failed answers with the reason; never labels
    assert not answers["u02"].ok and "missing sub-policy" in (answers["u02"].error or "")
    assert not answers["u10"].ok and "appears on lines" in (answers["u10"].error or "")
    assert "u99" not in answers
    assert {u for u, a in answers.items() if a.ok} == {"u00", "u01"}


def test_reimport_is_idempotent_and_later_files_only_add(tmp_path: Path) -> None:
    queue, header, rows = _exported(tmp_path, n=4)
    first = _write_csv(
        queue.inbox / "r1.csv",
        header,
        [_fill(rows[0], {}), _fill(rows[1], {"adult": ("violating", "")})],
    )
    report = queue.import_return(first)
    assert (report.rows_read, len(report.accepted), len(report.rejected)) == (2, 1, 1)
    before = queue.collect()

    again = queue.import_return(first)
    assert again.already_imported and again.sha256 == report.sha256
    assert (again.rows_read, len(again.accepted), len(again.rejected)) == (2, 1, 1)
    copy = queue.inbox / "r1_copy.csv"
    copy.write_bytes(first.read_bytes())
    assert queue.import_return(copy).already_imported
    assert queue.collect() == before
    assert len(queue.reports()) == 1

    # a corrected file: u01 fixed (accepted), u00 again (already answered: rejected), u02 new
    second = _write_csv(
        queue.inbox / "r2.csv",
        header,
        [
            _fill(rows[1], {"adult": ("violating", "sexual_activity")}),
            _fill(rows[0], {"adult": ("violating", "nudity")}),
            _fill(rows[2], {}),
        ],
    )
    report2 = queue.import_return(second)
    assert [a.unit_id for a in report2.accepted] == ["u01", "u02"]
    assert len(report2.rejected) == 1
    assert "unit_id 'u00' already answered in r1.csv (line 2)" in report2.rejected[0].reason
    answers = {a.unit_id: a for a in queue.collect()}
    assert set(answers) == {"u00", "u01", "u02"} and all(a.ok for a in answers.values())
    assert answers["u00"].labels[IDS.index("adult")].is_violating is False  # first answer kept
    assert answers["u01"].labels[IDS.index("adult")] == Label("adult", True, "sexual_activity")


def test_import_jsonl_with_malformed_lines(tmp_path: Path) -> None:
    queue, _, rows = _exported(tmp_path, n=4)

    def obj(row: dict[str, str], **change: Any) -> str:
        filled: dict[str, Any] = {k: v for k, v in _fill(row, {}).items() if k != "image_urls"}
        filled["annotator"] = "agent-7"
        filled.update(change)
        return json.dumps(filled, ensure_ascii=False)

    text = "\n".join(
        [
            obj(rows[0], adult="violating", adult__sub_policy="nudity", note="a\u2028b"),
            "",
            "{not json",
            "[1, 2]",
            obj(rows[1], adult=None),
            obj(rows[2], unit_id=7),
            obj(rows[3]),
        ]
    )
    path = queue.inbox / "back.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    report = queue.import_return(path)
    assert report.rows_read == 6 == len(report.accepted) + len(report.rejected)
    assert [(a.unit_id, a.line, a.annotator) for a in report.accepted] == [
        ("u00", 1, "agent-7"),
        ("u03", 7, "agent-7"),
    ]
    reasons = {r.line: r.reason for r in report.rejected}
    assert reasons[3].startswith("not valid JSON")
    assert reasons[4] == "expected a JSON object, got list"
    assert "missing verdict for 'adult'" in reasons[5]
    assert "unit_id must be text, got 7" in reasons[6]
    assert report.ignored_columns == ("note",)
    answer = {a.unit_id: a for a in queue.collect()}["u00"]
    assert answer.annotator == "agent-7" and answer.labels[0] == Label("adult", True, "nudity")


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("r.csv", b"", "empty file"),
        ("r.csv", b"unit_id,policy_version\r\nu00,x\r\n", "missing required columns ['batch_id'"),
        ("r.csv", b"unit_id,unit_id\r\n", "duplicate columns ['unit_id']"),
        ("r.csv", b"\xff\xfeu\x00n\x00", "not UTF-8"),
        ("r.xlsx", b"PK\x03\x04", "unsupported file type '.xlsx'"),
    ],
)
def test_unreadable_files_are_rejected_whole(
    tmp_path: Path, name: str, content: bytes, error: str
) -> None:
    queue, _, _ = _exported(tmp_path, n=2)
    path = tmp_path / name
    path.write_bytes(content)
    report = queue.import_return(path)
    assert report.file_error is not None and error in report.file_error
    assert (report.rows_read, report.accepted, report.rejected) == (0, (), ())
    assert queue.collect() == []


def test_csv_with_byte_order_mark_is_read(tmp_path: Path) -> None:
    queue, header, rows = _exported(tmp_path, n=1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerow(_fill(rows[0], {}))
    path = tmp_path / "excel.csv"
    path.write_bytes(buffer.getvalue().encode("utf-8-sig"))
    report = queue.import_return(path)
    assert report.file_error is None and [a.unit_id for a in report.accepted] == ["u00"]


def test_report_counts_must_reconcile() -> None:
    with pytest.raises(ValueError, match="rows_read"):
        ImportReport("f", "0" * 64, "ps-x", 3, (), ())


def test_returned_rows_of_an_old_policy_version_are_rejected(tmp_path: Path) -> None:
    queue, header, rows = _exported(tmp_path, n=2)
    bumped = (dataclasses.replace(POLICIES[0], version=POLICIES[0].version + 1), *POLICIES[1:])
    queue_v2 = VendorQueue(queue.root, bumped, queue_id="bpo")
    path = _write_csv(tmp_path / "old.csv", header, [_fill(r, {}) for r in rows])
    report = queue_v2.import_return(path)
    assert report.accepted == ()
    assert all("wrong policy_version" in r.reason for r in report.rejected)
    assert queue_v2.collect() == []


_CELL = st.sampled_from(["violating", "not_violating", "Not Violating", "", "maybe", "yes"])
_SUB = st.sampled_from(["", "nudity", "sexual_activity", "unknown_sub", "Nudity"])


@settings(max_examples=25, deadline=None)
@given(cells=st.lists(st.tuples(_CELL, _SUB), min_size=len(IDS) * 3, max_size=len(IDS) * 3))
def test_property_rows_reconcile_and_accepted_iff_every_cell_is_valid(
    tmp_path_factory: pytest.TempPathFactory, cells: list[tuple[str, str]]
) -> None:
    root = tmp_path_factory.mktemp("prop")
    queue, header, rows = _exported(root, n=3)
    returned = []
    expected_ok = []
    for k, row in enumerate(rows):
        chosen = dict(zip(IDS, cells[k * len(IDS) : (k + 1) * len(IDS)], strict=True))
        returned.append(_fill(row, chosen))
        ok = True
        for policy, (verdict, sub) in chosen.items():
            norm_v = verdict.strip().lower().replace(" ", "_")
            norm_s = sub.strip().lower()
            if norm_v == "violating":
                ok &= norm_s in SUBS[policy]
            elif norm_v == "not_violating":
                ok &= norm_s == ""
            else:
                ok = False
        expected_ok.append(ok)
    report = queue.import_return(_write_csv(root / "r.csv", header, returned))
    assert report.rows_read == 3 == len(report.accepted) + len(report.rejected)
    assert [a.unit_id for a in report.accepted] == [
        r["unit_id"] for r, ok in zip(rows, expected_ok, strict=True) if ok
    ]


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(
        st.builds(
            str.__add__,
            st.sampled_from(["", "=", "+", "-", "@", "\t", "\r", '"', ","]),
            st.text(
                st.characters(codec="utf-8", exclude_characters="\x00"),
                max_size=40,
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_property_exported_texts_survive_csv_and_jsonl(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str]
) -> None:
    queue = VendorQueue(tmp_path_factory.mktemp("texts"), POLICIES)
    manifest = queue.export_batch([_record(f"t{i}", query=t) for i, t in enumerate(texts)])
    assert manifest is not None
    _, rows = _read_csv(queue.outbox / manifest.files["csv"]["name"])
    jsonl = (queue.outbox / manifest.files["jsonl"]["name"]).read_text(encoding="utf-8")
    objects = [json.loads(line) for line in jsonl.split("\n") if line]
    for text, row, obj in zip(texts, rows, objects, strict=True):
        assert obj["query"] == text  # JSONL keeps the text exactly
        formula = text.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert row["query"] == ("'" + text if formula else text)  # CSV too, formulas defused


# --------------------------------------------------------------------------------------------
# Warehouse glue
# --------------------------------------------------------------------------------------------


def _insert_tasks(conn: psycopg.Connection, day: date, labeler: str, units: Sequence[str]) -> None:
    conn.execute("DELETE FROM tsm.labels WHERE event_date = %s", (day,))
    conn.execute("DELETE FROM tsm.label_tasks WHERE event_date = %s", (day,))
    for unit in units:
        conn.execute(
            "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload) "
            "VALUES (%s, %s, %s, 'primary', %s)",
            (day, unit, labeler, json.dumps(_record(unit, day.isoformat()))),
        )
    conn.commit()


def _task_state(conn: psycopg.Connection, day: date) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT unit_id, status, attempts, last_error FROM tsm.label_tasks WHERE event_date = %s",
        (day,),
    ).fetchall()
    conn.commit()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_vendor_queue_through_the_warehouse(conn: psycopg.Connection, tmp_path: Path) -> None:
    day = date(2031, 3, 4)
    units = [f"20310304-{i:06d}" for i in range(1, 5)]
    _insert_tasks(conn, day, "bpo", units)
    queue = VendorQueue(tmp_path, POLICIES, queue_id="bpo")
    assert submit_pending_tasks(conn, day.isoformat(), "bpo", queue) == 4
    assert submit_pending_tasks(conn, day.isoformat(), "bpo", queue) == 4
    (manifest,) = queue.manifests()  # the second submit exported nothing
    header, rows = _read_csv(queue.outbox / manifest.files["csv"]["name"])
    by_unit = {r["unit_id"]: r for r in rows}
    _write_csv(
        queue.inbox / "ret.csv",
        header,
        [
            _fill(by_unit[units[0]], {"adult": ("violating", "nudity")}),
            _fill(by_unit[units[1]], {}),
            _fill(by_unit[units[2]], {"adult": ("violating", "")}),
        ],
    )
    answers = queue.collect()
    summary = record_human_answers(conn, day.isoformat(), "bpo", answers)
    assert (summary.labeled, summary.failed, summary.unchanged, summary.unmatched) == (2, 1, 0, 0)
    state = _task_state(conn, day)
    assert state[units[0]][:2] == ("done", 1) and state[units[1]][:2] == ("done", 1)
    assert state[units[2]][:2] == ("failed", 1)
    assert (
        f"ret.csv:{_line(2)}" in state[units[2]][2] and "missing sub-policy" in state[units[2]][2]
    )
    assert state[units[3]] == ("pending", 0, None)
    labels = conn.execute(
        "SELECT unit_id, policy, is_violating, sub_policy, labeler_id FROM tsm.labels "
        "WHERE event_date = %s ORDER BY unit_id, policy",
        (day,),
    ).fetchall()
    conn.commit()
    assert len(labels) == 2 * len(IDS)
    assert (units[0], "adult", True, "nudity", "bpo") in labels
    assert not any(row[0] == units[2] for row in labels)  # a failed answer is never a label

    # collecting and recording again changes nothing
    again = record_human_answers(conn, day.isoformat(), "bpo", queue.collect())
    assert (again.labeled, again.failed, again.unchanged) == (2, 0, 1)
    assert _task_state(conn, day) == state
    # an answer for a unit that has no task of this day and labeler is counted, not written
    other = record_human_answers(conn, "2031-03-05", "bpo", answers)
    assert other.unmatched == len(answers)


def test_vendor_annotator_confidence_and_notes_reach_the_labels(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    day = date(2031, 3, 6)
    units = [f"20310306-{i:06d}" for i in range(1, 5)]
    _insert_tasks(conn, day, "bpo", units)
    queue = VendorQueue(tmp_path, POLICIES, queue_id="bpo")
    submit_pending_tasks(conn, day.isoformat(), "bpo", queue)
    (manifest,) = queue.manifests()
    header, rows = _read_csv(queue.outbox / manifest.files["csv"]["name"])
    assert header[: len(BASE_COLUMNS)][-3:] == ["annotator", "confidence", "notes"]
    by_unit = {r["unit_id"]: r for r in rows}
    _write_csv(
        queue.inbox / "ret.csv",
        header,
        [
            {
                **_fill(by_unit[units[0]], {"adult": ("violating", "nudity")}),
                "annotator": "agent-7",
                "confidence": "0.8",
                "notes": "  swimsuit photo, borderline  ",
            },
            {**_fill(by_unit[units[1]], {}), "annotator": "agent-9"},  # no confidence, no notes
            {**_fill(by_unit[units[2]], {}), "confidence": "1.5"},
            {**_fill(by_unit[units[3]], {}), "confidence": "sure"},
        ],
    )
    report = queue.import_return(queue.inbox / "ret.csv")
    reasons = sorted(r.reason for r in report.rejected)
    assert reasons == [
        "invalid confidence '1.5' (expected a number in [0, 1])",
        "invalid confidence 'sure' (expected a number in [0, 1])",
    ]
    record_human_answers(conn, day.isoformat(), "bpo", queue.collect())
    labels = {
        (r[0], r[1]): r[2:]
        for r in conn.execute(
            "SELECT unit_id, policy, annotator, confidence, notes FROM tsm.labels "
            "WHERE event_date = %s",
            (day,),
        ).fetchall()
    }
    conn.commit()
    assert labels[(units[0], "adult")] == ("agent-7", 0.8, "swimsuit photo, borderline")
    assert labels[(units[0], "harassment")] == ("agent-7", 0.8, "swimsuit photo, borderline")
    assert labels[(units[1], "adult")] == ("agent-9", None, None)
    assert not any(u in (units[2], units[3]) for u, _ in labels)
