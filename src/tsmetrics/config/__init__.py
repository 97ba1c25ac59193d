"""Run configuration: policies, limits, sampling design and labelers, from versioned YAML."""

from __future__ import annotations

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


SAMPLING_METHODS = ("poisson_pps", "pps_with_replacement")
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
    return RunConfig(
        version=int(_require(raw, "version", "config")),
        policies=tuple(policies),
        sampling=_sampling(sampling),
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
PRIMARY_ESTIMATOR = {"poisson_pps": "horvitz_thompson", "pps_with_replacement": "hansen_hurwitz"}


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


def _sampling(raw: dict[str, Any]) -> SamplingConfig:
    calibration = raw.get("calibration", {}) or {}
    planning = raw.get("planning", {}) or {}
    return SamplingConfig(
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
