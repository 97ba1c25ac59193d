"""The demo: simulated days through the real pipeline, printed next to the simulated truth.

With no ``TSMETRICS_DATABASE_URL`` it starts an embedded Postgres in ``$TSMETRICS_HOME/pgdata``.
Each day runs through Airflow itself (``dag.test()`` in a subprocess with a project-local
``AIRFLOW_HOME``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from tsmetrics.db.embedded import resolve_database_url
from tsmetrics.db.migrate import upgrade
from tsmetrics.local_airflow import airflow_environment, migrate_metadata_db, run_day_subprocess
from tsmetrics.report import report_path
from tsmetrics.settings import Settings
from tsmetrics.simulate import read_truth, simulate


def run_demo(days: int, seed: int, project_dir: Path, start: date | None = None) -> str:
    settings = Settings.from_env()
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    database_url = resolve_database_url(home / "pgdata")
    upgrade(database_url)
    first = start or (datetime.now(UTC).date() - timedelta(days=days))
    truth_dir = home / "data" / "truth"
    simulated = simulate(
        days=days, seed=seed, start=first, raw_dir=settings.raw_dir, truth_dir=truth_dir
    )
    env = airflow_environment(
        project_dir,
        home / "airflow",
        database_url,
        {
            "TSMETRICS_HOME": str(home),
            "TSMETRICS_RAW_DIR": str(settings.raw_dir),
            "TSMETRICS_REPORTS_DIR": str(settings.reports_dir),
        },
    )
    log_path = home / "demo.log"
    print(
        f"embedded or configured warehouse ready; Airflow home {home / 'airflow'}; log {log_path}"
    )
    migrate_metadata_db(env, log_path)
    for day in simulated:
        print(f"running prevalence_daily for {day} through Airflow ...", flush=True)
        run_day_subprocess(env, day, log_path)
    table = results_table(database_url, simulated, truth_dir)
    reports = "\n".join(f"report: {report_path(settings.reports_dir, d)}" for d in simulated)
    return f"{table}\n{reports}"


def results_table(database_url: str, days: list[date], truth_dir: Path) -> str:
    """Estimate, 95% CI and simulated truth per policy and day, as an aligned text table: the
    unit level (a unit violates when any component does) and the component level (share of
    component impressions on violating components), from each policy's headline design."""
    from tsmetrics.config import load_config

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT event_date, policy, level, estimate, ci_lower, ci_upper, n_positive_draws "
            "FROM tsm.estimates WHERE event_date = ANY(%s) AND domain = 'all' AND "
            "(policy, design_id, replace(estimator, '_component', '')) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])) "
            "ORDER BY policy, event_date, level DESC",
            (days, *load_config().headline_arrays()),
        ).fetchall()
    header = (
        f"{'policy':<15} {'day':<10} {'level':<9} {'estimate':>9} {'95% CI':>21} {'truth':>9} "
        f"{'in CI':>5} {'hits':>5}"
    )
    lines = [header, "-" * len(header)]
    for day, policy, level, estimate, lower, upper, hits in rows:
        truth = read_truth(truth_dir, day)["policies"][policy][f"{level}_prevalence"]
        covered = "yes" if lower <= truth <= upper else "NO"
        lines.append(
            f"{policy:<15} {day.isoformat():<10} {level:<9} {estimate:>9.4%} "
            f"{'[' + format(lower, '.4%') + ', ' + format(upper, '.4%') + ']':>21} "
            f"{truth:>9.4%} {covered:>5} {hits:>5}"
        )
    return "\n".join(lines)
