"""Estimates of one design of a day: read its draws with their labels (unit and component
verdicts) from the warehouse, run the design's registered estimator (:mod:`tsmetrics.designs`)
for each of its policies, levels and domains, and shape the ``tsm.estimates`` rows.

Sample-sized work (the design's selected units), called by :func:`tsmetrics.measure.estimate_day`.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import date
from typing import Any

import numpy as np
import psycopg

from tsmetrics.config import RunConfig, SamplingConfig
from tsmetrics.designs import LabelledSample, design_of, estimator_name
from tsmetrics.estimation import PrevalenceEstimate

log = logging.getLogger(__name__)

DOMAIN_ALL = "all"


def draws_with_labels(
    conn: psycopg.Connection, day: date, config: RunConfig, design: SamplingConfig
) -> dict[str, Any]:
    """The design's draws with the primary labeler's verdicts: per (draw, policy) whether the
    unit violates and, when the labeler gave component verdicts, the impressions of its
    violating components (summed in the warehouse from ``tsm.raw_components``)."""
    rows = conn.execute(
        """
        SELECT s.draw_no, s.unit_id, s.impressions, s.selection_prob, d.total_impressions,
               u.surface, l.policy, l.is_violating, d.method, s.stratum, d.params,
               cv.impressions
        FROM tsm.samples AS s
        JOIN tsm.sample_designs AS d USING (event_date, design_id)
        JOIN tsm.units AS u ON u.event_date = s.event_date AND u.unit_id = s.unit_id
        LEFT JOIN tsm.labels AS l
            ON l.event_date = s.event_date AND l.unit_id = s.unit_id AND l.labeler_id = %s
        LEFT JOIN LATERAL (
            SELECT coalesce(sum(c.impressions), 0) AS impressions
            FROM tsm.raw_components AS c
            WHERE c.event_date = s.event_date AND c.interaction_id = s.unit_id
                AND c.component_id = ANY(l.violating_components)
        ) AS cv ON l.violating_components IS NOT NULL
        WHERE s.event_date = %s AND s.design_id = %s
        ORDER BY s.draw_no, l.policy
        """,
        (config.primary_labeler.labeler_id, day, design.design_id),
    ).fetchall()
    if not rows:
        raise ValueError(f"no sample for {day} under design {design.design_id!r}")
    draws: dict[int, tuple[str, int, float, str, int]] = {}
    verdicts: dict[tuple[int, str], bool] = {}
    components: dict[tuple[int, str], float] = {}
    for row in rows:
        draw_no, unit_id, impressions, prob, _total, surface, policy, violating = row[:8]
        draws[draw_no] = (unit_id, int(impressions), float(prob), surface, int(row[9] or 0))
        if policy is not None:
            verdicts[(draw_no, policy)] = bool(violating)
            if row[11] is not None:
                components[(draw_no, policy)] = float(row[11])
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
        "components": components,
        "domain_totals": domain_totals,
        "method": rows[0][8],
        "params": rows[0][10] or {},
    }


#: Levels of prevalence estimated (``tsm.estimates.level``): units (a unit violates when any
#: component does; ``y_i = x_i v_i``) and components (``y_i`` = impressions of the unit's
#: violating components). Both over the known total impressions of the day (or domain).
LEVELS = ("unit", "component")


def design_rows(
    day: date, config: RunConfig, design: SamplingConfig, data: dict[str, Any]
) -> list[dict[str, Any]]:
    """Unit- and component-level rows of one design, for each of its policies and domains."""
    draws = data["draws"]
    estimator_design = design_of(data["method"])
    rows = []
    for policy in config.design_policies(design):
        for level in LEVELS:
            values = data["verdicts"] if level == "unit" else data["components"]
            labeled = [(k, v) for k, v in draws.items() if (k, policy) in values]
            if len(labeled) < 2:
                if level == "unit" or data["components"]:
                    log.warning(
                        "policy %s (%s level) on %s: only %d labeled draws, no estimate",
                        policy,
                        level,
                        day,
                        len(labeled),
                    )
                continue
            impressions = np.array([v[1] for _, v in labeled], dtype=float)
            if level == "unit":
                # P(violating) per draw: 0 or 1, or a posterior (soft Dawid-Skene labels)
                violating = np.array([float(values[(k, policy)]) for k, _ in labeled])
                y = impressions * violating
            else:
                violating = np.array([values[(k, policy)] > 0 for k, _ in labeled], dtype=float)
                y = np.array([values[(k, policy)] for k, _ in labeled], dtype=float)
            sample = LabelledSample(
                impressions,
                np.array([v[2] for _, v in labeled], dtype=float),
                np.array([v[0] for _, v in labeled]),
                np.array([v[4] for _, v in labeled], dtype=np.int64),
                len(draws),
                data["params"],
            )
            domains = np.array(["surface=" + v[3] for _, v in labeled])
            for domain, total in sorted(data["domain_totals"].items()):
                in_domain = (
                    np.ones(len(labeled), bool) if domain == DOMAIN_ALL else domains == domain
                )
                if not in_domain.any() or total <= 0:
                    continue
                try:
                    result = estimator_design.estimate(
                        sample, np.where(in_domain, y, 0.0), in_domain, float(total), config
                    )
                except ValueError as error:  # e.g. a stratum left without labels
                    log.warning("policy %s (%s) %s on %s: %s", policy, level, domain, day, error)
                    continue
                # positive draws: labelled violating (a soft label: more likely than not)
                positive = in_domain & (y > 0) & (violating >= 0.5)
                result = dataclasses.replace(result, n_positive_draws=int(positive.sum()))
                rows.append(
                    estimate_row(
                        day, design, policy, domain, result, int(total), data["method"], level
                    )
                )
    return rows


def estimate_row(
    day: date,
    design: SamplingConfig,
    policy: str,
    domain: str,
    result: PrevalenceEstimate,
    total: int,
    method: str,
    level: str,
) -> dict[str, Any]:
    return {
        "event_date": day,
        "design_id": design.design_id,
        "policy": policy,
        "domain": domain,
        "estimator": estimator_name(method, level),
        "level": level,
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
        "event_weight": result.event_weight,
    }
