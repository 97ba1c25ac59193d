"""Benchmark: one simulated day through prevalence_daily (Airflow dag.test), per-task durations.

    .venv/bin/python benchmarks/bench_daily_run.py --interactions 50000 200000

Uses $TSMETRICS_BENCH_SERVER_URL (default: the local Postgres at 127.0.0.1:5432) and creates a
throwaway database per size. Durations are read from Airflow's own task-instance records.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tsmetrics.db.migrate import upgrade
from tsmetrics.local_airflow import airflow_environment, migrate_metadata_db, run_day_subprocess
from tsmetrics.simulate import SimulationConfig, simulate

PROJECT_DIR = Path(__file__).resolve().parent.parent
DAY = date(2026, 6, 1)


def bench(server_url: str, interactions: int, workdir: Path) -> dict[str, float]:
    name = f"tsm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    url = make_conninfo(**params)
    try:
        upgrade(url)
        simulate(
            days=1,
            seed=5,
            start=DAY,
            raw_dir=workdir / "raw",
            truth_dir=workdir / "truth",
            config=SimulationConfig(n_interactions=interactions),
        )
        env = airflow_environment(
            PROJECT_DIR,
            workdir / "airflow",
            url,
            {
                "TSMETRICS_HOME": str(workdir),
                "TSMETRICS_RAW_DIR": str(workdir / "raw"),
                "TSMETRICS_REPORTS_DIR": str(workdir / "reports"),
            },
        )
        migrate_metadata_db(env, workdir / "log.txt")
        started = time.perf_counter()
        run_day_subprocess(env, DAY, workdir / "log.txt")
        total = time.perf_counter() - started
        with sqlite3.connect(workdir / "airflow" / "airflow.db") as meta:
            rows = meta.execute(
                "SELECT task_id, (julianday(end_date) - julianday(start_date)) * 86400 "
                "FROM task_instance"
            ).fetchall()
        return {**{task: float(seconds) for task, seconds in rows}, "whole run (wall)": total}
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interactions", type=int, nargs="+", default=[50_000])
    args = parser.parse_args()
    server = os.environ.get(
        "TSMETRICS_BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    results = {}
    for n in args.interactions:
        with tempfile.TemporaryDirectory() as tmp:
            results[n] = bench(server, n, Path(tmp))
    tasks = list(next(iter(results.values())))
    print("| task | " + " | ".join(f"{n:,} interactions (s)" for n in results) + " |")
    print("|---|" + "---|" * len(results))
    for task in tasks:
        print(
            f"| {task} | "
            + " | ".join(f"{results[n].get(task, float('nan')):.1f}" for n in results)
            + " |"
        )


if __name__ == "__main__":
    main()
