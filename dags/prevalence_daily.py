"""prevalence_daily: yesterday's impression-weighted prevalence per policy, with CIs and alerts.

Thin on purpose: every task is one call into ``tsmetrics``; SQL lives in ``include/sql``. The run
for day D has the data interval [D 00:00, D+1 00:00) UTC (``CronDataIntervalTimetable`` at
midnight) and starts when D has ended. Analysts backfill with ``airflow backfill create``; a
manual run may name the day in the ``day`` param.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.sql.operators.sql import SQLCheckOperator, SQLExecuteQueryOperator
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.sdk import (
    DAG,
    AsyncCallback,
    CronDataIntervalTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    get_current_context,
    task,
)

from tsmetrics.label_wait import LabelCompletionSensor
from tsmetrics.schedule import processing_day

SQL_DIR = str(Path(__file__).resolve().parent.parent / "include" / "sql")
DB_CONN_ID = os.environ.get("TSMETRICS_DB_CONN_ID", "tsmetrics_db")
SLACK_CONN_ID = os.environ.get("TSMETRICS_SLACK_CONN_ID", "tsmetrics_slack")
# Pool that bounds concurrent label collection (LLM rate limits) across runs and backfills:
# `airflow pools set llm_labeler 1 "LLM labeling"` and TSMETRICS_LABEL_POOL=llm_labeler.
LABEL_POOL = os.environ.get("TSMETRICS_LABEL_POOL", "default_pool")
PLAN = "{{{{ ti.xcom_pull(task_ids='plan_run')['{}'] }}}}"
STAGED = "{{{{ ti.xcom_pull(task_ids='stage_raw')['{}'] }}}}"


class TemplatedSQLCheckOperator(SQLCheckOperator):
    """SQLCheckOperator whose bind parameters are templated too."""

    template_fields = (*SQLCheckOperator.template_fields, "parameters")


def plan_params(*keys: str) -> dict[str, str]:
    return {key: PLAN.format(key) for key in keys}


on_failure = SlackWebhookNotifier(
    slack_webhook_conn_id=SLACK_CONN_ID,
    text=(
        ":x: tsmetrics task failed: {{ ti.dag_id }}.{{ ti.task_id }} "
        "for run {{ run_id }} (try {{ ti.try_number }})"
    ),
)

# A run must finish within TSMETRICS_DEADLINE_MINUTES (default 6 hours) of being queued; a missed
# deadline posts to Slack from the triggerer (Airflow 3 deadline alert, async notifier).
AIRFLOW_BASE_URL = os.environ.get("TSMETRICS_AIRFLOW_BASE_URL", "http://localhost:8080").rstrip("/")
missed_deadline = DeadlineAlert(
    reference=DeadlineReference.DAGRUN_QUEUED_AT,
    interval=timedelta(minutes=float(os.environ.get("TSMETRICS_DEADLINE_MINUTES", "360"))),
    callback=AsyncCallback(
        SlackWebhookNotifier,
        kwargs={
            "slack_webhook_conn_id": SLACK_CONN_ID,
            "text": (
                ":alarm_clock: tsmetrics missed deadline: {{ dag_run.dag_id }} run "
                "{{ dag_run.dag_run_id }} (queued {{ dag_run.queued_at }}) had not finished by "
                "{{ deadline.deadline_time }}. Airflow run: "
                + AIRFLOW_BASE_URL
                + "/dags/{{ dag_run.dag_id }}/runs/{{ dag_run.dag_run_id }}"
            ),
        },
    ),
    name="prevalence_daily_finished",
)

with DAG(
    dag_id="prevalence_daily",
    description="Daily impression-weighted prevalence per policy with CIs, checks and alerts",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    deadline=missed_deadline,
    template_searchpath=[SQL_DIR],
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Measure this day (YYYY-MM-DD) instead of the data interval's",
        ),
        "policy_limits": Param(
            {}, type="object", description='Per-policy limit overrides, e.g. {"adult": 0.01}'
        ),
    },
    default_args={
        "owner": "trust-safety-measurement",
        "retries": int(os.environ.get("TSMETRICS_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=10),
        "on_failure_callback": on_failure,
    },
    tags=["tsmetrics", "prevalence"],
    doc_md=__doc__,
) as dag:

    @task
    def plan_run() -> dict:
        from tsmetrics import tasks

        ctx = get_current_context()
        day = processing_day(
            ctx.get("data_interval_start"),
            ctx.get("data_interval_end"),
            ctx["dag_run"].run_after,
            ctx["params"].get("day"),
        )
        return tasks.plan_run(day, ctx["params"].get("policy_limits"))

    @task
    def stage_raw(plan: dict) -> dict:
        from tsmetrics import tasks

        return tasks.stage_raw(plan)

    load_raw = SQLExecuteQueryOperator(
        task_id="load_raw",
        conn_id=DB_CONN_ID,
        sql="extract_normalize.sql",
        split_statements=True,
        parameters={**plan_params("day", "policies"), "load_id": STAGED.format("load_id")},
    )

    check_extract = TemplatedSQLCheckOperator(
        task_id="check_extract_reconciles",
        conn_id=DB_CONN_ID,
        sql="check_extract_reconciles.sql",
        parameters={**plan_params("day"), "load_id": STAGED.format("load_id")},
    )

    build_units = SQLExecuteQueryOperator(
        task_id="build_units",
        conn_id=DB_CONN_ID,
        sql="build_units.sql",
        split_statements=True,
        parameters=plan_params("day", "policies"),
    )

    score_histograms = SQLExecuteQueryOperator(
        task_id="score_histograms",
        conn_id=DB_CONN_ID,
        sql="score_histograms.sql",
        split_statements=True,
        parameters=plan_params("day", "policies"),
    )

    @task
    def calibrate_scores(plan: dict) -> list:
        from tsmetrics import tasks

        return tasks.calibrate_scores(plan)

    @task
    def draw_sample(plan: dict) -> list:
        from tsmetrics import tasks

        return tasks.draw_sample(plan, SQL_DIR)

    dispatch_labels = SQLExecuteQueryOperator(
        task_id="dispatch_labels",
        conn_id=DB_CONN_ID,
        sql="dispatch_label_tasks.sql",
        parameters=plan_params(
            "day", "design_ids", "primary_labeler", "overlap_labeler", "overlap_fraction"
        ),
    )

    @task
    def inject_gold(plan: dict) -> dict:
        from tsmetrics import tasks

        return tasks.inject_gold(plan, SQL_DIR)

    @task(pool=LABEL_POOL)
    def collect_labels(plan: dict) -> dict:
        from tsmetrics import tasks

        return tasks.collect_labels(plan)

    @task
    def estimate(plan: dict) -> list:
        from tsmetrics import tasks

        return tasks.estimate(plan)

    @task
    def agreement(plan: dict) -> list:
        from tsmetrics import tasks

        return tasks.agreement(plan)

    @task
    def run_checks(plan: dict) -> list:
        from tsmetrics import tasks

        return tasks.run_checks(plan)

    @task(retry_exponential_backoff=True)
    def send_alerts(plan: dict) -> dict:
        from tsmetrics import tasks

        ctx = get_current_context()
        return tasks.send_alerts(plan, ctx["dag"].dag_id, ctx["run_id"])

    @task
    def write_report(plan: dict) -> str:
        from tsmetrics import tasks

        return tasks.write_report(plan)

    plan = plan_run()
    staged = stage_raw(plan)
    calibrations = calibrate_scores(plan)
    sample = draw_sample(plan)
    gold = inject_gold(plan)
    labels = collect_labels(plan)
    # Human labels arrive over hours: deferred (no worker slot) until complete or the deadline.
    wait_for_labels = LabelCompletionSensor(
        task_id="wait_for_labels", plan=plan, db_conn_id=DB_CONN_ID
    )
    estimates = estimate(plan)
    kappas = agreement(plan)
    checks = run_checks(plan)
    alerts = send_alerts(plan)
    report = write_report(plan)
    (
        staged
        >> load_raw
        >> check_extract
        >> build_units
        >> score_histograms
        >> calibrations
        >> sample
        >> dispatch_labels
        >> gold
        >> labels
        >> wait_for_labels
        >> estimates
        >> kappas
        >> checks
        >> alerts
        >> report
    )
