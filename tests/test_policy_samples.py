"""Per-policy samples next to the shared one: configuration, sizes from the policy's own
calibrated risk, one label task per unit and labeler, estimates from each design's own selection
probabilities, and checks reading each policy's headline design."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import numpy as np
import psycopg
import pytest
import yaml
from conftest import PROJECT_DIR, SQL_DIR, run_sql_file
from test_stratified_design import POLICIES, _label, _population

from tsmetrics.config import RunConfig, load_config, parse_config
from tsmetrics.design_day import calibration_training_data, plan_expected_n
from tsmetrics.designs import draw_design
from tsmetrics.gamma_interval import mean_uncertain_weight
from tsmetrics.measure import _estimates_by_policy, estimate_day
from tsmetrics.sampling import horvitz_thompson_prevalence, sqrt_calibrated_size

DAY = date(2036, 7, 1)
OWN = "self_harm"


def _raw_config() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_DIR / "src/tsmetrics/config/policies.yaml").read_text())


def _config() -> RunConfig:
    raw = _raw_config()
    raw["sampling"]["n_draws"] = 250
    raw["sampling"]["planning"]["label_budget"] = None
    raw["sampling"]["per_policy"] = {
        OWN: {"design_id": "self_harm_own_v1", "seed": 99, "n_draws": 200}
    }
    return parse_config(raw)


def test_per_policy_config_inherits_the_shared_design_and_validates() -> None:
    config = _config()
    own = config.policy_samples[OWN]
    assert [d.design_id for d in config.designs] == ["poisson_sqrtq_v1", "self_harm_own_v1"]
    assert (own.policy, own.seed, own.n_draws) == (OWN, 99, 200)
    assert (own.method, own.size_measure) == ("poisson_pps", "sqrt_calibrated")
    assert own.size_floor == 0.03
    assert config.sampling.policy is None
    assert config.headline(OWN) == ("self_harm_own_v1", "horvitz_thompson")
    assert config.headline("adult") == ("poisson_sqrtq_v1", "horvitz_thompson")
    assert config.design_policies(own) == [OWN]
    assert load_config().policy_samples == {}  # the default: one shared sample
    for bad, match in (
        ({"spam": {"design_id": "x", "seed": 1}}, "expected one of the policies"),
        ({OWN: {"seed": 1}}, "missing required key 'design_id'"),
        ({OWN: {"design_id": "poisson_sqrtq_v1", "seed": 1}}, "expected a new design id"),
        ({OWN: {"design_id": "x", "seed": 20261123}}, "seed distinct"),
        ({OWN: {"design_id": "x", "seed": 1, "colour": "red"}}, "unknown keys"),
    ):
        raw = _raw_config()
        raw["sampling"]["per_policy"] = bad
        with pytest.raises(ValueError, match=match):
            parse_config(raw)


@pytest.fixture(scope="module")
def drawn(database_url: str) -> dict[str, Any]:
    """DAY's population, both designs drawn, tasks dispatched, every unit labelled (truth)."""
    config = _config()
    with psycopg.connect(database_url) as conn:
        population = _population(conn, DAY, 7)
        for spec in config.designs:
            draw_design(conn, DAY, config, spec, SQL_DIR, plan_expected_n)
            _label(conn, population, spec.design_id)
        conn.execute("DELETE FROM tsm.label_tasks WHERE event_date = %s", (DAY,))
        conn.commit()
        run_sql_file(
            conn,
            "dispatch_label_tasks.sql",
            {
                "day": DAY.isoformat(),
                "design_ids": ",".join(d.design_id for d in config.designs),
                "primary_labeler": config.primary_labeler.labeler_id,
                "overlap_labeler": config.overlap_labeler.labeler_id,
                "overlap_fraction": "0.25",
            },
        )
    return {"config": config, **population}


def _sample(conn: psycopg.Connection, design_id: str) -> dict[str, tuple[float, int]]:
    return {
        u: (pi, x)
        for u, pi, x in conn.execute(
            "SELECT unit_id, selection_prob, impressions FROM tsm.samples "
            "WHERE event_date = %s AND design_id = %s",
            (DAY, design_id),
        ).fetchall()
    }


def test_the_policy_sample_is_sized_by_its_own_calibrated_risk(
    conn: psycopg.Connection, drawn: dict[str, Any]
) -> None:
    rows = conn.execute(
        "SELECT u.unit_id, u.impressions, r.risk, r.risk_imputed, s.size "
        "FROM tsm.unit_sizes(%s::date, 'sqrt_calibrated', 0.03, %s) AS s "
        "JOIN tsm.units u ON u.event_date = %s AND u.unit_id = s.unit_id "
        "JOIN tsm.unit_risk r ON r.event_date = u.event_date AND r.unit_id = u.unit_id "
        "AND r.policy = %s ORDER BY u.unit_id",
        (DAY, [OWN], DAY, OWN),
    ).fetchall()
    eps = 1e-4  # the identity calibration's clip
    q = np.clip(np.array([[r[2]] for r in rows]), eps, 1 - eps)
    expected = sqrt_calibrated_size([r[1] for r in rows], q, np.array([[r[3]] for r in rows]), 0.03)
    np.testing.assert_allclose([r[4] for r in rows], expected, rtol=1e-9)
    shared = dict(
        conn.execute(
            "SELECT unit_id, size FROM tsm.unit_sizes(%s::date, 'sqrt_calibrated', 0.03)", (DAY,)
        ).fetchall()
    )
    assert not np.allclose([shared[r[0]] for r in rows], expected)  # a different measure
    params = conn.execute(
        "SELECT params FROM tsm.sample_designs WHERE event_date = %s AND design_id = %s",
        (DAY, "self_harm_own_v1"),
    ).fetchone()
    assert params is not None and params[0]["policy"] == OWN
    own = _sample(conn, "self_harm_own_v1")
    assert 150 < len(own) < 250  # Poisson around its own expected n = 200


def test_a_unit_in_both_samples_is_labelled_once_per_labeler(
    conn: psycopg.Connection, drawn: dict[str, Any]
) -> None:
    config = drawn["config"]
    shared, own = _sample(conn, config.sampling.design_id), _sample(conn, "self_harm_own_v1")
    both = set(shared) & set(own)
    assert both  # the two samples overlap
    tasks = conn.execute(
        "SELECT unit_id, labeler_id, count(*) FROM tsm.label_tasks WHERE event_date = %s "
        "GROUP BY unit_id, labeler_id",
        (DAY,),
    ).fetchall()
    primary = {u for u, labeler, _ in tasks if labeler == config.primary_labeler.labeler_id}
    assert primary == set(shared) | set(own)
    assert max(count for *_, count in tasks) == 1
    overlap = {u for u, labeler, _ in tasks if labeler == config.overlap_labeler.labeler_id}
    certain = {u for sample in (shared, own) for u, (pi, _) in sample.items() if pi >= 1}
    assert certain - {u for u, (pi, _) in shared.items() if pi >= 1}  # some only in own
    assert certain <= overlap  # a certainty unit of either design is validated


def test_each_design_is_estimated_with_its_own_selection_probabilities(
    conn: psycopg.Connection, drawn: dict[str, Any]
) -> None:
    config = drawn["config"]
    rows = estimate_day(conn, DAY, config)
    by_key = {(r["design_id"], r["policy"], r["domain"], r["level"]): r for r in rows}
    own_rows = {k for k in by_key if k[0] == "self_harm_own_v1"}
    assert {k[1] for k in own_rows} == {OWN}
    assert {k[1] for k in by_key if k[0] == config.sampling.design_id} == set(POLICIES)
    index = {u: i for i, u in enumerate(drawn["unit_ids"])}
    total = float(drawn["impressions"].sum())
    for design_id in (config.sampling.design_id, "self_harm_own_v1"):
        sample = _sample(conn, design_id)
        units = sorted(sample)
        pi = np.array([sample[u][0] for u in units])
        x = np.array([sample[u][1] for u in units], dtype=float)
        y = x * np.array([drawn["truth"][index[u], POLICIES.index(OWN)] for u in units])
        expected = horvitz_thompson_prevalence(
            y,
            pi,
            total,
            ci_method="gamma_tcz",
            event_weight=mean_uncertain_weight(x, pi, total),
        )
        got = by_key[(design_id, OWN, "all", "unit")]
        assert got["estimate"] == pytest.approx(expected.estimate, rel=1e-12)
        assert got["std_error"] == pytest.approx(expected.std_error, rel=1e-12)
        assert got["ci_upper"] == pytest.approx(expected.ci_upper, rel=1e-9)
    # Checks read each policy's headline: self_harm from its own sample, the rest shared.
    headline = _estimates_by_policy(conn, DAY, config)
    assert headline[OWN][0] == by_key[("self_harm_own_v1", OWN, "all", "unit")]["estimate"]
    assert (
        headline["adult"][0]
        == by_key[(config.sampling.design_id, "adult", "all", "unit")]["estimate"]
    )
    # Re-estimating replaces both designs' rows: same rows, no duplicates.
    again = estimate_day(conn, DAY, config)
    assert len(again) == len(rows)
    count = conn.execute("SELECT count(*) FROM tsm.estimates WHERE event_date = %s", (DAY,))
    assert count.fetchone() == (len(rows),)


def test_calibration_learns_from_the_shared_sample_only(
    conn: psycopg.Connection, drawn: dict[str, Any]
) -> None:
    config = dataclasses.replace(drawn["config"])
    training = calibration_training_data(conn, date(2036, 7, 2), config)
    shared = _sample(conn, config.sampling.design_id)
    observed = conn.execute(
        "SELECT count(*) FROM tsm.unit_risk WHERE event_date = %s AND policy = %s "
        "AND NOT risk_imputed AND unit_id = ANY(%s)",
        (DAY, OWN, list(shared)),
    ).fetchone()
    assert observed is not None
    assert len(training[OWN][0]) == observed[0]  # one row per shared-sample unit, no double
