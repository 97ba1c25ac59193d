"""Run configuration: policies, limits, sampling design and labelers, from versioned YAML."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tsmetrics.config.labeling import (
    HUMAN_BACKENDS,
    SYNC_BACKENDS,
    AdjudicationConfig,
    GoldConfig,
    LabelWaitConfig,
)

POLICIES_FILE_ENV = "TSMETRICS_POLICIES_FILE"


@dataclass(frozen=True)
class Policy:
    name: str
    limit: float
    sub_policies: tuple[str, ...] = ()


SAMPLING_METHODS = ("poisson_pps", "pps_with_replacement", "stratified")
SIZE_MEASURES = ("sqrt_calibrated", "max_risk")
CALIBRATION_METHODS = ("platt", "isotonic")


@dataclass(frozen=True)
class SamplingConfig:
    """The daily design. ``n_draws`` is the number of draws (PPS with replacement) or the
    expected sample size (Poisson PPS); ``size_floor`` is the absolute floor of ``max_risk``
    sizes or the relative floor ``phi`` of ``sqrt_calibrated`` sizes (``tsm.unit_sizes``)."""

    design_id: str
    n_draws: int
    size_floor: float
    seed: int
    method: str = "pps_with_replacement"
    size_measure: str = "max_risk"
    calibration_method: str = "platt"
    calibration_window_days: int = 14
    calibration_min_positives: float = 10.0
    #: plan the day's expected sample size from recent estimates (Poisson designs only):
    #: ``min(labels needed for the target relative half-width, label_budget)``; None = n_draws
    label_budget: int | None = None
    target_relative_half_width: float = 0.25
    planning_window_days: int = 7
    #: the policy this design samples for (a per-policy sample), None = the shared sample
    policy: str | None = None
    #: settings of ``method: stratified`` (:class:`StratifiedConfig`)
    stratified: StratifiedConfig = field(default_factory=lambda: StratifiedConfig())

    def __post_init__(self) -> None:
        if self.method not in SAMPLING_METHODS:
            raise ValueError(
                f"sampling.method: expected one of {SAMPLING_METHODS}, got {self.method!r}"
            )
        if self.size_measure not in SIZE_MEASURES:
            raise ValueError(
                f"sampling.size_measure: expected one of {SIZE_MEASURES}, got {self.size_measure!r}"
            )
        if self.method == "pps_with_replacement" and self.size_measure != "max_risk":
            raise ValueError("sampling: pps_with_replacement supports size_measure max_risk only")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"sampling.calibration.method: expected one of {CALIBRATION_METHODS}, "
                f"got {self.calibration_method!r}"
            )
        if self.calibration_window_days < 1 or self.n_draws < 2 or self.size_floor <= 0:
            raise ValueError(
                "sampling: expected calibration window_days >= 1, n_draws >= 2, size_floor > 0"
            )


@dataclass(frozen=True)
class StratifiedConfig:
    """``method: stratified`` (``docs/methodology.md``): ``n_strata`` risk strata at the
    impression-weighted quantiles of the size measure's risk factor (size / impressions), a
    take-all stratum of the units with impressions >= ``take_all_factor x X / n`` (None: no
    take-all stratum), at least ``min_per_stratum`` units per stratum; Neyman allocation from
    the labels of the previous ``history_days`` days, proportional while every risk stratum
    has fewer than ``min_history_units`` earlier labelled units or no policy of the design has
    ``min_history_positives`` violating ones (``tsmetrics.stratified_design``)."""

    n_strata: int = 6
    min_per_stratum: int = 10
    take_all_factor: float | None = 1.0
    history_days: int = 14
    min_history_units: int = 20
    min_history_positives: int = 5

    def __post_init__(self) -> None:
        if self.n_strata < 1 or self.min_per_stratum < 2 or self.history_days < 1:
            raise ValueError(
                "sampling.stratified: expected n_strata >= 1, min_per_stratum >= 2, "
                f"history_days >= 1, got {self.n_strata}, {self.min_per_stratum}, "
                f"{self.history_days}"
            )
        if self.take_all_factor is not None and not self.take_all_factor > 0:
            raise ValueError(
                "sampling.stratified.take_all_factor: expected a number > 0 or null, "
                f"got {self.take_all_factor!r}"
            )
        if self.min_history_units < 2 or self.min_history_positives < 1:
            raise ValueError(
                "sampling.stratified: expected min_history_units >= 2 and "
                f"min_history_positives >= 1, got {self.min_history_units}, "
                f"{self.min_history_positives}"
            )


LABELER_BACKENDS = (*SYNC_BACKENDS, *HUMAN_BACKENDS)


@dataclass(frozen=True)
class LabelerConfig:
    """A labeler: ``backend: simulated`` (``error_rate``), ``llm`` (an OpenAI-compatible
    endpoint from the Airflow connection ``conn_id``; see ``docs/methods/llm_labeling.md``), or a
    human queue, ``label_studio`` / ``vendor_files`` (the server or directory from the Airflow
    connection ``conn_id``; see ``docs/methods/human_queues.md``)."""

    labeler_id: str
    error_rate: float = 0.0
    fraction: float = 1.0
    backend: str = "simulated"
    conn_id: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in LABELER_BACKENDS:
            raise ValueError(
                f"labeler {self.labeler_id}: backend must be one of {LABELER_BACKENDS}, "
                f"got {self.backend!r}"
            )
        if self.backend != "simulated" and not self.conn_id:
            raise ValueError(f"labeler {self.labeler_id}: a {self.backend} backend needs a conn_id")

    @property
    def is_human(self) -> bool:
        """True for a human queue (answers arrive over hours, collected by the sensor)."""
        return self.backend in HUMAN_BACKENDS


@dataclass(frozen=True)
class RunConfig:
    version: int
    policies: tuple[Policy, ...]
    sampling: SamplingConfig
    primary_labeler: LabelerConfig
    overlap_labeler: LabelerConfig
    estimator: str = "hansen_hurwitz"  # derived from sampling.method (PRIMARY_ESTIMATOR)
    ci_method: str = "wilson_kg"
    confidence: float = 0.95
    label_correction: bool = False
    small_cells: dict[str, float] = field(
        default_factory=lambda: {
            "min_effective_n": 10.0,
            "max_relative_half_width": 1.0,
            "pool_days": 7,
        }
    )
    rise_alpha: float = 0.001
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: policies with a sample of their own besides the shared one (``sampling.per_policy``)
    policy_samples: dict[str, SamplingConfig] = field(default_factory=dict)

    @property
    def designs(self) -> list[SamplingConfig]:
        """The day's designs: the shared multi-policy sample, then each per-policy sample."""
        return [self.sampling, *self.policy_samples.values()]

    def design_policies(self, design: SamplingConfig) -> list[str]:
        """The policies a design's estimates are written for."""
        return self.policy_names if design.policy is None else [design.policy]

    def headline(self, policy: str) -> tuple[str, str]:
        """(design_id, estimator) of the estimate checks, alerts and planning read for
        ``policy``: its own sample's when it has one, else the shared sample's."""
        design = self.policy_samples.get(policy, self.sampling)
        return design.design_id, PRIMARY_ESTIMATOR[design.method]

    def headline_arrays(self) -> tuple[list[str], list[str], list[str]]:
        """Policies, design ids and estimators of :meth:`headline`, for
        ``(policy, design_id, estimator) IN (SELECT * FROM unnest(%s, %s, %s))``."""
        pairs = [self.headline(p) for p in self.policy_names]
        return self.policy_names, [d for d, _ in pairs], [e for _, e in pairs]

    gold: GoldConfig = field(default_factory=GoldConfig)
    label_wait: LabelWaitConfig = field(default_factory=LabelWaitConfig)
    adjudication: AdjudicationConfig = field(default_factory=AdjudicationConfig)

    @property
    def labelers(self) -> tuple[LabelerConfig, ...]:
        """The primary and overlap labelers, in that order."""
        return (self.primary_labeler, self.overlap_labeler)

    def rule(self, name: str) -> dict[str, Any]:
        """A check rule's settings (thresholds, severity, owner); empty when not configured."""
        return dict(self.rules.get(name, {}))

    @property
    def policy_names(self) -> list[str]:
        return [p.name for p in self.policies]

    def with_limits(self, overrides: dict[str, float] | None) -> RunConfig:
        """A copy with per-policy limits replaced (e.g. from the ``policy_limits`` run param)."""
        if not overrides:
            return self
        unknown = set(overrides) - set(self.policy_names)
        if unknown:
            raise ValueError(f"policy_limits names unknown policies {sorted(unknown)}")
        policies = tuple(
            Policy(p.name, float(overrides.get(p.name, p.limit)), p.sub_policies)
            for p in self.policies
        )
        return RunConfig(**{**self.__dict__, "policies": policies})


def _require(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ValueError(f"{where}: missing required key {key!r}")
    return mapping[key]


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a parsed YAML document into a :class:`RunConfig`."""
    policies_raw = _require(raw, "policies", "config")
    if not isinstance(policies_raw, dict) or not policies_raw:
        raise ValueError("config: 'policies' must be a non-empty mapping")
    policies = []
    for name, spec in policies_raw.items():
        limit = float(_require(spec, "limit", f"policy {name}"))
        if not 0 <= limit <= 1:
            raise ValueError(f"policy {name}: limit must be in [0, 1], got {limit}")
        policies.append(Policy(name, limit, tuple(spec.get("sub_policies", ()))))
    sampling = _require(raw, "sampling", "config")
    labeling = _require(raw, "labeling", "config")
    estimation = raw.get("estimation", {})
    checks = raw.get("checks", {})
    shared = _sampling(sampling)
    return RunConfig(
        version=int(_require(raw, "version", "config")),
        policies=tuple(policies),
        sampling=shared,
        policy_samples=_policy_samples(
            sampling.get("per_policy") or {}, sampling, [p.name for p in policies]
        ),
        primary_labeler=LabelerConfig(**labeling["primary"]),
        overlap_labeler=LabelerConfig(**labeling["overlap"]),
        estimator=_estimator(estimation, sampling),
        label_correction=bool(estimation.get("label_correction", False)),
        small_cells=_small_cells(estimation.get("small_cells") or {}),
        ci_method=str(estimation.get("ci_method", "wilson_kg")),
        confidence=float(estimation.get("confidence", 0.95)),
        rise_alpha=float(checks.get("rise_alpha", 0.001)),
        rules={str(name): dict(spec or {}) for name, spec in checks.get("rules", {}).items()},
        gold=GoldConfig.from_raw(labeling.get("gold")),
        label_wait=LabelWaitConfig.from_raw(labeling.get("wait")),
        adjudication=AdjudicationConfig.from_raw(estimation.get("adjudication")),
    )


#: The design-based estimator of each sampling method (the estimator of checks and alerts).
PRIMARY_ESTIMATOR = {
    "poisson_pps": "horvitz_thompson",
    "pps_with_replacement": "hansen_hurwitz",
    "stratified": "stratified",
}


def _estimator(estimation: dict[str, Any], sampling: dict[str, Any]) -> str:
    method = str(sampling.get("method", "pps_with_replacement"))
    derived = PRIMARY_ESTIMATOR.get(method, "hansen_hurwitz")
    given = estimation.get("estimator", derived)
    if given != derived:
        raise ValueError(
            f"estimation.estimator: sampling method {method!r} is estimated with {derived!r}, "
            f"got {given!r}"
        )
    return derived


def _small_cells(raw: dict[str, Any]) -> dict[str, float]:
    out = {"min_effective_n": 10.0, "max_relative_half_width": 1.0, "pool_days": 7.0}
    unknown = set(raw) - set(out)
    if unknown:
        raise ValueError(f"estimation.small_cells: unknown keys {sorted(unknown)}")
    out.update({k: float(v) for k, v in raw.items()})
    if out["min_effective_n"] <= 0 or out["max_relative_half_width"] <= 0 or out["pool_days"] < 1:
        raise ValueError("estimation.small_cells: thresholds must be > 0 and pool_days >= 1")
    return out


_DESIGN_KEYS = (
    "design_id",
    "seed",
    "n_draws",
    "method",
    "size_measure",
    "size_floor",
    "calibration",
    "planning",
    "stratified",
)


def _policy_samples(
    raw: dict[str, Any], shared: dict[str, Any], policies: list[str]
) -> dict[str, SamplingConfig]:
    """``sampling.per_policy``: policy -> the keys of its own design (``design_id`` and
    ``seed`` required; the others default to the shared design's)."""
    if not isinstance(raw, dict):
        raise ValueError(f"sampling.per_policy: expected a mapping, got {raw!r}")
    out: dict[str, SamplingConfig] = {}
    seen_ids = {str(shared.get("design_id"))}
    seen_seeds = {shared.get("seed")}
    for policy, spec in raw.items():
        where = f"sampling.per_policy.{policy}"
        if policy not in policies:
            raise ValueError(f"{where}: expected one of the policies {policies}, got {policy!r}")
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: expected a mapping, got {spec!r}")
        unknown = set(spec) - set(_DESIGN_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("design_id", "seed"):
            _require(spec, key, where)
        if str(spec["design_id"]) in seen_ids:
            raise ValueError(
                f"{where}.design_id: expected a new design id, got {spec['design_id']!r}"
            )
        if spec["seed"] in seen_seeds:
            raise ValueError(
                f"{where}.seed: expected a seed distinct from the other designs' (shared "
                f"uniforms would make the samples dependent), got {spec['seed']!r}"
            )
        seen_ids.add(str(spec["design_id"]))
        seen_seeds.add(spec["seed"])
        merged = {k: v for k, v in shared.items() if k in _DESIGN_KEYS}
        out[policy] = _sampling({**merged, **spec}, policy=policy)
    return out


def _stratified(raw: dict[str, Any]) -> StratifiedConfig:
    if not isinstance(raw, dict):
        raise ValueError(f"sampling.stratified: expected a mapping, got {raw!r}")
    unknown = set(raw) - {f.name for f in dataclasses.fields(StratifiedConfig)}
    if unknown:
        raise ValueError(f"sampling.stratified: unknown keys {sorted(unknown)}")
    factor = raw.get("take_all_factor", 1.0)
    return StratifiedConfig(
        n_strata=int(raw.get("n_strata", 6)),
        min_per_stratum=int(raw.get("min_per_stratum", 10)),
        take_all_factor=None if factor is None else float(factor),
        history_days=int(raw.get("history_days", 14)),
        min_history_units=int(raw.get("min_history_units", 20)),
        min_history_positives=int(raw.get("min_history_positives", 5)),
    )


def _sampling(raw: dict[str, Any], policy: str | None = None) -> SamplingConfig:
    calibration = raw.get("calibration", {}) or {}
    planning = raw.get("planning", {}) or {}
    return SamplingConfig(
        policy=policy,
        stratified=_stratified(raw.get("stratified") or {}),
        design_id=str(_require(raw, "design_id", "sampling")),
        n_draws=int(_require(raw, "n_draws", "sampling")),
        size_floor=float(_require(raw, "size_floor", "sampling")),
        seed=int(_require(raw, "seed", "sampling")),
        method=str(raw.get("method", "pps_with_replacement")),
        size_measure=str(raw.get("size_measure", "max_risk")),
        calibration_method=str(calibration.get("method", "platt")),
        calibration_window_days=int(calibration.get("window_days", 14)),
        calibration_min_positives=float(calibration.get("min_positives", 10)),
        label_budget=None
        if planning.get("label_budget") is None
        else int(planning["label_budget"]),
        target_relative_half_width=float(planning.get("target_relative_half_width", 0.25)),
        planning_window_days=int(planning.get("window_days", 7)),
    )


def load_config(path: str | Path | None = None) -> RunConfig:
    """Load the run configuration from ``path``, ``$TSMETRICS_POLICIES_FILE`` or the default."""
    chosen = path or os.environ.get(POLICIES_FILE_ENV)
    if chosen:
        text = Path(chosen).read_text()
    else:
        text = resources.files("tsmetrics.config").joinpath("policies.yaml").read_text()
    return parse_config(yaml.safe_load(text))
