"""End to end with the stratified design: two simulated days through ``prevalence_daily``
(Airflow ``dag.test()``, real Postgres) with ``sampling.method: stratified`` for the shared
sample and a per-policy Poisson sample for self_harm."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from conftest import PROJECT_DIR

from tsmetrics.local_airflow import airflow_environment, migrate_metadata_db, run_day_subprocess
from tsmetrics.simulate import SimulationConfig, read_truth, simulate

pytestmark = pytest.mark.e2e

START = date(2026, 9, 1)
SHARED, OWN = "stratified_v1", "self_harm_own_v1"
POLICIES = {"adult", "harassment", "self_harm", "misinformation"}


@dataclass
class StratifiedRun:
    database_url: str
    days: list[date]
    truth_dir: Path

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()


def _policies_file(path: Path) -> Path:
    config = yaml.safe_load((PROJECT_DIR / "src/tsmetrics/config/policies.yaml").read_text())
    sampling = config["sampling"]
    sampling.update(design_id=SHARED, method="stratified")
    # Neyman as soon as every risk stratum has the minimum's worth of earlier labels (with the
    # default min_history_units = 20 that is the third day).
    sampling["stratified"] = {"n_strata": 6, "min_per_stratum": 10, "min_history_units": 10}
    sampling["per_policy"] = {
        "self_harm": {
            "design_id": OWN,
            "seed": 7,
            "method": "poisson_pps",
            "n_draws": 800,
            "planning": {"label_budget": 800},
        }
    }
    config["estimation"]["estimator"] = "stratified"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def stratified_run(
    make_database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StratifiedRun]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("tsmetrics_stratified")
    database_url = make_database()
    days = simulate(
        days=2,
        seed=23,
        start=START,
        raw_dir=home / "raw",
        truth_dir=home / "truth",
        config=SimulationConfig(n_interactions=20_000),
    )
    env = airflow_environment(
        PROJECT_DIR,
        home / "airflow",
        database_url,
        {
            "TSMETRICS_HOME": str(home),
            "TSMETRICS_RAW_DIR": str(home / "raw"),
            "TSMETRICS_REPORTS_DIR": str(home / "reports"),
            "TSMETRICS_POLICIES_FILE": str(_policies_file(home / "policies.yaml")),
        },
    )
    log = home / "airflow.log"
    migrate_metadata_db(env, log)
    for day in days:
        run_day_subprocess(env, day, log)
    yield StratifiedRun(database_url, days, home / "truth")


def test_the_stratified_design_is_drawn_and_stored(stratified_run: StratifiedRun) -> None:
    rules = []
    for day in stratified_run.days:
        method, n_draws, params = stratified_run.query(
            "SELECT method, n_draws, params FROM tsm.sample_designs "
            "WHERE event_date = %s AND design_id = %s",
            day,
            SHARED,
        )[0]
        assert method == "stratified"
        assert n_draws == sum(s["n_h"] for s in params["strata"]) == round(params["expected_n"])
        assert [s["kind"] for s in params["strata"]][-1] == "take_all"
        counts = dict(
            stratified_run.query(
                "SELECT stratum, count(*) FROM tsm.samples WHERE event_date = %s "
                "AND design_id = %s GROUP BY stratum",
                day,
                SHARED,
            )
        )
        assert counts == {s["stratum"]: s["n_h"] for s in params["strata"]}
        rules.append((params["allocation"], params["allocation_reason"]))
    # The first day has no labelled history; the second allocates from the first's labels.
    assert [r[0] for r in rules] == ["proportional", "neyman"], rules


def test_estimates_come_from_each_policys_design(stratified_run: StratifiedRun) -> None:
    for day in stratified_run.days:
        truth = read_truth(stratified_run.truth_dir, day)["policies"]
        rows = stratified_run.query(
            "SELECT design_id, policy, estimator, level, estimate, ci_lower, ci_upper "
            "FROM tsm.estimates WHERE event_date = %s AND domain = 'all'",
            day,
        )
        shared = {(r[1], r[3]): r for r in rows if r[0] == SHARED}
        own = {(r[1], r[3]): r for r in rows if r[0] == OWN}
        assert {p for p, _ in shared} == POLICIES and {p for p, _ in own} == {"self_harm"}
        assert {r[2] for r in shared.values()} == {"stratified", "stratified_component"}
        assert {r[2] for r in own.values()} == {"horvitz_thompson", "horvitz_thompson_component"}
        for policy in ("adult", "harassment"):
            for level in ("unit", "component"):
                *_, estimate, lower, upper = shared[(policy, level)]
                true_value = truth[policy][f"{level}_prevalence"]
                assert lower <= true_value <= upper, (day, policy, level, estimate, true_value)
        # Checks ran on each policy's headline design.
        checks = {
            r[0]
            for r in stratified_run.query(
                "SELECT policy FROM tsm.checks WHERE event_date = %s AND check_name = 'limit'",
                day,
            )
        }
        assert checks == POLICIES


def test_units_in_both_samples_are_labelled_once(stratified_run: StratifiedRun) -> None:
    for day in stratified_run.days:
        both = stratified_run.query(
            "SELECT count(*) FROM (SELECT unit_id FROM tsm.samples WHERE event_date = %s "
            "GROUP BY unit_id HAVING count(DISTINCT design_id) = 2) AS b",
            day,
        )[0][0]
        assert both > 0
        duplicated = stratified_run.query(
            "SELECT count(*) FROM (SELECT 1 FROM tsm.label_tasks WHERE event_date = %s "
            "GROUP BY unit_id, labeler_id HAVING count(*) > 1) AS d",
            day,
        )[0][0]
        assert duplicated == 0
        tasks = stratified_run.query(
            "SELECT count(DISTINCT unit_id) FROM tsm.label_tasks WHERE event_date = %s", day
        )[0][0]
        units = stratified_run.query(
            "SELECT count(DISTINCT unit_id) FROM tsm.samples WHERE event_date = %s", day
        )[0][0]
        assert tasks == units
