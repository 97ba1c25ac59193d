"""The registry of designs (tsmetrics.designs) and the stratified design's configuration."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import PROJECT_DIR, SQL_DIR

from tsmetrics.config import PRIMARY_ESTIMATOR, SAMPLING_METHODS, parse_config
from tsmetrics.designs import DESIGNS, design_of, estimator_name


def _raw() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_DIR / "src/tsmetrics/config/policies.yaml").read_text())


def test_every_configurable_method_has_a_registered_design_with_its_sql() -> None:
    assert set(DESIGNS) == set(SAMPLING_METHODS) == set(PRIMARY_ESTIMATOR)
    for method, design in DESIGNS.items():
        assert design.method == method
        assert design.estimator == PRIMARY_ESTIMATOR[method]
        assert (SQL_DIR / design.sql_file).is_file()
        assert estimator_name(method, "unit") == design.estimator
        assert estimator_name(method, "component") == design.estimator + "_component"
    with pytest.raises(ValueError, match="sampling.method: expected one of"):
        design_of("cluster")


def test_stratified_method_is_selectable_in_the_config() -> None:
    raw = _raw()
    raw["sampling"]["method"] = "stratified"
    raw["sampling"]["stratified"] = {"n_strata": 8, "take_all_factor": None}
    raw["estimation"]["estimator"] = "stratified"
    config = parse_config(raw)
    assert config.sampling.method == "stratified" and config.estimator == "stratified"
    assert config.sampling.stratified.n_strata == 8
    assert config.sampling.stratified.take_all_factor is None
    assert config.sampling.stratified.min_history_units == 20  # defaults kept
    for bad, match in (
        ({"n_strata": 0}, "n_strata >= 1"),
        ({"min_per_stratum": 1}, "min_per_stratum >= 2"),
        ({"take_all_factor": -1}, "take_all_factor"),
        ({"colour": 1}, "unknown keys"),
    ):
        raw["sampling"]["stratified"] = bad
        with pytest.raises(ValueError, match=match):
            parse_config(raw)
    raw["sampling"]["stratified"] = {}
    raw["estimation"]["estimator"] = "horvitz_thompson"
    with pytest.raises(ValueError, match="estimated with 'stratified'"):
        parse_config(raw)
