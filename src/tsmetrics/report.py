"""Report: one self-contained HTML page per day (estimates, checks, agreement, input health)."""

from __future__ import annotations

import html
from datetime import date
from pathlib import Path
from typing import Any

import psycopg


def report_path(reports_dir: Path, day: date) -> Path:
    return reports_dir / f"prevalence_{day.isoformat()}.html"


def _table(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    empty = "" if rows else f"<tr><td colspan='{len(columns)}'>none</td></tr>"
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}{empty}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_report(conn: psycopg.Connection, day: date) -> str:
    """The day's report as HTML (aggregates only: no user content)."""
    estimates = conn.execute(
        "SELECT policy, domain, design_id, level, estimator, coalesce(published, ''), "
        "coalesce(cell_status, ''), estimate, std_error, ci_lower, ci_upper, ci_method, "
        "n_draws, n_positive_draws, effective_sample_size, coalesce(adjudication, '') "
        "FROM tsm.estimates "
        "WHERE event_date = %s ORDER BY policy, domain, design_id, level DESC, estimator",
        (day,),
    ).fetchall()
    checks = conn.execute(
        "SELECT check_name, policy, statistic, threshold, p_value, outcome FROM tsm.checks "
        "WHERE event_date = %s ORDER BY outcome DESC, policy, check_name",
        (day,),
    ).fetchall()
    agreement = conn.execute(
        "SELECT policy, labeler_a, labeler_b, metric, value, percent_agreement, n_items "
        "FROM tsm.agreement WHERE event_date = %s ORDER BY policy",
        (day,),
    ).fetchall()
    loads = conn.execute(
        "SELECT load_id, source_path, rows_read, rows_loaded, rows_quarantined "
        "FROM tsm.load_batches WHERE event_date = %s ORDER BY load_id DESC LIMIT 1",
        (day,),
    ).fetchall()
    reasons = conn.execute(
        "SELECT reason, count(*) FROM tsm.quarantine WHERE event_date = %s "
        "GROUP BY reason ORDER BY count(*) DESC",
        (day,),
    ).fetchall()
    labeling = conn.execute(
        "SELECT labeler_id, purpose, status, count(*) FROM tsm.label_tasks WHERE event_date = %s "
        "GROUP BY labeler_id, purpose, status ORDER BY labeler_id, purpose, status",
        (day,),
    ).fetchall()
    confusion = conn.execute(
        "SELECT labeler_id, policy, reference, n_items, true_positive, false_positive, "
        "false_negative, true_negative, accuracy, sensitivity, specificity "
        "FROM tsm.labeler_confusion WHERE event_date = %s ORDER BY reference <> 'gold', "
        "labeler_id, policy, reference",
        (day,),
    ).fetchall()
    completion = conn.execute(
        "SELECT labeler_id, policy, backend, tasks, done, failed, pending, completion, "
        "min_completion, outcome, cut_by_deadline, deadline_at, gold_tasks, gold_done "
        "FROM tsm.label_completion WHERE event_date = %s ORDER BY labeler_id, policy",
        (day,),
    ).fetchall()
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>tsmetrics {day}</title>"
        f"<style>{style}</style></head><body><h1>Prevalence report, {day.isoformat()}</h1>",
        _table(
            "Impression-weighted prevalence",
            [
                "policy",
                "domain",
                "design",
                "level",
                "estimator",
                "published",
                "status",
                "estimate",
                "SE",
                "CI low",
                "CI high",
                "CI method",
                "draws",
                "positive draws",
                "effective n",
                "labels (adjudication)",
            ],
            estimates,
        ),
        _table(
            "Checks", ["check", "policy", "statistic", "threshold", "p-value", "outcome"], checks
        ),
        _table(
            "Labeler agreement",
            ["policy", "labeler A", "labeler B", "metric", "value", "% agreement", "items"],
            agreement,
        ),
        _table("Labeling", ["labeler", "purpose", "status", "tasks"], labeling),
        _table(
            "Label completion (when estimation went ahead)",
            [
                "labeler",
                "policy",
                "backend",
                "tasks",
                "done",
                "failed",
                "pending",
                "completion",
                "minimum",
                "outcome",
                "cut by deadline",
                "deadline",
                "gold tasks",
                "gold done",
            ],
            completion,
        ),
        _table(
            "Labelers against gold and against the adjudicated labels",
            [
                "labeler",
                "policy",
                "reference",
                "items",
                "TP",
                "FP",
                "FN",
                "TN",
                "accuracy",
                "sensitivity",
                "specificity",
            ],
            confusion,
        ),
        _table("Input", ["load", "file", "read", "loaded", "quarantined"], loads),
        _table("Quarantine reasons", ["reason", "rows"], reasons),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(conn: psycopg.Connection, day: date, reports_dir: Path) -> Path:
    path = report_path(reports_dir, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(conn, day), encoding="utf-8")
    return path
