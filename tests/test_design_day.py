"""The default design in the warehouse: calibrated sizes (tsm.unit_sizes), Poisson selection,
calibrate_day on earlier days' labels, and estimate_day's Horvitz-Thompson path."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import run_sql_file

from tsmetrics.calibration import fit_platt
from tsmetrics.config import load_config
from tsmetrics.design_day import (
    calibrate_day,
    calibration_training_data,
    fit_day_calibrations,
    plan_expected_n,
)
from tsmetrics.gamma_interval import mean_uncertain_weight
from tsmetrics.measure import estimate_day
from tsmetrics.sampling import (
    hash_poisson_pps_select,
    horvitz_thompson_prevalence,
    poisson_pps_inclusion,
    sqrt_calibrated_size,
)

DAY = date(2035, 3, 2)
POLICIES = ("adult", "harassment", "self_harm", "misinformation")
N = 1500


@pytest.fixture(scope="module")
def population(database_url: str) -> dict[str, Any]:
    """1500 units on DAY with risks (5% imputed) and Platt calibrations for every policy."""
    rng = np.random.default_rng(35)
    unit_ids = [f"dd-{i:04d}" for i in range(N)]
    impressions = np.ceil(5.0 * (rng.pareto(1.3, N) + 1.0)).astype(np.int64)
    risk = rng.beta(0.5, 8.0, size=(N, len(POLICIES))).round(5)
    imputed = rng.random((N, len(POLICIES))) < 0.05
    truth = rng.random((N, len(POLICIES))) < risk  # the units' violations, if labeled
    calibrations = [
        fit_platt(risk[:, j], truth[:, j], np.ones(N), policy=p) for j, p in enumerate(POLICIES)
    ]
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SELECT tsm.ensure_day_partitions(%s::date)", (DAY,))
        for table in ("unit_risk", "units"):
            conn.execute("SELECT tsm.truncate_day(%s, %s::date)", (table, DAY))
        conn.execute("DELETE FROM tsm.score_calibrations WHERE event_date = %s", (DAY,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tsm.units (event_date, unit_id, surface, impressions, n_components) "
                "VALUES (%s, %s, %s, %s, 1)",
                [
                    (DAY, u, "search" if i % 3 else "home", int(x))
                    for i, (u, x) in enumerate(zip(unit_ids, impressions, strict=True))
                ],
            )
            cur.executemany(
                "INSERT INTO tsm.unit_risk (event_date, unit_id, policy, risk, risk_imputed) "
                "VALUES (%s, %s, %s, %s, %s)",
                [
                    (DAY, u, p, float(risk[i, j]), bool(imputed[i, j]))
                    for i, u in enumerate(unit_ids)
                    for j, p in enumerate(POLICIES)
                ],
            )
            cur.executemany(
                "INSERT INTO tsm.score_calibrations (event_date, policy, version, method, eps, "
                "a, b, calibration) VALUES (%s, %s, %s, 'platt', %s, %s, %s, '{}')",
                [
                    (DAY, c.policy, c.version, c.eps, c.params.a, c.params.b)  # type: ignore[union-attr]
                    for c in calibrations
                ],
            )
    q = np.column_stack([c.predict(risk[:, j]) for j, c in enumerate(calibrations)])
    return {
        "unit_ids": unit_ids,
        "impressions": impressions,
        "q": q,
        "imputed": imputed,
        "truth": truth,
    }


def test_sql_sizes_equal_python(conn: psycopg.Connection, population: dict[str, Any]) -> None:
    rows = dict(
        conn.execute(
            "SELECT unit_id, size FROM tsm.unit_sizes(%s, 'sqrt_calibrated', 0.03)", (DAY,)
        ).fetchall()
    )
    expected = sqrt_calibrated_size(
        population["impressions"], population["q"], population["imputed"], 0.03
    )
    got = np.array([rows[u] for u in population["unit_ids"]])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # The floor binds: a unit's size is at least sqrt(floor) x that of an average unit.
    assert got.min() > 0


def test_sql_poisson_sample_equals_python(
    conn: psycopg.Connection, population: dict[str, Any]
) -> None:
    size = sqrt_calibrated_size(
        population["impressions"], population["q"], population["imputed"], 0.03
    )
    pi = poisson_pps_inclusion(size, 200)
    rows = conn.execute(
        "SELECT unit_id, inclusion_prob FROM tsm.poisson_pps_sample(%s, 'sqrt_calibrated', "
        "0.03, 200, 77)",
        (DAY,),
    ).fetchall()
    index = {u: i for i, u in enumerate(population["unit_ids"])}
    selected = sorted(index[u] for u, _ in rows)
    assert selected == hash_poisson_pps_select(pi, population["unit_ids"], DAY, 77).tolist()
    np.testing.assert_allclose([p for _, p in rows], pi[[index[u] for u, _ in rows]], rtol=1e-9)


@pytest.mark.parametrize("expected_n", [200.0, 1e-9])
def test_design_records_the_days_total_size(
    conn: psycopg.Connection, population: dict[str, Any], expected_n: float
) -> None:
    """total_size comes from the sampling pass (migration 0011), and from a second sizing pass
    only when no unit was selected (expected_n = 1e-9): the sum of every unit's size either way."""
    design_id = "total_size_check"
    params = {
        "day": DAY.isoformat(),
        "design_id": design_id,
        "seed": 77,
        "expected_n": expected_n,
        "size_measure": "sqrt_calibrated",
        "size_floor": 0.03,
        "design_policy": None,
        "config_version": 1,
    }
    run_sql_file(conn, "sample_poisson_design.sql", params)
    row = conn.execute(
        "SELECT total_size, (SELECT count(*) FROM tsm.samples AS s "
        "WHERE s.event_date = d.event_date AND s.design_id = d.design_id) "
        "FROM tsm.sample_designs AS d "
        "WHERE d.event_date = %s AND d.design_id = %s",
        (DAY, design_id),
    ).fetchone()
    conn.execute(
        "DELETE FROM tsm.sample_designs WHERE event_date = %s AND design_id = %s", (DAY, design_id)
    )
    conn.commit()
    assert row is not None
    total_size, n_selected = row
    assert (n_selected > 100) == (expected_n > 1)
    size = sqrt_calibrated_size(
        population["impressions"], population["q"], population["imputed"], 0.03
    )
    assert total_size == pytest.approx(float(size.sum()), rel=1e-9)


def test_unit_sizes_requires_a_calibration_for_every_policy(conn: psycopg.Connection) -> None:
    empty_day = DAY + timedelta(days=400)
    conn.execute("SELECT tsm.ensure_day_partitions(%s::date)", (empty_day,))
    conn.execute(
        "INSERT INTO tsm.units (event_date, unit_id, surface, impressions, n_components) "
        "VALUES (%s, 'u1', 'home', 3, 1)",
        (empty_day,),
    )
    conn.execute(
        "INSERT INTO tsm.unit_risk (event_date, unit_id, policy, risk, risk_imputed) "
        "VALUES (%s, 'u1', 'adult', 0.2, false)",
        (empty_day,),
    )
    with pytest.raises(psycopg.errors.RaiseException, match="no score calibration"):
        conn.execute("SELECT * FROM tsm.unit_sizes(%s, 'sqrt_calibrated', 0.03)", (empty_day,))
    conn.rollback()


def _label_sample(conn: psycopg.Connection, population: dict[str, Any], labeler: str) -> None:
    """Label DAY's sample with the population's truth (a perfect primary labeler)."""
    index = {u: i for i, u in enumerate(population["unit_ids"])}
    sampled = [
        r[0]
        for r in conn.execute(
            "SELECT unit_id FROM tsm.samples WHERE event_date = %s", (DAY,)
        ).fetchall()
    ]
    conn.execute("DELETE FROM tsm.labels WHERE event_date = %s", (DAY,))
    conn.cursor().executemany(
        "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating) "
        "VALUES (%s, %s, %s, %s, %s)",
        [
            (DAY, u, labeler, p, bool(population["truth"][index[u], j]))
            for u in sampled
            for j, p in enumerate(POLICIES)
        ],
    )
    conn.commit()


@pytest.mark.parametrize("ci_method", ["gamma_tcz", "gamma_midp"])
def test_sample_estimate_and_next_days_calibration(
    conn: psycopg.Connection, population: dict[str, Any], ci_method: str
) -> None:
    config = load_config()
    config = dataclasses.replace(
        config,
        sampling=dataclasses.replace(config.sampling, n_draws=300),
        ci_method=ci_method,
    )
    params = {
        "day": DAY.isoformat(),
        "design_id": config.sampling.design_id,
        "seed": config.sampling.seed,
        "expected_n": 300,
        "size_measure": "sqrt_calibrated",
        "size_floor": 0.03,
        "design_policy": None,
        "config_version": config.version,
    }
    run_sql_file(conn, "sample_poisson_design.sql", params)
    first = conn.execute(
        "SELECT unit_id, selection_prob FROM tsm.samples WHERE event_date = %s ORDER BY unit_id",
        (DAY,),
    ).fetchall()
    run_sql_file(conn, "sample_poisson_design.sql", params)
    again = conn.execute(
        "SELECT unit_id, selection_prob FROM tsm.samples WHERE event_date = %s ORDER BY unit_id",
        (DAY,),
    ).fetchall()
    assert first == again and 240 < len(first) < 360
    design = conn.execute(
        "SELECT method, params FROM tsm.sample_designs WHERE event_date = %s", (DAY,)
    ).fetchone()
    assert design is not None and design[0] == "poisson_pps"
    assert set(design[1]["calibrations"]) == set(POLICIES)

    _label_sample(conn, population, config.primary_labeler.labeler_id)
    rows = estimate_day(conn, DAY, config)
    by_key = {(r["policy"], r["domain"]): r for r in rows}
    # Publication rule: a cell wider than the relative half-width limit is never a bare number.
    for row in rows:
        width = (row["ci_upper"] - row["ci_lower"]) / 2
        wide = row["estimate"] <= 0 or width / row["estimate"] > 1.0
        assert row["cell_status"] == ("suppress" if wide else "report"), row  # no history
        assert row["published"].startswith("<=") == wide
    # The warehouse path equals the library estimator on the same sample.
    index = {u: i for i, u in enumerate(population["unit_ids"])}
    sel = np.array([index[u] for u, _ in first])
    pi = np.array([p for _, p in first])
    x = population["impressions"][sel].astype(float)
    total = float(population["impressions"].sum())
    for j, policy in enumerate(POLICIES):
        ref = horvitz_thompson_prevalence(
            np.where(population["truth"][sel, j], x, 0.0),
            pi,
            total,
            ci_method=ci_method,
            event_weight=mean_uncertain_weight(x, pi, total),
        )
        got = by_key[(policy, "all")]
        assert got["estimator"] == "horvitz_thompson" and got["ci_method"] == ci_method
        assert got["estimate"] == pytest.approx(ref.estimate, rel=1e-12)
        assert (got["ci_lower"], got["ci_upper"]) == pytest.approx(
            (ref.ci_lower, ref.ci_upper), rel=1e-9
        )

    # The next day's calibration is fitted on DAY's labels with weights 1/pi, observed risks only.
    next_day = DAY + timedelta(days=1)
    training = calibration_training_data(conn, next_day, config)
    n_observed = int((~population["imputed"][sel]).sum(axis=0)[0])
    assert len(training["adult"][0]) == n_observed
    np.testing.assert_allclose(
        np.sort(training["adult"][2]),
        np.sort(1.0 / pi[~population["imputed"][sel, 0]]),
        rtol=1e-12,
    )
    fitted = fit_day_calibrations(training, config)
    assert fitted["adult"].method in {"platt", "identity"}
    stored = calibrate_day(conn, next_day, config)
    assert {r["policy"] for r in stored} == set(POLICIES)
    versions = dict(
        conn.execute(
            "SELECT policy, version FROM tsm.score_calibrations WHERE event_date = %s",
            (next_day,),
        ).fetchall()
    )
    assert versions == {p: fitted[p].version for p in POLICIES}
    calibrate_day(conn, next_day, config)  # idempotent: same rows, no duplicates
    count = conn.execute(
        "SELECT count(*) FROM tsm.score_calibrations WHERE event_date = %s", (next_day,)
    ).fetchone()
    assert count is not None and count[0] == len(POLICIES)
    # A window without labels gives identity calibrations (the first days).
    lonely = calibrate_day(conn, DAY - timedelta(days=200), config)
    assert {r["method"] for r in lonely} == {"identity"}


def test_label_correction_rows_next_to_the_naive_estimate(
    conn: psycopg.Connection, population: dict[str, Any]
) -> None:
    """A primary 'LLM' that flags 3% of clean units: the naive HT estimate is inflated, the
    PPI++ row corrects it with the overlap ('human') labels of a Bernoulli subsample."""
    config = load_config()
    config = dataclasses.replace(
        config,
        label_correction=True,
        sampling=dataclasses.replace(config.sampling, n_draws=600),
        overlap_labeler=dataclasses.replace(config.overlap_labeler, fraction=0.5),
    )
    params = {
        "day": DAY.isoformat(),
        "design_id": config.sampling.design_id,
        "seed": config.sampling.seed,
        "expected_n": 600,
        "size_measure": "sqrt_calibrated",
        "size_floor": 0.03,
        "design_policy": None,
        "config_version": config.version,
    }
    run_sql_file(conn, "sample_poisson_design.sql", params)
    sample = conn.execute(
        "SELECT unit_id, selection_prob FROM tsm.samples WHERE event_date = %s", (DAY,)
    ).fetchall()
    sampled = [u for u, _ in sample]
    index = {u: i for i, u in enumerate(population["unit_ids"])}
    rng = np.random.default_rng(4)
    primary, human = config.primary_labeler.labeler_id, config.overlap_labeler.labeler_id
    overlap = {u for u, pi in sample if pi >= 1 or rng.random() < 0.5}  # as dispatch does
    conn.execute("DELETE FROM tsm.labels WHERE event_date = %s", (DAY,))
    conn.execute("DELETE FROM tsm.label_tasks WHERE event_date = %s", (DAY,))
    rows = []
    for u in sampled:
        for j, p in enumerate(POLICIES):
            truth = bool(population["truth"][index[u], j])
            rows.append((DAY, u, primary, p, truth or bool(rng.random() < 0.03)))
            if u in overlap:
                rows.append((DAY, u, human, p, truth))
    conn.cursor().executemany(
        "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating) "
        "VALUES (%s, %s, %s, %s, %s)",
        rows,
    )
    conn.cursor().executemany(
        "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload, status) "
        "VALUES (%s, %s, %s, 'overlap', '{}', 'done')",
        [(DAY, u, human) for u in sorted(overlap)],
    )
    conn.commit()
    result = {
        (r["policy"], r["estimator"]): r
        for r in estimate_day(conn, DAY, config)
        if r["domain"] == "all"
    }
    pi = np.array([p for _, p in sample])
    sel = np.array([index[u] for u in sampled])
    x = population["impressions"].astype(float)
    for j, policy in enumerate(POLICIES):
        naive = result[(policy, "horvitz_thompson")]
        corrected = result[(policy, "ppi_corrected")]
        assert (policy, "human_only") in result
        # The estimate with every sampled unit labelled by the truth, which the correction
        # targets given the sample; the LLM's false positives only add to the naive estimate.
        full = float((population["truth"][sel, j] * x[sel] / pi).sum() / x.sum())
        assert naive["estimate"] > full
        assert abs(corrected["estimate"] - full) < 3 * corrected["std_error"], policy
        assert corrected["ci_lower"] < corrected["estimate"] < corrected["ci_upper"]
    # Coverage of the corrected interval is shown by simulation in tests/test_model_assisted.py.


def test_the_next_days_sample_size_is_planned_within_the_budget(conn: psycopg.Connection) -> None:
    config = load_config()
    day = date(2036, 5, 10)
    conn.execute(
        "DELETE FROM tsm.estimates WHERE event_date BETWEEN %s AND %s",
        (day - timedelta(days=9), day),
    )
    prevalence = {"adult": 0.02, "harassment": 0.01, "self_harm": 0.005, "misinformation": 0.004}
    rows = [
        (
            day - timedelta(days=d),
            config.sampling.design_id,
            policy,
            "all",
            config.estimator,
            p,
            0.1 * p,
            0.0,
            1.0,
            "gamma_tcz",
            0.95,
            2000,
            40,
            4000.0,
            10**6,
        )
        for d in (1, 2, 3)
        for policy, p in prevalence.items()
    ]  # design effect n / n_eff = 0.5 every day
    conn.cursor().executemany(
        "INSERT INTO tsm.estimates (event_date, design_id, policy, domain, estimator, estimate, "
        "std_error, ci_lower, ci_upper, ci_method, confidence, n_draws, n_positive_draws, "
        "effective_sample_size, total_impressions) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        rows,
    )
    conn.commit()
    z = 1.959963984540054

    def need(p: float, r: float) -> float:
        return 0.5 * z * z * (1 - p) / (r * r * p)

    roomy = dataclasses.replace(
        config, sampling=dataclasses.replace(config.sampling, label_budget=100_000)
    )
    planned = plan_expected_n(conn, day, roomy)
    assert planned["planned"] and planned["expected_n"] == math.ceil(need(0.004, 0.25))
    budget = config.sampling.label_budget
    assert budget is not None and budget < need(0.004, 0.25)  # below the rarest policy's need
    tight = plan_expected_n(conn, day, config)
    assert tight["expected_n"] == budget and "misinformation" in tight["missing_target"]
    no_history = plan_expected_n(conn, day - timedelta(days=30), config)
    assert no_history == {"expected_n": budget, "planned": False}


def test_a_wide_cell_is_replaced_by_its_weekly_pool(conn: psycopg.Connection) -> None:
    from tsmetrics.measure import _publication
    from tsmetrics.pooling import DayRecord, classify_cell, pool_days

    config = load_config()
    day = date(2037, 8, 20)
    conn.execute(
        "DELETE FROM tsm.estimates WHERE event_date BETWEEN %s AND %s",
        (day - timedelta(days=9), day),
    )
    conn.cursor().executemany(
        "INSERT INTO tsm.estimates (event_date, design_id, policy, domain, estimator, estimate, "
        "std_error, ci_lower, ci_upper, ci_method, confidence, n_draws, n_positive_draws, "
        "effective_sample_size, total_impressions, event_weight) VALUES "
        "(%s, %s, 'self_harm', 'all', %s, 0.001, 0.0004, 0.0003, 0.0025, 'gamma_tcz', 0.95, "
        "2000, 4, 6000, 1000000, 0.0002)",
        [
            (day - timedelta(days=d), config.sampling.design_id, config.estimator)
            for d in range(1, 7)
        ],
    )
    conn.commit()
    row = {
        "event_date": day,
        "policy": "self_harm",
        "domain": "all",
        "estimate": 0.0008,
        "std_error": 0.0005,
        "ci_lower": 0.0001,
        "ci_upper": 0.0030,
        "ci_method": "gamma_tcz",
        "event_weight": 0.00025,
        "total_impressions": 10**6,
        "n_draws": 2000,
        "n_positive_draws": 3,
        "effective_sample_size": 3000.0,
    }  # relative half-width 1.8 > 1.0: not publishable alone
    published = dict(row)
    _publication(conn, day, config, [published])
    assert published["cell_status"] == "pool" and "7-day pooled" in published["published"]
    # the pool is the day's gamma interval over the window (not Wilson-KG): recomputed here
    past = DayRecord(0.001, 0.0004, 1e6, 2000, 4, policy="self_harm", event_weight=0.0002)
    records = [dataclasses.replace(past, day=day - timedelta(days=d)) for d in range(1, 7)] + [
        DayRecord.from_row(row)
    ]
    expected = pool_days(records, ci_method="gamma_tcz")
    assert expected.prevalence.ci_method == "gamma_tcz"
    day_alone = classify_cell(expected, 10.0, 1.0)  # the window's numbers as a cell
    assert published["published"] == f"{day_alone.display} (7-day pooled)"
    # days written without an event weight (before migration 0010) are left out of a gamma pool
    conn.execute(
        "UPDATE tsm.estimates SET event_weight = NULL WHERE event_date BETWEEN %s AND %s",
        (day - timedelta(days=3), day - timedelta(days=1)),
    )
    conn.commit()
    shorter = dict(row)
    _publication(conn, day, config, [shorter])
    assert "4-day pooled" in shorter["published"]
    alone = dict(row)
    _publication(conn, day + timedelta(days=30), config, [alone])  # no history in the window
    assert alone["cell_status"] == "suppress" and alone["published"].startswith("<=")
