"""Which day a run measures, and the run configuration."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tsmetrics.config import load_config, parse_config
from tsmetrics.schedule import processing_day


def test_the_data_interval_start_is_the_day() -> None:
    start = datetime(2026, 11, 20, tzinfo=UTC)
    assert processing_day(start, start + timedelta(days=1)) == date(2026, 11, 20)


def test_a_non_utc_aware_interval_is_converted() -> None:
    start = datetime(2026, 11, 20, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert processing_day(start, start + timedelta(days=1)) == date(2026, 11, 20)


def test_the_day_param_wins() -> None:
    start = datetime(2026, 11, 20, tzinfo=UTC)
    assert processing_day(start, None, None, "2026-10-01") == date(2026, 10, 1)


def test_a_manual_run_without_interval_measures_the_day_before() -> None:
    run_after = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    assert processing_day(None, None, run_after) == date(2026, 11, 20)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, 0, 0, tzinfo=UTC)),
        (datetime(2026, 11, 20, 2, tzinfo=UTC), datetime(2026, 11, 21, 2, tzinfo=UTC)),
    ],
)
def test_intervals_that_are_not_one_utc_day_are_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError, match="data interval"):
        processing_day(start, end)


def test_no_information_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot tell which day"):
        processing_day(None)


def test_the_packaged_config_loads() -> None:
    config = load_config()
    assert config.policy_names == ["adult", "harassment", "self_harm", "misinformation"]
    assert config.sampling.n_draws > 0 and 0 < config.sampling.size_floor


def test_limit_overrides_replace_only_named_policies() -> None:
    config = load_config().with_limits({"adult": 0.001})
    limits = {p.name: p.limit for p in config.policies}
    assert limits["adult"] == 0.001 and limits["harassment"] == 0.015
    with pytest.raises(ValueError, match="unknown policies"):
        load_config().with_limits({"nope": 0.1})


def test_invalid_config_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit must be in"):
        parse_config(
            {"version": 1, "policies": {"adult": {"limit": 2}}, "sampling": {}, "labeling": {}}
        )
    with pytest.raises(ValueError, match="missing required key 'policies'"):
        parse_config({"version": 1})
    path = tmp_path / "policies.yaml"
    path.write_text("version: 1\npolicies: {}\nsampling: {}\nlabeling: {}\n")
    with pytest.raises(ValueError, match="non-empty"):
        load_config(path)


def _with(section: str, key: str, value: object) -> dict[str, object]:
    import copy

    import yaml

    from tsmetrics.config import resources

    raw = yaml.safe_load(resources.files("tsmetrics.config").joinpath("policies.yaml").read_text())
    changed = copy.deepcopy(raw)
    changed[section][key] = value
    return changed


def test_labeling_sections_parse_and_validate() -> None:
    config = load_config()
    assert 0 <= config.gold.rate < 0.5 and 0 < config.label_wait.min_completion <= 1
    assert config.adjudication.method == "primary"
    human = parse_config(
        _with(
            "labeling", "overlap", {"labeler_id": "ls", "backend": "label_studio", "conn_id": "c"}
        )
    )
    assert human.overlap_labeler.is_human and not human.primary_labeler.is_human
    assert parse_config(_with("estimation", "adjudication", "dawid_skene")).adjudication.method == (
        "dawid_skene"
    )
    for section, key, value, message in (
        ("labeling", "overlap", {"labeler_id": "v", "backend": "vendor_files"}, "needs a conn_id"),
        ("labeling", "overlap", {"labeler_id": "v", "backend": "mturk", "conn_id": "c"}, "one of"),
        ("labeling", "gold", {"rate": 0.7}, "labeling.gold.rate"),
        ("labeling", "gold", {"rat": 0.1}, "unknown keys \\['rat'\\]"),
        ("labeling", "wait", {"min_completion": 0}, "min_completion"),
        ("estimation", "adjudication", {"method": "vote"}, "adjudication.method"),
        ("estimation", "adjudication", {"tie_break": "coin"}, "tie_break"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_config(_with(section, key, value))
