"""Pipeline-health and score-drift checks: the pure checks, score_histograms.sql and
health_checks_day against the real warehouse (days in March 2033)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from conftest import POLICIES_PARAM, load_raw_day, run_sql_file

from tsmetrics.checks import CheckResult
from tsmetrics.health import (
    ALL_POLICIES,
    DEFAULT_THRESHOLDS,
    HEALTH_CHECK_NAMES,
    HEALTH_RULE_TEXT,
    health_checks_day,
    input_volume_check,
    label_completion_check,
    missing_score_rate_check,
    quarantine_rate_check,
    realized_sample_check,
    score_drift_check,
)
from tsmetrics.score_drift import jensen_shannon_divergence, population_stability_index
from tsmetrics.simulate import SimulationConfig, simulate_day, write_day

POLICIES = POLICIES_PARAM.split(",")


def _assert_json_safe(result: CheckResult) -> None:
    json.dumps(result.details, allow_nan=False)


# --------------------------------------------------------------------------------------------
# input_volume_check
# --------------------------------------------------------------------------------------------


def test_input_volume_pass_breach_and_boundary() -> None:
    ok = input_volume_check(1000, [1000, 1100, 900])
    assert (ok.check_name, ok.policy, ok.outcome) == ("input_volume", ALL_POLICIES, "pass")
    assert ok.statistic == 0.0 and ok.threshold == 0.5 and ok.p_value is None
    assert ok.details["baseline_median"] == 1000.0

    drop = input_volume_check(500, [1000, 1000, 1000])
    assert drop.outcome == "breach"
    assert drop.statistic == pytest.approx(math.log(2))
    assert drop.details["log_ratio"] == pytest.approx(-math.log(2))
    rise = input_volume_check(2000, [1000, 1000, 1000])
    assert rise.outcome == "breach" and rise.details["log_ratio"] == pytest.approx(math.log(2))

    # Equality passes: the bound is exclusive.
    at_bound = input_volume_check(1500, [1000] * 3, max_abs_log_ratio=math.log(1.5))
    assert at_bound.statistic == at_bound.threshold and at_bound.outcome == "pass"
    assert input_volume_check(1501, [1000] * 3, max_abs_log_ratio=math.log(1.5)).outcome == "breach"
    for result in (ok, drop, rise, at_bound):
        _assert_json_safe(result)


def test_input_volume_uses_the_median_and_handles_zero() -> None:
    # One huge baseline day does not move the median.
    assert input_volume_check(1000, [1000, 990, 1_000_000, 1010]).outcome == "pass"
    empty = input_volume_check(0, [1000, 1000, 1000])
    assert empty.outcome == "breach" and empty.statistic == math.inf
    assert empty.details["log_ratio"] is None
    _assert_json_safe(empty)


def test_input_volume_skipped() -> None:
    short = input_volume_check(1000, [1000, 1000])
    assert short.outcome == "skipped" and math.isnan(short.statistic)
    assert "fewer than 3" in short.details["reason"]
    assert input_volume_check(1000, [1000], min_baseline_days=1).outcome == "pass"
    zero = input_volume_check(10, [0, 0, 5])
    assert zero.outcome == "skipped" and zero.details["reason"] == "baseline median is 0"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"today_rows": -1}, "today_rows"),
        ({"today_rows": 1.5}, "today_rows"),
        ({"today_rows": True}, "today_rows"),
        ({"baseline_rows": [1, -2, 3]}, "baseline_rows[1]"),
        ({"baseline_rows": "123"}, "baseline_rows"),
        ({"max_abs_log_ratio": 0.0}, "max_abs_log_ratio"),
        ({"max_abs_log_ratio": math.nan}, "max_abs_log_ratio"),
        ({"min_baseline_days": 0}, "min_baseline_days"),
    ],
)
def test_input_volume_rejects_bad_input(kwargs: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {"today_rows": 10, "baseline_rows": [10, 10, 10], **kwargs}
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}: expected .*, got"):
        input_volume_check(**args)


# --------------------------------------------------------------------------------------------
# quarantine, missing scores, realized sample, label completion
# --------------------------------------------------------------------------------------------


def test_quarantine_rate() -> None:
    at_bound = quarantine_rate_check(1000, 10)
    assert (at_bound.check_name, at_bound.policy) == ("quarantine_rate", ALL_POLICIES)
    assert at_bound.statistic == 0.01 and at_bound.outcome == "pass"
    assert quarantine_rate_check(1000, 11).outcome == "breach"
    assert quarantine_rate_check(1000, 0, max_fraction=0.0).outcome == "pass"
    assert quarantine_rate_check(1000, 1, max_fraction=0.0).outcome == "breach"
    skipped = quarantine_rate_check(0, 0)
    assert skipped.outcome == "skipped" and skipped.details["reason"] == "no rows read"
    with pytest.raises(ValueError, match=r"^rows_quarantined: expected an integer <= rows_read"):
        quarantine_rate_check(10, 11)
    with pytest.raises(ValueError, match=r"^max_fraction: expected a number in \[0.0, 1.0\]"):
        quarantine_rate_check(10, 1, max_fraction=1.5)
    with pytest.raises(ValueError, match=r"^rows_read: expected an integer >= 0, got -1"):
        quarantine_rate_check(-1, 0)


def test_missing_score_rate() -> None:
    ok = missing_score_rate_check("adult", 20, 100)
    assert (ok.check_name, ok.policy, ok.statistic, ok.outcome) == (
        "missing_score_rate",
        "adult",
        0.2,
        "pass",
    )
    assert missing_score_rate_check("adult", 21, 100).outcome == "breach"
    assert missing_score_rate_check("adult", 0, 0).outcome == "skipped"
    weighted = missing_score_rate_check(
        "adult", 5, 100, imputed_impressions=250.0, impressions=1000.0
    )
    assert weighted.details["imputed_impression_share"] == 0.25
    assert weighted.outcome == "pass"  # the impression share is reported, not decided on
    with pytest.raises(ValueError, match=r"^policy: expected a non-empty string"):
        missing_score_rate_check("", 1, 2)
    with pytest.raises(ValueError, match=r"^imputed_units: expected an integer <= units"):
        missing_score_rate_check("adult", 3, 2)
    with pytest.raises(ValueError, match=r"^imputed_impressions: expected it and impressions"):
        missing_score_rate_check("adult", 1, 2, imputed_impressions=1.0)
    with pytest.raises(ValueError, match=r"^imputed_impressions: expected a number in"):
        missing_score_rate_check("adult", 1, 2, imputed_impressions=5.0, impressions=4.0)


def test_realized_sample() -> None:
    assert realized_sample_check(2000, 2000).outcome == "pass"
    at_bound = realized_sample_check(2000, 1980)
    assert at_bound.statistic == 0.99 and at_bound.outcome == "pass"
    short = realized_sample_check(2000, 1979)
    assert (short.check_name, short.policy, short.outcome) == (
        "realized_sample",
        ALL_POLICIES,
        "breach",
    )
    extra = realized_sample_check(2000, 2001)
    assert extra.outcome == "breach" and extra.details["problem"] == "more draws than planned"
    none = realized_sample_check(0, 0)
    assert none.outcome == "skipped" and none.details["reason"] == "no draws planned"
    with pytest.raises(ValueError, match=r"^min_fraction: expected a number in"):
        realized_sample_check(10, 10, min_fraction=-0.1)


def test_label_completion() -> None:
    at_bound = label_completion_check(100, 95)
    assert (at_bound.check_name, at_bound.statistic, at_bound.outcome) == (
        "label_completion",
        0.95,
        "pass",
    )
    assert label_completion_check(100, 94).outcome == "breach"
    assert label_completion_check(0, 0).outcome == "skipped"
    with pytest.raises(ValueError, match=r"^tasks_done: expected an integer <= tasks_total"):
        label_completion_check(5, 6)


# --------------------------------------------------------------------------------------------
# score_drift_check
# --------------------------------------------------------------------------------------------

EDGES = np.linspace(0.0, 1.0, 21)


def _hist(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    counts, _ = np.histogram(scores, bins=EDGES, weights=weights)
    return counts.astype(float)


def test_score_drift_matches_population_stability_index() -> None:
    rng = np.random.default_rng(3)
    base_scores, base_w = rng.beta(2, 8, 5000), rng.pareto(2.0, 5000)
    cur_scores, cur_w = rng.beta(2.5, 7, 4000), rng.pareto(2.0, 4000)
    result = score_drift_check(
        "adult",
        _hist(base_scores, base_w)[:, None],
        _hist(cur_scores, cur_w),
        min_baseline_days=1,
        bin_edges=EDGES.tolist(),
    )
    reference = population_stability_index(
        base_scores,
        cur_scores,
        EDGES[1:-1],
        baseline_weights=base_w,
        current_weights=cur_w,
    )
    assert result.statistic == pytest.approx(reference.psi, rel=1e-9)
    assert result.details["psi"] == result.statistic
    expected_jsd = jensen_shannon_divergence(_hist(base_scores, base_w), _hist(cur_scores, cur_w))
    assert result.details["jensen_shannon"] == pytest.approx(expected_jsd, rel=1e-9)
    assert 0.0 < result.details["jensen_shannon"] < 1.0
    assert result.details["mean_score_shift"] > 0  # beta(2.5, 7) has the larger mean
    assert len(result.details["top_bins"]) == 3
    assert {"lower", "upper"} <= set(result.details["top_bins"][0])
    _assert_json_safe(result)


def test_score_drift_pass_breach_and_threshold() -> None:
    rng = np.random.default_rng(4)
    baseline = np.stack([_hist(rng.beta(2, 8, 20_000)) for _ in range(5)], axis=1)
    same = score_drift_check("adult", baseline, _hist(rng.beta(2, 8, 20_000)))
    assert (same.check_name, same.policy, same.outcome) == ("score_drift", "adult", "pass")
    assert 0.0 <= same.statistic < 0.01 and same.threshold == 0.2
    shifted = score_drift_check("adult", baseline, _hist(rng.beta(4, 6, 20_000)))
    assert shifted.outcome == "breach" and shifted.statistic > 0.2
    # Equality passes; just below the statistic breaches.
    today = _hist(rng.beta(4, 6, 20_000))
    psi = score_drift_check("adult", baseline, today).statistic
    assert score_drift_check("adult", baseline, today, max_psi=psi).outcome == "pass"
    assert score_drift_check("adult", baseline, today, max_psi=psi * 0.999).outcome == "breach"


def test_score_drift_baseline_days_count_equally_and_empty_days_are_ignored() -> None:
    a = np.array([1.0, 0.0, 0.0, 0.0])
    b = np.array([0.0, 1.0, 0.0, 0.0])
    today = np.array([1.0, 1.0, 0.0, 0.0])
    # Day a has 1000x the volume of day b, yet both weigh 1/2: today matches exactly.
    baseline = np.stack([1000 * a, b, np.zeros(4)], axis=1)
    result = score_drift_check("adult", baseline, today, min_baseline_days=2)
    assert result.statistic == pytest.approx(0.0, abs=1e-12) and result.outcome == "pass"
    assert result.details["n_baseline_days"] == 2
    assert result.details["n_empty_baseline_days"] == 1
    assert result.details["baseline_shares"] == [0.5, 0.5, 0.0, 0.0]


def test_score_drift_skipped() -> None:
    baseline = np.ones((20, 2))
    short = score_drift_check("adult", baseline, np.ones(20))
    assert short.outcome == "skipped" and math.isnan(short.statistic)
    assert "fewer than 3" in short.details["reason"]
    assert score_drift_check("adult", np.ones((20, 0)), np.ones(20)).outcome == "skipped"
    empty = score_drift_check("adult", np.ones((20, 5)), np.zeros(20))
    assert empty.outcome == "skipped" and empty.details["reason"] == "today's histogram is empty"
    _assert_json_safe(empty)


@pytest.mark.parametrize(
    ("baseline", "today", "kwargs", "name"),
    [
        (np.ones((3, 3)), np.ones(4), {}, "baseline_hist"),
        (np.ones(4), np.ones(4), {}, "baseline_hist"),
        (np.ones((1, 3)), np.ones(1), {}, "today_hist"),
        (np.ones((4, 3)), np.array([1.0, -1.0, 0.0, 0.0]), {}, "today_hist"),
        (np.full((4, 3), np.nan), np.ones(4), {}, "baseline_hist"),
        (np.ones((4, 3)), np.ones(4), {"max_psi": 0.0}, "max_psi"),
        (np.ones((4, 3)), np.ones(4), {"epsilon": 0.1}, "epsilon"),
        (np.ones((4, 3)), np.ones(4), {"min_baseline_days": 0}, "min_baseline_days"),
        (np.ones((4, 3)), np.ones(4), {"bin_edges": [0, 1, 2, 3]}, "bin_edges"),
        (np.ones((4, 3)), np.ones(4), {"bin_edges": [0, 1, 1, 2, 3]}, "bin_edges"),
    ],
)
def test_score_drift_rejects_bad_input(
    baseline: np.ndarray, today: np.ndarray, kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: expected .*got"):
        score_drift_check("adult", baseline, today, **kwargs)


def test_rule_text_and_defaults_cover_every_check() -> None:
    assert set(HEALTH_RULE_TEXT) == set(DEFAULT_THRESHOLDS) == set(HEALTH_CHECK_NAMES)


# --------------------------------------------------------------------------------------------
# health_checks_day: argument validation (before any database access)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": {"score_drfit": {"max_psi": 0.1}}}, r"^thresholds: expected check names"),
        ({"thresholds": {"score_drift": {"max_pis": 0.1}}}, r"^thresholds\['score_drift'\]"),
        ({"thresholds": {"score_drift": {"max_psi": -1}}}, r"\['max_psi'\]: expected a number"),
        ({"thresholds": {"input_volume": {"min_baseline_days": 2.5}}}, r"min_baseline_days'\]"),
        ({"day": "2033-13-01"}, r"^day: expected a date or YYYY-MM-DD"),
        ({"policies": "adult,,self_harm"}, r"^policies: expected non-empty policy names"),
        ({"policies": ["adult", "adult"]}, r"^policies: expected distinct names"),
        ({"baseline_days": 0}, r"^baseline_days: expected an integer >= 1"),
        ({"drift_weight": "views"}, r"^drift_weight: expected 'units' or 'impressions'"),
    ],
)
def test_health_checks_day_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"day": date(2033, 3, 1), "policies": POLICIES, **kwargs}
    day, policies = args.pop("day"), args.pop("policies")
    with pytest.raises(ValueError, match=message):
        health_checks_day(None, day, policies, **args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Warehouse: score_histograms.sql and health_checks_day
# --------------------------------------------------------------------------------------------

FIRST_DAY = date(2033, 3, 1)
N_DAYS = 4
LAST_DAY = FIRST_DAY + timedelta(days=N_DAYS - 1)
DESIGN = "pps_wr_health_test"
SEED = 4242


@dataclass(frozen=True)
class Warehouse:
    url: str
    raw_dir: Path
    days: list[date]


def _build_day(conn: psycopg.Connection, day: date) -> None:
    conn.commit()
    params = {"day": day.isoformat(), "policies": POLICIES_PARAM}
    run_sql_file(conn, "build_units.sql", params)
    run_sql_file(conn, "score_histograms.sql", params)


def _load_day(conn: psycopg.Connection, root: Path, day: date, n: int, junk: int = 0) -> None:
    sim = simulate_day(day, SEED, SimulationConfig(n_interactions=n))
    raw_path, _ = write_day(sim, root / "raw", root / "truth")
    if junk:
        with raw_path.open("a", encoding="utf-8") as handle:
            handle.writelines(f'{{"interaction_id": "junk-{i}"\n' for i in range(junk))
    load_raw_day(conn, root / "raw", day)
    _build_day(conn, day)


def _sample_and_dispatch(conn: psycopg.Connection, day: date) -> None:
    conn.commit()
    run_sql_file(
        conn,
        "sample_pps_wr.sql",
        {
            "day": day.isoformat(),
            "design_id": DESIGN,
            "seed": "77",
            "n_draws": "300",
            "size_floor": "0.02",
            "design_policy": None,
            "config_version": "1",
        },
    )
    run_sql_file(
        conn,
        "dispatch_label_tasks.sql",
        {
            "day": day.isoformat(),
            "design_ids": DESIGN,
            "primary_labeler": "labeler_a",
            "overlap_labeler": "labeler_b",
            "overlap_fraction": "0.25",
        },
    )


@pytest.fixture(scope="module")
def warehouse(
    database_url: str, airflow_db_conn_env: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    """Four days (2033-03-01..04) of 2000 simulated interactions: loaded, units and histograms
    built; the last day also sampled (300 draws) with its label tasks queued (pending)."""
    root = tmp_path_factory.mktemp("health")
    days = [FIRST_DAY + timedelta(days=i) for i in range(N_DAYS)]
    with psycopg.connect(database_url) as conn:
        for day in days:
            _load_day(conn, root, day, 2000)
        _sample_and_dispatch(conn, LAST_DAY)
    yield Warehouse(database_url, root / "raw", days)


def _by_key(results: list[CheckResult]) -> dict[tuple[str, str], CheckResult]:
    keyed = {(r.check_name, r.policy): r for r in results}
    assert len(keyed) == len(results), "duplicate (check_name, policy)"
    return keyed


def _frame(conn: psycopg.Connection, sql: str, params: Any = None) -> pd.DataFrame:
    cur = conn.execute(sql, params)
    assert cur.description is not None
    return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def test_score_histograms_bin_observed_unit_risk(
    conn: psycopg.Connection, warehouse: Warehouse
) -> None:
    day = LAST_DAY
    hist = _frame(
        conn,
        "SELECT policy, bin, lower, upper, impressions, n_units FROM tsm.score_histograms "
        "WHERE event_date = %s ORDER BY policy, bin",
        (day,),
    )
    assert len(hist) == len(POLICIES) * 20
    first = hist[hist["policy"] == POLICIES[0]]
    assert first["bin"].tolist() == list(range(20))
    np.testing.assert_allclose(first["lower"], np.arange(20) / 20)
    np.testing.assert_allclose(first["upper"], np.arange(1, 21) / 20)

    risk = _frame(
        conn,
        "SELECT r.policy, r.risk, r.risk_imputed, u.impressions FROM tsm.unit_risk AS r "
        "JOIN tsm.units AS u ON u.event_date = r.event_date AND u.unit_id = r.unit_id "
        "WHERE r.event_date = %s",
        (day,),
    )
    observed = risk[~risk["risk_imputed"]].copy()
    observed["bin"] = np.minimum(np.floor(observed["risk"] * 20).astype(int), 19)
    expected = (
        observed.groupby(["policy", "bin"])
        .agg(impressions=("impressions", "sum"), n_units=("risk", "size"))
        .reindex(pd.MultiIndex.from_product([sorted(POLICIES), range(20)]), fill_value=0)
    )
    got = hist.set_index(["policy", "bin"])[["impressions", "n_units"]].sort_index()
    np.testing.assert_allclose(got["impressions"], expected["impressions"].astype(float))
    np.testing.assert_array_equal(got["n_units"], expected["n_units"])

    stats = _frame(
        conn,
        "SELECT policy, n_units, n_imputed, impressions, imputed_impressions "
        "FROM tsm.score_day_stats WHERE event_date = %s ORDER BY policy",
        (day,),
    ).set_index("policy")
    per_policy = risk.groupby("policy")
    np.testing.assert_array_equal(stats["n_units"], per_policy.size().sort_index())
    np.testing.assert_array_equal(stats["n_imputed"], per_policy["risk_imputed"].sum().sort_index())
    assert (stats["n_units"] == 2000).all()

    # Re-running replaces the day with identical rows.
    before = conn.execute(
        "SELECT * FROM tsm.score_histograms WHERE event_date = %s ORDER BY policy, bin", (day,)
    ).fetchall()
    conn.commit()
    run_sql_file(conn, "score_histograms.sql", {"day": day.isoformat(), "policies": POLICIES_PARAM})
    after = conn.execute(
        "SELECT * FROM tsm.score_histograms WHERE event_date = %s ORDER BY policy, bin", (day,)
    ).fetchall()
    assert after == before


def test_healthy_days_pass_and_first_day_is_skipped(
    conn: psycopg.Connection, warehouse: Warehouse
) -> None:
    first = _by_key(health_checks_day(conn, FIRST_DAY, POLICIES, design_id=DESIGN))
    assert first[("input_volume", "*")].outcome == "skipped"
    assert first[("quarantine_rate", "*")].outcome == "pass"
    assert first[("realized_sample", "*")].outcome == "skipped"
    assert first[("label_completion", "*")].outcome == "skipped"
    for policy in POLICIES:
        assert first[("missing_score_rate", policy)].outcome == "pass"
        assert first[("score_drift", policy)].outcome == "skipped"

    # The last day: label tasks still pending breach label completion ...
    pending = _by_key(health_checks_day(conn, LAST_DAY, POLICIES, design_id=DESIGN))
    labels = pending[("label_completion", "*")]
    assert labels.outcome == "breach" and labels.statistic == 0.0
    assert labels.details["by_status"]["pending"] == labels.details["tasks_total"] > 0

    # ... once they are done, every check passes; a pending gold task (calibration, not one of
    # the day's units) does not count.
    conn.execute("UPDATE tsm.label_tasks SET status = 'done' WHERE event_date = %s", (LAST_DAY,))
    conn.execute(
        "INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, gold_id, payload) "
        "VALUES (%s, 'gold:g-health', 'lab', 'gold', 'g-health', '{}') ON CONFLICT DO NOTHING",
        (LAST_DAY,),
    )
    conn.commit()
    results = health_checks_day(conn, LAST_DAY.isoformat(), POLICIES_PARAM, design_id=DESIGN)
    keyed = _by_key(results)
    assert [r.check_name for r in results[:4]] == [
        "input_volume",
        "quarantine_rate",
        "realized_sample",
        "label_completion",
    ]
    assert len(results) == 4 + 2 * len(POLICIES)
    assert {r.outcome for r in results} == {"pass"}, [
        (r.check_name, r.policy, r.statistic, r.details.get("reason")) for r in results
    ]
    assert keyed[("label_completion", "*")].details["by_purpose"]["gold"] == {"pending": 1}
    volume = keyed[("input_volume", "*")]
    assert volume.details["today_rows"] == 2000 and volume.details["baseline_rows"] == [2000] * 3
    assert volume.details["units"] == 2000
    assert keyed[("realized_sample", "*")].details["designs"] == {
        DESIGN: {"planned_draws": 300, "realized_draws": 300}
    }
    for policy in POLICIES:
        drift = keyed[("score_drift", policy)]
        assert drift.details["n_baseline_days"] == 3 and drift.details["weight"] == "units"
        assert drift.statistic < 0.05
        assert drift.details["baseline_dates"] == [d.isoformat() for d in warehouse.days[:3]]
        assert "psi_by_impressions" in drift.details
    for result in results:
        _assert_json_safe(result)

    # Reads only: nothing written to tsm.checks, and no transaction left open.
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    n_checks = conn.execute(
        "SELECT count(*) FROM tsm.checks WHERE event_date = %s", (LAST_DAY,)
    ).fetchone()
    assert n_checks == (0,)

    # A per-policy sample beside the shared one: the check covers every design it is given, so a
    # short second design breaches although the shared one is complete.
    with conn.transaction():
        conn.execute(
            "INSERT INTO tsm.sample_designs (event_date, design_id, method, seed, n_draws, "
            "size_floor, total_size, total_impressions, n_units) SELECT event_date, 'own', "
            "method, seed, n_draws, size_floor, total_size, total_impressions, n_units "
            "FROM tsm.sample_designs WHERE event_date = %s AND design_id = %s",
            (LAST_DAY, DESIGN),
        )
        conn.execute(
            "INSERT INTO tsm.samples (event_date, design_id, draw_no, unit_id, size, "
            "selection_prob, expected_hits, impressions) SELECT event_date, 'own', draw_no, "
            "unit_id, size, selection_prob, expected_hits, impressions FROM tsm.samples "
            "WHERE event_date = %s AND design_id = %s AND draw_no <= 150",
            (LAST_DAY, DESIGN),
        )
    shared_only = _by_key(health_checks_day(conn, LAST_DAY, POLICIES, design_id=DESIGN))
    assert shared_only[("realized_sample", "*")].outcome == "pass"
    both = _by_key(health_checks_day(conn, LAST_DAY, POLICIES, design_id=[DESIGN, "own"]))
    sample = both[("realized_sample", "*")]
    assert sample.outcome == "breach" and sample.statistic == pytest.approx(450 / 600)
    assert sample.details["designs"] == {
        DESIGN: {"planned_draws": 300, "realized_draws": 300},
        "own": {"planned_draws": 300, "realized_draws": 150},
    }
    with pytest.raises(ValueError, match="^design_id: expected a non-empty string"):
        health_checks_day(conn, LAST_DAY, POLICIES, design_id=[])
    conn.execute("DELETE FROM tsm.sample_designs WHERE design_id = 'own'")  # cascades
    conn.commit()


def test_thresholds_override_the_defaults(conn: psycopg.Connection, warehouse: Warehouse) -> None:
    results = _by_key(
        health_checks_day(
            conn,
            LAST_DAY,
            POLICIES,
            design_id=DESIGN,
            thresholds={
                "input_volume": {"min_baseline_days": 4.0},
                "score_drift": {"max_psi": 1e-9},
            },
        )
    )
    assert results[("input_volume", "*")].outcome == "skipped"
    assert results[("score_drift", POLICIES[0])].threshold == 1e-9
    assert {results[("score_drift", p)].outcome for p in POLICIES} == {"breach"}


def test_injected_score_drift_breaches_for_that_policy_only(
    conn: psycopg.Connection, warehouse: Warehouse
) -> None:
    drifted = "harassment"
    params = {"day": LAST_DAY.isoformat(), "policies": POLICIES_PARAM}
    conn.execute(
        "UPDATE tsm.unit_risk SET risk = least(1, risk * 4 + 0.3) "
        "WHERE event_date = %s AND policy = %s",
        (LAST_DAY, drifted),
    )
    conn.commit()
    try:
        run_sql_file(conn, "score_histograms.sql", params)
        results = _by_key(health_checks_day(conn, LAST_DAY, POLICIES, design_id=DESIGN))
        for policy in POLICIES:
            drift = results[("score_drift", policy)]
            assert drift.outcome == ("breach" if policy == drifted else "pass"), (policy, drift)
            assert results[("missing_score_rate", policy)].outcome == "pass"
        breach = results[("score_drift", drifted)]
        assert breach.statistic > 1.0
        assert breach.details["psi_by_impressions"] > 0.2
        assert breach.details["jensen_shannon"] > 0.3
        assert breach.details["mean_score_shift"] > 0.3
        assert breach.details["top_bins"][0]["lower"] >= 0.3
        # Impression weighting flags it too.
        weighted = _by_key(
            health_checks_day(conn, LAST_DAY, [drifted], drift_weight="impressions")
        )[("score_drift", drifted)]
        assert weighted.outcome == "breach" and weighted.details["weight"] == "impressions"
    finally:
        _build_day(conn, LAST_DAY)  # rebuild units and histograms from the raw tables
    restored = _by_key(health_checks_day(conn, LAST_DAY, POLICIES, design_id=DESIGN))
    assert restored[("score_drift", drifted)].outcome == "pass"


def test_stale_or_missing_histogram_skips_drift(
    conn: psycopg.Connection, warehouse: Warehouse
) -> None:
    conn.commit()
    params = {"day": LAST_DAY.isoformat(), "policies": POLICIES_PARAM}
    try:
        with conn.transaction():
            conn.execute(
                "DELETE FROM tsm.unit_risk WHERE event_date = %s AND unit_id IN "
                "(SELECT unit_id FROM tsm.units WHERE event_date = %s ORDER BY unit_id LIMIT 5)",
                (LAST_DAY, LAST_DAY),
            )
        stale = _by_key(health_checks_day(conn, LAST_DAY, POLICIES))
        for policy in POLICIES:
            reason = stale[("score_drift", policy)].details["reason"]
            assert stale[("score_drift", policy)].outcome == "skipped"
            assert reason.startswith("score histogram is stale: built on 2000 units")
        with conn.transaction():
            conn.execute("DELETE FROM tsm.score_histograms WHERE event_date = %s", (LAST_DAY,))
        missing = _by_key(health_checks_day(conn, LAST_DAY, POLICIES))
        assert (
            missing[("score_drift", POLICIES[0])]
            .details["reason"]
            .startswith("no score histogram for the day")
        )
    finally:
        conn.commit()
        run_sql_file(conn, "build_units.sql", params)
        run_sql_file(conn, "score_histograms.sql", params)


def test_volume_drop_and_quarantine_breach(conn: psycopg.Connection, warehouse: Warehouse) -> None:
    """A fifth day with 300 interactions and 10 unparseable lines (310 rows read)."""
    day = LAST_DAY + timedelta(days=1)
    _load_day(conn, warehouse.raw_dir.parent, day, 300, junk=10)
    results = _by_key(health_checks_day(conn, day, POLICIES, baseline_days=7))
    volume = results[("input_volume", "*")]
    assert volume.outcome == "breach"
    assert volume.details["today_rows"] == 310
    assert volume.details["baseline_rows"] == [2000] * N_DAYS
    assert volume.statistic == pytest.approx(abs(math.log(310 / 2000)))
    assert volume.details["log_ratio"] < 0
    quarantine = results[("quarantine_rate", "*")]
    assert quarantine.outcome == "breach"
    assert quarantine.statistic == pytest.approx(10 / 310)
    assert quarantine.details["rows_quarantined"] == 10
    # No sample or labels for that day yet.
    assert results[("realized_sample", "*")].outcome == "skipped"
    assert results[("label_completion", "*")].outcome == "skipped"
    # A looser bound accepts the drop.
    loose = _by_key(
        health_checks_day(
            conn, day, POLICIES, thresholds={"input_volume": {"max_abs_log_ratio": 2}}
        )
    )
    assert loose[("input_volume", "*")].outcome == "pass"


def test_missing_scores_breach(
    conn: psycopg.Connection, warehouse: Warehouse, tmp_path: Path
) -> None:
    """A day where most scores are missing: missing_score_rate breaches for every policy."""
    day = LAST_DAY + timedelta(days=2)
    sim = simulate_day(day, SEED, SimulationConfig(n_interactions=300, missing_score_rate=0.8))
    write_day(sim, tmp_path / "raw", tmp_path / "truth")
    load_raw_day(conn, tmp_path / "raw", day)
    _build_day(conn, day)
    results = _by_key(health_checks_day(conn, day, POLICIES))
    for policy in POLICIES:
        missing = results[("missing_score_rate", policy)]
        assert missing.outcome == "breach", missing
        assert 0.2 < missing.statistic < 1.0
        assert 0.0 < missing.details["imputed_impression_share"] < 1.0
