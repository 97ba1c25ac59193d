"""Deployment settings from the environment (no secrets here: those live in Airflow connections).

- ``TSMETRICS_DB_CONN_ID``: Airflow connection id of the warehouse (``tsmetrics_db``).
- ``TSMETRICS_SLACK_CONN_ID``: Airflow Slack webhook connection id (``tsmetrics_slack``).
- ``TSMETRICS_HOME``: project-local state: embedded db, data, reports (``./.tsmetrics``).
- ``TSMETRICS_RAW_DIR``: where daily log files arrive (``$TSMETRICS_HOME/data/raw``).
- ``TSMETRICS_REPORTS_DIR``: where HTML reports are written (``$TSMETRICS_HOME/reports``).
- ``TSMETRICS_POLICIES_FILE``: run configuration YAML (the packaged ``policies.yaml``).
- ``TSMETRICS_AIRFLOW_BASE_URL``: Airflow UI base URL, for links in alerts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    db_conn_id: str
    slack_conn_id: str
    home: Path
    raw_dir: Path
    reports_dir: Path
    airflow_base_url: str

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        home = Path(env.get("TSMETRICS_HOME", ".tsmetrics")).resolve()
        return cls(
            db_conn_id=env.get("TSMETRICS_DB_CONN_ID", "tsmetrics_db"),
            slack_conn_id=env.get("TSMETRICS_SLACK_CONN_ID", "tsmetrics_slack"),
            home=home,
            raw_dir=Path(env.get("TSMETRICS_RAW_DIR", home / "data" / "raw")),
            reports_dir=Path(env.get("TSMETRICS_REPORTS_DIR", home / "reports")),
            airflow_base_url=env.get("TSMETRICS_AIRFLOW_BASE_URL", "http://localhost:8080"),
        )

    def run_url(self, dag_id: str, run_id: str) -> str:
        return f"{self.airflow_base_url.rstrip('/')}/dags/{dag_id}/runs/{run_id}"
