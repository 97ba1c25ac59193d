"""Component-level prevalence: violating component impressions / all component impressions.

Proof of unbiasedness against the simulator's known truth (repeated samples of one simulated
day under the Poisson and the stratified design, the production estimators of
``tsmetrics.designs``), and estimate_day's component rows on the real warehouse."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import SQL_DIR
from test_stratified_design import POLICIES, _population

from tsmetrics.config import RunConfig, load_config
from tsmetrics.design_day import plan_expected_n
from tsmetrics.designs import DESIGNS, LabelledSample, draw_design
from tsmetrics.gamma_interval import mean_uncertain_weight
from tsmetrics.measure import estimate_day
from tsmetrics.sampling import (
    horvitz_thompson_prevalence,
    poisson_pps_inclusion,
    poisson_pps_select,
    size_measure,
)
from tsmetrics.simulate import SimulationConfig, simulate_day
from tsmetrics.stratified import proportional_allocation, stratified_random_select
from tsmetrics.stratified_design import reference_strata

REPLICATIONS = 2000


@pytest.fixture(scope="module")
def simulated() -> dict[str, Any]:
    """One simulated day as a population of units: impressions, max risk, and per policy the
    unit's violating impressions and the impressions of its violating components."""
    sim = simulate_day(
        date(2037, 1, 5),
        3,
        SimulationConfig(
            n_interactions=6000, policies={"adult": 0.05, "harassment": 0.02}, pareto_shape=2.0
        ),
    )
    frame = sim.components
    unit = frame.groupby("interaction_id", sort=True)
    x = unit["impressions"].sum().to_numpy(dtype=float)
    risk = unit[[f"score_{p}" for p in ("adult", "harassment")]].max().max(axis=1).to_numpy()
    out: dict[str, Any] = {"truth": sim.truth["policies"], "x": x, "risk": risk}
    for policy in ("adult", "harassment"):
        viol = frame[f"violates_{policy}"]
        out[f"unit_{policy}"] = np.where(unit[f"violates_{policy}"].any().to_numpy(), x, 0.0)
        out[f"comp_{policy}"] = (
            (frame["impressions"] * viol).groupby(frame["interaction_id"]).sum().to_numpy(float)
        )
    return out


def _check_unbiased(estimates: np.ndarray, covered: np.ndarray, truth: float) -> None:
    """|bias| < 2 simulation SEs; the 95% interval covers at least 93% (the gamma interval is
    conservative at component level: one more event is weighted as a whole unit)."""
    se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    print(  # the figures recorded in docs/methodology.md (pytest -s)
        f"truth {truth:.5f} mean {estimates.mean():.5f} bias/SE "
        f"{(estimates.mean() - truth) / se:+.2f} coverage {covered.mean():.3f}"
    )
    assert abs(estimates.mean() - truth) < 2 * se, (estimates.mean(), truth, se)
    assert covered.mean() >= 0.93, covered.mean()


@pytest.mark.parametrize("policy", ["adult", "harassment"])
def test_component_prevalence_is_unbiased_under_poisson_pps(
    simulated: dict[str, Any], policy: str
) -> None:
    config = load_config()  # Horvitz-Thompson with the gamma interval
    x, total = simulated["x"], float(simulated["x"].sum())
    truth = simulated["truth"][policy]["component_prevalence"]
    assert truth < simulated["truth"][policy]["unit_prevalence"]  # the two levels differ
    assert (
        total
        == simulated["truth"][policy]["violating_impressions"]
        / simulated["truth"][policy]["unit_prevalence"]
    )  # the same known total X at both levels
    pi = poisson_pps_inclusion(size_measure(x, simulated["risk"], 0.02), 400)
    rng = np.random.default_rng(11)
    values, covered = np.empty(REPLICATIONS), np.empty(REPLICATIONS, bool)
    for r in range(REPLICATIONS):
        s = poisson_pps_select(pi, rng)
        strata = np.zeros(len(s), np.int64)
        sample = LabelledSample(x[s], pi[s], s.astype(str), strata, len(s), {})
        est = DESIGNS["poisson_pps"].estimate(
            sample, simulated[f"comp_{policy}"][s], np.ones(len(s), bool), total, config
        )
        values[r], covered[r] = est.estimate, est.ci_lower <= truth <= est.ci_upper
    _check_unbiased(values, covered, truth)


@pytest.mark.parametrize("policy", ["adult", "harassment"])
def test_component_prevalence_is_unbiased_under_the_stratified_design(
    simulated: dict[str, Any], policy: str
) -> None:
    config = load_config()  # the gamma interval, as in production
    frame = simulated["x"] > 0  # the warehouse's frame: units with impressions
    x, total = simulated["x"][frame], float(simulated["x"].sum())
    y = simulated[f"comp_{policy}"][frame]
    truth = simulated["truth"][policy]["component_prevalence"]
    size = size_measure(x, simulated["risk"][frame], 0.02)  # missing risks imputed
    cuts, strata = reference_strata(x, size, 5, 1.0, 600)
    sizes = np.bincount(strata)
    take_all = len(cuts) + 1
    n_h = np.zeros(len(sizes), np.int64)
    n_h[:take_all] = proportional_allocation(sizes[:take_all], 600 - sizes[take_all:].sum(), 10)
    n_h[take_all:] = sizes[take_all:]
    params = {"strata": [{"stratum": h, "N_h": int(n)} for h, n in enumerate(sizes)]}
    rng = np.random.default_rng(12)
    values, covered = np.empty(REPLICATIONS), np.empty(REPLICATIONS, bool)
    for r in range(REPLICATIONS):
        s = stratified_random_select(strata, n_h, rng)
        pi = n_h[strata[s]] / sizes[strata[s]]
        sample = LabelledSample(x[s], pi, s.astype(str), strata[s], len(s), params)
        est = DESIGNS["stratified"].estimate(sample, y[s], np.ones(len(s), bool), total, config)
        values[r], covered[r] = est.estimate, est.ci_lower <= truth <= est.ci_upper
    _check_unbiased(values, covered, truth)


DAY = date(2036, 9, 1)


def _poisson_config() -> RunConfig:
    base = load_config()
    return dataclasses.replace(
        base,
        sampling=dataclasses.replace(
            base.sampling, design_id="component_test", n_draws=300, label_budget=None
        ),
    )


def test_estimate_day_writes_component_rows_next_to_unit_rows(database_url: str) -> None:
    config = _poisson_config()
    labeler = config.primary_labeler.labeler_id
    with psycopg.connect(database_url) as conn:
        population = _population(conn, DAY, 21)
        draw_design(conn, DAY, config, config.sampling, SQL_DIR, plan_expected_n)
        sample = conn.execute(
            "SELECT unit_id, selection_prob, impressions FROM tsm.samples "
            "WHERE event_date = %s AND design_id = %s ORDER BY unit_id",
            (DAY, config.sampling.design_id),
        ).fetchall()
        index = {u: i for i, u in enumerate(population["unit_ids"])}
        rng = np.random.default_rng(5)
        labels, components = [], {}
        for u, _, _ in sample:
            for j, policy in enumerate(POLICIES):
                violating = bool(population["truth"][index[u], j])
                ids = [["q"], ["p1"], ["q", "p1"]][rng.integers(3)] if violating else []
                components[(u, policy)] = ids
                labels.append((DAY, u, labeler, policy, violating, ids))
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating, "
                "violating_components) VALUES (%s, %s, %s, %s, %s, %s)",
                labels,
            )
        rows = {(r["policy"], r["domain"], r["level"]): r for r in estimate_day(conn, DAY, config)}
        stored = conn.execute(
            "SELECT policy, domain, estimator, level, estimate FROM tsm.estimates "
            "WHERE event_date = %s AND design_id = %s",
            (DAY, config.sampling.design_id),
        ).fetchall()
        with pytest.raises(psycopg.errors.CheckViolation):  # verdicts must agree
            conn.execute(
                "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating, "
                "violating_components) VALUES (%s, 'x', 'y', 'adult', false, '{q}')",
                (DAY,),
            )
    total = float(population["impressions"].sum())
    pi = np.array([r[1] for r in sample])
    x = np.array([r[2] for r in sample], dtype=float)
    split = {"q": x - x // 3, "p1": x // 3}  # the population's component impressions
    for policy in POLICIES:
        y = np.array(
            [
                sum(split[c][k] for c in components[(u, policy)])
                for k, (u, _, _) in enumerate(sample)
            ]
        )
        expected = horvitz_thompson_prevalence(
            y,
            pi,
            total,
            ci_method="gamma_tcz",
            event_weight=mean_uncertain_weight(x, pi, total),
        )
        got = rows[(policy, "all", "component")]
        assert got["estimator"] == "horvitz_thompson_component"
        assert got["estimate"] == pytest.approx(expected.estimate, rel=1e-12)
        assert got["std_error"] == pytest.approx(expected.std_error, rel=1e-12)
        assert got["ci_lower"] == pytest.approx(expected.ci_lower, rel=1e-9)
        unit = rows[(policy, "all", "unit")]
        assert unit["estimator"] == "horvitz_thompson"
        assert got["estimate"] <= unit["estimate"]  # a violating unit's components <= unit
        assert got["cell_status"] is not None  # published like any other cell
    levels = {(r[2], r[3]) for r in stored}
    assert levels == {("horvitz_thompson", "unit"), ("horvitz_thompson_component", "component")}
    assert len(stored) == len(rows)
