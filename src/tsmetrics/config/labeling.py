"""Labeling settings of the run configuration: gold calibration, waiting for human labels, and
the adjudication estimation uses (``labeling.gold``, ``labeling.wait``,
``estimation.adjudication`` in the YAML)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

#: Labeler backends: answered in the run (synchronous) or through a human queue (asynchronous).
SYNC_BACKENDS = ("simulated", "llm")
HUMAN_BACKENDS = ("label_studio", "vendor_files")

ADJUDICATION_METHODS = ("primary", "majority", "dawid_skene")
TIE_BREAKS = ("unresolved", "positive", "accuracy")


def _checked(raw: Any, where: str, cls: type) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} (expected some of {sorted(known)})")
    return dict(raw)


@dataclass(frozen=True)
class GoldConfig:
    """SME gold items injected blind into every labeler's queue.

    ``rate`` is the share of a labeler's queue that is gold: with ``n`` sampled units queued
    for a labeler, ``round(n * rate / (1 - rate))`` gold items join them (fewer if the gold set
    is smaller). ``file`` (optional) is a JSONL gold set loaded into ``tsm.gold_items`` at each
    dispatch (idempotent; ``tsmetrics gold load FILE`` does the same by hand).
    ``accuracy_window_days`` is the window of gold results pooled for each labeler's accuracy
    (used by the ``accuracy`` tie-break of majority adjudication).
    """

    rate: float = 0.0
    file: str | None = None
    accuracy_window_days: int = 28

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 0.5:
            raise ValueError(f"labeling.gold.rate: expected a share in [0, 0.5), got {self.rate}")
        if self.accuracy_window_days < 1:
            raise ValueError(
                "labeling.gold.accuracy_window_days: expected >= 1, "
                f"got {self.accuracy_window_days}"
            )

    @classmethod
    def from_raw(cls, raw: Any) -> GoldConfig:
        values = _checked(raw, "labeling.gold", cls)
        return cls(
            rate=float(values.get("rate", 0.0)),
            file=None if values.get("file") is None else str(values["file"]),
            accuracy_window_days=int(values.get("accuracy_window_days", 28)),
        )


@dataclass(frozen=True)
class LabelWaitConfig:
    """When estimation may go ahead while human labels are still coming in.

    The ``wait_for_labels`` sensor of ``prevalence_daily`` waits (deferred, in the triggerer)
    until every human labeler has labelled at least ``min_completion`` of its sampled units, or
    until ``deadline_hours`` after the day's label tasks were first dispatched. The trigger
    checks for news every ``poll_seconds``; every ``max_idle_minutes`` the sensor collects even
    without a visible change (e.g. an edited annotation).
    """

    min_completion: float = 0.95
    deadline_hours: float = 20.0
    poll_seconds: float = 300.0
    max_idle_minutes: float = 60.0

    def __post_init__(self) -> None:
        if not 0.0 < self.min_completion <= 1.0:
            raise ValueError(
                f"labeling.wait.min_completion: expected a share in (0, 1], "
                f"got {self.min_completion}"
            )
        if self.deadline_hours < 0 or self.poll_seconds <= 0 or self.max_idle_minutes <= 0:
            raise ValueError(
                "labeling.wait: expected deadline_hours >= 0, poll_seconds > 0, "
                f"max_idle_minutes > 0, got {self.deadline_hours}, {self.poll_seconds}, "
                f"{self.max_idle_minutes}"
            )

    @classmethod
    def from_raw(cls, raw: Any) -> LabelWaitConfig:
        values = _checked(raw, "labeling.wait", cls)
        return cls(**{k: float(v) for k, v in values.items()})


@dataclass(frozen=True)
class AdjudicationConfig:
    """How a unit's labels become the one label estimation uses (``tsmetrics.adjudication``).

    ``primary``: the primary labeler's label (other labels only feed agreement and label
    correction); ``majority``: majority vote over every labeler of the unit, ties settled by
    ``tie_break`` (``accuracy``: the labeler more accurate on gold); ``dawid_skene``: the
    posterior mode of a Dawid-Skene model fitted per day and policy on every label of the day,
    gold items clamped to their SME answers, with Laplace ``smoothing``. With ``soft`` (the
    default) Dawid-Skene gives estimation each unit's posterior ``P(violating | labels)``
    (unbiased under the model), else its posterior mode (biased when a labeler is noisy and
    violations rare: a lone positive label can have a posterior below 1/2).
    """

    method: str = "primary"
    tie_break: str = "accuracy"
    smoothing: float = 0.1
    soft: bool = True

    def __post_init__(self) -> None:
        if self.method not in ADJUDICATION_METHODS:
            raise ValueError(
                f"estimation.adjudication.method: expected one of {ADJUDICATION_METHODS}, "
                f"got {self.method!r}"
            )
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(
                f"estimation.adjudication.tie_break: expected one of {TIE_BREAKS}, "
                f"got {self.tie_break!r}"
            )
        if self.smoothing < 0:
            raise ValueError(
                f"estimation.adjudication.smoothing: expected >= 0, got {self.smoothing}"
            )

    @classmethod
    def from_raw(cls, raw: Any) -> AdjudicationConfig:
        if isinstance(raw, str):
            return cls(method=raw)
        values = _checked(raw, "estimation.adjudication", cls)
        return cls(
            method=str(values.get("method", "primary")),
            tie_break=str(values.get("tie_break", "accuracy")),
            smoothing=float(values.get("smoothing", 0.1)),
            soft=bool(values.get("soft", True)),
        )
