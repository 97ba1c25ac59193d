"""What each task of the ``prevalence_daily`` DAG does, as plain functions of (context values).

The DAG file only wires these; each opens the warehouse through the Airflow connection, calls the
stage's library function and returns a small JSON-able summary (pushed to XCom, shown in the UI).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tsmetrics.config import RunConfig, load_config
from tsmetrics.settings import Settings

log = logging.getLogger(__name__)


def _hook(settings: Settings) -> Any:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=settings.db_conn_id)


def _config(plan: dict[str, Any]) -> RunConfig:
    return load_config().with_limits(plan.get("policy_limits") or None)


def plan_run(day: date, policy_limits: dict[str, float] | None = None) -> dict[str, Any]:
    """Everything later tasks need, resolved once: the day, the design, the labelers."""
    config = load_config().with_limits(policy_limits or None)
    return {
        "day": day.isoformat(),
        "config_version": config.version,
        "policies": ",".join(config.policy_names),
        "policy_limits": {p.name: p.limit for p in config.policies},
        "design_id": config.sampling.design_id,
        "design_ids": ",".join(d.design_id for d in config.designs),
        "seed": config.sampling.seed,
        "n_draws": config.sampling.n_draws,
        "expected_n": config.sampling.n_draws,
        "sampling_method": config.sampling.method,
        "size_measure": config.sampling.size_measure,
        "size_floor": config.sampling.size_floor,
        "primary_labeler": config.primary_labeler.labeler_id,
        "overlap_labeler": config.overlap_labeler.labeler_id,
        "overlap_fraction": config.overlap_labeler.fraction,
    }


def stage_raw(plan: dict[str, Any]) -> dict[str, Any]:
    from tsmetrics.extract import stage_day_file

    settings = Settings.from_env()
    staged = stage_day_file(_hook(settings), settings.raw_dir, date.fromisoformat(plan["day"]))
    log.info(
        "staged %d lines of %s into %s", staged.rows_read, staged.source_path, staged.stage_table
    )
    return {
        "load_id": staged.load_id,
        "stage_table": staged.stage_table,
        "rows_read": staged.rows_read,
    }


def calibrate_scores(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Fit each policy's score calibration on the window's labels (for the calibrated design)."""
    from tsmetrics.design_day import calibrate_day

    config = _config(plan)
    if all(d.size_measure != "sqrt_calibrated" for d in config.designs):
        log.info("size measure %s uses no calibration", config.sampling.size_measure)
        return []
    with _hook(Settings.from_env()).get_conn() as conn:
        rows = calibrate_day(conn, date.fromisoformat(plan["day"]), config)
    return [{k: str(v) for k, v in r.items() if k != "event_date"} for r in rows]


def draw_sample(plan: dict[str, Any], sql_dir: str) -> list[dict[str, Any]]:
    """Draw each of the day's designs (the shared sample, then the per-policy ones) inside the
    warehouse: the design's SQL in ``include/sql`` (``tsmetrics.designs.DESIGNS``), its expected
    size planned from recent estimates."""
    from pathlib import Path

    from tsmetrics.design_day import plan_expected_n
    from tsmetrics.designs import draw_design

    config, day = _config(plan), date.fromisoformat(plan["day"])
    with _hook(Settings.from_env()).get_conn() as conn:
        return [
            draw_design(conn, day, config, spec, Path(sql_dir), plan_expected_n)
            for spec in config.designs
        ]


def inject_gold(plan: dict[str, Any], sql_dir: str) -> dict[str, Any]:
    """Load the configured gold file (if any) and inject gold tasks into each labeler's queue
    (``include/sql/inject_gold_tasks.sql``; idempotent)."""
    from pathlib import Path

    from tsmetrics.gold import load_gold_file

    config = _config(plan)
    sql = (Path(sql_dir) / "inject_gold_tasks.sql").read_text()
    out: dict[str, Any] = {"loaded": 0, "injected": {}}
    with _hook(Settings.from_env()).get_conn() as conn:
        if config.gold.file:
            out["loaded"] = load_gold_file(
                conn, config.gold.file, {p.name: p.sub_policies for p in config.policies}
            )
        for labeler in config.labelers:
            if config.gold.rate <= 0:
                continue
            conn.execute(
                sql,
                {"day": plan["day"], "labeler_id": labeler.labeler_id, "rate": config.gold.rate},
            )
            row = conn.execute(
                "SELECT count(*) FROM tsm.label_tasks WHERE event_date = %s AND labeler_id = %s "
                "AND purpose = 'gold'",
                (plan["day"], labeler.labeler_id),
            ).fetchone()
            conn.commit()
            out["injected"][labeler.labeler_id] = int(row[0]) if row else 0
    log.info("gold: %s", out)
    return out


def collect_labels(plan: dict[str, Any]) -> dict[str, Any]:
    """Run the synchronous labelers over the day's open label tasks (LLM endpoints come from
    Airflow connections; every HTTP attempt is audited in ``tsm.label_attempts``), and send the
    human queues their tasks (collecting what they already answered)."""
    from airflow.sdk import BaseHook

    from tsmetrics.human_labeling import build_human_queues, queue_round
    from tsmetrics.labelers import build_labelers
    from tsmetrics.labeling import collect_labels

    config = _config(plan)
    day = date.fromisoformat(plan["day"])
    with _hook(Settings.from_env()).get_conn() as conn:
        labelers = build_labelers(config, conn, day, BaseHook.get_connection)
        summary = collect_labels(conn, plan["day"], labelers, config.policy_names)
        human = queue_round(conn, plan["day"], build_human_queues(config, BaseHook.get_connection))
    if summary.stopped:
        log.warning("label collection stopped early, open tasks stay pending: %s", summary.stopped)
    log.info("labels: %s", summary)
    return {
        "labeled": summary.labeled,
        "failed_attempts": summary.failed_attempts,
        "exhausted": summary.exhausted,
        "stopped": summary.stopped,
        "human_queues": human,
    }


def label_wait_round(plan: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """One round of ``wait_for_labels`` (:mod:`tsmetrics.label_wait`): read the queues'
    signals, submit and collect, measure completion, and decide. Final (complete, deadline, or
    no human labeler): the completion is recorded in ``tsm.label_completion`` and summarised;
    otherwise what the trigger needs to wait for news."""
    import asyncio

    from airflow.sdk import BaseHook

    from tsmetrics.human_labeling import (
        build_human_queues,
        completion_state,
        first_dispatch,
        queue_round,
        record_completion,
        wait_outcome,
    )
    from tsmetrics.label_wait import (
        postgres_conninfo,
        queue_signals,
        warehouse_signal,
        watch_spec,
    )

    config, settings = _config(plan), Settings.from_env()
    day = date.fromisoformat(plan["day"])
    wait = config.label_wait
    humans = [c for c in config.labelers if c.is_human]
    queues = build_human_queues(config, BaseHook.get_connection)
    watch = [watch_spec(c.labeler_id, c.backend, c.conn_id, queues[c.labeler_id]) for c in humans]
    connections = {c.conn_id: BaseHook.get_connection(c.conn_id) for c in humans if c.conn_id}
    baseline = asyncio.run(queue_signals(watch, connections))  # before collecting: no news lost
    with _hook(settings).get_conn() as conn:
        collected = queue_round(conn, plan["day"], queues)
        state_now = completion_state(conn, day, config)
        dispatched = first_dispatch(conn, day, [c.labeler_id for c in humans])
        deadline_at = (
            None if dispatched is None else dispatched + timedelta(hours=wait.deadline_hours)
        )
        now = datetime.now(UTC)
        outcome = wait_outcome(
            state_now, [c.labeler_id for c in humans], wait.min_completion, deadline_at, now
        )
        started = datetime.fromisoformat(str(state.get("started_at") or now.isoformat()))
        log.info("labels round %s: %s -> %s", state.get("rounds"), collected, outcome)
        if outcome != "wait":
            rows = record_completion(
                conn,
                day,
                state_now,
                outcome,
                wait.min_completion,
                deadline_at,
                int(state.get("rounds", 1)),
                (now - started).total_seconds(),
            )
            cut = sorted({r["labeler_id"] for r in rows if r["cut_by_deadline"]})
            if cut:
                log.warning("deadline passed with labels incomplete for %s", cut)
            return {
                "final": True,
                "summary": {
                    "outcome": outcome,
                    "rounds": int(state.get("rounds", 1)),
                    "cut_by_deadline": cut,
                    "completion": {
                        f"{r['labeler_id']}/{r['policy']}": r["completion"] for r in rows
                    },
                },
            }
    db = BaseHook.get_connection(settings.db_conn_id)
    baseline["db"] = asyncio.run(warehouse_signal(postgres_conninfo(db), plan["day"]))
    return {
        "final": False,
        "watch": watch,
        "baseline": baseline,
        "deadline_at": None if deadline_at is None else deadline_at.isoformat(),
        "poll_seconds": wait.poll_seconds,
        "max_idle_seconds": wait.max_idle_minutes * 60.0,
    }


def estimate(plan: dict[str, Any]) -> list[dict[str, Any]]:
    from tsmetrics.measure import estimate_day

    with _hook(Settings.from_env()).get_conn() as conn:
        rows = estimate_day(conn, date.fromisoformat(plan["day"]), _config(plan))
    for row in rows:
        log.info(
            "%s: %.5f [%.5f, %.5f]",
            row["policy"],
            row["estimate"],
            row["ci_lower"],
            row["ci_upper"],
        )
    return [{k: v for k, v in r.items() if k != "event_date"} for r in rows]


def agreement(plan: dict[str, Any]) -> list[dict[str, Any]]:
    from tsmetrics.measure import agreement_day

    with _hook(Settings.from_env()).get_conn() as conn:
        rows = agreement_day(conn, date.fromisoformat(plan["day"]), _config(plan))
    return [{k: v for k, v in r.items() if k != "event_date"} for r in rows]


def run_checks(plan: dict[str, Any]) -> list[dict[str, Any]]:
    from tsmetrics.measure import checks_day

    with _hook(Settings.from_env()).get_conn() as conn:
        results = checks_day(conn, date.fromisoformat(plan["day"]), _config(plan))
    return [{"check": r.check_name, "policy": r.policy, "outcome": r.outcome} for r in results]


def send_alerts(plan: dict[str, Any], dag_id: str, run_id: str) -> dict[str, int]:
    """Record the day's breaches in the outbox, then deliver every pending alert to Slack."""
    from tsmetrics.alerts import AlertContext, deliver_pending, pending_count, record_day_alerts
    from tsmetrics.measure import HEADLINE_SQL
    from tsmetrics.report import report_path

    settings = Settings.from_env()
    day = date.fromisoformat(plan["day"])
    config = _config(plan)
    links = AlertContext(
        settings.run_url(dag_id, run_id), str(report_path(settings.reports_dir, day))
    )
    escalate = {
        name: float(rule["escalate_ratio"])
        for name, rule in config.rules.items()
        if "escalate_ratio" in rule
    }
    with _hook(settings).get_conn() as conn:
        estimates = {
            (row[0], row[1]): (row[2], row[3], row[4])
            for row in conn.execute(
                "SELECT policy, domain, estimate, ci_lower, ci_upper FROM tsm.estimates "
                "WHERE event_date = %s AND " + HEADLINE_SQL,
                (day, *config.headline_arrays()),
            )
        }
        new = record_day_alerts(conn, day, estimates, escalate, links)
        sender = _slack_sender(settings.slack_conn_id)
        if sender is None:
            log.warning(
                "no Slack connection %r configured: %s alert(s) kept pending in the outbox",
                settings.slack_conn_id,
                pending_count(conn),
            )
            return {"new": new, "sent": 0}
        sent = deliver_pending(conn, sender)
    return {"new": new, "sent": sent}


def _slack_sender(conn_id: str) -> Any:
    """A function posting one message through the Slack webhook connection, or None if unset.
    The webhook URL (the connection's secret) is registered with Airflow's log masker and the
    webhook client logs through a logger that redacts URLs."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    from tsmetrics.alerts import webhook_client_logger

    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException: no connection configured
        return None
    if connection.password:
        mask_secret(connection.password)
    hook = SlackWebhookHook(
        slack_webhook_conn_id=conn_id, timeout=10, logger=webhook_client_logger()
    )

    def send(message: dict[str, Any]) -> None:
        hook.send_dict(message)

    return send


def write_report(plan: dict[str, Any]) -> str:
    from tsmetrics.report import write_report

    settings = Settings.from_env()
    with _hook(settings).get_conn() as conn:
        path = write_report(conn, date.fromisoformat(plan["day"]), settings.reports_dir)
    log.info("report written to %s", path)
    return str(path)
