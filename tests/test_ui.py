"""The UI plugin's app against a real warehouse, through FastAPI's test client (real HTTP
semantics, in process)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from tsmetrics.settings import Settings
from tsmetrics.ui import create_app

pytestmark = pytest.mark.usefixtures("airflow_db_conn_env")

DAY = date(2099, 2, 2)  # later than any other test's day: the overview shows the latest days


@pytest.fixture
def client(conn: psycopg.Connection, tmp_path: Path) -> TestClient:
    conn.execute("DELETE FROM tsm.estimates WHERE event_date = %s", (DAY,))
    conn.execute(
        "INSERT INTO tsm.estimates (event_date, design_id, policy, estimator, estimate, "
        "std_error, ci_lower, ci_upper, ci_method, confidence, n_draws, n_positive_draws, "
        "total_impressions) VALUES (%s, 'd', 'adult', 'hansen_hurwitz', 0.0123, 0.001, 0.011, "
        "0.014, 'wilson_kg', 0.95, 2000, 40, 1000000)",
        (DAY,),
    )
    conn.commit()
    (tmp_path / f"prevalence_{DAY}.html").write_text("<html>report</html>")
    settings = Settings.from_env()
    settings = Settings(**{**settings.__dict__, "reports_dir": tmp_path})
    return TestClient(create_app(settings))


def test_overview_lists_recent_estimates(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "adult" in page.text and "1.2300%" in page.text and f"reports/{DAY}" in page.text
    data = client.get("/api/estimates").json()
    assert {"policy": "adult", "estimate": 0.0123}.items() <= data[0].items()


def test_reports_are_served_and_bad_days_rejected(client: TestClient) -> None:
    assert client.get(f"/reports/{DAY}").text == "<html>report</html>"
    assert client.get("/reports/2032-02-03").status_code == 404
    assert client.get("/reports/not-a-day").status_code == 400


def test_the_plugin_registers_the_app() -> None:
    import importlib.util

    from conftest import PROJECT_DIR

    spec = importlib.util.spec_from_file_location(
        "tsmetrics_plugin", PROJECT_DIR / "plugins" / "tsmetrics_plugin.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.TsmetricsPlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == "/tsmetrics"
    assert plugin.external_views[0]["href"] == "/tsmetrics/"
