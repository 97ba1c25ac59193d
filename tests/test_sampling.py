"""Tests of tsmetrics.sampling and include/sql/sample_poisson_pps.sql."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
from conftest import SQL_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from tsmetrics.estimation import PrevalenceEstimate
from tsmetrics.sampling import (
    hash_poisson_pps_select,
    hash_uniforms,
    horvitz_thompson_prevalence,
    poisson_pps_inclusion,
    poisson_pps_select,
    pps_with_replacement,
    priority_sample,
    size_measure,
    srs_without_replacement,
)

POLICIES = ["adult", "harassment", "self_harm", "misinformation"]

# --------------------------------------------------------------------------------------------
# size_measure and poisson_pps_inclusion
# --------------------------------------------------------------------------------------------


def test_size_measure_imputes_missing_risk_by_impression_weighted_mean() -> None:
    x = np.array([10.0, 30.0, 5.0, 0.0, 7.0])
    r = np.array([0.1, 0.5, np.nan, 0.9, np.nan])
    fill = (10 * 0.1 + 30 * 0.5) / 40
    np.testing.assert_allclose(
        size_measure(x, r, 0.02), x * (0.02 + np.array([0.1, 0.5, fill, 0.9, fill]))
    )
    # No known risk at all: the floor alone keeps units with impressions selectable.
    np.testing.assert_allclose(size_measure([3, 0], [np.nan, np.nan], 0.05), [0.15, 0.0])


@pytest.mark.parametrize(
    ("impressions", "risk", "floor"),
    [([1, 2], [0.1], 0.1), ([-1], [0.1], 0.1), ([1], [1.5], 0.1), ([1], [0.1], 0.0)],
)
def test_size_measure_validation(impressions: Any, risk: Any, floor: float) -> None:
    with pytest.raises(ValueError):
        size_measure(impressions, risk, floor)


def _iterative_capping(size: npt.NDArray[np.float64], n: float) -> npt.NDArray[np.float64]:
    """Textbook algorithm: cap, re-solve c on the rest, until no new certainty unit."""
    certain = np.zeros(len(size), dtype=bool)
    while True:
        if certain.all():
            return np.ones(len(size))
        c = (n - certain.sum()) / size[~certain].sum()
        new = ~certain & (size * c >= 1.0)
        if not new.any():
            return np.where(certain, 1.0, np.minimum(size * c, 1.0))
        certain |= new


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.floats(1e-3, 1e6), min_size=1, max_size=60),
    fraction=st.floats(0.01, 1.0),
)
def test_poisson_inclusion_properties(sizes: list[float], fraction: float) -> None:
    size = np.array(sizes)
    n = max(fraction * len(size), 0.5)
    pi = poisson_pps_inclusion(size, n)
    assert np.all((pi > 0.0) & (pi <= 1.0))
    assert pi.sum() == pytest.approx(n, rel=1e-9)
    order = np.argsort(size)
    assert np.all(np.diff(pi[order]) >= -1e-12), "pi must be non-decreasing in size"
    np.testing.assert_allclose(pi, _iterative_capping(size, n), rtol=1e-9, atol=1e-12)


def test_poisson_inclusion_zero_sizes_and_validation() -> None:
    pi = poisson_pps_inclusion([0.0, 1.0, 1.0, 2.0], 2.0)
    np.testing.assert_allclose(pi, [0.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(poisson_pps_inclusion([0.0, 1.0, 3.0], 2), [0.0, 1.0, 1.0])
    for bad_n in (0, 3.5, -1.0, True):
        with pytest.raises(ValueError, match="expected_n"):
            poisson_pps_inclusion([0.0, 1.0, 3.0], bad_n)
    with pytest.raises(ValueError, match="size"):
        poisson_pps_inclusion([1.0, -1.0], 1)


# --------------------------------------------------------------------------------------------
# Fixed-size designs
# --------------------------------------------------------------------------------------------


def test_srs_and_pps_wr_sizes_are_exact() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 17, 500):
        srs = srs_without_replacement(500, n, rng)
        assert len(srs) == n and len(np.unique(srs)) == n
        assert srs.min() >= 0 and srs.max() < 500
    size = np.r_[np.zeros(5), np.arange(1.0, 96.0)]
    for n in (1, 10, 1000):
        draws = pps_with_replacement(size, n, 7)
        assert len(draws) == n
        assert not np.isin(draws, np.arange(5)).any(), "a unit of size 0 was drawn"
    assert np.array_equal(pps_with_replacement(size, 50, 9), pps_with_replacement(size, 50, 9))
    with pytest.raises(ValueError, match="n"):
        srs_without_replacement(5, 6, rng)
    with pytest.raises(ValueError, match="rng"):
        srs_without_replacement(5, 2, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        pps_with_replacement([0.0, 0.0], 3, rng)


def test_priority_sample_size_threshold_and_probabilities() -> None:
    size = np.r_[0.0, np.geomspace(1.0, 1e4, 199)]
    sample = priority_sample(size, 40, 11)
    assert len(sample.indices) == 40 and 0 not in sample.indices
    assert sample.threshold > 0.0
    np.testing.assert_allclose(
        sample.inclusion_prob, np.minimum(1.0, size[sample.indices] / sample.threshold)
    )
    np.testing.assert_allclose(
        sample.weights, np.maximum(size[sample.indices], sample.threshold) / size[sample.indices]
    )
    everything = priority_sample([0.0, 2.0, 3.0], 5, 1)
    assert everything.indices.tolist() == [1, 2] and everything.threshold == 0.0


# --------------------------------------------------------------------------------------------
# Horvitz-Thompson estimator
# --------------------------------------------------------------------------------------------


def test_horvitz_thompson_hand_computed() -> None:
    y = [10.0, 0.0, 60.0]
    pi = [0.5, 0.25, 1.0]
    res = horvitz_thompson_prevalence(y, pi, 400.0, ci_method="wald")
    assert isinstance(res, PrevalenceEstimate)
    assert res.estimate == pytest.approx((20.0 + 60.0) / 400.0)
    assert res.std_error == pytest.approx(math.sqrt(0.5 * 10.0**2 / 0.25) / 400.0)
    assert (res.n_draws, res.n_distinct_units, res.n_positive_draws) == (3, 3, 2)
    assert res.ci_lower == pytest.approx(res.estimate - 1.959963984540054 * res.std_error)


@pytest.mark.parametrize(
    ("y", "pi", "total", "kwargs"),
    [
        ([1.0], [0.0], 10.0, {}),
        ([1.0], [1.2], 10.0, {}),
        ([1.0, 2.0], [0.5], 10.0, {}),
        ([], [], 10.0, {}),
        ([-1.0], [0.5], 10.0, {}),
        ([1.0], [0.5], 0.0, {}),
        ([1.0], [0.5], 10.0, {"ci_method": "nope"}),
        ([1.0], [0.5], 10.0, {"confidence": 1.0}),
    ],
)
def test_horvitz_thompson_validation(
    y: list[float], pi: list[float], total: float, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        horvitz_thompson_prevalence(y, pi, total, **kwargs)


N_UNITS, EXPECTED_N, N_REPS, FLOOR = 20_000, 2_000, 1_000, 0.05


@dataclass(frozen=True)
class Summary:
    truth: float
    estimates: npt.NDArray[np.float64]
    std_errors: npt.NDArray[np.float64]
    coverage: float

    @property
    def bias(self) -> float:
        return float(self.estimates.mean() - self.truth)

    @property
    def simulation_se(self) -> float:
        return float(self.estimates.std(ddof=1) / math.sqrt(len(self.estimates)))


def _population(
    rng: np.random.Generator, target: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """As in test_estimation: Pareto impressions, violators fill ~target, informative risk."""
    impressions = np.ceil(10.0 * (rng.pareto(1.5, N_UNITS) + 1.0))
    order = rng.permutation(N_UNITS)
    cum = np.cumsum(impressions[order])
    is_violating = np.zeros(N_UNITS, dtype=bool)
    is_violating[order[cum <= target * impressions.sum()]] = True
    risk = np.where(is_violating, rng.beta(5.0, 2.0, N_UNITS), rng.beta(1.0, 8.0, N_UNITS))
    return impressions, risk, np.where(is_violating, impressions, 0.0)


@pytest.fixture(scope="module")
def simulations() -> dict[tuple[str, float], Summary]:
    out: dict[tuple[str, float], Summary] = {}
    for target, seed in ((0.02, 20261124), (0.005, 20261125)):
        rng = np.random.default_rng(seed)
        x, risk, y = _population(rng, target)
        total = float(x.sum())
        size = size_measure(x, risk, FLOOR)
        pi = poisson_pps_inclusion(size, EXPECTED_N)
        for design in ("poisson", "priority"):
            estimates, ses, covered = [], [], 0
            for _ in range(N_REPS):
                if design == "poisson":
                    s = poisson_pps_select(pi, rng)
                    p = pi[s]
                else:
                    sample = priority_sample(size, EXPECTED_N, rng)
                    s, p = sample.indices, sample.inclusion_prob
                res = horvitz_thompson_prevalence(y[s], p, total)
                estimates.append(res.estimate)
                ses.append(res.std_error)
                covered += res.ci_lower <= y.sum() / total <= res.ci_upper
            out[(design, target)] = Summary(
                truth=float(y.sum() / total),
                estimates=np.array(estimates),
                std_errors=np.array(ses),
                coverage=covered / N_REPS,
            )
    return out


SIM_CASES = [(d, t) for d in ("poisson", "priority") for t in (0.02, 0.005)]


@pytest.mark.parametrize(("design", "target"), SIM_CASES)
def test_ht_is_unbiased_and_se_calibrated(
    simulations: dict[tuple[str, float], Summary], design: str, target: float
) -> None:
    s = simulations[(design, target)]
    assert s.truth == pytest.approx(target, rel=0.1)
    assert abs(s.bias) < 3 * s.simulation_se, (s.bias, s.simulation_se)
    rms_se = float(np.sqrt(np.mean(s.std_errors**2)))
    assert rms_se == pytest.approx(float(s.estimates.std(ddof=1)), rel=0.10)


@pytest.mark.parametrize("target", [0.02, 0.005])
def test_poisson_pps_wilson_kg_coverage(
    simulations: dict[tuple[str, float], Summary], target: float
) -> None:
    coverage = simulations[("poisson", target)].coverage
    assert 0.93 <= coverage <= 0.97, coverage


# --------------------------------------------------------------------------------------------
# Hash uniforms and the warehouse's Poisson selection
# --------------------------------------------------------------------------------------------


def test_hash_uniforms_match_postgres(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(1)
    alphabet = list("abcXYZ019-_:") + ["é", "ß", "中", "🙂"]
    ids = ["", "a"] + [
        "".join(rng.choice(alphabet, size=int(k))) for k in rng.integers(0, 45, size=400)
    ]
    day = date(2034, 1, 9)
    got = hash_uniforms(ids, day, 42)
    keys = [f"42:2034-01-09:{u}" for u in ids]
    rows = conn.execute(
        "SELECT tsm.hash_uniform(k) FROM unnest(%s::text[]) WITH ORDINALITY AS t (k, i) ORDER BY i",
        (keys,),
    ).fetchall()
    np.testing.assert_array_equal(got, np.array([r[0] for r in rows]))
    assert np.array_equal(hash_uniforms(ids, "2034-01-09", "42"), got)
    with pytest.raises(ValueError, match="day"):
        hash_uniforms(["a"], "09/01/2034", 1)
    with pytest.raises(ValueError, match="seed"):
        hash_uniforms(["a"], day, "x")


def _fetch_sql_file(conn: psycopg.Connection, name: str, params: dict[str, object]) -> list[Any]:
    """Render and run an include/sql file like conftest.run_sql_file; return the last result."""
    import jinja2
    import sqlparse

    rendered = jinja2.Template((SQL_DIR / name).read_text()).render()
    statements = [
        s.strip().rstrip(";")
        for s in sqlparse.split(rendered)
        if sqlparse.format(s, strip_comments=True).strip()
    ]
    conn.commit()
    rows: list[Any] = []
    with conn.transaction():
        for statement in statements:
            cur = conn.execute(statement, params)
            rows = cur.fetchall() if cur.description is not None else []
    return rows


SQL_DAY = date(2034, 1, 10)


@pytest.fixture(scope="module")
def sql_population(database_url: str) -> dict[str, Any]:
    """2000 synthetic units on 2034-01-10 (some without impressions, a few giants)."""
    rng = np.random.default_rng(2034)
    n = 2000
    unit_ids = [f"poi-{i:04d}" for i in range(n)]
    impressions = np.ceil(5.0 * (rng.pareto(1.3, n) + 1.0)).astype(np.int64)
    impressions[:20] = 0
    impressions[20:25] = 200_000  # certainty units
    risk = rng.uniform(0.0, 0.8, size=(n, len(POLICIES))).round(4)
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SELECT tsm.ensure_day_partitions(%s::date)", (SQL_DAY,))
        conn.execute("SELECT tsm.truncate_day('unit_risk', %s::date)", (SQL_DAY,))
        conn.execute("SELECT tsm.truncate_day('units', %s::date)", (SQL_DAY,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tsm.units (event_date, unit_id, surface, impressions, n_components) "
                "VALUES (%s, %s, 'search', %s, 2)",
                [(SQL_DAY, u, int(x)) for u, x in zip(unit_ids, impressions, strict=True)],
            )
            cur.executemany(
                "INSERT INTO tsm.unit_risk (event_date, unit_id, policy, risk, risk_imputed) "
                "VALUES (%s, %s, %s, %s, false)",
                [
                    (SQL_DAY, u, policy, float(r))
                    for u, rs in zip(unit_ids, risk, strict=True)
                    for policy, r in zip(POLICIES, rs, strict=True)
                ],
            )
    return {"unit_ids": unit_ids, "size": size_measure(impressions, risk.max(axis=1), 0.02)}


def _poisson_sql(conn: psycopg.Connection, seed: str, expected_n: str = "300") -> list[Any]:
    params: dict[str, object] = {
        "day": SQL_DAY.isoformat(),
        "seed": seed,
        "expected_n": expected_n,
        "size_floor": "0.02",
        "size_measure": "max_risk",
    }
    return _fetch_sql_file(conn, "sample_poisson_pps.sql", params)


def test_sql_poisson_selection(conn: psycopg.Connection, sql_population: dict[str, Any]) -> None:
    unit_ids: list[str] = sql_population["unit_ids"]
    size: npt.NDArray[np.float64] = sql_population["size"]
    pi = poisson_pps_inclusion(size, 300)
    assert (pi[20:25] == 1.0).all() and 5 <= (pi == 1.0).sum() < 150
    index = {u: i for i, u in enumerate(unit_ids)}

    rows = _poisson_sql(conn, "777")
    selected = np.array([index[r[0]] for r in rows])
    np.testing.assert_allclose([r[1] for r in rows], size[selected], rtol=1e-12)
    np.testing.assert_allclose([r[2] for r in rows], pi[selected], rtol=1e-9)
    np.testing.assert_allclose([r[4] for r in rows], 300.0, rtol=1e-9)
    assert set(range(20, 25)) <= set(selected.tolist()), "certainty units must be selected"
    assert not set(range(20)) & set(selected.tolist()), "0-impression units were selected"
    # Realised count vs expected size sum(pi) = 300.
    assert abs(len(rows) - pi.sum()) < 4 * math.sqrt(float(np.sum(pi * (1 - pi)))), len(rows)
    # Python mirrors the warehouse exactly.
    assert hash_poisson_pps_select(pi, unit_ids, SQL_DAY, 777).tolist() == sorted(selected)

    assert _poisson_sql(conn, "777") == rows, "re-run must give the identical selection"
    other = {r[0] for r in _poisson_sql(conn, "778")}
    chosen = {r[0] for r in rows}
    assert len(other & chosen) < 0.6 * len(chosen), "another seed must give another selection"

    # Too large an expected size: every unit with impressions, pi = 1, realised size reported.
    everything = _poisson_sql(conn, "777", expected_n="5000")
    assert len(everything) == 1980 and {r[2] for r in everything} == {1.0}
    assert everything[0][4] == pytest.approx(1980.0)


def test_hash_selection_frequencies_follow_pi(sql_population: dict[str, Any]) -> None:
    """Over 300 seeds of the (SQL-identical) hash selection, unit frequencies track pi."""
    unit_ids: list[str] = sql_population["unit_ids"]
    pi = poisson_pps_inclusion(sql_population["size"], 300)
    counts = np.zeros(len(pi))
    n_seeds = 300
    for seed in range(n_seeds):
        counts[hash_poisson_pps_select(pi, unit_ids, SQL_DAY, seed)] += 1
    # Grouped by deciles of pi: observed vs expected selections (binomial sums).
    edges = np.quantile(pi[pi > 0], np.linspace(0, 1, 11))
    group = np.clip(np.searchsorted(edges, pi, side="right") - 1, 0, 9)
    for g in range(10):
        members = (group == g) & (pi > 0)
        expected = n_seeds * pi[members].sum()
        sd = math.sqrt(n_seeds * float(np.sum(pi[members] * (1 - pi[members]))))
        assert abs(counts[members].sum() - expected) < 4 * max(sd, 1e-9), (g, expected)
    assert counts[pi == 0].sum() == 0
