"""An embedded Postgres for machines without a configured database (demo, tests).

Uses the ``pgserver`` package (a relocatable PostgreSQL build on PyPI); data lives in a
project-local folder and the server keeps running between commands so re-runs are fast.
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "TSMETRICS_DATABASE_URL"


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) an embedded Postgres in ``data_dir``; return a SQLAlchemy-style URL."""
    import pgserver  # heavy and optional: imported only when an embedded server is wanted

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode=None)
    return str(server.get_uri())


def resolve_database_url(data_dir: Path) -> str:
    """``TSMETRICS_DATABASE_URL`` when set, else an embedded server in ``data_dir``."""
    configured = os.environ.get(DATABASE_URL_ENV, "").strip()
    return configured or start_embedded(data_dir)
