"""Extract: one day's interaction log file into the warehouse.

The file (``{raw_dir}/dt=YYYY-MM-DD/interactions.jsonl``, format in :mod:`tsmetrics.simulate`)
is copied verbatim into a per-day stage table with ``COPY`` (one text column, a line per row),
then ``include/sql/extract_normalize.sql`` validates every line inside Postgres: valid rows go to
the raw tables, bad ones to ``tsm.quarantine`` with a reason, and ``load_batches`` records
``rows_read = rows_loaded + rows_quarantined`` (checked by ``check_extract_reconciles.sql``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from tsmetrics.errors import MissingInputError

INPUT_FILE_NAME = "interactions.jsonl"

# CSV with delimiter and quote bytes that never occur in JSON Lines: each line lands unchanged
# in the single text column (no backslash processing, unlike COPY's text format).
COPY_LINES_OPTIONS = "(FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e', ENCODING 'UTF8')"


class CopyHook(Protocol):
    """What extraction needs from a database hook (PostgresHook provides it)."""

    def run(
        self, sql: Any, autocommit: bool = ..., parameters: Any = ..., handler: Any = ...
    ) -> Any: ...

    def copy_expert(self, sql: str, filename: str) -> None: ...


@dataclass(frozen=True)
class StagedFile:
    day: date
    load_id: int
    stage_table: str
    source_path: str
    rows_read: int


def input_path(raw_dir: Path, day: date) -> Path:
    """Where the day's log file is expected."""
    return raw_dir / f"dt={day.isoformat()}" / INPUT_FILE_NAME


def stage_table_name(day: date | str) -> str:
    """The per-day stage table (schema-qualified). ``day`` is validated, so safe as identifier."""
    parsed = day if isinstance(day, date) else date.fromisoformat(str(day))
    return f"tsm.stage_lines_{parsed:%Y%m%d}"


def stage_day_file(hook: CopyHook, raw_dir: Path, day: date) -> StagedFile:
    """COPY the day's file into a fresh stage table and open a load batch; return its ids.

    Raises :class:`MissingInputError` when the file is missing, so the task fails with a clear
    message (and is retried) instead of measuring an empty day.
    """
    path = input_path(raw_dir, day)
    if not path.is_file():
        raise MissingInputError(
            f"no input for {day.isoformat()}: expected the day's log file at {path}"
        )
    table = stage_table_name(day)
    hook.run(
        [
            f"DROP TABLE IF EXISTS {table}",
            f"CREATE UNLOGGED TABLE {table} "
            "(line_no bigint GENERATED ALWAYS AS IDENTITY, line text)",
        ]
    )
    hook.copy_expert(f"COPY {table} (line) FROM STDIN WITH {COPY_LINES_OPTIONS}", str(path))
    row = hook.run(
        "INSERT INTO tsm.load_batches (event_date, source_path, rows_read) "
        f"SELECT %(day)s, %(path)s, count(*) FROM {table} RETURNING load_id, rows_read",
        parameters={"day": day, "path": str(path)},
        handler=lambda cursor: cursor.fetchone(),
    )
    if not isinstance(row, tuple | list) or len(row) != 2:
        raise RuntimeError(f"could not open a load batch for {day}: got {row!r}")
    return StagedFile(day, int(row[0]), table, str(path), int(row[1]))
