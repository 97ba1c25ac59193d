"""Build the configured labelers for a day's label collection (I/O edge of the labeling stage).

``simulated`` labelers need nothing; ``llm`` labelers get their endpoint from an Airflow
connection (``LLMConfig.from_connection``), the versioned policy texts and prompt template, a
daily budget that starts from what the day's earlier runs already spent (summed from
``tsm.label_attempts``, so a re-run gets no fresh allowance) and an audit hook that stores every
HTTP attempt in ``tsm.label_attempts``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg

from tsmetrics.config import LabelerConfig, RunConfig
from tsmetrics.labeling import Labeler, SimulatedLabeler
from tsmetrics.llm_labeler import AttemptRecord, LabelBudget, LLMConfig, LLMLabeler
from tsmetrics.prompts import load_policies

#: Returns an Airflow connection (or a dict of its fields) for a connection id.
ConnectionGetter = Callable[[str], Any]

_ATTEMPT_COLUMNS = (
    "labeler_id",
    "unit_id",
    "model",
    "prompt_version",
    "attempt",
    "started_at",
    "latency_ms",
    "http_status",
    "prompt_tokens",
    "completion_tokens",
    "usage_estimated",
    "cost_usd",
    "finish_reason",
    "raw_response",
    "error_reason",
    "error_detail",
    "retry_after_s",
    "next_delay_s",
)


def attempt_recorder(conn: psycopg.Connection, day: date) -> Callable[[AttemptRecord], None]:
    """An ``on_attempt`` hook writing each record to ``tsm.label_attempts`` on ``conn`` (it is
    committed with the label or failed attempt it belongs to)."""
    columns = ", ".join(_ATTEMPT_COLUMNS)
    values = ", ".join(f"%({c})s" for c in _ATTEMPT_COLUMNS)
    sql = f"INSERT INTO tsm.label_attempts (event_date, {columns}) VALUES (%(day)s, {values})"

    def record(attempt: AttemptRecord) -> None:
        conn.execute(sql, {**attempt.to_dict(), "day": day})

    return record


def day_budget(conn: psycopg.Connection, day: date, labeler_id: str, llm: LLMConfig) -> LabelBudget:
    """The labeler's cap for ``day``, minus what the day's earlier attempts already used."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE error_reason IS NULL), coalesce(sum(cost_usd), 0) "
        "FROM tsm.label_attempts WHERE event_date = %s AND labeler_id = %s",
        (day, labeler_id),
    ).fetchone()
    used, cost = (int(row[0]), float(row[1])) if row else (0, 0.0)
    return LabelBudget(llm.max_labels, llm.max_cost_usd, labels_used=used, cost_used_usd=cost)


def build_labeler(
    labeler: LabelerConfig,
    config: RunConfig,
    conn: psycopg.Connection,
    day: date,
    get_connection: ConnectionGetter,
) -> Labeler:
    """One configured labeler, ready to label ``day``'s tasks."""
    if labeler.backend == "simulated":
        return SimulatedLabeler(labeler.labeler_id, labeler.error_rate, seed=config.sampling.seed)
    assert labeler.conn_id is not None  # validated by LabelerConfig
    llm = LLMConfig.from_connection(get_connection(labeler.conn_id))
    texts = load_policies(expected={p.name: p.sub_policies for p in config.policies})
    return LLMLabeler(
        labeler.labeler_id,
        llm,
        texts,
        budget=day_budget(conn, day, labeler.labeler_id, llm),
        on_attempt=attempt_recorder(conn, day),
        seed=config.sampling.seed,
    )


def build_labelers(
    config: RunConfig, conn: psycopg.Connection, day: date, get_connection: ConnectionGetter
) -> dict[str, Labeler]:
    """The synchronous (simulated, LLM) primary and overlap labelers of ``config``, by labeler
    id; human queues are built by :func:`tsmetrics.human_labeling.build_human_queues`."""
    return {
        cfg.labeler_id: build_labeler(cfg, config, conn, day, get_connection)
        for cfg in config.labelers
        if not cfg.is_human
    }
