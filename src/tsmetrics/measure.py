"""Estimate, agreement and checks for one day: read the warehouse, call the pure statistics in
:mod:`tsmetrics.estimation`, :mod:`tsmetrics.agreement` and :mod:`tsmetrics.checks`, write rows.

Each ``*_day`` function replaces that day's rows in one transaction, so re-running a day gives the
same rows, never duplicates. Work here is sample-sized (thousands of draws), never day-sized.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tsmetrics.agreement import cohen_kappa, confusion, gwet_ac1, krippendorff_alpha_nominal
from tsmetrics.checks import CheckResult
from tsmetrics.config import RunConfig, SamplingConfig
from tsmetrics.design_estimates import (
    DOMAIN_ALL,
    design_rows,
    draws_with_labels,
    estimate_row,
)
from tsmetrics.designs import design_of
from tsmetrics.gamma_interval import EVENT_WEIGHT_CI_METHODS
from tsmetrics.health import HEALTH_RULE_TEXT, health_checks_day
from tsmetrics.label_adjudication import adjudicate_day, estimate_columns, record_confusion
from tsmetrics.labeler_checks import agreement_checks, disagreement_checks
from tsmetrics.model_assisted import ppi_prevalence_poisson
from tsmetrics.pooling import DayRecord, classify_cell, pool_days
from tsmetrics.prevalence_checks import history_days, prevalence_checks

log = logging.getLogger(__name__)

#: The estimates checks, alerts and planning read: each policy's headline (design, estimator),
#: bound to ``RunConfig.headline_arrays()`` (its own sample's when it has one).
HEADLINE_SQL = (
    "(policy, design_id, estimator) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
)
NON_THRESHOLD = ("severity", "owner", "escalate_ratio")  # rule keys that are not thresholds


def estimate_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[dict[str, Any]]:
    """Impression-weighted prevalence per design, policy, level and domain (overall and per
    surface).

    Every design of the day (the shared sample for every policy, each per-policy sample for its
    policy) is estimated with its registered estimator (:mod:`tsmetrics.designs`): Horvitz-
    Thompson for Poisson PPS (``selection_prob`` = ``pi_i``), Hansen-Hurwitz for PPS with
    replacement (single-draw ``p_i``), the stratified estimator for the stratified design
    (``N_h`` from the design's params), each with only its own selection probabilities.
    Unit level: ``y_i = x_i v_i``, ``v_i`` the unit's label under the configured adjudication
    (:mod:`tsmetrics.label_adjudication`, recorded in ``adjudication``: the primary labeler's,
    a majority vote, or Dawid-Skene, whose soft labels are posteriors ``P(violating)`` in
    [0, 1]); the labelers' confusion matrices go to ``tsm.labeler_confusion``. Component level
    (estimator ``<name>_component``, ``level = 'component'``): ``y_i`` = the impressions of the
    unit's violating components as the primary labeler gave them, so ``P_c = sum_c x_c v_c / X``
    with the same known total ``X`` (a unit's impressions are the sum of its components');
    units whose labeler gave no component verdicts are left out of that level as unlabelled.
    Domain estimates (``surface=S``) use every sampled unit, with ``y = 0`` outside the domain,
    and the domain's exactly known impressions ``X_S`` as denominator: the design variance over
    the whole sample is then the correct domain variance (not a naive subset's). Draws whose
    unit has no valid label for a policy are left out of that policy's estimate (and counted:
    the label-completeness check reports them); they are never "not violating". Under Poisson
    sampling the labelled units are then treated as a Bernoulli subsample with the observed
    labelling rate (missing at random within the design, see :mod:`tsmetrics.designs`).
    """
    adjudicated = adjudicate_day(conn, day, config)
    rows: list[dict[str, Any]] = []
    data_by_design = {}
    for design in config.designs:
        data = draws_with_labels(conn, day, config, design)
        data["primary_verdicts"] = data["verdicts"]  # the PPI++ correction's predictions
        data["verdicts"] = {
            (draw_no, policy): result.verdicts[draw[0]]
            for policy, result in adjudicated.items()
            for draw_no, draw in data["draws"].items()
            if draw[0] in result.verdicts
        }
        data_by_design[design.design_id] = data
        rows.extend(design_rows(day, config, design, data))
    _publication(conn, day, config, rows)
    for row in rows:
        row.update(estimate_columns(adjudicated.get(row["policy"]), config.adjudication.method))
    if config.label_correction:
        for design in config.designs:
            rows.extend(
                {**row, **estimate_columns(None, "primary")}
                for row in _label_corrected_rows(
                    conn, day, config, data_by_design[design.design_id], design
                )
            )
    with conn.transaction():
        conn.execute(
            "DELETE FROM tsm.estimates WHERE event_date = %s AND design_id = ANY(%s)",
            (day, [d.design_id for d in config.designs]),
        )
        conn.cursor().executemany(
            """
            INSERT INTO tsm.estimates (
                event_date, design_id, policy, domain, estimator, estimate, std_error, ci_lower,
                ci_upper, ci_method, confidence, n_draws, n_distinct_units, n_positive_draws,
                effective_sample_size, total_impressions, cell_status, cell_reason, published,
                level, adjudication, adjudication_details, event_weight)
            VALUES (%(event_date)s, %(design_id)s, %(policy)s, %(domain)s, %(estimator)s,
                %(estimate)s, %(std_error)s, %(ci_lower)s, %(ci_upper)s, %(ci_method)s,
                %(confidence)s, %(n_draws)s, %(n_distinct_units)s, %(n_positive_draws)s,
                %(effective_sample_size)s, %(total_impressions)s, %(cell_status)s,
                %(cell_reason)s, %(published)s, %(level)s, %(adjudication)s,
                %(adjudication_details)s, %(event_weight)s)
            """,
            [
                {
                    **row,
                    "adjudication_details": _json_or_none(row.get("adjudication_details")),
                    "event_weight": row.get("event_weight"),
                }
                for row in rows
            ],
        )
    conn.commit()
    record_confusion(conn, day, adjudicated)
    return rows


def _publication(
    conn: psycopg.Connection, day: date, config: RunConfig, rows: list[dict[str, Any]]
) -> None:
    """Set each row's publication status (:func:`tsmetrics.pooling.classify_cell`): a cell below
    the configured effective sample size or above the relative half-width is replaced by its
    pooled estimate over the last ``pool_days`` days (this day included) or, if that is still
    too small, suppressed to its upper bound; a day without violations shows its upper bound.
    The pool uses the day's interval method; for a gamma interval it needs each day's event
    weight, so days written without one (before migration 0010) are left out of the window."""
    rule = config.small_cells
    window = int(rule["pool_days"])
    history: dict[tuple[str, str, str, str], list[DayRecord]] = {}
    for row in rows:  # rows of the shared design's primary estimator unless they say otherwise
        row.setdefault("design_id", config.sampling.design_id)
        row.setdefault("estimator", config.estimator)
    if window > 1:
        past = (
            conn.cursor(row_factory=dict_row)
            .execute(
                "SELECT event_date, policy, domain, estimate, std_error, total_impressions, "
                "n_draws, n_positive_draws, design_id, estimator, event_weight "
                "FROM tsm.estimates "
                "WHERE design_id = ANY(%s) AND estimator = ANY(%s) AND event_date < %s "
                "AND event_date > %s",
                (
                    sorted({r["design_id"] for r in rows}),
                    sorted({r["estimator"] for r in rows}),
                    day,
                    day - timedelta(days=window),
                ),
            )
            .fetchall()
        )
        for r in past:
            key = (r["design_id"], r["estimator"], r["policy"], r["domain"])
            history.setdefault(key, []).append(_day_record(r))
    for row in rows:
        today = _day_record(row)
        key = (row["design_id"], row["estimator"], row["policy"], row["domain"])
        method = str(row["ci_method"])
        records = [
            rec
            for rec in [*history.get(key, []), today]
            if method not in EVENT_WEIGHT_CI_METHODS or rec.event_weight is not None
        ]
        pooled = (
            pool_days(records, confidence=config.confidence, ci_method=method)
            if len(records) > 1 and records[-1] is today
            else None
        )
        status = classify_cell(
            _RowEstimate(row),
            rule["min_effective_n"],
            rule["max_relative_half_width"],
            pooled=pooled,
            window_label=f"{len(records)}-day pooled",
        )
        row.update(cell_status=status.status, cell_reason=status.reason, published=status.display)


def _day_record(row: dict[str, Any]) -> DayRecord:
    """A ``tsm.estimates`` row as a pooling record (a negative HT/ratio estimate counts as 0)."""
    return DayRecord.from_row({**row, "estimate": max(float(row["estimate"]), 0.0)})


@dataclasses.dataclass(frozen=True)
class _RowEstimate:
    """An estimates row seen as :class:`tsmetrics.pooling.EstimateLike`."""

    row: dict[str, Any]

    @property
    def estimate(self) -> float:
        return float(self.row["estimate"])

    @property
    def ci_lower(self) -> float:
        return float(self.row["ci_lower"])

    @property
    def ci_upper(self) -> float:
        return float(self.row["ci_upper"])

    @property
    def effective_sample_size(self) -> float:
        return float(self.row["effective_sample_size"])

    @property
    def n_positive_draws(self) -> int:
        return int(self.row["n_positive_draws"])


def _label_corrected_rows(
    conn: psycopg.Connection,
    day: date,
    config: RunConfig,
    data: dict[str, Any],
    design: SamplingConfig,
) -> list[dict[str, Any]]:
    """PPI++ label-error correction next to the primary estimate (``domain = all``).

    The primary labeler (an LLM) labels every sampled unit; the overlap labeler (humans or gold,
    treated as the truth) labels the overlap subsample: every certainty unit, and the others by
    a hash-selected Bernoulli subsample with probability ``overlap.fraction`` times the overlap
    labeler's completion rate among them. Writes
    ``ppi_corrected`` (:func:`tsmetrics.model_assisted.ppi_prevalence_poisson`, tuned lambda)
    and ``human_only`` (lambda = 0); the primary row is the naive estimate. Designs with
    ``label_correction`` in :mod:`tsmetrics.designs` (Poisson) only. A unit that another design
    of the day took with certainty was always sent to the overlap labeler (validation
    probability 1, ``dispatch_label_tasks.sql``).
    """
    if not design_of(data["method"]).label_correction:
        log.warning("label correction needs the Poisson design; skipped for %s", data["method"])
        return []
    certain_elsewhere = {
        unit_id
        for (unit_id,) in conn.execute(
            "SELECT DISTINCT unit_id FROM tsm.samples WHERE event_date = %s "
            "AND design_id = ANY(%s) AND selection_prob >= 1",
            (day, [d.design_id for d in config.designs]),
        ).fetchall()
    }
    human: dict[tuple[str, str], bool] = {
        (unit_id, policy): bool(verdict)
        for unit_id, policy, verdict in conn.execute(
            "SELECT unit_id, policy, is_violating FROM tsm.labels "
            "WHERE event_date = %s AND labeler_id = %s",
            (day, config.overlap_labeler.labeler_id),
        ).fetchall()
    }
    tasks = conn.execute(
        "SELECT count(*) FROM tsm.label_tasks AS t JOIN tsm.samples AS s "
        "ON s.event_date = t.event_date AND s.unit_id = t.unit_id AND s.design_id = %s "
        "WHERE t.event_date = %s AND t.labeler_id = %s AND s.selection_prob < 1",
        (design.design_id, day, config.overlap_labeler.labeler_id),
    ).fetchone()
    n_tasks = int(tasks[0]) if tasks else 0
    draws, verdicts = data["draws"], data["primary_verdicts"]
    total = data["domain_totals"][DOMAIN_ALL]
    rows = []
    for policy in config.design_policies(design):
        keys = [k for k in draws if (k, policy) in verdicts]
        pi = np.array([draws[k][2] for k in keys], dtype=float)
        validated = np.array([(draws[k][0], policy) in human for k in keys], dtype=bool)
        uncertain = (pi < 1.0) & np.array([draws[k][0] not in certain_elsewhere for k in keys])
        if validated.sum() < 2 or n_tasks == 0:
            continue
        # Bernoulli validation: certainty units always, the others at the overlap fraction
        # times the overlap labeler's completion among them.
        completion = (validated & uncertain).sum() / n_tasks
        rate = np.where(uncertain, config.overlap_labeler.fraction * completion, 1.0)
        result = ppi_prevalence_poisson(
            np.array([draws[k][1] for k in keys], dtype=float),
            np.array([verdicts[(k, policy)] for k in keys], dtype=bool),
            np.array([human.get((draws[k][0], policy), False) for k in keys], dtype=bool),
            validated,
            pi * (len(keys) / len(draws)),
            float(total),
            validation_prob=np.clip(rate, 1e-9, 1.0),
            confidence=config.confidence,
        )
        for name, estimate in (
            ("ppi_corrected", result.corrected),
            ("human_only", result.human_only),
        ):
            row = estimate_row(
                day, design, policy, DOMAIN_ALL, estimate, int(total), data["method"], "unit"
            )
            rows.append(
                {
                    **row,
                    "estimator": name,
                    "cell_status": None,
                    "cell_reason": None,
                    "published": None,
                }
            )
    return rows


def agreement_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[dict[str, Any]]:
    """Agreement per policy between the primary and overlap labelers on doubly-labeled units:
    Cohen's kappa, Krippendorff's alpha (nominal) and Gwet's AC1, each with its standard error."""
    first, second = config.primary_labeler.labeler_id, config.overlap_labeler.labeler_id
    pairs = conn.execute(
        """
        SELECT a.policy, a.is_violating, b.is_violating
        FROM tsm.labels AS a
        JOIN tsm.labels AS b
            ON b.event_date = a.event_date AND b.unit_id = a.unit_id AND b.policy = a.policy
        WHERE a.event_date = %s AND a.labeler_id = %s AND b.labeler_id = %s
            AND NOT EXISTS (  -- gold items are scored against their answers, not each other
                SELECT 1 FROM tsm.label_tasks AS g
                WHERE g.event_date = a.event_date AND g.unit_id = a.unit_id AND g.purpose = 'gold'
            )
        """,
        (day, first, second),
    ).fetchall()
    rows = []
    for policy in config.policy_names:
        ratings = np.array([(p[1], p[2]) for p in pairs if p[0] == policy], dtype=bool)
        if ratings.shape[0] == 0:
            continue
        kappa = cohen_kappa(ratings[:, 0], ratings[:, 1])
        alpha = krippendorff_alpha_nominal(ratings)
        ac1 = gwet_ac1(ratings, categories=(False, True))
        for metric, value, std_error in (
            ("cohen_kappa", kappa.kappa, kappa.std_error),
            ("krippendorff_alpha", alpha.alpha, alpha.std_error),
            ("gwet_ac1", ac1.ac1, ac1.std_error),
            *_versus_reference(ratings[:, 0], ratings[:, 1]),
        ):
            rows.append(
                {
                    "event_date": day,
                    "policy": policy,
                    "labeler_a": first,
                    "labeler_b": second,
                    "metric": metric,
                    "value": _finite(value),
                    "std_error": _finite(std_error),
                    "percent_agreement": kappa.percent_agreement,
                    "n_items": kappa.n_items,
                }
            )
    with conn.transaction():
        conn.execute("DELETE FROM tsm.agreement WHERE event_date = %s", (day,))
        conn.cursor().executemany(
            """
            INSERT INTO tsm.agreement (event_date, policy, labeler_a, labeler_b, metric, value,
                std_error, percent_agreement, n_items)
            VALUES (%(event_date)s, %(policy)s, %(labeler_a)s, %(labeler_b)s, %(metric)s,
                %(value)s, %(std_error)s, %(percent_agreement)s, %(n_items)s)
            """,
            rows,
        )
    conn.commit()
    return rows


def _versus_reference(
    predicted: np.ndarray, reference: np.ndarray
) -> list[tuple[str, float | None, float | None]]:
    """The primary labeler (e.g. the LLM) scored against the overlap labeler (e.g. humans):
    disagreement rate, precision and recall of "violating" (:func:`tsmetrics.agreement.confusion`),
    each a binomial share with SE ``sqrt(x (1 - x) / d)`` over its denominator ``d``."""
    result = confusion(predicted.tolist(), reference.tolist(), (False, True))
    n = result.n_items
    out: list[tuple[str, float | None, float | None]] = []
    disagreement = 1.0 - result.accuracy
    out.append(
        ("disagreement_rate", disagreement, math.sqrt(disagreement * (1 - disagreement) / n))
    )
    for metric, value, denominator in (
        ("precision", result.precision[1], int(result.matrix[:, 1].sum())),
        ("recall", result.recall[1], int(result.matrix[1, :].sum())),
    ):
        if denominator == 0 or not np.isfinite(value):
            out.append((metric, None, None))
        else:
            out.append((metric, float(value), math.sqrt(value * (1 - value) / denominator)))
    return out


def _agreement_history(
    conn: psycopg.Connection, day: date, metric: str, days: int
) -> tuple[dict[str, tuple[float | None, float | None]], dict[str, list[tuple[float, float]]]]:
    today: dict[str, tuple[float | None, float | None]] = {}
    baseline: dict[str, list[tuple[float, float]]] = {}
    for event_date, policy, value, std_error in conn.execute(
        "SELECT event_date, policy, value, std_error FROM tsm.agreement "
        "WHERE metric = %s AND event_date BETWEEN %s AND %s",
        (metric, day - timedelta(days=days), day),
    ):
        if event_date == day:
            today[policy] = (value, std_error)
        elif value is not None:
            baseline.setdefault(policy, []).append((float(value), std_error))
    return today, baseline


def _estimates_by_policy(
    conn: psycopg.Connection, day: date, config: RunConfig
) -> dict[str, tuple[float, float, float, float]]:
    rows = conn.execute(
        "SELECT policy, estimate, std_error, ci_lower, ci_upper FROM tsm.estimates "
        "WHERE event_date = %s AND domain = %s AND " + HEADLINE_SQL,
        (day, DOMAIN_ALL, *config.headline_arrays()),
    ).fetchall()
    return {r[0]: (float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows}


def _estimate_history(
    conn: psycopg.Connection, day: date, config: RunConfig, days: int
) -> dict[tuple[str, str], dict[date, tuple[float, float]]]:
    """(policy, domain) -> {day: (estimate, SE)} for ``day`` and the ``days`` days before it."""
    history: dict[tuple[str, str], dict[date, tuple[float, float]]] = {}
    for event_date, policy, domain, estimate, std_error in conn.execute(
        "SELECT event_date, policy, domain, estimate, std_error FROM tsm.estimates "
        "WHERE event_date BETWEEN %s AND %s AND " + HEADLINE_SQL,
        (day - timedelta(days=days), day, *config.headline_arrays()),
    ):
        history.setdefault((policy, domain), {})[event_date] = (float(estimate), float(std_error))
    return history


def checks_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[CheckResult]:
    """Run the day's checks (:func:`tsmetrics.prevalence_checks.prevalence_checks`, labeler
    agreement and disagreement, pipeline health and risk-score drift); all rows of the day
    written in one transaction."""
    history = _estimate_history(conn, day, config, history_days(config))
    results = prevalence_checks(
        day,
        _estimates_by_policy(conn, day, config),
        _estimates_by_policy(conn, day - timedelta(days=1), config),
        history,
        config,
    )
    agreement_rule = config.rule("agreement")
    results += agreement_checks(
        *_agreement_history(
            conn,
            day,
            str(agreement_rule.get("metric", "krippendorff_alpha")),
            int(agreement_rule.get("baseline_days", 14)),
        ),
        agreement_rule,
    )
    disagreement_rule = config.rule("labeler_disagreement")
    results += disagreement_checks(
        *_agreement_history(
            conn, day, "disagreement_rate", int(disagreement_rule.get("baseline_days", 14))
        ),
        disagreement_rule,
    )
    results += health_checks_day(
        conn,
        day,
        config.policy_names,
        thresholds={
            name: {
                key: value for key, value in config.rule(name).items() if key not in NON_THRESHOLD
            }
            for name in HEALTH_RULE_TEXT
        },
        design_id=[d.design_id for d in config.designs],
    )
    results = [_with_rule(r, config.rule(r.check_name)) for r in results]
    with conn.transaction():
        conn.execute("DELETE FROM tsm.checks WHERE event_date = %s", (day,))
        conn.cursor().executemany(
            "INSERT INTO tsm.checks (event_date, check_name, policy, statistic, threshold, "
            "p_value, outcome, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    day,
                    r.check_name,
                    r.policy,
                    _finite(r.statistic),
                    _finite(r.threshold),
                    _finite(r.p_value),
                    r.outcome,
                    Jsonb(_jsonable(r.details)),
                )
                for r in results
            ],
        )
    conn.commit()
    return results


def _with_rule(result: CheckResult, rule: dict[str, Any]) -> CheckResult:
    """Attach the rule's severity and owner (from the versioned YAML) to a check's details."""
    extra: dict[str, Any] = {key: rule[key] for key in ("severity", "owner") if key in rule}
    return dataclasses.replace(result, details={**result.details, **extra})


def _json_or_none(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out[key] = value
    return out
