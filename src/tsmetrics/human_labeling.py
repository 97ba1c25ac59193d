"""Human queues in the daily run: build them from Airflow connections, send the day's tasks,
bring answers back, and measure how complete the day's labels are.

The labeler configuration is the same for every backend (``labeling.primary`` /
``labeling.overlap``: ``labeler_id``, ``backend``, ``conn_id``): ``simulated`` and ``llm`` answer
during the run (:mod:`tsmetrics.labelers`), ``label_studio`` and ``vendor_files`` are human
queues (:class:`tsmetrics.vendor_queue.HumanQueue`) whose answers arrive over hours. Their
tasks are the same ``tsm.label_tasks`` rows, their answers the same ``tsm.labels`` rows, checked
by the same :func:`tsmetrics.labeling.validate_answers`.

Blind keys. A human queue never sees interaction ids: every record is sent with
``unit_id`` = the task's ``queue_key`` (``tsm.queue_key``, mirrored by :func:`queue_key`), so the
day's sampled units and the injected gold items (:mod:`tsmetrics.gold`) look alike, and they are
sent in key order (a hash order), so gold items are spread through the batch. Answers come back
under the key and are mapped to the task. Queues deduplicate by this key under their policy
version, so a unit is never sent twice to the same queue for the same policy version, and a
re-run only sends what is missing.

Connections (``AIRFLOW_CONN_<ID>``, never the YAML):

* ``label_studio``: ``host`` = the server URL (or a host name, completed as
  ``{extra.scheme or https}://host[:port]``), ``password`` = the personal access token (or a
  legacy token with ``extra.token_type = "legacy"``); ``extra``: ``title_prefix`` (project title
  start, default ``tsmetrics``), ``timeout`` (seconds per call, default 60).
* ``vendor_files``: ``extra.path`` = the queue directory (``outbox/``, ``inbox/``,
  ``imported/``), like Airflow's ``fs`` connections.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg

from tsmetrics.config import LabelerConfig, RunConfig
from tsmetrics.config.labeling import HUMAN_BACKENDS
from tsmetrics.prompts import PolicyText, load_policies
from tsmetrics.vendor_queue import HumanAnswer, HumanQueue, RecordSummary, record_human_answers

log = logging.getLogger(__name__)

#: Returns an Airflow connection (or a dict of its fields) for a connection id.
ConnectionGetter = Callable[[str], Any]
_EPOCH = date(2000, 1, 1)
_LABEL_STUDIO_EXTRA = ("token_type", "title_prefix", "timeout", "scheme")


def queue_key(day: date, unit_id: str, labeler_id: str) -> str:
    """The blind key of a task (``tsm.queue_key``): ``'u'`` + 19 hex digits of
    ``sha256('<days since 2000-01-01>|<unit_id>|<labeler_id>')``."""
    text = f"{(day - _EPOCH).days}|{unit_id}|{labeler_id}"
    return "u" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:19]


def _field(conn: Any, key: str) -> Any:
    return conn.get(key) if isinstance(conn, Mapping) else getattr(conn, key, None)


def connection_extra(conn: Any) -> dict[str, Any]:
    """The ``extra`` JSON of an Airflow connection (or of a dict of its fields)."""
    extra = None if isinstance(conn, Mapping) else getattr(conn, "extra_dejson", None)
    if extra is None:
        extra = _field(conn, "extra")
    if extra in (None, ""):
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            raise ValueError("conn.extra: expected a JSON object, got invalid JSON") from None
    if not isinstance(extra, Mapping):
        raise ValueError(f"conn.extra: expected a JSON object, got {type(extra).__name__}")
    return dict(extra)


@dataclass(frozen=True)
class LabelStudioSettings:
    """A Label Studio connection: server URL, token (never shown) and options."""

    base_url: str
    token: str
    token_type: str = "pat"
    title_prefix: str = "tsmetrics"
    timeout: float = 60.0

    def __repr__(self) -> str:
        return (
            f"LabelStudioSettings(base_url={self.base_url!r}, token_type={self.token_type!r}, "
            f"title_prefix={self.title_prefix!r})"
        )

    @classmethod
    def from_connection(cls, conn: Any) -> LabelStudioSettings:
        extra = connection_extra(conn)
        unknown = sorted(set(extra) - set(_LABEL_STUDIO_EXTRA))
        if unknown:
            raise ValueError(
                f"conn.extra: unknown key {unknown[0]!r} (known: {list(_LABEL_STUDIO_EXTRA)})"
            )
        host = str(_field(conn, "host") or "")
        if not host:
            raise ValueError("conn.host: expected the Label Studio URL, got nothing")
        port = _field(conn, "port")
        if "://" not in host:
            host = f"{extra.get('scheme', 'https')}://{host}" + (f":{int(port)}" if port else "")
        token = str(_field(conn, "password") or "")
        if not token.strip():
            raise ValueError("conn.password: expected the Label Studio access token, got nothing")
        token_type = str(extra.get("token_type", "pat"))
        if token_type not in ("pat", "legacy"):
            raise ValueError(f"conn.extra.token_type: expected pat or legacy, got {token_type!r}")
        return cls(
            host.rstrip("/"),
            token.strip(),
            token_type,
            str(extra.get("title_prefix", "tsmetrics")),
            float(extra.get("timeout", 60.0)),
        )

    def client(self) -> Any:
        from tsmetrics.label_studio import LabelStudioClient

        if self.token_type == "legacy":
            return LabelStudioClient(self.base_url, legacy_token=self.token, timeout=self.timeout)
        return LabelStudioClient(
            self.base_url, personal_access_token=self.token, timeout=self.timeout
        )


def vendor_directory(conn: Any) -> Path:
    """The queue directory of a ``vendor_files`` connection (``extra.path``)."""
    extra = connection_extra(conn)
    path = extra.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ValueError("conn.extra.path: expected the vendor queue directory, got nothing")
    return Path(path)


def _label_studio_queue(
    labeler: LabelerConfig, policies: Sequence[PolicyText], conn: Any
) -> HumanQueue:
    from tsmetrics.label_studio import LabelStudioQueue

    settings = LabelStudioSettings.from_connection(conn)
    return LabelStudioQueue(
        settings.client(), policies, queue_id=labeler.labeler_id, title_prefix=settings.title_prefix
    )


def _vendor_queue(labeler: LabelerConfig, policies: Sequence[PolicyText], conn: Any) -> HumanQueue:
    from tsmetrics.vendor_queue import VendorQueue

    return VendorQueue(vendor_directory(conn), policies, queue_id=labeler.labeler_id)


#: backend -> builder(labeler config, policy texts, Airflow connection) -> queue
HUMAN_QUEUE_BUILDERS: dict[str, Callable[[LabelerConfig, Sequence[PolicyText], Any], HumanQueue]]
HUMAN_QUEUE_BUILDERS = {"label_studio": _label_studio_queue, "vendor_files": _vendor_queue}


def build_human_queues(
    config: RunConfig, get_connection: ConnectionGetter
) -> dict[str, HumanQueue]:
    """The configured human queues, by labeler id (empty when every labeler is synchronous)."""
    humans = [cfg for cfg in config.labelers if cfg.is_human]
    if not humans:
        return {}
    texts = load_policies(expected={p.name: p.sub_policies for p in config.policies})
    ordered = [texts[name] for name in config.policy_names]
    queues: dict[str, HumanQueue] = {}
    for cfg in humans:
        assert cfg.conn_id is not None  # validated by LabelerConfig
        queues[cfg.labeler_id] = HUMAN_QUEUE_BUILDERS[cfg.backend](
            cfg, ordered, get_connection(cfg.conn_id)
        )
    return queues


def submit_tasks(conn: psycopg.Connection, day: str, labeler_id: str, queue: HumanQueue) -> int:
    """Send every not-done task of ``day`` for ``labeler_id`` to ``queue``, as blind records
    (``unit_id`` = the queue key) in key order; the queue skips what it already has."""
    rows = conn.execute(
        "SELECT queue_key, payload FROM tsm.label_tasks WHERE event_date = %s "
        "AND labeler_id = %s AND status <> 'done' ORDER BY queue_key",
        (day, labeler_id),
    ).fetchall()
    conn.commit()
    if rows:
        queue.submit([{**payload, "unit_id": key} for key, payload in rows])
    return len(rows)


@dataclass(frozen=True)
class CollectSummary:
    """One collection from a queue: what :func:`record_human_answers` did with the day's
    answers, and how many answers belonged to other days (ignored here)."""

    recorded: RecordSummary
    other_days: int


def collect_answers(
    conn: psycopg.Connection, day: str, labeler_id: str, queue: HumanQueue
) -> CollectSummary:
    """Every answer the queue has now for ``day``'s tasks, written to ``tsm.labels`` /
    ``tsm.label_tasks`` (idempotent; see :func:`tsmetrics.vendor_queue.record_human_answers`)."""
    unit_of: dict[str, str] = dict(
        conn.execute(
            "SELECT queue_key, unit_id FROM tsm.label_tasks WHERE event_date = %s "
            "AND labeler_id = %s",
            (day, labeler_id),
        ).fetchall()
    )
    conn.commit()
    answers: list[HumanAnswer] = []
    other = 0
    for answer in queue.collect():
        unit_id = unit_of.get(answer.unit_id)
        if unit_id is None:
            other += 1
            continue
        answers.append(
            HumanAnswer(unit_id, answer.labels, answer.error, answer.annotator, answer.ref)
        )
    return CollectSummary(record_human_answers(conn, day, labeler_id, answers), other)


def queue_round(
    conn: psycopg.Connection, day: str, queues: Mapping[str, HumanQueue]
) -> dict[str, dict[str, int]]:
    """Submit what is missing, then collect, for each queue; a small summary per labeler."""
    out: dict[str, dict[str, int]] = {}
    for labeler_id, queue in queues.items():
        sent = submit_tasks(conn, day, labeler_id, queue)
        got = collect_answers(conn, day, labeler_id, queue)
        out[labeler_id] = {
            "open_tasks_sent": sent,
            "labeled": got.recorded.labeled,
            "failed": got.recorded.failed,
            "unchanged": got.recorded.unchanged,
            "other_days": got.other_days,
        }
        log.info("human queue %s on %s: %s", labeler_id, day, out[labeler_id])
    return out


# --------------------------------------------------------------------------------------------
# Completion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyCompletion:
    """How far one labeler got with one policy on the day's sampled units (gold excluded)."""

    labeler_id: str
    policy: str
    backend: str
    tasks: int
    done: int
    failed: int
    gold_tasks: int
    gold_done: int

    @property
    def pending(self) -> int:
        return self.tasks - self.done - self.failed

    @property
    def completion(self) -> float | None:
        """``done / tasks``; None without tasks."""
        return None if self.tasks == 0 else self.done / self.tasks


def completion_state(
    conn: psycopg.Connection, day: date, config: RunConfig
) -> list[PolicyCompletion]:
    """Per configured labeler and policy: tasks, done (a label for the policy), failed (no
    label, last attempt failed) and the gold tasks, from ``tsm.label_tasks`` / ``tsm.labels``."""
    rows = conn.execute(
        """
        SELECT t.labeler_id, p.policy, t.purpose = 'gold' AS gold, count(*) AS tasks,
            count(l.unit_id) AS done,
            count(*) FILTER (WHERE l.unit_id IS NULL AND t.status = 'failed') AS failed
        FROM tsm.label_tasks AS t
        CROSS JOIN unnest(%s::text[]) AS p (policy)
        LEFT JOIN tsm.labels AS l
            ON l.event_date = t.event_date AND l.unit_id = t.unit_id
            AND l.labeler_id = t.labeler_id AND l.policy = p.policy
        WHERE t.event_date = %s AND t.labeler_id = ANY(%s)
        GROUP BY 1, 2, 3
        """,
        (config.policy_names, day, [c.labeler_id for c in config.labelers]),
    ).fetchall()
    conn.commit()
    counts = {(r[0], r[1], bool(r[2])): (int(r[3]), int(r[4]), int(r[5])) for r in rows}
    out = []
    for cfg in config.labelers:
        for policy in config.policy_names:
            tasks, done, failed = counts.get((cfg.labeler_id, policy, False), (0, 0, 0))
            gold_tasks, gold_done, _ = counts.get((cfg.labeler_id, policy, True), (0, 0, 0))
            out.append(
                PolicyCompletion(
                    cfg.labeler_id, policy, cfg.backend, tasks, done, failed, gold_tasks, gold_done
                )
            )
    return out


def first_dispatch(conn: psycopg.Connection, day: date, labeler_ids: Sequence[str]) -> Any:
    """When the day's tasks of ``labeler_ids`` were first dispatched (None without tasks)."""
    row = conn.execute(
        "SELECT min(created_at) FROM tsm.label_tasks "
        "WHERE event_date = %s AND labeler_id = ANY(%s)",
        (day, list(labeler_ids)),
    ).fetchone()
    conn.commit()
    return None if row is None else row[0]


def wait_outcome(
    state: Sequence[PolicyCompletion],
    human_ids: Sequence[str],
    min_completion: float,
    deadline_at: datetime | None,
    now: datetime,
) -> str:
    """``complete`` when every human labeler has done at least ``min_completion`` of its
    tasks for every policy (a labeler without tasks is complete), ``deadline`` when the
    deadline has passed first, else ``wait``; ``no_wait`` without human labelers."""
    if not human_ids:
        return "no_wait"
    behind = [
        s
        for s in state
        if s.labeler_id in human_ids and s.tasks > 0 and s.done < min_completion * s.tasks
    ]
    if not behind:
        return "complete"
    if deadline_at is not None and now >= deadline_at:
        return "deadline"
    return "wait"


def record_completion(
    conn: psycopg.Connection,
    day: date,
    state: Sequence[PolicyCompletion],
    outcome: str,
    min_completion: float,
    deadline_at: datetime | None,
    rounds: int,
    waited_seconds: float,
) -> list[dict[str, Any]]:
    """Replace the day's ``tsm.label_completion`` rows with ``state`` at the decision; a human
    queue's row is ``cut_by_deadline`` when the deadline decided while it was below
    ``min_completion`` (a synchronous labeler is never waited for, so never cut)."""
    rows = [
        {
            "event_date": day,
            "labeler_id": s.labeler_id,
            "policy": s.policy,
            "backend": s.backend,
            "tasks": s.tasks,
            "done": s.done,
            "failed": s.failed,
            "pending": s.pending,
            "completion": s.completion,
            "min_completion": min_completion,
            "gold_tasks": s.gold_tasks,
            "gold_done": s.gold_done,
            "deadline_at": deadline_at,
            "outcome": outcome,
            "cut_by_deadline": outcome == "deadline"
            and s.backend in HUMAN_BACKENDS  # only human queues are waited for
            and s.tasks > 0
            and s.done < min_completion * s.tasks,
            "wait_rounds": rounds,
            "waited_seconds": waited_seconds,
        }
        for s in state
    ]
    columns = list(rows[0]) if rows else []
    with conn.transaction():
        conn.execute("DELETE FROM tsm.label_completion WHERE event_date = %s", (day,))
        if rows:
            conn.cursor().executemany(
                f"INSERT INTO tsm.label_completion ({', '.join(columns)}) "
                f"VALUES ({', '.join(f'%({c})s' for c in columns)})",
                rows,
            )
    conn.commit()
    return rows


__all__ = [
    "HUMAN_QUEUE_BUILDERS",
    "CollectSummary",
    "LabelStudioSettings",
    "PolicyCompletion",
    "build_human_queues",
    "collect_answers",
    "completion_state",
    "connection_extra",
    "first_dispatch",
    "queue_key",
    "queue_round",
    "record_completion",
    "submit_tasks",
    "vendor_directory",
    "wait_outcome",
]
