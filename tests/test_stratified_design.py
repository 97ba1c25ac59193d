"""The stratified design in the warehouse: strata and hash selection in SQL against the Python
reference (bit for bit), the allocation (sums to n; proportional without history, Neyman from
earlier labels), the rows it stores, and estimate_day's stratified estimator."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import SQL_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from tsmetrics.config import RunConfig, StratifiedConfig, load_config
from tsmetrics.design_day import plan_expected_n
from tsmetrics.designs import DESIGNS, draw_design
from tsmetrics.measure import estimate_day
from tsmetrics.stratified import (
    proportional_allocation,
    stratified_hash_select,
    stratified_prevalence,
    stratum_of,
)
from tsmetrics.stratified_design import History, Stratum, allocate, reference_strata

POLICIES = ("adult", "harassment", "self_harm", "misinformation")
DAY0 = date(2036, 5, 1)
N = 2000


def _population(conn: psycopg.Connection, day: date, seed: int) -> dict[str, Any]:
    """N units on ``day`` (Pareto impressions, beta risks, identity calibrations) and each
    unit's truth, drawn from the risks."""
    rng = np.random.default_rng(seed)
    unit_ids = [f"sd-{day:%m%d}-{i:05d}" for i in range(N)]
    impressions = np.ceil(5.0 * (rng.pareto(1.3, N) + 1.0)).astype(np.int64)
    risk = rng.beta(0.6, 6.0, size=(N, len(POLICIES))).round(5)
    imputed = rng.random((N, len(POLICIES))) < 0.05
    truth = rng.random((N, len(POLICIES))) < risk
    surfaces = np.where(rng.random(N) < 0.6, "search", "home_feed")
    with conn.transaction():
        conn.execute("SELECT tsm.ensure_day_partitions(%s::date)", (day,))
        for table in ("unit_risk", "units", "raw_components"):
            conn.execute("SELECT tsm.truncate_day(%s, %s::date)", (table, day))
        for table in ("score_calibrations", "sample_designs", "labels", "estimates"):
            conn.execute(f"DELETE FROM tsm.{table} WHERE event_date = %s", (day,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tsm.units (event_date, unit_id, surface, impressions, n_components) "
                "VALUES (%s, %s, %s, %s, 2)",
                [
                    (day, u, str(s), int(x))
                    for u, s, x in zip(unit_ids, surfaces, impressions, strict=True)
                ],
            )
            cur.executemany(  # a query and a pin, sharing the unit's impressions
                "INSERT INTO tsm.raw_components (event_date, interaction_id, component_id, "
                "component_type, position, content_text, impressions) "
                "VALUES (%s, %s, %s, %s, %s, 'text', %s)",
                [
                    row
                    for u, x in zip(unit_ids, impressions, strict=True)
                    for row in (
                        (day, u, "q", "user_query", 0, int(x) - int(x) // 3),
                        (day, u, "p1", "pin_image", 1, int(x) // 3),
                    )
                ],
            )
            cur.executemany(
                "INSERT INTO tsm.unit_risk (event_date, unit_id, policy, risk, risk_imputed) "
                "VALUES (%s, %s, %s, %s, %s)",
                [
                    (day, u, p, float(risk[i, j]), bool(imputed[i, j]))
                    for i, u in enumerate(unit_ids)
                    for j, p in enumerate(POLICIES)
                ],
            )
            cur.executemany(
                "INSERT INTO tsm.score_calibrations (event_date, policy, version, method, eps, "
                "calibration) VALUES (%s, %s, 'identity-test', 'identity', 0.0001, '{}')",
                [(day, p) for p in POLICIES],
            )
    return {
        "unit_ids": unit_ids,
        "impressions": impressions,
        "truth": truth,
        "day": day,
        "risk": risk,
        "imputed": imputed,
    }


@pytest.fixture(scope="module")
def days(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        return [_population(conn, DAY0 + timedelta(days=k), 100 + k) for k in range(2)]


def _config(**stratified: Any) -> RunConfig:
    base = load_config()
    spec = dataclasses.replace(
        base.sampling,
        method="stratified",
        design_id="stratified_test",
        seed=424242,
        n_draws=300,
        label_budget=None,
        size_measure="sqrt_calibrated",
        stratified=StratifiedConfig(
            **{
                "n_strata": 5,
                "min_per_stratum": 5,
                "min_history_units": 10,
                "min_history_positives": 3,
                **stratified,
            }
        ),
    )
    return dataclasses.replace(base, sampling=spec, estimator="stratified")


def _frame(
    conn: psycopg.Connection, day: date, measure: str, policies: list[str] | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    rows = conn.execute(
        "SELECT unit_id, impressions, size FROM tsm.unit_sizes(%s::date, %s, 0.03, %s) "
        'ORDER BY unit_id COLLATE "C"',
        (day, measure, policies),
    ).fetchall()
    return (
        [r[0] for r in rows],
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows], dtype=np.float64),
    )


@pytest.mark.parametrize(
    ("measure", "policies", "factor", "n_strata"),
    [
        ("sqrt_calibrated", None, 1.0, 5),
        ("sqrt_calibrated", ["self_harm"], 1.0, 4),
        ("max_risk", None, None, 6),
        ("max_risk", ["adult"], 0.5, 1),
    ],
)
def test_sql_strata_and_selection_equal_the_python_reference(
    conn: psycopg.Connection,
    days: list[dict[str, Any]],
    measure: str,
    policies: list[str] | None,
    factor: float | None,
    n_strata: int,
) -> None:
    day, expected_n = days[0]["day"], 300.0
    unit_ids, impressions, size = _frame(conn, day, measure, policies)
    cuts, strata = reference_strata(impressions, size, n_strata, factor, expected_n)
    rows = conn.execute(
        "SELECT stratum, kind, n_units, impressions, cuts, lower_cut, upper_cut "
        "FROM tsm.stratified_strata(%s::date, %s, 0.03, %s, %s, %s, %s)",
        (day, measure, policies, factor, expected_n, n_strata),
    ).fetchall()
    assert rows[0][4] == cuts.tolist()  # the cut points, exactly
    assert 1 <= len(cuts) + 1 <= n_strata
    sizes = np.bincount(strata)
    assert [r[0] for r in rows] == np.flatnonzero(sizes).tolist()
    assert [int(r[2]) for r in rows] == sizes[sizes > 0].tolist()
    assert [int(r[3]) for r in rows] == [int(impressions[strata == r[0]].sum()) for r in rows]
    take_all = [r for r in rows if r[1] == "take_all"]
    if factor is None:
        assert not take_all
    else:
        assert take_all and take_all[0][0] == len(cuts) + 1  # last, after the risk strata
        assert impressions[strata == len(cuts) + 1].min() >= factor * impressions.sum() / 300
    for r in rows:  # each risk stratum holds the scores in (lower, upper]
        if r[1] == "risk":
            score = (size / impressions)[strata == r[0]]
            assert r[5] is None or score.min() > r[5]
            assert r[6] is None or score.max() <= r[6]
    # Selection: any allocation; the SQL's n_h smallest uniforms per stratum = Python's.
    n_h = np.zeros(len(sizes), dtype=np.int64)
    n_h[sizes > 0] = proportional_allocation(sizes[sizes > 0], 250, 2)
    if factor is not None:
        n_h[len(cuts) + 1] = sizes[len(cuts) + 1]
    selected = conn.execute(
        "SELECT unit_id, stratum, inclusion_prob, n_h, stratum_units "
        "FROM tsm.stratified_sample(%s::date, %s, 0.03, %s, %s, %s, %s, %s, 77)",
        (day, measure, policies, factor, expected_n, cuts.tolist(), n_h.tolist()),
    ).fetchall()
    expected = stratified_hash_select(unit_ids, strata, n_h, day, 77)
    assert [r[0] for r in selected] == [unit_ids[i] for i in expected]
    assert [r[1] for r in selected] == strata[expected].tolist()
    assert [r[2] for r in selected] == (n_h[strata[expected]] / sizes[strata[expected]]).tolist()


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 400), min_size=1, max_size=7),
    take_all=st.integers(0, 20),
    extra=st.integers(0, 300),
    min_per=st.integers(2, 12),
    seed=st.integers(0, 10_000),
    with_history=st.booleans(),
)
def test_allocation_sums_to_n_within_bounds(
    sizes: list[int], take_all: int, extra: int, min_per: int, seed: int, with_history: bool
) -> None:
    strata = [Stratum(h, "risk", None, None, n, n * 10) for h, n in enumerate(sizes)]
    if take_all:
        strata.append(Stratum(len(sizes), "take_all", None, None, take_all, take_all * 1000))
    cuts = [float(h) + 0.5 for h in range(len(sizes) - 1)]
    floor = sum(min(min_per, n) for n in sizes)
    n = take_all + floor + extra
    rng = np.random.default_rng(seed)
    m = 200 * len(sizes) if with_history else 0
    score = rng.integers(0, len(sizes), m) + rng.random(m) * 0.4
    x = rng.integers(1, 50, m).astype(float)
    y = np.where(rng.random((m, 2)) < 0.2, x[:, None], 0.0)
    history = History(("a", "b"), score, x, y, rng.random(m) + 0.5, ("2036-01-01",))
    allocation = allocate(
        strata,
        cuts,
        n,
        history,
        min_per_stratum=min_per,
        min_history_units=10,
        min_history_positives=3,
        take_all_min_impressions=None,
    )
    sizes_all = np.array([s.n_units for s in strata])
    assert allocation.n_h.sum() == min(n, sizes_all.sum())
    assert np.all(allocation.n_h <= sizes_all)
    assert np.all(allocation.n_h[: len(sizes)] >= np.minimum(sizes, min_per))
    if take_all:
        assert allocation.n_h[-1] == take_all  # taken whole
    assert allocation.rule == ("neyman" if with_history else "proportional")


def test_too_small_a_sample_for_take_all_and_minimum_is_a_clear_error() -> None:
    strata = [Stratum(0, "risk", None, 1.0, 50, 50), Stratum(1, "take_all", None, None, 9, 900)]
    empty = History(("a",), np.zeros(0), np.zeros(0), np.zeros((0, 1)), np.zeros(0), ())
    with pytest.raises(ValueError, match="expected_n: expected at least 19"):
        allocate(
            strata,
            [],
            15,
            empty,
            min_per_stratum=10,
            min_history_units=10,
            min_history_positives=1,
            take_all_min_impressions=None,
        )


def _label(conn: psycopg.Connection, population: dict[str, Any], design_id: str) -> None:
    """Label every sampled unit of the design with its truth (primary labeler)."""
    index = {u: i for i, u in enumerate(population["unit_ids"])}
    labeler = load_config().primary_labeler.labeler_id
    sampled = conn.execute(
        "SELECT unit_id FROM tsm.samples WHERE event_date = %s AND design_id = %s",
        (population["day"], design_id),
    ).fetchall()
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tsm.labels (event_date, unit_id, labeler_id, policy, is_violating) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (population["day"], u, labeler, p, bool(population["truth"][index[u], j]))
                for (u,) in sampled
                for j, p in enumerate(POLICIES)
            ],
        )


def _design_row(conn: psycopg.Connection, day: date, design_id: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT method, n_draws, params FROM tsm.sample_designs "
        "WHERE event_date = %s AND design_id = %s",
        (day, design_id),
    ).fetchone()
    assert row is not None
    return row


def test_draw_proportional_then_neyman_from_the_first_days_labels(
    conn: psycopg.Connection, days: list[dict[str, Any]]
) -> None:
    config = _config()
    spec = config.sampling
    first, second = days[0], days[1]
    summary = draw_design(conn, first["day"], config, spec, SQL_DIR, plan_expected_n)
    method, n_draws, params = _design_row(conn, first["day"], spec.design_id)
    assert (method, summary["method"]) == ("stratified", "stratified")
    assert params["allocation"] == "proportional"
    assert params["allocation_reason"] == "no labelled history"
    n_h = {s["stratum"]: s["n_h"] for s in params["strata"]}
    assert n_draws == sum(n_h.values()) == 300 == summary["n_units"]
    realised = dict(
        conn.execute(
            "SELECT stratum, count(*) FROM tsm.samples WHERE event_date = %s AND design_id = %s "
            "GROUP BY stratum",
            (first["day"], spec.design_id),
        ).fetchall()
    )
    assert realised == n_h
    probs = conn.execute(
        "SELECT DISTINCT stratum, selection_prob FROM tsm.samples WHERE event_date = %s "
        "AND design_id = %s",
        (first["day"], spec.design_id),
    ).fetchall()
    big_n = {s["stratum"]: s["N_h"] for s in params["strata"]}
    assert sorted(probs) == sorted((h, n_h[h] / big_n[h]) for h in n_h)
    # Re-drawing gives the same sample.
    before = conn.execute(
        "SELECT unit_id, stratum, selection_prob FROM tsm.samples WHERE event_date = %s "
        "ORDER BY unit_id",
        (first["day"],),
    ).fetchall()
    draw_design(conn, first["day"], config, spec, SQL_DIR, plan_expected_n)
    assert (
        before
        == conn.execute(
            "SELECT unit_id, stratum, selection_prob FROM tsm.samples WHERE event_date = %s "
            "ORDER BY unit_id",
            (first["day"],),
        ).fetchall()
    )

    _label(conn, first, spec.design_id)
    # The second day's calibration differs from the first's (Platt instead of identity): the
    # first day's units must be placed by their score under the second day's measure.
    a, b, eps = -0.4, 1.3, 1e-4
    conn.execute(
        "UPDATE tsm.score_calibrations SET method = 'platt', a = %s, b = %s WHERE event_date = %s",
        (a, b, second["day"]),
    )
    conn.commit()
    draw_design(conn, second["day"], config, spec, SQL_DIR, plan_expected_n)
    _, n_draws2, params2 = _design_row(conn, second["day"], spec.design_id)
    assert params2["allocation"] == "neyman", params2["allocation_reason"]
    assert params2["history_days"] == [first["day"].isoformat()]
    assert n_draws2 == 300

    # S_h recomputed independently: the first day's labelled units placed in the second day's
    # strata by their score under the second day's calibration and calibrated prevalence,
    # weighted by 1 / pi in their own design.
    def platt(r: np.ndarray) -> np.ndarray:
        c = np.clip(r, eps, 1 - eps)
        bound = np.log((1 - eps) / eps)
        return 1 / (1 + np.exp(-np.clip(a + b * np.log(c / (1 - c)), -bound, bound)))

    x2 = second["impressions"].astype(float)[:, None]
    q2 = platt(second["risk"])
    observed = ~second["imputed"]
    fill = (x2 * q2 * observed).sum(0) / (x2 * observed).sum(0)
    pbar = (x2 * np.where(second["imputed"], fill, q2)).sum(0) / x2.sum()
    q1 = np.where(first["imputed"], fill, platt(first["risk"]))
    score1 = np.sqrt((np.maximum(q1, 0.03 * pbar) / pbar**2).sum(1))
    hist = conn.execute(
        "SELECT s.unit_id, s.impressions, 1.0 / s.selection_prob "
        "FROM tsm.samples s WHERE s.event_date = %s AND s.design_id = %s",
        (first["day"], spec.design_id),
    ).fetchall()
    index = {u: i for i, u in enumerate(first["unit_ids"])}
    threshold = params2["take_all_min_impressions"]
    keep = [(score1[index[u]], x, w, u) for u, x, w in hist if x < threshold]
    stored_scores = conn.execute(
        "SELECT unit_id, size / impressions FROM tsm.samples WHERE event_date = %s",
        (first["day"],),
    ).fetchall()
    assert not np.allclose(  # the first day's own scores would place them differently
        [sc for _, sc in sorted(stored_scores)],
        [score1[index[u]] for u, _ in sorted(stored_scores)],
    )
    stratum = stratum_of([h[0] for h in keep], params2["cuts"])
    w = np.array([h[2] for h in keep])
    y = np.array([[h[1] * first["truth"][index[h[3]], j] for j in range(4)] for h in keep])
    relative = np.zeros(len(params2["cuts"]) + 1)
    for j in range(4):
        if (y[:, j] > 0).sum() < 3:
            continue
        ybar = np.sum(w * y[:, j]) / np.sum(w)
        for h in range(len(relative)):
            m = stratum == h
            mean = np.sum(w[m] * y[m, j]) / np.sum(w[m])
            var = m.sum() / (m.sum() - 1) * np.sum(w[m] * (y[m, j] - mean) ** 2) / np.sum(w[m])
            relative[h] += var / ybar**2
    stored = [s["S_h"] for s in params2["strata"] if s["kind"] == "risk"]
    np.testing.assert_allclose(stored, np.sqrt(relative), rtol=1e-9)


def test_estimate_day_uses_the_stratified_estimator(
    conn: psycopg.Connection, days: list[dict[str, Any]]
) -> None:
    config = _config()
    population = days[1]
    day = population["day"]
    draw_design(conn, day, config, config.sampling, SQL_DIR, plan_expected_n)
    _label(conn, population, config.sampling.design_id)
    rows = {(r["policy"], r["domain"], r["level"]): r for r in estimate_day(conn, day, config)}
    _, _, params = _design_row(conn, day, config.sampling.design_id)
    sizes = np.zeros(len(params["strata"]), dtype=np.int64)
    for s in params["strata"]:
        sizes[s["stratum"]] = s["N_h"]
    sample = conn.execute(
        "SELECT s.unit_id, s.stratum, s.impressions, u.surface FROM tsm.samples s JOIN tsm.units u "
        "USING (event_date, unit_id) WHERE s.event_date = %s AND s.design_id = %s",
        (day, config.sampling.design_id),
    ).fetchall()
    index = {u: i for i, u in enumerate(population["unit_ids"])}
    strata = np.array([r[1] for r in sample])
    x = np.array([r[2] for r in sample], dtype=float)
    for j, policy in enumerate(POLICIES):
        y = x * np.array([population["truth"][index[r[0]], j] for r in sample])
        for domain, member in (
            ("all", np.ones(len(sample), bool)),
            ("surface=search", np.array([r[3] == "search" for r in sample])),
        ):
            total = float(
                conn.execute(
                    "SELECT sum(impressions) FROM tsm.units WHERE event_date = %s "
                    "AND (%s = 'all' OR 'surface=' || surface = %s)",
                    (day, domain, domain),
                ).fetchone()[0]  # type: ignore[index]
            )
            expected = stratified_prevalence(
                y, strata, sizes, total, domain=member, single_unit_strata="collapse"
            )
            got = rows[(policy, domain, "unit")]
            assert got["estimator"] == "stratified"
            assert got["estimate"] == pytest.approx(expected.estimate, rel=1e-12)
            assert got["std_error"] == pytest.approx(expected.std_error, rel=1e-12)
            assert got["ci_method"] == config.ci_method
            assert got["ci_lower"] <= got["estimate"] <= got["ci_upper"]
    # No component verdicts were given: no component-level rows.
    assert not [k for k in rows if k[2] == "component"]
    assert DESIGNS["stratified"].estimator == "stratified"
