"""Tests for :mod:`tsmetrics.simulate` (no database needed)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

try:
    from tsmetrics import simulate as sim
except ModuleNotFoundError:  # package not installed: use the src layout directly
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from tsmetrics import simulate as sim

DAY = dt.date(2026, 11, 20)
SEED = 20261120
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
TOKEN_RE = re.compile(r"\[\[violates:([a-z0-9_]+)/([a-z0-9_]+)\]\]")
SMALL = sim.SimulationConfig(n_interactions=2_000)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def component_tokens(component: dict[str, Any]) -> dict[str, str]:
    """policy -> sub_policy for every violation token in the component's text."""
    return dict(TOKEN_RE.findall(component["text"]))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney rank formula (ties get average ranks)."""
    ranks = rankdata(scores)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def score_table(records: list[dict[str, Any]], policy: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores, component truth) over components whose score for ``policy`` is present."""
    scores: list[float] = []
    labels: list[bool] = []
    for rec in records:
        for comp in rec["components"]:
            if policy in comp["risk_scores"]:
                scores.append(comp["risk_scores"][policy])
                labels.append(policy in component_tokens(comp))
    return np.asarray(scores), np.asarray(labels, dtype=bool)


@dataclass
class Written:
    raw_path: Path
    truth_path: Path
    truth_dir: Path
    records: list[dict[str, Any]]
    truth: dict[str, Any]


@pytest.fixture(scope="module")
def default_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    """One full-size (50k interactions) default day, written to disk and parsed back."""
    root = tmp_path_factory.mktemp("sim_default")
    day = sim.simulate_day(DAY, SEED)
    raw_path, truth_path = sim.write_day(day, root / "raw", root / "truth")
    yield Written(
        raw_path=raw_path,
        truth_path=truth_path,
        truth_dir=root / "truth",
        records=read_jsonl(raw_path),
        truth=sim.read_truth(root / "truth", DAY),
    )


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------


def _files(raw_dir: Path, truth_dir: Path, day: dt.date) -> list[bytes]:
    part = sim.day_partition(day)
    return [
        (raw_dir / part / "interactions.jsonl").read_bytes(),
        (truth_dir / part / "truth.json").read_bytes(),
        (truth_dir / part / "unit_truth.csv").read_bytes(),
    ]


def test_same_seed_and_day_give_byte_identical_files(tmp_path: Path) -> None:
    for run in ("a", "b"):
        sim.write_day(sim.simulate_day(DAY, SEED, SMALL), tmp_path / run / "raw", tmp_path / run)
    assert _files(tmp_path / "a" / "raw", tmp_path / "a", DAY) == _files(
        tmp_path / "b" / "raw", tmp_path / "b", DAY
    )


def test_day_independent_of_number_of_days_simulated(tmp_path: Path) -> None:
    three = sim.simulate(3, SEED, DAY, tmp_path / "r3", tmp_path / "t3", SMALL)
    assert three == [DAY + dt.timedelta(days=k) for k in range(3)]
    middle = DAY + dt.timedelta(days=1)
    one = sim.simulate(1, SEED, middle, tmp_path / "r1", tmp_path / "t1", SMALL)
    assert one == [middle]
    assert _files(tmp_path / "r1", tmp_path / "t1", middle) == _files(
        tmp_path / "r3", tmp_path / "t3", middle
    )


def test_different_days_and_seeds_differ() -> None:
    base = sim.simulate_day(DAY, SEED, SMALL)
    other_day = sim.simulate_day(DAY + dt.timedelta(days=1), SEED, SMALL)
    other_seed = sim.simulate_day(DAY, SEED + 1, SMALL)
    assert base.jsonl != other_day.jsonl
    assert base.jsonl != other_seed.jsonl
    ids_a = {r["interaction_id"] for r in base.records}
    ids_b = {r["interaction_id"] for r in other_day.records}
    assert not ids_a & ids_b  # ids embed the date


def test_day_probability_does_not_depend_on_volume() -> None:
    small = sim.simulate_day(DAY, SEED, sim.SimulationConfig(n_interactions=100))
    large = sim.simulate_day(DAY, SEED, SMALL)
    for policy in sim.DEFAULT_POLICIES:
        assert (
            small.truth["policies"][policy]["day_probability"]
            == large.truth["policies"][policy]["day_probability"]
        )


# ---------------------------------------------------------------------------------------------
# format
# ---------------------------------------------------------------------------------------------


def test_partition_layout(default_day: Written) -> None:
    assert default_day.raw_path.parent.name == "dt=2026-11-20"
    assert default_day.raw_path.name == "interactions.jsonl"
    assert default_day.truth_path.name == "truth.json"
    assert (default_day.truth_path.parent / "unit_truth.csv").is_file()


def test_raw_format(default_day: Written) -> None:
    records = default_day.records
    assert len(records) == 50_000
    ids = [r["interaction_id"] for r in records]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("20261120-") for i in ids)
    day_start = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    surfaces: set[str] = set()
    policies_seen: set[str] = set()
    for rec in records:
        assert set(rec) == {"interaction_id", "event_ts", "surface", "components"}
        assert TS_RE.fullmatch(rec["event_ts"])
        ts = dt.datetime.fromisoformat(rec["event_ts"])
        assert day_start <= ts < day_start + dt.timedelta(days=1)
        assert rec["surface"] in sim.SURFACES
        surfaces.add(rec["surface"])
        comps = rec["components"]
        types = [c["type"] for c in comps]
        assert types[:2] == ["user_query", "system_response"]
        pins = comps[2:]
        assert 1 <= len(pins) <= 6
        assert all(t == "pin_image" for t in types[2:])
        assert [c["component_id"] for c in comps] == ["q", "r"] + [
            f"p{k}" for k in range(1, len(pins) + 1)
        ]
        assert comps[0]["impressions"] == comps[1]["impressions"]
        for comp in comps:
            assert {"component_id", "type", "text", "impressions", "risk_scores"} <= set(comp)
            assert isinstance(comp["text"], str) and comp["text"]
            assert isinstance(comp["impressions"], int) and comp["impressions"] >= 0
            for policy, score in comp["risk_scores"].items():
                assert isinstance(score, float)
                assert 0.0 <= score <= 1.0
                assert round(score, 4) == score
                policies_seen.add(policy)
        for pin in pins:
            assert re.fullmatch(r"pin-\d+", pin["pin_id"])
            assert pin["image_url"] == f"https://i.example.com/pins/{pin['pin_id']}.jpg"
            assert pin["impressions"] <= comps[0]["impressions"]
    assert len(policies_seen) >= 4
    assert policies_seen == set(sim.DEFAULT_POLICIES)
    assert surfaces == set(sim.SURFACES)


def test_lines_are_canonical_json(default_day: Written) -> None:
    with open(default_day.raw_path, encoding="utf-8") as fh:
        for k, line in enumerate(fh):
            assert line.endswith("\n")
            assert json.dumps(json.loads(line)) + "\n" == line
            if k >= 2_000:
                break


def test_tokens_only_in_violating_texts(default_day: Written) -> None:
    for rec in default_day.records[:5_000]:
        for comp in rec["components"]:
            found = component_tokens(comp)
            assert ("[[violates:" in comp["text"]) == bool(found)
            for policy, sub in found.items():
                assert sub in sim.SUB_POLICIES[policy]


def test_records_property_matches_jsonl() -> None:
    day = sim.simulate_day(DAY, SEED, SMALL)
    assert day.records == [json.loads(line) for line in day.jsonl.splitlines()]
    assert len(day.components) == sum(len(r["components"]) for r in day.records)


# ---------------------------------------------------------------------------------------------
# truth consistency
# ---------------------------------------------------------------------------------------------


def recompute_truth(records: list[dict[str, Any]], policies: list[str]) -> dict[str, Any]:
    """Truth recomputed from raw records and text tokens only (Python integer sums)."""
    total = 0
    viol_units = dict.fromkeys(policies, 0)
    viol_imps = dict.fromkeys(policies, 0)
    viol_comp_imps = dict.fromkeys(policies, 0)
    surf_total = dict.fromkeys(sim.SURFACES, 0)
    surf_viol = {s: dict.fromkeys(policies, 0) for s in sim.SURFACES}
    unit_rows: set[tuple[str, str, str]] = set()
    for rec in records:
        unit_imps = sum(c["impressions"] for c in rec["components"])
        total += unit_imps
        surf_total[rec["surface"]] += unit_imps
        unit_subs: dict[str, set[str]] = {}
        for comp in rec["components"]:
            for policy, sub in component_tokens(comp).items():
                viol_comp_imps[policy] += comp["impressions"]
                unit_subs.setdefault(policy, set()).add(sub)
        for policy, subs in unit_subs.items():
            assert len(subs) == 1  # one sub-policy per (unit, policy)
            viol_units[policy] += 1
            viol_imps[policy] += unit_imps
            surf_viol[rec["surface"]][policy] += unit_imps
            unit_rows.add((rec["interaction_id"], policy, next(iter(subs))))
    return {
        "total": total,
        "viol_units": viol_units,
        "viol_imps": viol_imps,
        "viol_comp_imps": viol_comp_imps,
        "surf_total": surf_total,
        "surf_viol": surf_viol,
        "unit_rows": unit_rows,
    }


def assert_truth_consistent(
    records: list[dict[str, Any]], truth: dict[str, Any], unit_rows: set[tuple[str, str, str]]
) -> None:
    policies = list(truth["policies"])
    got = recompute_truth(records, policies)
    assert truth["n_interactions"] == len(records)
    assert truth["total_impressions"] == got["total"]
    total = got["total"]
    for policy in policies:
        t = truth["policies"][policy]
        assert t["n_violating_units"] == got["viol_units"][policy]
        assert t["violating_impressions"] == got["viol_imps"][policy]
        unit_prev = got["viol_imps"][policy] / total if total else 0.0
        comp_prev = got["viol_comp_imps"][policy] / total if total else 0.0
        assert abs(t["unit_prevalence"] - unit_prev) <= 1e-12
        assert abs(t["component_prevalence"] - comp_prev) <= 1e-12
        assert t["component_prevalence"] <= t["unit_prevalence"]
    for surface in sim.SURFACES:
        den = got["surf_total"][surface]
        for policy in policies:
            expected = got["surf_viol"][surface][policy] / den if den else 0.0
            assert abs(truth["by_surface"][surface][policy] - expected) <= 1e-12
    assert unit_rows == got["unit_rows"]


def test_truth_consistent_with_written_logs(default_day: Written) -> None:
    with open(default_day.truth_path.parent / "unit_truth.csv", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["interaction_id", "policy", "sub_policy"]
        rows = [(iid, policy, sub) for iid, policy, sub in reader]
    assert len(rows) == len(set(rows))
    assert_truth_consistent(default_day.records, default_day.truth, set(rows))
    assert default_day.truth["day"] == "2026-11-20"
    assert default_day.truth["seed"] == SEED


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    n=st.integers(min_value=1, max_value=60),
    offset=st.integers(min_value=-3000, max_value=3000),
    prevalence=st.floats(min_value=0.0, max_value=1.0),
    missing=st.floats(min_value=0.0, max_value=1.0),
)
def test_truth_consistent_small_random_configs(
    seed: int, n: int, offset: int, prevalence: float, missing: float
) -> None:
    config = sim.SimulationConfig(
        n_interactions=n,
        policies={"adult": prevalence, "spam": prevalence / 2},
        missing_score_rate=missing,
    )
    day = DAY + dt.timedelta(days=offset)
    result = sim.simulate_day(day, seed, config)
    records = result.records
    assert len(records) == n
    assert len({r["interaction_id"] for r in records}) == n
    assert_truth_consistent(records, result.truth, set(result.unit_truth))


# ---------------------------------------------------------------------------------------------
# distributional properties (default configuration, 50k interactions)
# ---------------------------------------------------------------------------------------------


def test_default_prevalences_in_plausible_range(default_day: Written) -> None:
    policies = default_day.truth["policies"]
    assert set(policies) == set(sim.DEFAULT_POLICIES)
    for policy, t in policies.items():
        assert 1e-4 <= t["unit_prevalence"] <= 0.02, policy
        assert t["n_violating_units"] > 0
        # share of violating interactions is close to the configured base rate
        assert t["unit_count_prevalence"] == pytest.approx(sim.DEFAULT_POLICIES[policy], rel=0.6)


def test_heavy_tailed_impressions(default_day: Written) -> None:
    unit_imps = np.sort(
        [sum(c["impressions"] for c in r["components"]) for r in default_day.records]
    )[::-1]
    top = unit_imps[: len(unit_imps) // 100].sum() / unit_imps.sum()
    assert top > 0.2
    comp_imps = [c["impressions"] for r in default_day.records for c in r["components"]]
    assert min(comp_imps) == 0  # some components get no views


@pytest.mark.parametrize("policy", ["adult", "harassment"])
def test_score_auc_near_target_per_policy(default_day: Written, policy: str) -> None:
    scores, labels = score_table(default_day.records, policy)
    assert labels.sum() > 300
    assert auc(scores, labels) == pytest.approx(0.9, abs=0.04)


def test_score_auc_near_target_pooled(default_day: Written) -> None:
    aucs = []
    for policy in sim.DEFAULT_POLICIES:
        scores, labels = score_table(default_day.records, policy)
        aucs.append(auc(scores, labels))
        assert 0.8 <= aucs[-1] <= 0.98  # rare policies: few positives, noisier
    assert float(np.mean(aucs)) == pytest.approx(0.9, abs=0.03)


def test_score_auc_follows_config() -> None:
    config = sim.SimulationConfig(
        n_interactions=5_000, policies={"adult": 0.2, "harassment": 0.1}, score_auc_target=0.75
    )
    records = sim.simulate_day(DAY, SEED, config).records
    for policy in config.policies:
        scores, labels = score_table(records, policy)
        assert auc(scores, labels) == pytest.approx(0.75, abs=0.04)
    scores, labels = score_table(records, "adult")
    assert scores[labels].mean() > scores[~labels].mean()


def test_missing_score_rate(default_day: Written) -> None:
    n_policies = len(sim.DEFAULT_POLICIES)
    slots = present = 0
    for rec in default_day.records:
        for comp in rec["components"]:
            slots += n_policies
            present += len(comp["risk_scores"])
    assert (slots - present) / slots == pytest.approx(0.05, abs=0.005)


def test_missing_score_rate_follows_config() -> None:
    config = sim.SimulationConfig(n_interactions=3_000, missing_score_rate=0.3)
    records = sim.simulate_day(DAY, SEED, config).records
    slots = sum(len(r["components"]) for r in records) * len(config.policies)
    present = sum(len(c["risk_scores"]) for r in records for c in r["components"])
    assert (slots - present) / slots == pytest.approx(0.3, abs=0.02)


# ---------------------------------------------------------------------------------------------
# API odds and ends
# ---------------------------------------------------------------------------------------------


def test_read_truth_roundtrip(tmp_path: Path) -> None:
    day = sim.simulate_day(DAY, SEED, SMALL)
    sim.write_day(day, tmp_path / "raw", tmp_path / "truth")
    assert sim.read_truth(tmp_path / "truth", DAY) == day.truth


def test_components_frame_matches_records() -> None:
    day = sim.simulate_day(DAY, SEED, SMALL)
    frame = day.components
    flat = [(r["interaction_id"], c) for r in day.records for c in r["components"]]
    assert len(frame) == len(flat)
    assert frame["impressions"].tolist() == [c["impressions"] for _, c in flat]
    assert frame["interaction_id"].tolist() == [i for i, _ in flat]
    for policy in sim.DEFAULT_POLICIES:
        assert frame[f"violates_{policy}"].tolist() == [
            policy in component_tokens(c) for _, c in flat
        ]
        expected = [c["risk_scores"].get(policy, np.nan) for _, c in flat]
        np.testing.assert_array_equal(frame[f"score_{policy}"].to_numpy(), expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_interactions": 0},
        {"policies": {}},
        {"policies": {"adult": 1.5}},
        {"policies": {"Bad Name": 0.1}},
        {"score_auc_target": 1.0},
        {"score_auc_target": 0.3},
        {"missing_score_rate": -0.1},
        {"pareto_shape": 0.0},
        {"day_prevalence_jitter": -1.0},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        sim.SimulationConfig(**kwargs)


def test_negative_seed_and_days_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        sim.simulate_day(DAY, -1, SMALL)
    with pytest.raises(ValueError):
        sim.simulate(-1, SEED, DAY, tmp_path, tmp_path, SMALL)
    assert sim.simulate(0, SEED, DAY, tmp_path / "r", tmp_path / "t", SMALL) == []


def test_default_config_is_not_shared_mutable_state() -> None:
    a = sim.SimulationConfig()
    b = sim.SimulationConfig()
    assert a.policies == sim.DEFAULT_POLICIES
    assert a.policies is not b.policies
    assert a.policies is not sim.DEFAULT_POLICIES
