"""The label estimation uses for each sampled unit, when several labelers labelled it, and the
labelers' daily confusion matrices.

``estimation.adjudication.method`` selects the rule (registry :data:`ADJUDICATORS`):

* ``primary`` -- the primary labeler's label; the overlap labels feed agreement and the PPI++
  correction only. Units without a primary label are unlabelled (missing).
* ``majority`` -- :func:`tsmetrics.adjudication.majority_vote` over every configured labeler's
  label of the unit. With the usual two labelers every disagreement is a tie, settled by
  ``tie_break``: ``accuracy`` takes the label of the labeler more accurate on gold (its SME
  gold tasks of the last ``labeling.gold.accuracy_window_days`` days, pooled), ``positive``
  counts a tie as violating (biases prevalence up by at most the tie share), ``unresolved``
  leaves the unit unlabelled for that policy.
* ``dawid_skene`` -- :func:`tsmetrics.adjudication.dawid_skene` fitted per day and policy on
  every label of the day's sampled units and gold tasks, gold items clamped to the SME answers
  and kept out of the class priors (``gold_in_priors=False``: SMEs choose gold items, often
  enriched in violations, so they must not pull the prior up), Laplace ``smoothing``; the
  unit's label is its posterior probability of violating (``soft``, the default: estimation
  then uses ``y_i = x_i P(violating | labels)``, unbiased when the model holds; its variance
  treats the posteriors as fixed) or its posterior mode.

A unit left unlabelled for a policy is treated as missing by estimation (dropped and the
labelled units reweighted, as for any missing label), never as "not violating"; the count is
in the estimate's ``adjudication_details`` (``unresolved``).

Confusion matrices, per day, policy and labeler (``tsm.labeler_confusion``): against the SME
answers of the day's gold tasks (``reference = 'gold'``, counts), and against the day's
adjudication (``reference`` = the method): counts against the adjudicated label on the sampled
units for ``primary``/``majority``; for ``dawid_skene`` the model's expected counts
``sum_i P(T_i = k | labels) n_il^(j)`` over the fitted items (sampled units and gold tasks),
whose row-normalisation is the fitted confusion matrix up to the smoothing pseudo-counts.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg

from tsmetrics.adjudication import dawid_skene, majority_vote
from tsmetrics.config import AdjudicationConfig, RunConfig
from tsmetrics.gold import Confusion, gold_answers, gold_confusion

#: One label: (unit id, labeler id, is_violating).
LabelRow = tuple[str, str, bool]


@dataclass(frozen=True)
class DayLabels:
    """The labels adjudication works on, for one policy of one day."""

    policy: str
    sampled: list[LabelRow]  # labels of the day's sampled units
    gold_rows: list[LabelRow]  # labels of the day's gold tasks
    gold: Mapping[str, bool]  # gold task unit id -> SME verdict (this policy)
    primary: str
    labelers: tuple[str, ...]
    #: labeler -> pooled accuracy on gold over the accuracy window (this policy)
    gold_accuracy: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Adjudicated:
    """One policy's adjudicated verdicts (sampled unit id -> P(violating): 0 or 1, or a
    posterior for soft Dawid-Skene labels; absent = unlabelled), the labelers' confusion
    against them, and what to record with the estimate."""

    policy: str
    method: str
    verdicts: Mapping[str, float]
    confusion: list[Confusion]
    details: dict[str, Any]


def _confusion_against(
    rows: Sequence[LabelRow], reference: Mapping[str, float], policy: str, labelers: Sequence[str]
) -> list[Confusion]:
    cells: dict[str, list[float]] = {j: [0.0, 0.0, 0.0, 0.0] for j in labelers}
    for unit, labeler, said in rows:
        value = reference.get(unit)
        if value is None or labeler not in cells:
            continue
        truth = value > 0.5
        index = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}
        cells[labeler][index[(said, truth)]] += 1.0
    return [Confusion(j, policy, *cells[j]) for j in labelers if sum(cells[j]) > 0]


def _summary(labels: DayLabels, verdicts: Mapping[str, float]) -> dict[str, Any]:
    per_unit: dict[str, set[str]] = {}
    primary: dict[str, bool] = {}
    for unit, labeler, said in labels.sampled:
        per_unit.setdefault(unit, set()).add(labeler)
        if labeler == labels.primary:
            primary[unit] = said
    return {
        "units": len(per_unit),
        "multi_labeled": sum(1 for s in per_unit.values() if len(s) > 1),
        "unresolved": sum(1 for u in per_unit if u not in verdicts),
        "changed_vs_primary": sum(
            1 for u, v in verdicts.items() if u in primary and primary[u] != (v > 0.5)
        ),
        "positive": sum(1 for v in verdicts.values() if v > 0.5),
        "expected_positive": round(float(sum(verdicts.values())), 6),
    }


def adjudicate_primary(labels: DayLabels, config: AdjudicationConfig) -> Adjudicated:
    """The primary labeler's label."""
    verdicts = {u: float(said) for u, j, said in labels.sampled if j == labels.primary}
    return Adjudicated(
        labels.policy,
        "primary",
        verdicts,
        _confusion_against(labels.sampled, verdicts, labels.policy, labels.labelers),
        _summary(labels, verdicts),
    )


def adjudicate_majority(labels: DayLabels, config: AdjudicationConfig) -> Adjudicated:
    """Majority vote over the unit's labels, ties by ``config.tie_break``."""
    if not labels.sampled:
        return adjudicate_primary(labels, config)
    units, labelers, said = zip(*labels.sampled, strict=True)
    accuracy: dict[Hashable, float] = {j: a for j, a in labels.gold_accuracy.items()}
    result = majority_vote(
        (list(units), list(labelers), list(said)),
        categories=(False, True),
        tie_break=config.tie_break,  # type: ignore[arg-type]
        positive_label=True,
        labeler_accuracy=accuracy or None,
    )
    verdicts = {
        str(u): float(bool(v))
        for u, v, ok in zip(result.items, result.labels, result.resolved, strict=True)
        if ok
    }
    details = _summary(labels, verdicts)
    details.update(
        tie_break=config.tie_break,
        ties=int(np.asarray(result.tied).sum()),
        gold_accuracy={j: round(a, 6) for j, a in labels.gold_accuracy.items()},
    )
    return Adjudicated(
        labels.policy,
        "majority",
        verdicts,
        _confusion_against(labels.sampled, verdicts, labels.policy, labels.labelers),
        details,
    )


def adjudicate_dawid_skene(labels: DayLabels, config: AdjudicationConfig) -> Adjudicated:
    """Posterior mode of a Dawid-Skene model on the day's labels, gold clamped, gold kept out
    of the priors; confusion = the model's expected counts."""
    rows = [*labels.sampled, *labels.gold_rows]
    if not rows:
        return adjudicate_primary(labels, config)
    labelled = {u for u, _, _ in rows}
    gold: dict[Hashable, Hashable] = {u: v for u, v in labels.gold.items() if u in labelled}
    units, labelers, said = zip(*rows, strict=True)
    fit = dawid_skene(
        (list(units), list(labelers), list(said)),
        categories=(False, True),
        gold=gold or None,
        smoothing=config.smoothing,
        tol=1e-8,
        max_iter=5000,
        gold_in_priors=False,
    )
    sampled_units = {u for u, _, _ in labels.sampled}
    soft = np.asarray(fit.posterior)[:, 1]
    verdicts: dict[str, float] = {
        str(u): float(p) if config.soft else float(p > 0.5)
        for u, p in zip(fit.items, soft, strict=True)
        if u in sampled_units
    }
    # expected counts: each label weighted by its item's posterior of each true class
    item_index = {u: i for i, u in enumerate(fit.items)}
    posterior = np.asarray(fit.posterior)
    cells: dict[str, np.ndarray] = {j: np.zeros(4) for j in labels.labelers}
    for unit, labeler, answer in rows:
        p_true = posterior[item_index[unit], 1]
        cell = cells.setdefault(labeler, np.zeros(4))
        if answer:
            cell[0] += p_true  # TP
            cell[1] += 1 - p_true  # FP
        else:
            cell[2] += p_true  # FN
            cell[3] += 1 - p_true  # TN
    confusion = [
        Confusion(j, labels.policy, *(float(x) for x in cells[j]))
        for j in cells
        if cells[j].sum() > 0
    ]
    details = _summary(labels, verdicts)
    details.update(
        converged=bool(fit.converged),
        n_iter=int(fit.n_iter),
        prior_violating=float(fit.priors[1]),
        gold_items=len(gold),
        smoothing=config.smoothing,
        soft=config.soft,
    )
    return Adjudicated(labels.policy, "dawid_skene", verdicts, confusion, details)


#: adjudication method -> rule
ADJUDICATORS: dict[str, Callable[[DayLabels, AdjudicationConfig], Adjudicated]] = {
    "primary": adjudicate_primary,
    "majority": adjudicate_majority,
    "dawid_skene": adjudicate_dawid_skene,
}


def day_labels(conn: psycopg.Connection, day: date, config: RunConfig) -> dict[str, DayLabels]:
    """Per policy: the day's labels of sampled units (of any of the day's designs: the shared
    sample and the per-policy samples) and of gold tasks, by the configured labelers, the SME
    answers, and each labeler's pooled gold accuracy over the window."""
    labelers = tuple(c.labeler_id for c in config.labelers)
    rows = conn.execute(
        """
        SELECT l.policy, l.unit_id, l.labeler_id, l.is_violating, t.purpose = 'gold' AS gold
        FROM tsm.labels AS l
        LEFT JOIN tsm.label_tasks AS t
            ON t.event_date = l.event_date AND t.unit_id = l.unit_id AND t.labeler_id = l.labeler_id
        WHERE l.event_date = %(day)s AND l.labeler_id = ANY(%(labelers)s)
            AND (t.purpose = 'gold' OR EXISTS (
                SELECT 1 FROM tsm.samples AS s
                WHERE s.event_date = l.event_date AND s.design_id = ANY(%(designs)s)
                    AND s.unit_id = l.unit_id))
        ORDER BY l.policy, l.unit_id, l.labeler_id
        """,
        {
            "day": day,
            "labelers": list(labelers),
            "designs": [d.design_id for d in config.designs],
        },
    ).fetchall()
    answers = gold_answers(conn, day)
    window = config.gold.accuracy_window_days
    accuracy: dict[str, dict[str, float]] = {}
    for c in gold_confusion(conn, day - timedelta(days=window - 1), day):
        if c.accuracy is not None:
            accuracy.setdefault(c.policy, {})[c.labeler_id] = c.accuracy
    conn.commit()
    out = {}
    for policy in config.policy_names:
        mine = [r for r in rows if r[0] == policy]
        out[policy] = DayLabels(
            policy,
            [(r[1], r[2], bool(r[3])) for r in mine if not r[4]],
            [(r[1], r[2], bool(r[3])) for r in mine if r[4]],
            {u: v for (u, p), v in answers.items() if p == policy},
            config.primary_labeler.labeler_id,
            labelers,
            accuracy.get(policy, {}),
        )
    return out


def adjudicate_day(
    conn: psycopg.Connection, day: date, config: RunConfig
) -> dict[str, Adjudicated]:
    """The configured adjudication of every policy's labels for ``day``."""
    rule = ADJUDICATORS[config.adjudication.method]
    return {
        p: rule(labels, config.adjudication) for p, labels in day_labels(conn, day, config).items()
    }


def record_confusion(
    conn: psycopg.Connection, day: date, adjudicated: Mapping[str, Adjudicated]
) -> list[dict[str, Any]]:
    """Replace the day's ``tsm.labeler_confusion`` rows: gold, and the adjudication's."""
    rows = [c.to_row(day, "gold") for c in gold_confusion(conn, day, day)]
    for result in adjudicated.values():
        rows += [c.to_row(day, result.method) for c in result.confusion]
    columns = list(rows[0]) if rows else []
    with conn.transaction():
        conn.execute("DELETE FROM tsm.labeler_confusion WHERE event_date = %s", (day,))
        if rows:
            conn.cursor().executemany(
                f"INSERT INTO tsm.labeler_confusion ({', '.join(columns)}) "
                f"VALUES ({', '.join(f'%({c})s' for c in columns)})",
                rows,
            )
    conn.commit()
    return rows


def estimate_columns(result: Adjudicated | None, method: str) -> dict[str, Any]:
    """The ``adjudication`` and ``adjudication_details`` values of an estimate row (plain
    values: the row is also the task's XCom; the insert wraps the details as JSON)."""
    return {
        "adjudication": method,
        "adjudication_details": None if result is None else result.details,
    }


__all__ = [
    "ADJUDICATORS",
    "Adjudicated",
    "DayLabels",
    "adjudicate_dawid_skene",
    "adjudicate_day",
    "adjudicate_majority",
    "adjudicate_primary",
    "day_labels",
    "estimate_columns",
    "record_confusion",
]
