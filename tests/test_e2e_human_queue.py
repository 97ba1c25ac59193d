"""End to end with a human queue: simulated days through ``prevalence_daily`` (Airflow
``dag.test()``, which runs the deferred sensor's trigger inline), the overlap labeler being a
vendor (BPO) file queue configured through an Airflow connection. A test-side "human" answers
the outbox files while the DAG waits: late (the sensor defers, then resumes when the files
arrive) or only in part (the deadline cuts the wait). SME gold items are injected blind."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from conftest import PROJECT_DIR
from human_queue_helpers import DagRunThread, VendorHuman, write_gold_file

from tsmetrics.local_airflow import airflow_environment, migrate_metadata_db
from tsmetrics.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.e2e

LATE_DAY = date(2026, 9, 14)
CUT_DAY = date(2026, 9, 15)
VENDOR = "bpo_acme"
PRIMARY = "simulated_labeler_a"
N_GOLD = 28
GOLD_RATE = 0.1


@dataclass
class HumanRun:
    database_url: str
    env: dict[str, str]
    home: Path
    log: Path
    human: VendorHuman
    gold_file: Path

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def env_for(self, name: str, **wait: Any) -> dict[str, str]:
        config = yaml.safe_load((PROJECT_DIR / "src/tsmetrics/config/policies.yaml").read_text())
        config["sampling"]["n_draws"] = 150
        config["sampling"]["planning"]["label_budget"] = 150
        config["labeling"]["overlap"] = {
            "labeler_id": VENDOR,
            "backend": "vendor_files",
            "conn_id": "tsmetrics_vendor",
            "fraction": 0.3,
        }
        config["labeling"]["gold"] = {"rate": GOLD_RATE, "file": str(self.gold_file)}
        config["labeling"]["wait"] = {
            "min_completion": 0.9,
            "poll_seconds": 1,
            "max_idle_minutes": 10,
            **wait,
        }
        config["estimation"]["label_correction"] = True
        path = self.home / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return {**self.env, "TSMETRICS_POLICIES_FILE": str(path)}

    def completion(self, day: date) -> dict[str, tuple[Any, ...]]:
        rows = self.query(
            "SELECT labeler_id, policy, tasks, done, failed, pending, completion, outcome, "
            "cut_by_deadline, wait_rounds, waited_seconds, gold_tasks, gold_done, deadline_at "
            "FROM tsm.label_completion WHERE event_date = %s",
            day,
        )
        return {f"{r[0]}/{r[1]}": r[2:] for r in rows}


@pytest.fixture(scope="module")
def human_run(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HumanRun]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("tsmetrics_human")
    database_url = make_database()
    simulate(
        days=2,
        seed=21,
        start=LATE_DAY,
        raw_dir=home / "raw",
        truth_dir=home / "truth",
        config=SimulationConfig(n_interactions=4_000),
    )
    queue_dir = home / "vendor_queue"
    env = airflow_environment(
        PROJECT_DIR,
        home / "airflow",
        database_url,
        {
            "TSMETRICS_HOME": str(home),
            "TSMETRICS_RAW_DIR": str(home / "raw"),
            "TSMETRICS_REPORTS_DIR": str(home / "reports"),
            "AIRFLOW_CONN_TSMETRICS_VENDOR": json.dumps(
                {"conn_type": "fs", "extra": {"path": str(queue_dir)}}
            ),
        },
    )
    log = home / "airflow.log"
    migrate_metadata_db(env, log)
    gold = write_gold_file(home / "gold.jsonl", n_violating=12, n_clean=12, n_hard=4)
    yield HumanRun(database_url, env, home, log, VendorHuman(queue_dir), gold)


@pytest.fixture(scope="module")
def late_run(human_run: HumanRun) -> HumanRun:
    """LATE_DAY: the human returns a third of the day's rows, then (while the sensor is
    deferred) the rest."""
    run = DagRunThread(human_run.env_for("late", deadline_hours=0.1), LATE_DAY, human_run.log)
    run.start()
    header, rows = human_run.human.rows_of(LATE_DAY)
    human_run.human.answer(rows[: len(rows) // 3], header)
    time.sleep(5)  # the sensor cannot be complete with a third: it defers and polls
    human_run.human.answer(rows[len(rows) // 3 :], header)
    run.join_checked()
    return human_run


@pytest.fixture(scope="module")
def cut_run(late_run: HumanRun) -> HumanRun:
    """CUT_DAY: the human returns 40% of the rows and nothing more; the deadline (36 s after
    dispatch) cuts the wait."""
    run = DagRunThread(late_run.env_for("cut", deadline_hours=0.01), CUT_DAY, late_run.log)
    run.start()
    header, rows = late_run.human.rows_of(CUT_DAY)
    late_run.human.answer(rows[: int(len(rows) * 0.4)], header)
    run.join_checked()
    return late_run


def test_late_labels_are_collected_after_the_sensor_deferred(late_run: HumanRun) -> None:
    completion = late_run.completion(LATE_DAY)
    vendor = completion[f"{VENDOR}/adult"]
    tasks, done, failed, pending, fraction, outcome, cut, rounds, waited = vendor[:9]
    assert outcome == "complete" and cut is False
    assert tasks > 10 and done == tasks and failed == pending == 0 and fraction == 1.0
    assert rounds >= 2 and waited > 0  # it deferred at least once before completing
    print(f"\nlate day: {done}/{tasks} vendor units, {rounds} rounds, waited {waited:.1f} s")
    primary = completion[f"{PRIMARY}/adult"]
    assert primary[4] == 1.0 and primary[5] == "complete"
    labels = late_run.query(
        "SELECT DISTINCT annotator, notes, confidence FROM tsm.labels WHERE event_date = %s "
        "AND labeler_id = %s",
        LATE_DAY,
        VENDOR,
    )
    assert labels == [("vendor-agent-1", "checked", None)]
    assert late_run.query(
        "SELECT DISTINCT annotator FROM tsm.labels WHERE event_date = %s AND labeler_id = %s",
        LATE_DAY,
        PRIMARY,
    ) == [(None,)]
    # the human labels fed agreement, and estimation ran after the wait
    agreement = late_run.query(
        "SELECT min(percent_agreement), min(n_items) FROM tsm.agreement WHERE event_date = %s",
        LATE_DAY,
    )[0]
    assert agreement[0] == 1.0 and agreement[1] >= tasks
    report = (late_run.home / "reports" / f"prevalence_{LATE_DAY}.html").read_text()
    assert "Label completion" in report and VENDOR in report


def test_gold_items_are_injected_blind_and_never_estimated(late_run: HumanRun) -> None:
    tasks = dict(
        late_run.query(
            "SELECT labeler_id || '/' || purpose, count(*) FROM tsm.label_tasks "
            "WHERE event_date = %s GROUP BY 1",
            LATE_DAY,
        )
    )
    for labeler in (PRIMARY, VENDOR):
        real = tasks.get(f"{labeler}/primary", 0) + tasks.get(f"{labeler}/overlap", 0)
        assert tasks[f"{labeler}/gold"] == min(round(real * GOLD_RATE / (1 - GOLD_RATE)), N_GOLD)
    # the vendor's files: every unit id is a blind key, nothing says "gold" or shows an
    # interaction id, and gold rows are spread through the batch (key order)
    header, rows = late_run.human.outbox_rows()
    assert all(re.fullmatch(r"u[0-9a-f]{19}", r["unit_id"]) for r in rows)
    for path in (late_run.human.root / "outbox").iterdir():
        text = path.read_text(encoding="utf-8").lower()
        assert "gold" not in text and "20260914-" not in text
    gold_keys = {
        r[0]
        for r in late_run.query(
            "SELECT queue_key FROM tsm.label_tasks WHERE event_date = %s AND labeler_id = %s "
            "AND purpose = 'gold'",
            LATE_DAY,
            VENDOR,
        )
    }
    day_rows = [r for r in rows if r["event_date"] == LATE_DAY.isoformat()]
    positions = [k for k, r in enumerate(day_rows) if r["unit_id"] in gold_keys]
    assert len(positions) == len(gold_keys) and positions[-1] - positions[0] > len(day_rows) / 2
    # gold never reaches an estimate: the estimates count the sample's units only
    sampled, draws = late_run.query(
        "SELECT (SELECT count(DISTINCT unit_id) FROM tsm.samples WHERE event_date = %s), "
        "(SELECT max(n_draws) FROM tsm.estimates WHERE event_date = %s "
        "AND estimator = 'horvitz_thompson')",
        LATE_DAY,
        LATE_DAY,
    )[0]
    assert draws == sampled
    gold_completion = late_run.completion(LATE_DAY)[f"{VENDOR}/adult"][9:11]
    assert gold_completion == (len(gold_keys), len(gold_keys))


def test_the_deadline_cuts_the_wait_and_estimation_records_it(cut_run: HumanRun) -> None:
    completion = cut_run.completion(CUT_DAY)
    vendor = completion[f"{VENDOR}/adult"]
    tasks, done, failed, pending, fraction, outcome, cut, rounds, waited = vendor[:9]
    assert outcome == "deadline" and cut is True
    assert 0 < done < tasks and pending == tasks - done - failed > 0
    assert 0.2 < fraction < 0.6
    assert waited > 10 and rounds >= 2
    print(f"\ncut day: {done}/{tasks} = {fraction:.2f}, {rounds} rounds, waited {waited:.1f} s")
    assert completion[f"{PRIMARY}/adult"][6] is False  # the primary was complete
    # estimation went ahead with what was there, the PPI++ correction on the partial overlap
    estimators = {
        r[0]
        for r in cut_run.query(
            "SELECT DISTINCT estimator FROM tsm.estimates WHERE event_date = %s", CUT_DAY
        )
    }
    assert {"horvitz_thompson", "ppi_corrected", "human_only"} <= estimators
    report = (cut_run.home / "reports" / f"prevalence_{CUT_DAY}.html").read_text()
    assert "deadline" in report


def test_rerunning_a_cut_day_resumes_without_resending(cut_run: HumanRun) -> None:
    exported_before = len(cut_run.human.outbox_rows()[1])
    tasks_before = cut_run.query(
        "SELECT count(*) FROM tsm.label_tasks WHERE event_date = %s", CUT_DAY
    )
    run = DagRunThread(cut_run.env_for("cut", deadline_hours=0.01), CUT_DAY, cut_run.log)
    run.start()
    run.join_checked()
    assert len(cut_run.human.outbox_rows()[1]) == exported_before  # nothing sent twice
    assert (
        cut_run.query("SELECT count(*) FROM tsm.label_tasks WHERE event_date = %s", CUT_DAY)
        == tasks_before
    )
    vendor = cut_run.completion(CUT_DAY)[f"{VENDOR}/adult"]
    assert vendor[5] == "deadline" and vendor[7] == 1  # past its deadline: decided at once
