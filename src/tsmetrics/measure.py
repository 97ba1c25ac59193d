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
from psycopg.types.json import Jsonb
from scipy import stats

from tsmetrics.agreement import cohen_kappa, confusion, gwet_ac1, krippendorff_alpha_nominal
from tsmetrics.checks import CheckResult, day_over_day_check, limit_check
from tsmetrics.config import PRIMARY_ESTIMATOR, RunConfig
from tsmetrics.drift import cusum, prevalence_drift_checks
from tsmetrics.estimation import PrevalenceEstimate, hansen_hurwitz_prevalence
from tsmetrics.gamma_interval import GAMMA_METHOD, mean_uncertain_weight
from tsmetrics.health import HEALTH_RULE_TEXT, health_checks_day
from tsmetrics.label_adjudication import adjudicate_day, estimate_columns, record_confusion
from tsmetrics.model_assisted import ppi_prevalence_poisson
from tsmetrics.pooling import DayRecord, classify_cell, pool_days
from tsmetrics.sampling import horvitz_thompson_prevalence

log = logging.getLogger(__name__)

DOMAIN_ALL = "all"
NON_THRESHOLD = ("severity", "owner", "escalate_ratio")  # rule keys that are not thresholds


def _draws_with_labels(conn: psycopg.Connection, day: date, config: RunConfig) -> dict[str, Any]:
    rows = conn.execute(
        """
        SELECT s.draw_no, s.unit_id, s.impressions, s.selection_prob, d.total_impressions,
               u.surface, l.policy, l.is_violating, d.method
        FROM tsm.samples AS s
        JOIN tsm.sample_designs AS d USING (event_date, design_id)
        JOIN tsm.units AS u ON u.event_date = s.event_date AND u.unit_id = s.unit_id
        LEFT JOIN tsm.labels AS l
            ON l.event_date = s.event_date AND l.unit_id = s.unit_id AND l.labeler_id = %s
        WHERE s.event_date = %s AND s.design_id = %s
        ORDER BY s.draw_no, l.policy
        """,
        (config.primary_labeler.labeler_id, day, config.sampling.design_id),
    ).fetchall()
    if not rows:
        raise ValueError(f"no sample for {day} under design {config.sampling.design_id!r}")
    draws: dict[int, tuple[str, int, float, str]] = {}
    verdicts: dict[tuple[int, str], bool] = {}
    for draw_no, unit_id, impressions, prob, _total, surface, policy, violating, _m in rows:
        draws[draw_no] = (unit_id, int(impressions), float(prob), surface)
        if policy is not None:
            verdicts[(draw_no, policy)] = bool(violating)
    domain_totals = dict(
        conn.execute(
            "SELECT 'surface=' || surface, sum(impressions) FROM tsm.units "
            "WHERE event_date = %s GROUP BY surface",
            (day,),
        ).fetchall()
    )
    domain_totals[DOMAIN_ALL] = int(rows[0][4])
    return {
        "draws": draws,
        "verdicts": verdicts,
        "domain_totals": domain_totals,
        "method": rows[0][8],
    }


def estimate_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[dict[str, Any]]:
    """Impression-weighted prevalence per policy, overall and per surface domain.

    The estimator follows the day's recorded design: Horvitz-Thompson for Poisson PPS
    (:func:`tsmetrics.sampling.horvitz_thompson_prevalence`, ``selection_prob`` = ``pi_i``),
    Hansen-Hurwitz for PPS with replacement (``selection_prob`` = single-draw ``p_i``).
    Domain estimates (``surface=S``) use every sampled unit, with ``y = 0`` outside the
    domain, and the domain's exactly known impressions ``X_S`` as denominator: the design
    variance over the whole sample is then the correct domain variance (not a naive subset's).
    Draws whose unit has no valid label for a policy are left out of that policy's estimate
    (and counted: the label-completeness check reports them); they are never "not violating".
    Under Poisson sampling the labelled units are then treated as a Bernoulli subsample with
    the observed labelling rate ``r = labelled / sampled`` (inclusion probabilities
    ``pi_i r``): unbiased when labels are missing at random (a cap reached, an outage), which
    the completeness check makes visible when they are not complete. A unit's label is the
    configured adjudication of its labels (:mod:`tsmetrics.label_adjudication`, recorded in
    ``adjudication``); the labelers' confusion matrices go to ``tsm.labeler_confusion``.
    """
    adjudicated = adjudicate_day(conn, day, config)
    data = _draws_with_labels(conn, day, config)
    data["primary_verdicts"] = data["verdicts"]  # the PPI++ correction's predictions
    data["verdicts"] = {
        (draw_no, policy): result.verdicts[draw[0]]
        for policy, result in adjudicated.items()
        for draw_no, draw in data["draws"].items()
        if draw[0] in result.verdicts
    }
    draws, verdicts = data["draws"], data["verdicts"]
    rows = []
    for policy in config.policy_names:
        labeled = [(k, v) for k, v in draws.items() if (k, policy) in verdicts]
        if len(labeled) < 2:
            log.warning(
                "policy %s on %s: only %d labeled draws, no estimate", policy, day, len(labeled)
            )
            continue
        impressions = np.array([v[1] for _, v in labeled], dtype=float)
        # P(violating) per draw: 0 or 1, or a posterior (soft Dawid-Skene labels)
        violating = np.array([float(verdicts[(k, policy)]) for k, _ in labeled], dtype=float)
        probs = np.array([v[2] for _, v in labeled], dtype=float)
        if data["method"] == "poisson_pps":
            probs = probs * (len(labeled) / len(draws))
        domains = np.array(["surface=" + v[3] for _, v in labeled])
        unit_ids = np.array([v[0] for _, v in labeled])
        for domain, total in sorted(data["domain_totals"].items()):
            in_domain = np.ones(len(labeled), bool) if domain == DOMAIN_ALL else domains == domain
            if not in_domain.any() or total <= 0:
                continue
            result = _estimate(
                data["method"],
                np.where(in_domain, impressions * violating, 0.0),
                impressions,
                probs,
                in_domain,
                float(total),
                config,
                unit_ids,
            )
            # positive draws: labelled violating (a soft label: more likely than not)
            positive = in_domain & (impressions * violating > 0) & (violating >= 0.5)
            result = dataclasses.replace(result, n_positive_draws=int(positive.sum()))
            rows.append(
                _estimate_row(day, config, policy, domain, result, int(total), data["method"])
            )
    _publication(conn, day, config, rows)
    for row in rows:
        row.update(estimate_columns(adjudicated.get(row["policy"]), config.adjudication.method))
    if config.label_correction:
        rows.extend(
            {**row, **estimate_columns(None, "primary")}
            for row in _label_corrected_rows(conn, day, config, data)
        )
    with conn.transaction():
        conn.execute(
            "DELETE FROM tsm.estimates WHERE event_date = %s AND design_id = %s",
            (day, config.sampling.design_id),
        )
        conn.cursor().executemany(
            """
            INSERT INTO tsm.estimates (
                event_date, design_id, policy, domain, estimator, estimate, std_error, ci_lower,
                ci_upper, ci_method, confidence, n_draws, n_distinct_units, n_positive_draws,
                effective_sample_size, total_impressions, cell_status, cell_reason, published,
                adjudication, adjudication_details)
            VALUES (%(event_date)s, %(design_id)s, %(policy)s, %(domain)s, %(estimator)s,
                %(estimate)s, %(std_error)s, %(ci_lower)s, %(ci_upper)s, %(ci_method)s,
                %(confidence)s, %(n_draws)s, %(n_distinct_units)s, %(n_positive_draws)s,
                %(effective_sample_size)s, %(total_impressions)s, %(cell_status)s,
                %(cell_reason)s, %(published)s, %(adjudication)s, %(adjudication_details)s)
            """,
            [
                {**row, "adjudication_details": _json_or_none(row.get("adjudication_details"))}
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
    too small, suppressed to its upper bound; a day without violations shows its upper bound."""
    rule = config.small_cells
    window = int(rule["pool_days"])
    history: dict[tuple[str, str], list[DayRecord]] = {}
    if window > 1:
        past = conn.execute(
            "SELECT event_date, policy, domain, estimate, std_error, total_impressions, "
            "n_draws, n_positive_draws FROM tsm.estimates WHERE design_id = %s AND "
            "estimator = %s AND event_date < %s AND event_date > %s",
            (config.sampling.design_id, config.estimator, day, day - timedelta(days=window)),
        ).fetchall()
        for d, policy, domain, est, se, total, n, k in past:
            history.setdefault((policy, domain), []).append(
                DayRecord(
                    max(float(est), 0.0),
                    float(se),
                    float(total),
                    int(n),
                    int(k),
                    day=d,
                    policy=policy,
                    domain=domain,
                )
            )
    for row in rows:
        today = DayRecord.from_row({**row, "estimate": max(float(row["estimate"]), 0.0)})
        records = [*history.get((row["policy"], row["domain"]), []), today]
        pooled = pool_days(records, confidence=config.confidence) if len(records) > 1 else None
        status = classify_cell(
            _RowEstimate(row),
            rule["min_effective_n"],
            rule["max_relative_half_width"],
            pooled=pooled,
            window_label=f"{len(records)}-day pooled",
        )
        row.update(cell_status=status.status, cell_reason=status.reason, published=status.display)


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
    conn: psycopg.Connection, day: date, config: RunConfig, data: dict[str, Any]
) -> list[dict[str, Any]]:
    """PPI++ label-error correction next to the primary estimate (``domain = all``).

    The primary labeler (an LLM) labels every sampled unit; the overlap labeler (humans or gold,
    treated as the truth) labels the overlap subsample: every certainty unit, and the others by
    a hash-selected Bernoulli subsample with probability ``overlap.fraction`` times the overlap
    labeler's completion rate among them. Writes
    ``ppi_corrected`` (:func:`tsmetrics.model_assisted.ppi_prevalence_poisson`, tuned lambda)
    and ``human_only`` (lambda = 0); the primary row is the naive estimate. Poisson designs only.
    """
    if data["method"] != "poisson_pps":
        log.warning("label correction needs the Poisson design; skipped for %s", data["method"])
        return []
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
        (config.sampling.design_id, day, config.overlap_labeler.labeler_id),
    ).fetchone()
    n_tasks = int(tasks[0]) if tasks else 0
    draws, verdicts = data["draws"], data["primary_verdicts"]
    total = data["domain_totals"][DOMAIN_ALL]
    rows = []
    for policy in config.policy_names:
        keys = [k for k in draws if (k, policy) in verdicts]
        pi = np.array([draws[k][2] for k in keys], dtype=float)
        validated = np.array([(draws[k][0], policy) in human for k in keys], dtype=bool)
        uncertain = pi < 1.0
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
            row = _estimate_row(
                day, config, policy, DOMAIN_ALL, estimate, int(total), "poisson_pps"
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


def _estimate(
    method: str,
    violating_impressions: np.ndarray,
    impressions: np.ndarray,
    probs: np.ndarray,
    in_domain: np.ndarray,
    total: float,
    config: RunConfig,
    unit_ids: np.ndarray,
) -> PrevalenceEstimate:
    if method == "poisson_pps":
        weight = None
        if config.ci_method == GAMMA_METHOD:
            weight = mean_uncertain_weight(impressions[in_domain], probs[in_domain], total)
        return horvitz_thompson_prevalence(
            violating_impressions,
            probs,
            total,
            confidence=config.confidence,
            ci_method=config.ci_method,
            event_weight=weight,
        )
    ci_method = "wilson_kg" if config.ci_method == GAMMA_METHOD else config.ci_method
    return hansen_hurwitz_prevalence(
        violating_impressions,
        probs,
        total,
        confidence=config.confidence,
        ci_method=ci_method,
        unit_ids=unit_ids,
    )


def _estimate_row(
    day: date,
    config: RunConfig,
    policy: str,
    domain: str,
    result: PrevalenceEstimate,
    total: int,
    method: str,
) -> dict[str, Any]:
    return {
        "event_date": day,
        "design_id": config.sampling.design_id,
        "policy": policy,
        "domain": domain,
        "estimator": PRIMARY_ESTIMATOR[method],
        "estimate": result.estimate,
        "std_error": result.std_error,
        "ci_lower": result.ci_lower,
        "ci_upper": result.ci_upper,
        "ci_method": result.ci_method,
        "confidence": result.confidence,
        "n_draws": result.n_draws,
        "n_distinct_units": result.n_distinct_units,
        "n_positive_draws": result.n_positive_draws,
        "effective_sample_size": result.effective_sample_size,
        "total_impressions": total,
    }


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


def disagreement_checks(
    today: dict[str, tuple[float | None, float | None]],
    baseline: dict[str, list[tuple[float, float]]],
    rule: dict[str, Any],
) -> list[CheckResult]:
    """Per policy: the primary-versus-overlap (LLM-versus-human) disagreement rate rising above
    its trailing baseline mean, ``z = (d_t - mean_b) / sqrt(SE_t^2 + sum SE_i^2 / k^2)`` above
    ``z_{1-alpha}`` (one-sided), or above the ceiling ``max_value``. Skipped without baseline
    days and under the ceiling."""
    ceiling, alpha = float(rule.get("max_value", 0.05)), float(rule.get("rise_alpha", 0.001))
    results = []
    for policy, (value, std_error) in sorted(today.items()):
        if value is None:
            continue
        history = [b for b in baseline.get(policy, []) if b[1] is not None]
        p_value = None
        if history and std_error is not None:
            mean = float(np.mean([b[0] for b in history]))
            variance = std_error**2 + sum(b[1] ** 2 for b in history) / len(history) ** 2
            if variance > 0:
                p_value = float(stats.norm.sf((value - mean) / np.sqrt(variance)))
        breach = value > ceiling or (p_value is not None and p_value < alpha)
        results.append(
            CheckResult(
                "labeler_disagreement",
                policy,
                value,
                ceiling,
                p_value,
                "breach" if breach else "pass",
                {"baseline_days": len(history)},
            )
        )
    return results


def agreement_checks(
    today: dict[str, tuple[float | None, float | None]],
    baseline: dict[str, list[tuple[float, float]]],
    rule: dict[str, Any],
) -> list[CheckResult]:
    """Per policy: agreement (``rule['metric']``, default Krippendorff's alpha) under the floor
    ``min_value``, or a significant drop against the trailing baseline mean,
    ``z = (a_t - mean_b) / sqrt(SE_t^2 + sum SE_i^2 / k^2)`` below ``-z_{1-alpha}``.
    An undefined value (every label the same: no disagreement possible) is skipped."""
    floor, alpha = float(rule.get("min_value", 0.6)), float(rule.get("drop_alpha", 0.001))
    results = []
    for policy, (value, std_error) in sorted(today.items()):
        if value is None:
            results.append(
                CheckResult(
                    "agreement",
                    policy,
                    float("nan"),
                    floor,
                    None,
                    "skipped",
                    {"reason": "agreement undefined (no variation in labels)"},
                )
            )
            continue
        history = [b for b in baseline.get(policy, []) if b[1] is not None]
        p_value = None
        if history and std_error is not None:
            mean = float(np.mean([b[0] for b in history]))
            variance = std_error**2 + sum(b[1] ** 2 for b in history) / len(history) ** 2
            if variance > 0:
                p_value = float(stats.norm.cdf((value - mean) / np.sqrt(variance)))
        breach = value < floor or (p_value is not None and p_value < alpha)
        results.append(
            CheckResult(
                "agreement",
                policy,
                value,
                floor,
                p_value,
                "breach" if breach else "pass",
                {"metric": rule.get("metric", "krippendorff_alpha"), "baseline_days": len(history)},
            )
        )
    return results


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
        "WHERE event_date = %s AND design_id = %s AND domain = %s AND estimator = %s",
        (day, config.sampling.design_id, DOMAIN_ALL, config.estimator),
    ).fetchall()
    return {r[0]: (float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows}


def _estimate_history(
    conn: psycopg.Connection, day: date, config: RunConfig, days: int
) -> dict[tuple[str, str], dict[date, tuple[float, float]]]:
    """(policy, domain) -> {day: (estimate, SE)} for ``day`` and the ``days`` days before it."""
    history: dict[tuple[str, str], dict[date, tuple[float, float]]] = {}
    for event_date, policy, domain, estimate, std_error in conn.execute(
        "SELECT event_date, policy, domain, estimate, std_error FROM tsm.estimates "
        "WHERE event_date BETWEEN %s AND %s AND design_id = %s AND estimator = %s",
        (day - timedelta(days=days), day, config.sampling.design_id, config.estimator),
    ):
        history.setdefault((policy, domain), {})[event_date] = (float(estimate), float(std_error))
    return history


def baseline_change_checks(
    day: date, history: dict[tuple[str, str], dict[date, tuple[float, float]]], rule: dict[str, Any]
) -> list[CheckResult]:
    """Today against the trailing baseline for every policy x surface cell, BH across cells."""
    baseline_days = int(rule.get("baseline_days", 14))
    cells = sorted(key for key, series in history.items() if key[1] != DOMAIN_ALL and day in series)
    if not cells:
        return []
    previous = [day - timedelta(days=i) for i in range(baseline_days, 0, -1)]
    nan = (float("nan"), float("nan"))
    today = np.array([history[c][day] for c in cells])
    baseline = np.array([[history[c].get(d, nan) for d in previous] for c in cells])
    results = prevalence_drift_checks(
        cells,
        today[:, 0],
        today[:, 1],
        baseline[:, :, 0],
        baseline[:, :, 1],
        q=float(rule.get("q", 0.001)),
        alternative=rule.get("alternative", "greater"),
        min_baseline_days=int(rule.get("min_baseline_days", 3)),
    )
    return [
        dataclasses.replace(r, policy=f"{cell[0]}|{cell[1]}")
        for r, cell in zip(results, cells, strict=True)
    ]


def cusum_checks(
    day: date,
    history: dict[tuple[str, str], dict[date, tuple[float, float]]],
    policies: list[str],
    rule: dict[str, Any],
) -> list[CheckResult]:
    """Tabular CUSUM per policy on ``z_t = (P_t - mu0) / sigma0`` over the last ``window_days``
    days; ``mu0`` and ``sigma0`` come from the ``baseline_days`` days before the window (their
    mean, and the root mean square of their standard errors). A common in-control ``sigma0``,
    not each day's own SE: a day's estimated SE grows with its estimate, so dividing by it
    makes low days look like large falls (false alarms found by ``tsmetrics.check_simulation``).
    Recomputed from the stored estimates each run (stateless, so re-runs and backfills agree)."""
    window, baseline_days = int(rule.get("window_days", 14)), int(rule.get("baseline_days", 28))
    k, h = float(rule.get("k", 0.5)), float(rule.get("h", 5.0))
    min_baseline = int(rule.get("min_baseline_days", 7))
    results = []
    for policy in policies:
        series = history.get((policy, DOMAIN_ALL), {})
        window_days = [day - timedelta(days=i) for i in range(window - 1, -1, -1)]
        before = [
            series[d]
            for d in (window_days[0] - timedelta(days=i) for i in range(1, baseline_days + 1))
            if d in series
        ]
        sigma0 = float(np.sqrt(np.mean([b[1] ** 2 for b in before]))) if before else 0.0
        reason = None
        if len(before) < min_baseline:
            reason = f"{len(before)} baseline days (< {min_baseline})"
        elif day not in series:
            reason = "no estimate today"
        elif sigma0 <= 0:
            reason = "baseline standard errors are all 0 (no positive draws)"
        if reason is not None:
            results.append(
                CheckResult("cusum", policy, float("nan"), h, None, "skipped", {"reason": reason})
            )
            continue
        mu0 = float(np.mean([b[0] for b in before]))
        observed = [d for d in window_days if d in series]
        z = (np.array([series[d][0] for d in observed]) - mu0) / sigma0
        chart = cusum(z, k=k, h=h)
        statistic = float(max(chart.upper[-1], chart.lower[-1]))
        results.append(
            CheckResult(
                "cusum",
                policy,
                statistic,
                h,
                None,
                "breach" if bool(chart.signals[-1]) else "pass",
                {
                    "mu0": mu0,
                    "sigma0": sigma0,
                    "k": k,
                    "days": len(observed),
                    "upper": float(chart.upper[-1]),
                    "lower": float(chart.lower[-1]),
                },
            )
        )
    return results


def prevalence_checks(
    day: date,
    today: dict[str, tuple[float, float, float, float]],
    yesterday: dict[str, tuple[float, float, float, float]],
    history: dict[tuple[str, str], dict[date, tuple[float, float]]],
    config: RunConfig,
) -> list[CheckResult]:
    """The prevalence checks of ``day`` (limit, day-over-day rise, baseline change, CUSUM) from
    per-policy (estimate, SE, CI lower, CI upper) of today and yesterday and the estimate
    history; pure, shared by :func:`checks_day` and :mod:`tsmetrics.check_simulation`."""
    results: list[CheckResult] = []
    for policy in config.policies:
        if policy.name not in today:
            continue
        estimate, std_error, ci_lower, ci_upper = today[policy.name]
        results.append(limit_check(policy.name, estimate, ci_lower, ci_upper, policy.limit))
        previous = yesterday.get(policy.name)
        results.append(
            day_over_day_check(
                policy.name,
                estimate,
                std_error,
                None if previous is None else previous[0],
                None if previous is None else previous[1],
                alpha=config.rise_alpha,
            )
        )
    results += baseline_change_checks(day, history, config.rule("baseline_change"))
    results += cusum_checks(day, history, config.policy_names, config.rule("cusum"))
    return results


def checks_day(conn: psycopg.Connection, day: date, config: RunConfig) -> list[CheckResult]:
    """Run the day's checks (limit, day-over-day, baseline change, CUSUM, pipeline health and
    risk-score drift); all rows of the day written in one transaction."""
    baseline_rule, cusum_rule = config.rule("baseline_change"), config.rule("cusum")
    history = _estimate_history(
        conn,
        day,
        config,
        max(
            int(baseline_rule.get("baseline_days", 14)),
            int(cusum_rule.get("baseline_days", 28)) + int(cusum_rule.get("window_days", 14)),
        ),
    )
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
        design_id=config.sampling.design_id,
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
