"""Waiting for human labels without holding a worker slot: a deferrable sensor and its trigger.

``wait_for_labels`` in ``prevalence_daily`` is a :class:`LabelCompletionSensor`. Each time it
runs on a worker it does one short round (:func:`tsmetrics.tasks.label_wait_round`): submit any
task the queues miss, collect every answer they have, and measure completion per labeler and
policy. When every human labeler has labelled ``labeling.wait.min_completion`` of its sampled
units, or the deadline (``deadline_hours`` after the day's tasks were first dispatched) has
passed, it records the completion (``tsm.label_completion``) and succeeds, and estimation runs.
Otherwise it defers to a :class:`LabelArrivalTrigger`, which runs in the triggerer (asyncio,
no worker slot, no pool slot) and polls cheap signals every ``poll_seconds``:

* Label Studio: the project's counters (``GET /api/projects/{id}/``: tasks, tasks with
  annotations, annotations, skipped), through httpx's async client;
* vendor files: the listing of the queue's ``inbox/`` (names, sizes, modification times);
* the warehouse: the day's done and failed tasks (psycopg's async connection), so labels
  written by another process count too.

It fires when any signal differs from the one the sensor saw, when the deadline passes, or after
``max_idle_minutes`` (an edited annotation changes no counter), and the sensor resumes for the
next round. Credentials never enter the trigger's serialized arguments: it gets connection ids
and looks the connections up in the triggerer.

Why a deferrable sensor and not a collection DAG handing over through assets: the wait belongs
to one day's run. The sensor keeps the day's data interval, params, retries and
``max_active_runs`` ordering; a re-run or backfill of a day re-enters the same wait (already
past its deadline, it estimates at once with what it has). An asset-triggered estimation DAG
would have no data interval of its own (Airflow 3 sets it to None for asset-triggered runs),
would need the day passed in the asset event, and a backfill of the daily DAG would emit one
asset event per day for it. ``dag.test()`` runs a deferred task's trigger inline (Airflow 3.3:
``_run_task`` with ``run_triggerer=True``), so the whole wait is testable end to end in one
process; asset-triggered runs need a scheduler.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

_WATCHED_COUNTERS = (
    "task_number",
    "num_tasks_with_annotations",
    "total_annotations_number",
    "skipped_annotations_number",
)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def postgres_conninfo(conn: Any) -> str:
    """A libpq connection string for an Airflow ``postgres`` connection."""
    from psycopg.conninfo import make_conninfo

    from tsmetrics.human_labeling import connection_extra

    get = conn.get if isinstance(conn, Mapping) else lambda k: getattr(conn, k, None)
    params = {
        "host": get("host") or "localhost",
        "port": get("port") or 5432,
        "user": get("login") or None,
        "password": get("password") or None,
        "dbname": get("schema") or None,
    }
    sslmode = connection_extra(conn).get("sslmode")
    if sslmode:
        params["sslmode"] = sslmode
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


async def warehouse_signal(conninfo: str, day: str) -> str:
    """The day's (tasks, done, failed) counts in ``tsm.label_tasks``."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cursor = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'done'), "
            "count(*) FILTER (WHERE status = 'failed') FROM tsm.label_tasks "
            "WHERE event_date = %s",
            (day,),
        )
        row = await cursor.fetchone()
    return _digest(list(row or ()))


async def label_studio_signal(spec: Mapping[str, Any], conn: Any) -> str:
    """The project's task and annotation counters (an async PAT refresh, then one GET)."""
    import httpx

    from tsmetrics.human_labeling import LabelStudioSettings
    from tsmetrics.label_studio import LabelStudioError

    settings = LabelStudioSettings.from_connection(conn)
    async with httpx.AsyncClient(base_url=settings.base_url, timeout=settings.timeout) as http:
        try:
            if settings.token_type == "legacy":
                authorization = f"Token {settings.token}"
            else:
                reply = await http.post("/api/token/refresh/", json={"refresh": settings.token})
                if reply.status_code != 200:
                    raise LabelStudioError(
                        f"POST /api/token/refresh/: HTTP {reply.status_code}", reply.status_code
                    )
                authorization = f"Bearer {reply.json()['access']}"
            path = f"/api/projects/{int(spec['project_id'])}/"
            reply = await http.get(path, headers={"Authorization": authorization})
        except httpx.HTTPError as error:
            raise LabelStudioError(f"label studio signal: {type(error).__name__}") from None
    if reply.status_code != 200:
        raise LabelStudioError(f"GET {path}: HTTP {reply.status_code}", reply.status_code)
    body = reply.json()
    return _digest([body.get(k) for k in _WATCHED_COUNTERS])


def _inbox_listing(inbox: str) -> list[tuple[str, int, int]]:
    if not os.path.isdir(inbox):
        return []
    with os.scandir(inbox) as entries:
        return sorted(
            (e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()
        )


async def vendor_signal(spec: Mapping[str, Any], conn: Any) -> str:
    """The listing of the vendor queue's ``inbox/`` (a directory scan off the event loop)."""
    return _digest(await asyncio.to_thread(_inbox_listing, str(spec["inbox"])))


#: backend -> async signal(watch spec, Airflow connection) -> digest
SIGNALS: dict[str, Callable[[Mapping[str, Any], Any], Awaitable[str]]] = {
    "label_studio": label_studio_signal,
    "vendor_files": vendor_signal,
}


async def queue_signals(
    watch: Sequence[Mapping[str, Any]], connections: Mapping[str, Any]
) -> dict[str, str]:
    """Labeler id -> digest of its queue's signal."""
    out = {}
    for spec in watch:
        conn = connections.get(spec["conn_id"]) if spec.get("conn_id") else None
        out[str(spec["labeler_id"])] = await SIGNALS[spec["backend"]](spec, conn)
    return out


class LabelArrivalTrigger(BaseTrigger):
    """Fires when new labels may have arrived, when the deadline passes, or when idle too long.

    Parameters (all JSON-serializable; no secrets)
    ----------
    day : str
        The day being labelled (``YYYY-MM-DD``).
    db_conn_id : str
        Airflow connection of the warehouse.
    watch : list of dict
        One per human queue: ``labeler_id``, ``backend``, ``conn_id`` and ``project_id``
        (Label Studio) or ``inbox`` (vendor files).
    baseline : dict
        The signals the sensor saw (``"db"`` and one per labeler id).
    deadline_at : str or None
        ISO timestamp after which estimation goes ahead anyway.
    poll_seconds, max_idle_seconds : float
        How often to look, and the longest wait without a visible change.
    state : dict
        Carried back to the sensor unchanged (rounds so far, when the wait started).
    """

    def __init__(
        self,
        *,
        day: str,
        db_conn_id: str,
        watch: list[dict[str, Any]],
        baseline: dict[str, str],
        deadline_at: str | None,
        poll_seconds: float,
        max_idle_seconds: float,
        state: dict[str, Any],
    ) -> None:
        super().__init__()
        self.day = day
        self.db_conn_id = db_conn_id
        self.watch = watch
        self.baseline = baseline
        self.deadline_at = deadline_at
        self.poll_seconds = poll_seconds
        self.max_idle_seconds = max_idle_seconds
        self.state = state

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "day": self.day,
                "db_conn_id": self.db_conn_id,
                "watch": self.watch,
                "baseline": self.baseline,
                "deadline_at": self.deadline_at,
                "poll_seconds": self.poll_seconds,
                "max_idle_seconds": self.max_idle_seconds,
                "state": self.state,
            },
        )

    async def _signals(self) -> dict[str, str]:
        from airflow.sdk import BaseHook

        conn_ids = {str(s["conn_id"]) for s in self.watch if s.get("conn_id")}
        connections = {c: await BaseHook.aget_connection(c) for c in conn_ids}
        signals = await queue_signals(self.watch, connections)
        db = await BaseHook.aget_connection(self.db_conn_id)
        signals["db"] = await warehouse_signal(postgres_conninfo(db), self.day)
        return signals

    def _event(self, reason: str, **extra: Any) -> TriggerEvent:
        return TriggerEvent({"reason": reason, "state": self.state, **extra})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = datetime.fromisoformat(self.deadline_at) if self.deadline_at else None
        idle_until = time.monotonic() + self.max_idle_seconds
        while True:
            now = datetime.now(UTC)
            if deadline is not None and now >= deadline:
                yield self._event("deadline")
                return
            try:
                current = await self._signals()
            except Exception as error:  # a queue or the warehouse is down: keep waiting
                self.log.warning("label signals unavailable: %s", type(error).__name__)
                current = None
            if current is not None:
                changed = sorted(k for k in current if current[k] != self.baseline.get(k))
                if changed:
                    yield self._event("news", changed=changed)
                    return
            if time.monotonic() >= idle_until:
                yield self._event("idle")
                return
            pause = self.poll_seconds
            if deadline is not None:
                pause = min(pause, max((deadline - now).total_seconds(), 0.0))
            pause = min(pause, max(idle_until - time.monotonic(), 0.0))
            await asyncio.sleep(max(pause, 0.05))


class LabelCompletionSensor(BaseSensorOperator):
    """Wait, deferred, until the day's human labels are complete enough or the deadline passes.

    ``plan`` is the run's plan (``plan_run``'s XCom). Every round runs
    :func:`tsmetrics.tasks.label_wait_round` on the worker; between rounds the sensor is
    deferred to :class:`LabelArrivalTrigger`. Returns the completion summary (XCom).
    """

    template_fields = ("plan",)

    def __init__(self, *, plan: Any, db_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.db_conn_id = db_conn_id

    def poke(self, context: Any) -> bool:  # the deferred flow below replaces poking
        raise NotImplementedError("LabelCompletionSensor always runs deferrable")

    def execute(self, context: Any) -> Any:
        return self._round({"rounds": 0, "started_at": datetime.now(UTC).isoformat()})

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> Any:
        state = dict((event or {}).get("state") or {})
        if event:
            self.log.info("labels: trigger fired (%s)", event.get("reason"))
        return self._round(state)

    def _round(self, state: dict[str, Any]) -> Any:
        from tsmetrics import tasks

        state = {**state, "rounds": int(state.get("rounds", 0)) + 1}
        result = tasks.label_wait_round(self.plan, state)
        if result["final"]:
            return result["summary"]
        self.defer(
            trigger=LabelArrivalTrigger(
                day=str(self.plan["day"]),
                db_conn_id=self.db_conn_id,
                watch=result["watch"],
                baseline=result["baseline"],
                deadline_at=result["deadline_at"],
                poll_seconds=float(result["poll_seconds"]),
                max_idle_seconds=float(result["max_idle_seconds"]),
                state=state,
            ),
            method_name="execute_complete",
        )


def watch_spec(labeler_id: str, backend: str, conn_id: str | None, queue: Any) -> dict[str, Any]:
    """What the trigger polls for one human queue (built on the worker, from the queue)."""
    spec: dict[str, Any] = {"labeler_id": labeler_id, "backend": backend, "conn_id": conn_id}
    if backend == "label_studio":
        spec["project_id"] = int(queue.ensure_project())
    elif backend == "vendor_files":
        spec["inbox"] = str(Path(queue.inbox))
    return spec


__all__ = [
    "SIGNALS",
    "LabelArrivalTrigger",
    "LabelCompletionSensor",
    "label_studio_signal",
    "postgres_conninfo",
    "queue_signals",
    "vendor_signal",
    "warehouse_signal",
    "watch_spec",
]
