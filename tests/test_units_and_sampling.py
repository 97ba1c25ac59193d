"""build_units.sql, sample_pps_wr.sql and dispatch_label_tasks.sql against the real warehouse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from conftest import POLICIES_PARAM, load_raw_day, run_sql_file
from scipy import stats

from tsmetrics.simulate import SimulationConfig, simulate_day, write_day

POLICIES = POLICIES_PARAM.split(",")
DESIGN = "pps_wr_test"
SEED = "20261123"
N_DRAWS = 2000
SIZE_FLOOR = 0.02


@dataclass(frozen=True)
class LoadedDay:
    day: date
    records: list[dict[str, Any]]


def _build_units(conn: psycopg.Connection, day: date) -> None:
    conn.commit()
    run_sql_file(conn, "build_units.sql", {"day": day.isoformat(), "policies": POLICIES_PARAM})


def _sample(
    conn: psycopg.Connection,
    day: date,
    *,
    seed: str = SEED,
    n_draws: int = N_DRAWS,
    size_floor: float = SIZE_FLOOR,
    design_id: str = DESIGN,
) -> None:
    """sample_pps_wr.sql with the DAG's parameters (strings, as rendered from XCom)."""
    conn.commit()
    params = {
        "day": day.isoformat(),
        "design_id": design_id,
        "seed": seed,
        "n_draws": str(n_draws),
        "size_floor": str(size_floor),
        "design_policy": None,
        "config_version": "1",
    }
    run_sql_file(conn, "sample_pps_wr.sql", params)


def _dispatch(conn: psycopg.Connection, day: date, overlap_fraction: float = 0.25) -> None:
    conn.commit()
    params = {
        "day": day.isoformat(),
        "design_ids": DESIGN,
        "primary_labeler": "labeler_a",
        "overlap_labeler": "labeler_b",
        "overlap_fraction": str(overlap_fraction),
    }
    run_sql_file(conn, "dispatch_label_tasks.sql", params)


def _frame(conn: psycopg.Connection, sql: str, params: Any = None) -> pd.DataFrame:
    cur = conn.execute(sql, params)
    assert cur.description is not None
    return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def _draws(conn: psycopg.Connection, day: date, design_id: str = DESIGN) -> pd.DataFrame:
    return _frame(
        conn,
        "SELECT draw_no, unit_id, size, selection_prob, expected_hits, impressions "
        "FROM tsm.samples WHERE event_date = %s AND design_id = %s ORDER BY draw_no",
        (day, design_id),
    )


def _sizes(conn: psycopg.Connection, day: date, size_floor: float) -> pd.Series:
    """size_i = imp_i * (floor + max_p risk_ip) of the units with impressions, from the
    warehouse's units and unit_risk (p_i = size_i / sum of sizes)."""
    units = _frame(conn, "SELECT unit_id, impressions FROM tsm.units WHERE event_date = %s", (day,))
    risk = _frame(
        conn, "SELECT unit_id, policy, risk FROM tsm.unit_risk WHERE event_date = %s", (day,)
    )
    max_risk = risk.groupby("unit_id")["risk"].max()
    units = units.set_index("unit_id")
    size = units["impressions"].astype(float) * (size_floor + max_risk.reindex(units.index))
    return size[units["impressions"] > 0]


@pytest.fixture(scope="module")
def loaded_day(
    database_url: str, airflow_db_conn_env: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadedDay]:
    """2030-02-01: 2000 simulated interactions (many missing scores) loaded and unit-built."""
    day = date(2030, 2, 1)
    config = SimulationConfig(n_interactions=2000, missing_score_rate=0.5)
    sim = simulate_day(day, 77, config)
    root = tmp_path_factory.mktemp("units")
    write_day(sim, root / "raw", root / "truth")
    with psycopg.connect(database_url) as conn:
        load_raw_day(conn, root / "raw", day)
        _build_units(conn, day)
    yield LoadedDay(day, sim.records)


@pytest.fixture(scope="module")
def component_frame(loaded_day: LoadedDay) -> pd.DataFrame:
    """One row per component of the loaded day's file, with one score column per policy."""
    rows = [
        {
            "unit_id": r["interaction_id"],
            "surface": r["surface"],
            "impressions": c["impressions"],
            **{p: c["risk_scores"].get(p, np.nan) for p in POLICIES},
        }
        for r in loaded_day.records
        for c in r["components"]
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# build_units.sql
# --------------------------------------------------------------------------------------------


def test_unit_impressions_are_sums_of_component_impressions(
    conn: psycopg.Connection, loaded_day: LoadedDay, component_frame: pd.DataFrame
) -> None:
    expected = component_frame.groupby("unit_id").agg(
        surface=("surface", "first"),
        impressions=("impressions", "sum"),
        n_components=("impressions", "size"),
    )
    units = _frame(
        conn,
        "SELECT unit_id, surface, impressions, n_components FROM tsm.units WHERE event_date = %s",
        (loaded_day.day,),
    ).set_index("unit_id")
    assert len(units) == len(loaded_day.records)
    pd.testing.assert_frame_equal(
        units.sort_index(), expected.sort_index(), check_dtype=False, check_names=False
    )
    assert (units["impressions"] == 0).any(), "the fixture should contain 0-impression units"


def test_unit_risk_is_max_component_score_or_weighted_mean_when_all_missing(
    conn: psycopg.Connection, loaded_day: LoadedDay, component_frame: pd.DataFrame
) -> None:
    unit_imps = component_frame.groupby("unit_id")["impressions"].sum()
    observed = component_frame.groupby("unit_id")[POLICIES].max()  # NaN when all missing
    risk = _frame(
        conn,
        "SELECT unit_id, policy, risk, risk_imputed FROM tsm.unit_risk WHERE event_date = %s",
        (loaded_day.day,),
    )
    assert len(risk) == len(unit_imps) * len(POLICIES)
    for policy in POLICIES:
        got = risk[risk["policy"] == policy].set_index("unit_id").sort_index()
        obs = observed[policy].reindex(got.index)
        is_missing = obs.isna()
        assert is_missing.sum() >= 10, f"too few units without {policy} scores to test imputation"
        assert (got["risk_imputed"] == is_missing).all()
        np.testing.assert_allclose(got.loc[~is_missing, "risk"], obs[~is_missing], rtol=1e-12)
        weights = unit_imps.reindex(obs.index)[~is_missing]
        fill = float((obs[~is_missing] * weights).sum() / weights.sum())
        assert 0 < fill < 1
        np.testing.assert_allclose(got.loc[is_missing, "risk"], fill, rtol=1e-9)


def test_build_units_rerun_is_idempotent(conn: psycopg.Connection, loaded_day: LoadedDay) -> None:
    def snapshot() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        units = conn.execute(
            "SELECT * FROM tsm.units WHERE event_date = %s ORDER BY unit_id", (loaded_day.day,)
        ).fetchall()
        risk = conn.execute(
            "SELECT * FROM tsm.unit_risk WHERE event_date = %s ORDER BY unit_id, policy",
            (loaded_day.day,),
        ).fetchall()
        return units, risk

    before = snapshot()
    _build_units(conn, loaded_day.day)
    after = snapshot()
    assert len(after[0]) == len(loaded_day.records)
    assert after == before


# --------------------------------------------------------------------------------------------
# sample_pps_wr.sql
# --------------------------------------------------------------------------------------------


def test_sample_draws_and_probabilities(conn: psycopg.Connection, loaded_day: LoadedDay) -> None:
    day = loaded_day.day
    _sample(conn, day)
    draws = _draws(conn, day)
    assert draws["draw_no"].tolist() == list(range(1, N_DRAWS + 1))

    design = conn.execute(
        "SELECT method, seed, n_draws, size_floor, total_size, total_impressions, n_units, "
        "params FROM tsm.sample_designs WHERE event_date = %s AND design_id = %s",
        (day, DESIGN),
    ).fetchone()
    assert design is not None
    method, seed, n_draws, size_floor, total_size, total_imps, n_units, params = design
    assert (method, seed, n_draws, size_floor) == ("pps_with_replacement", int(SEED), N_DRAWS, 0.02)
    assert n_units == len(loaded_day.records)
    file_imps = sum(c["impressions"] for r in loaded_day.records for c in r["components"])
    assert total_imps == file_imps
    assert params["config_version"] == 1

    size = _sizes(conn, day, SIZE_FLOOR)
    assert total_size == pytest.approx(size.sum(), rel=1e-12)
    p = size / size.sum()
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    units = _frame(conn, "SELECT unit_id, impressions FROM tsm.units WHERE event_date = %s", (day,))
    sized = units.set_index("unit_id")["impressions"]
    np.testing.assert_allclose(draws["selection_prob"], draws["size"] / total_size, rtol=1e-12)
    np.testing.assert_allclose(
        draws["selection_prob"], p.reindex(draws["unit_id"]).to_numpy(), rtol=1e-9
    )
    np.testing.assert_allclose(
        draws["expected_hits"], N_DRAWS * draws["selection_prob"], rtol=1e-12
    )
    np.testing.assert_array_equal(draws["impressions"], sized.reindex(draws["unit_id"]).to_numpy())
    distinct = draws.drop_duplicates("unit_id")
    assert distinct["selection_prob"].sum() < 1.0
    assert (draws["impressions"] > 0).all(), "a unit without impressions was drawn"
    # PPS: high-probability units are over-represented among the draws.
    assert draws["selection_prob"].mean() > p.mean()


def test_sample_rerun_is_identical_and_seed_changes_it(
    conn: psycopg.Connection, loaded_day: LoadedDay
) -> None:
    day = loaded_day.day
    _sample(conn, day)
    first = _draws(conn, day)
    _sample(conn, day)
    again = _draws(conn, day)
    pd.testing.assert_frame_equal(first, again)
    n_designs = conn.execute(
        "SELECT count(*) FROM tsm.sample_designs WHERE event_date = %s AND design_id = %s",
        (day, DESIGN),
    ).fetchone()
    assert n_designs == (1,)

    _sample(conn, day, seed="12345", design_id="pps_wr_other_seed")
    other = _draws(conn, day, "pps_wr_other_seed")
    assert len(other) == N_DRAWS
    same = (other["unit_id"].to_numpy() == first["unit_id"].to_numpy()).mean()
    assert same < 0.5
    # Unchanged by the other design.
    pd.testing.assert_frame_equal(_draws(conn, day), first)


def _insert_population(
    conn: psycopg.Connection, day: date, impressions: list[int], risks: list[list[float]]
) -> list[str]:
    conn.commit()
    unit_ids = [f"syn-{i:03d}" for i in range(len(impressions))]
    with conn.transaction():
        conn.execute("SELECT tsm.ensure_day_partitions(%s::date)", (day,))
        conn.execute("SELECT tsm.truncate_day('unit_risk', %s::date)", (day,))
        conn.execute("SELECT tsm.truncate_day('units', %s::date)", (day,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tsm.units (event_date, unit_id, surface, impressions, n_components) "
                "VALUES (%s, %s, 'search', %s, 3)",
                [(day, u, imp) for u, imp in zip(unit_ids, impressions, strict=True)],
            )
            cur.executemany(
                "INSERT INTO tsm.unit_risk (event_date, unit_id, policy, risk, risk_imputed) "
                "VALUES (%s, %s, %s, %s, false)",
                [
                    (day, u, policy, risk)
                    for u, unit_risks in zip(unit_ids, risks, strict=True)
                    for policy, risk in zip(POLICIES, unit_risks, strict=True)
                ],
            )
    return unit_ids


def test_hash_draws_follow_selection_probabilities(conn: psycopg.Connection) -> None:
    """Chi-square goodness of fit of 20000 draws on a synthetic population (deterministic)."""
    day = date(2030, 2, 3)
    rng = np.random.default_rng(5)
    impressions = [int(x) for x in rng.integers(1, 5000, size=50)] + [0, 0, 0]
    risks = rng.uniform(0, 0.6, size=(len(impressions), len(POLICIES))).round(4).tolist()
    unit_ids = _insert_population(conn, day, impressions, risks)
    n = 20_000
    _sample(conn, day, n_draws=n, size_floor=0.05)

    size = np.array(impressions, dtype=float) * (0.05 + np.array(risks).max(axis=1))
    p = pd.Series(size / size.sum(), index=unit_ids)
    draws = _draws(conn, day)
    assert len(draws) == n
    np.testing.assert_allclose(
        draws["selection_prob"], p.reindex(draws["unit_id"]).to_numpy(), rtol=1e-9
    )
    counts = draws["unit_id"].value_counts()
    zero = [u for u, imp in zip(unit_ids, impressions, strict=True) if imp == 0]
    assert not set(zero) & set(counts.index), "units with 0 impressions were drawn"
    positive = p[p > 0]
    observed = counts.reindex(positive.index, fill_value=0).to_numpy()
    result = stats.chisquare(observed, n * positive.to_numpy())
    assert result.pvalue > 1e-3, result
    # And the draws are not degenerate (every unit with p_i * n >= 20 was hit).
    assert (observed[positive.to_numpy() * n >= 20] > 0).all()


def test_units_without_impressions_are_never_drawn(conn: psycopg.Connection) -> None:
    """Mostly 0-impression units (high risk): only the few with impressions are drawn."""
    day = date(2030, 2, 4)
    impressions = [0] * 40 + [1, 2, 3]
    risks = [[0.9, 0.9, 0.9, 0.9]] * 40 + [[0.0, 0.0, 0.0, 0.0]] * 3
    unit_ids = _insert_population(conn, day, impressions, risks)
    _sample(conn, day, n_draws=500)
    draws = _draws(conn, day)
    assert set(draws["unit_id"]) == set(unit_ids[40:])
    np.testing.assert_allclose(
        draws.groupby("unit_id")["selection_prob"].first().sort_index(), [1 / 6, 2 / 6, 3 / 6]
    )


# --------------------------------------------------------------------------------------------
# dispatch_label_tasks.sql
# --------------------------------------------------------------------------------------------


def test_dispatch_label_tasks(conn: psycopg.Connection, loaded_day: LoadedDay) -> None:
    day = loaded_day.day
    _sample(conn, day)
    _dispatch(conn, day, overlap_fraction=0.25)
    sampled = set(_draws(conn, day)["unit_id"])
    tasks = _frame(
        conn,
        "SELECT task_id, unit_id, labeler_id, purpose, payload, status, attempts "
        "FROM tsm.label_tasks WHERE event_date = %s ORDER BY task_id",
        (day,),
    )
    primary = tasks[tasks["purpose"] == "primary"]
    overlap = tasks[tasks["purpose"] == "overlap"]
    assert set(tasks["purpose"]) == {"primary", "overlap"}
    assert (primary["labeler_id"] == "labeler_a").all()
    assert (overlap["labeler_id"] == "labeler_b").all()
    assert primary["unit_id"].is_unique and set(primary["unit_id"]) == sampled
    assert overlap["unit_id"].is_unique and set(overlap["unit_id"]) <= sampled
    share = len(overlap) / len(sampled)
    sd = (0.25 * 0.75 / len(sampled)) ** 0.5
    assert abs(share - 0.25) < 4 * sd, share
    assert (tasks["status"] == "pending").all() and (tasks["attempts"] == 0).all()

    # The overlap subsample is the documented hash selection.
    hashed = conn.execute(
        "SELECT unit_id FROM unnest(%s::text[]) AS u (unit_id) "
        "WHERE tsm.hash_uniform('overlap:' || %s || ':' || unit_id) < 0.25",
        (sorted(sampled), day.isoformat()),
    ).fetchall()
    assert set(overlap["unit_id"]) == {row[0] for row in hashed}

    # The payload is the unit's unified record: components in file order, no scores.
    by_id = {r["interaction_id"]: r for r in loaded_day.records}
    imps = conn.execute(
        "SELECT unit_id, impressions FROM tsm.units WHERE event_date = %s", (day,)
    ).fetchall()
    unit_imps = dict(imps)
    for row in tasks.itertuples():
        payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
        record = by_id[row.unit_id]
        expected_components = [
            {
                "component_id": c["component_id"],
                "type": c["type"],
                **{k: c[k] for k in ("text", "pin_id", "image_url") if k in c},
            }
            for c in record["components"]
        ]
        assert payload == {
            "unit_id": row.unit_id,
            "event_date": day.isoformat(),
            "surface": record["surface"],
            "impressions": unit_imps[row.unit_id],
            "components": expected_components,
        }

    # Re-running queues nothing new and leaves the tasks as they were.
    _dispatch(conn, day, overlap_fraction=0.25)
    again = _frame(
        conn,
        "SELECT task_id, unit_id, labeler_id, purpose, payload, status, attempts "
        "FROM tsm.label_tasks WHERE event_date = %s ORDER BY task_id",
        (day,),
    )
    pd.testing.assert_frame_equal(again, tasks)


def test_dispatch_without_overlap_queues_primary_only(conn: psycopg.Connection) -> None:
    day = date(2030, 2, 5)
    impressions = [10, 20, 30, 40]
    unit_ids = _insert_population(conn, day, impressions, [[0.1] * 4] * 4)
    # Units need components for their payload.
    conn.commit()
    with conn.transaction():
        conn.execute("SELECT tsm.truncate_day('raw_components', %s::date)", (day,))
        for u, imp in zip(unit_ids, impressions, strict=True):
            conn.execute(
                "INSERT INTO tsm.raw_components (event_date, interaction_id, component_id, "
                "component_type, position, content_text, impressions) "
                "VALUES (%s, %s, 'r', 'system_response', 2, 'answer', %s), "
                "(%s, %s, 'q', 'user_query', 1, 'question', %s)",
                (day, u, imp, day, u, imp),
            )
    _sample(conn, day, n_draws=50)
    _dispatch(conn, day, overlap_fraction=0.0)
    tasks = conn.execute(
        "SELECT unit_id, purpose, payload FROM tsm.label_tasks WHERE event_date = %s",
        (day,),
    ).fetchall()
    assert {t[1] for t in tasks} == {"primary"}
    assert {t[0] for t in tasks} == set(_draws(conn, day)["unit_id"])
    for _, _, payload in tasks:
        assert [c["component_id"] for c in payload["components"]] == ["q", "r"]
        assert "pin_id" not in payload["components"][0]
