"""Tests of tsmetrics.label_adjudication: each rule on small hand-made cases, a simulation with
known truth of the estimate each rule gives (bias against the estimate with true labels), and
the warehouse path (estimate_day records the adjudication and the labelers' confusion)."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from typing import Any

import numpy as np
import psycopg
import pytest

from tsmetrics.config import AdjudicationConfig, load_config
from tsmetrics.label_adjudication import (
    ADJUDICATORS,
    DayLabels,
    adjudicate_dawid_skene,
    adjudicate_majority,
    adjudicate_primary,
)
from tsmetrics.sampling import horvitz_thompson_prevalence

A, B = "llm", "human"


def _labels(sampled: list[tuple[str, str, bool]], **change: Any) -> DayLabels:
    base = DayLabels("adult", sampled, [], {}, A, (A, B))
    return dataclasses.replace(base, **change)


def test_primary_takes_the_primary_label_and_scores_the_other_against_it() -> None:
    result = adjudicate_primary(
        _labels([("u1", A, True), ("u1", B, False), ("u2", A, False), ("u3", B, True)]),
        AdjudicationConfig(),
    )
    assert result.verdicts == {"u1": 1.0, "u2": 0.0}  # u3 has no primary label: unlabelled
    human = next(c for c in result.confusion if c.labeler_id == B)
    assert (human.true_positive, human.false_negative) == (0, 1)
    assert result.details["unresolved"] == 1 and result.details["multi_labeled"] == 1


def test_majority_breaks_two_labeler_ties_by_gold_accuracy() -> None:
    sampled = [("u1", A, True), ("u1", B, False), ("u2", A, True), ("u2", B, True)]
    trusted_human = adjudicate_majority(
        _labels(sampled, gold_accuracy={A: 0.9, B: 0.99}), AdjudicationConfig("majority")
    )
    assert trusted_human.verdicts == {"u1": 0.0, "u2": 1.0}
    assert trusted_human.details["ties"] == 1 and trusted_human.details["changed_vs_primary"] == 1
    trusted_llm = adjudicate_majority(
        _labels(sampled, gold_accuracy={A: 0.99, B: 0.9}), AdjudicationConfig("majority")
    )
    assert trusted_llm.verdicts == {"u1": 1.0, "u2": 1.0}
    unresolved = adjudicate_majority(_labels(sampled), AdjudicationConfig("majority", "unresolved"))
    assert unresolved.verdicts == {"u2": 1.0} and unresolved.details["unresolved"] == 1
    positive = adjudicate_majority(_labels(sampled), AdjudicationConfig("majority", "positive"))
    assert positive.verdicts == {"u1": 1.0, "u2": 1.0}


def test_dawid_skene_uses_gold_and_gives_soft_or_hard_labels() -> None:
    rng = np.random.default_rng(5)
    sampled, gold_rows, gold = [], [], {}
    for i in range(400):  # the LLM over-flags (10% false positives), the human does not
        truth = i % 10 == 0
        sampled.append((f"u{i}", A, truth or bool(rng.random() < 0.1)))
        if i % 2 == 0:
            sampled.append((f"u{i}", B, truth))
    for g in range(40):
        truth = g % 2 == 0
        gold[f"gold:{g}"] = truth
        gold_rows += [(f"gold:{g}", A, truth or bool(rng.random() < 0.1)), (f"gold:{g}", B, truth)]
    labels = _labels(sampled, gold_rows=gold_rows, gold=gold)
    soft = adjudicate_dawid_skene(labels, AdjudicationConfig("dawid_skene"))
    hard = adjudicate_dawid_skene(labels, AdjudicationConfig("dawid_skene", soft=False))
    assert set(soft.verdicts) == {f"u{i}" for i in range(400)}  # gold is never a verdict
    assert all(0.0 <= v <= 1.0 for v in soft.verdicts.values())
    assert set(hard.verdicts.values()) <= {0.0, 1.0}
    # doubly labelled units follow the (reliable) human; a lone LLM positive is uncertain
    assert all(hard.verdicts[f"u{i}"] == float(i % 10 == 0) for i in range(0, 400, 2))
    lone = [soft.verdicts[f"u{i}"] for i in range(1, 400, 2) if (f"u{i}", A, True) in sampled]
    assert 0.1 < np.mean(lone) < 0.9
    assert soft.details["converged"] and soft.details["gold_items"] == 40
    assert 0.05 < soft.details["prior_violating"] < 0.16  # gold (50% positive) kept out
    llm = next(c for c in soft.confusion if c.labeler_id == A)
    assert llm.specificity is not None and 0.85 < llm.specificity < 0.95


def _simulate_day(rng: np.random.Generator, n: int = 4000) -> dict[str, Any]:
    """A Poisson sample (pi ~ impressions) of a population with 2% violating; the primary
    (LLM) labels every sampled unit (3% false positives, 5% false negatives), the human
    labels a 30% Bernoulli overlap (0.2% / 2%), both label 60 gold items (half violating)."""
    x = rng.lognormal(2.0, 1.0, n).round() + 1
    truth = rng.random(n) < 0.02
    pi = np.minimum(1.0, 600 * x / x.sum())
    chosen = np.nonzero(rng.random(n) < pi)[0]
    sampled: list[tuple[str, str, bool]] = []
    for i in chosen:
        t = bool(truth[i])
        sampled.append((f"u{i}", A, bool(rng.random() < (0.95 if t else 0.03))))
        if rng.random() < 0.3:
            sampled.append((f"u{i}", B, bool(rng.random() < (0.98 if t else 0.002))))
    gold_rows, gold = [], {}
    for g in range(60):
        t = g % 2 == 0
        gold[f"gold:{g}"] = t
        gold_rows.append((f"gold:{g}", A, bool(rng.random() < (0.95 if t else 0.03))))
        gold_rows.append((f"gold:{g}", B, bool(rng.random() < (0.98 if t else 0.002))))
    return {"x": x, "truth": truth, "pi": pi, "chosen": chosen, "sampled": sampled,
            "gold_rows": gold_rows, "gold": gold}  # fmt: skip


def _ht(day: dict[str, Any], verdicts: dict[str, float]) -> float:
    keep = [i for i in day["chosen"] if f"u{i}" in verdicts]
    y = np.array([day["x"][i] * verdicts[f"u{i}"] for i in keep])
    pi = day["pi"][keep] * len(keep) / len(day["chosen"])
    return horvitz_thompson_prevalence(y, pi, float(day["x"].sum())).estimate


def test_simulation_soft_dawid_skene_removes_the_labelers_bias() -> None:
    """Bias of each rule's estimate against the estimate with the true labels of the same
    sample, over 120 simulated days: the primary's false positives inflate it; soft
    Dawid-Skene is unbiased (within 4 Monte Carlo SEs); its posterior mode and majority vote
    are not (a lone primary positive has a posterior below 1/2; majority keeps every
    singly-labelled false positive)."""
    rng = np.random.default_rng(20261202)
    gaps: dict[str, list[float]] = {m: [] for m in ("primary", "majority", "soft", "hard")}
    for _ in range(200):
        day = _simulate_day(rng)
        full = _ht(day, {f"u{i}": float(day["truth"][i]) for i in day["chosen"]})
        labels = _labels(day["sampled"], gold_rows=day["gold_rows"], gold=day["gold"])
        accuracy = {A: 0.955, B: 0.99}  # what the gold items say, rounded
        rules = {
            "primary": adjudicate_primary(labels, AdjudicationConfig()),
            "majority": adjudicate_majority(
                dataclasses.replace(labels, gold_accuracy=accuracy), AdjudicationConfig("majority")
            ),
            "soft": adjudicate_dawid_skene(labels, AdjudicationConfig("dawid_skene")),
            "hard": adjudicate_dawid_skene(labels, AdjudicationConfig("dawid_skene", soft=False)),
        }
        for name, result in rules.items():
            gaps[name].append(_ht(day, dict(result.verdicts)) - full)
    bias = {m: float(np.mean(g)) for m, g in gaps.items()}
    mcse = {m: float(np.std(g, ddof=1) / np.sqrt(len(g))) for m, g in gaps.items()}
    print({m: (round(bias[m], 5), round(mcse[m], 5)) for m in bias})
    assert bias["primary"] > 10 * mcse["primary"]  # ~ +0.7 x 3% of clean impressions
    assert bias["majority"] > 10 * mcse["majority"]
    assert bias["hard"] < -3 * mcse["hard"]  # loses about a quarter of the 2% prevalence
    assert abs(bias["soft"]) < 3 * mcse["soft"]
    assert abs(bias["soft"]) < abs(bias["primary"]) / 10


def test_every_configured_method_has_a_rule() -> None:
    from tsmetrics.config.labeling import ADJUDICATION_METHODS

    assert set(ADJUDICATORS) == set(ADJUDICATION_METHODS)


# --------------------------------------------------------------------------------------------
# The warehouse path
# --------------------------------------------------------------------------------------------


def _day_with_labels(conn: psycopg.Connection, day: date, config: Any) -> dict[str, Any]:
    """A day with 300 sampled units (Poisson design rows), two labelers and 20 gold tasks."""
    rng = np.random.default_rng(9)
    primary, overlap = config.primary_labeler.labeler_id, config.overlap_labeler.labeler_id
    for table in ("labels", "label_tasks", "samples", "sample_designs", "estimates"):
        conn.execute(f"DELETE FROM tsm.{table} WHERE event_date = %s", (day,))
    conn.execute("SELECT tsm.ensure_day_partitions(%s)", (day,))
    conn.execute("SELECT tsm.truncate_day('units', %s)", (day,))
    conn.execute("DELETE FROM tsm.gold_items WHERE gold_id LIKE 'adj-%'")
    truth = rng.random(300) < 0.1
    said = truth | (rng.random(300) < 0.1)
    conn.execute(
        "INSERT INTO tsm.sample_designs (event_date, design_id, method, seed, n_draws, "
        "size_floor, total_size, total_impressions, n_units, params) "
        "VALUES (%s, %s, 'poisson_pps', 1, 300, 0.03, 3000, 3000, 300, '{}')",
        (day, config.sampling.design_id),
    )
    for i in range(300):
        unit = f"{day:%Y%m%d}-{i:06d}"
        conn.execute(
            "INSERT INTO tsm.units (event_date, unit_id, surface, impressions, n_components) "
            "VALUES (%s, %s, 'search', 10, 1)",
            (day, unit),
        )
        conn.execute(
            "INSERT INTO tsm.samples (event_date, design_id, draw_no, unit_id, size, "
            "selection_prob, expected_hits, impressions) VALUES (%s, %s, %s, %s, 1, 1.0, 1.0, 10)",
            (day, config.sampling.design_id, i, unit),
        )
        rows = [(primary, bool(said[i]))] + ([(overlap, bool(truth[i]))] if i % 2 == 0 else [])
        for labeler, verdict in rows:
            for policy in config.policy_names:
                conn.execute(
                    "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, "
                    "is_violating) VALUES (%s, %s, %s, %s, %s)",
                    (day, unit, labeler, policy, verdict and policy == "adult"),
                )
    for g in range(20):
        gid = f"adj-{g}"
        answers = {
            "adult": {"is_violating": g % 2 == 0, "sub_policy": "nudity" if g % 2 == 0 else None}
        }
        conn.execute(
            "INSERT INTO tsm.gold_items (gold_id, surface, components, impressions, answers, "
            "source, content_sha256) VALUES (%s, 'search', '[]', 1, %s, 't', 'x')",
            (gid, json.dumps(answers)),
        )
        for labeler, verdict in ((primary, g % 2 == 0 or g % 5 == 1), (overlap, g % 2 == 0)):
            conn.execute(
                "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, gold_id, "
                "payload, status) VALUES (%s, %s, %s, 'gold', %s, '{}', 'done')",
                (day, f"gold:{gid}", labeler, gid),
            )
            for policy in config.policy_names:
                conn.execute(
                    "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, "
                    "is_violating) VALUES (%s, %s, %s, %s, %s)",
                    (day, f"gold:{gid}", labeler, policy, verdict and policy == "adult"),
                )
    conn.commit()
    return {"truth": truth, "said": said}


@pytest.mark.parametrize("method", ["primary", "majority", "dawid_skene"])
def test_estimate_day_records_the_adjudication_and_the_confusion(
    conn: psycopg.Connection, method: str
) -> None:
    from tsmetrics.measure import estimate_day

    base = load_config()
    config = dataclasses.replace(base, adjudication=AdjudicationConfig(method))
    day = date(2033, 7, 1)
    setup = _day_with_labels(conn, day, config)
    returned = estimate_day(conn, day, config)
    rows = {(r["policy"], r["domain"]): r for r in returned}
    adult = rows[("adult", "all")]
    assert adult["adjudication"] == method
    details = adult["adjudication_details"]
    json.dumps([{k: v for k, v in r.items() if k != "event_date"} for r in returned])  # XCom
    assert details["units"] == 300 and details["multi_labeled"] == 150
    truth, said = setup["truth"], setup["said"]
    even = np.arange(300) % 2 == 0
    expected = {
        "primary": said.mean(),  # the over-flagging primary everywhere
        "majority": np.where(even, truth, said).mean(),  # ties go to the human (better on gold)
    }
    if method in expected:
        assert adult["estimate"] == pytest.approx(expected[method])
    else:  # soft Dawid-Skene: the lone primary positives count with their posterior
        assert abs(adult["estimate"] - truth.mean()) < 0.02 < said.mean() - truth.mean()
    stored = conn.execute(
        "SELECT adjudication, count(*) FROM tsm.estimates WHERE event_date = %s GROUP BY 1",
        (day,),
    ).fetchall()
    confusion = conn.execute(
        "SELECT labeler_id, reference, n_items, true_positive, false_positive, accuracy "
        "FROM tsm.labeler_confusion WHERE event_date = %s AND policy = 'adult'",
        (day,),
    ).fetchall()
    conn.commit()
    assert dict(stored) == {method: len(rows)}
    by = {(r[0], r[1]): r[2:] for r in confusion}
    primary, overlap = config.primary_labeler.labeler_id, config.overlap_labeler.labeler_id
    # gold: the primary flagged the 10 violating items and 2 of the 10 clean ones (g % 5 == 1)
    assert by[(primary, "gold")] == (20.0, 10.0, 2.0, 0.9)
    assert by[(overlap, "gold")] == (20.0, 10.0, 0.0, 1.0)
    assert by[(primary, method)][0] == pytest.approx(320.0 if method == "dawid_skene" else 300.0)
    # agreement pairs the sampled units only: the 20 gold tasks both labelled are left out
    from tsmetrics.measure import agreement_day

    pairs = {r["n_items"] for r in agreement_day(conn, day, config) if r["policy"] == "adult"}
    assert pairs == {150}
    before = conn.execute(
        "SELECT count(*) FROM tsm.labeler_confusion WHERE event_date = %s", (day,)
    ).fetchone()
    estimate_day(conn, day, config)  # re-run: replaced, not duplicated
    after = conn.execute(
        "SELECT count(*) FROM tsm.labeler_confusion WHERE event_date = %s", (day,)
    ).fetchone()
    conn.commit()
    assert before == after and before is not None and before[0] >= len(by)
