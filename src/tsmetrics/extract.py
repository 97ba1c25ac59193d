"""Extract: one day's interaction log file into the warehouse.

The file (``{raw_dir}/dt=YYYY-MM-DD/interactions.jsonl``, format in :mod:`tsmetrics.simulate`)
is streamed into a per-day stage table with ``COPY`` (one text column, a line per row),
then ``include/sql/extract_normalize.sql`` validates every line inside Postgres: valid rows go to
the raw tables, bad ones to ``tsm.quarantine`` with a reason, and ``load_batches`` records
``rows_read = rows_loaded + rows_quarantined`` (checked by ``check_extract_reconciles.sql``).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from tsmetrics.errors import MissingInputError

INPUT_FILE_NAME = "interactions.jsonl"

# CSV with delimiter and quote bytes that never occur in valid JSON Lines: each line lands
# unchanged in the single text column (no backslash processing, unlike COPY's text format).
COPY_LINES_OPTIONS = "(FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e', ENCODING 'UTF8')"
CHUNK_BYTES = 8 << 20

# Bytes that would break the one-line-one-row COPY (NUL; the CSV quote and delimiter) and bytes
# that are not UTF-8 are replaced by U+0001. None can occur in valid JSON (raw control characters
# are not allowed), so the line still fails to parse and is quarantined as unparseable JSON,
# while every other line keeps its own row. The replacement is chunked (C speed), not per line.
_COPY_BREAKING_BYTES = bytes.maketrans(b"\x00\x1e\x1f", b"\x01\x01\x01")


def _mark_invalid_utf8(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\x01", error.end


codecs.register_error("tsmetrics_mark_invalid", _mark_invalid_utf8)


class CopyHook(Protocol):
    """What extraction needs from a database hook (PostgresHook provides it)."""

    def run(
        self, sql: Any, autocommit: bool = ..., parameters: Any = ..., handler: Any = ...
    ) -> Any: ...

    def get_conn(self) -> Any: ...


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


def copy_safe_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's bytes in chunks, with COPY-breaking and non-UTF-8 bytes marked (see above)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="tsmetrics_mark_invalid")
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            yield decoder.decode(chunk.translate(_COPY_BREAKING_BYTES)).encode("utf-8")
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail.encode("utf-8")


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
    with hook.get_conn() as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY {table} (line) FROM STDIN WITH {COPY_LINES_OPTIONS}") as copy:
            for chunk in copy_safe_chunks(path):
                copy.write(chunk)
        conn.commit()
    row = hook.run(
        "INSERT INTO tsm.load_batches (event_date, source_path, rows_read) "
        f"SELECT %(day)s, %(path)s, count(*) FROM {table} RETURNING load_id, rows_read",
        parameters={"day": day, "path": str(path)},
        handler=lambda cursor: cursor.fetchone(),
    )
    if not isinstance(row, tuple | list) or len(row) != 2:
        raise RuntimeError(f"could not open a load batch for {day}: got {row!r}")
    return StagedFile(day, int(row[0]), table, str(path), int(row[1]))
