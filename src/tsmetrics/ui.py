"""The Airflow UI plugin's web app: recent prevalence, open breaches and the daily reports.

Mounted by ``plugins/tsmetrics_plugin.py`` at ``/tsmetrics`` in the Airflow 3 API server, with a
"Prevalence" entry in the UI's Browse menu. Read-only; aggregates only (no user content).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from tsmetrics.report import report_path
from tsmetrics.settings import Settings

RECENT_ESTIMATES_SQL = """
    SELECT event_date, policy, estimate, ci_lower, ci_upper, n_draws, n_positive_draws
    FROM tsm.estimates
    WHERE domain = 'all' AND estimator IN ('horvitz_thompson', 'hansen_hurwitz', 'stratified')
        AND event_date > (SELECT max(event_date) FROM tsm.estimates) - %s
    ORDER BY event_date DESC, policy
"""
OPEN_BREACHES_SQL = """
    SELECT event_date, check_name, policy, statistic, threshold
    FROM tsm.checks
    WHERE outcome = 'breach' AND event_date > (SELECT max(event_date) FROM tsm.checks) - %s
    ORDER BY event_date DESC, policy
"""


def _warehouse(settings: Settings) -> Callable[[], Any]:
    @contextmanager
    def connect() -> Iterator[Any]:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        with PostgresHook(postgres_conn_id=settings.db_conn_id).get_conn() as conn:
            yield conn

    return connect


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    connect = _warehouse(settings)
    app = FastAPI(title="tsmetrics", description="Prevalence monitor")

    @app.get("/api/estimates")
    def estimates(days: int = 14) -> list[dict[str, Any]]:
        with connect() as conn, conn.cursor() as cursor:
            cursor.execute(RECENT_ESTIMATES_SQL, (days,))
            names = [c.name for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @app.get("/", response_class=HTMLResponse)
    def overview(days: int = 14) -> str:
        with connect() as conn:
            rows = conn.execute(RECENT_ESTIMATES_SQL, (days,)).fetchall()
            breaches = conn.execute(OPEN_BREACHES_SQL, (days,)).fetchall()
            pending = conn.execute(
                "SELECT count(*) FROM tsm.alerts WHERE status = 'pending'"
            ).fetchone()
        body = "".join(
            f"<tr><td><a href='reports/{d}'>{d}</a></td><td>{html.escape(p)}</td>"
            f"<td>{e:.4%}</td><td>[{lo:.4%}, {hi:.4%}]</td><td>{n}</td><td>{k}</td></tr>"
            for d, p, e, lo, hi, n, k in rows
        )
        alerts = "".join(
            f"<li>{d} {html.escape(p)}: {html.escape(c)} (statistic {s:.6g}, threshold {t:.6g})"
            "</li>"
            for d, c, p, s, t in breaches
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>tsmetrics</title></head>"
            "<body><h1>Impression-weighted prevalence</h1>"
            f"<p>Alerts pending delivery: {pending[0] if pending else 0}</p>"
            f"<h2>Breaches</h2><ul>{alerts or '<li>none</li>'}</ul>"
            "<table border='1'><tr><th>day</th><th>policy</th><th>estimate</th><th>95% CI</th>"
            f"<th>draws</th><th>positive draws</th></tr>{body}</table></body></html>"
        )

    @app.get("/reports/{day}")
    def report(day: str) -> FileResponse:
        try:
            parsed = date.fromisoformat(day)
        except ValueError as error:
            raise HTTPException(status_code=400, detail="day must be YYYY-MM-DD") from error
        path = report_path(settings.reports_dir, parsed)
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"no report for {parsed}")
        return FileResponse(path, media_type="text/html")

    return app
