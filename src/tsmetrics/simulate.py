"""Simulator of raw multi-component interaction logs with known ground truth.

A *unit* is one interaction: a user query, a system response text and 1..6 recommended Pin
images. Every component carries impressions (views) and per-policy risk scores from
(simulated) enforcement models. Violations are generated at unit level with a known, day-level
probability per policy, so that the true impression-weighted prevalence of every policy is
known exactly and written next to the logs.

Raw format (contract with the extractor)
----------------------------------------
One file per day: ``{raw_dir}/dt=YYYY-MM-DD/interactions.jsonl`` (JSON Lines, UTF-8, one
interaction per line, ``\\n`` line endings, lines ordered by ``event_ts``). Each line::

    {"interaction_id": "20261120-000001", "event_ts": "2026-11-20T13:45:07Z",
     "surface": "search",
     "components": [
       {"component_id": "q", "type": "user_query", "text": "...", "impressions": 1234,
        "risk_scores": {"adult": 0.12, "harassment": 0.05, "self_harm": 0.01,
                        "misinformation": 0.02}},
       {"component_id": "r", "type": "system_response", "text": "...", "impressions": 1234,
        "risk_scores": {...}},
       {"component_id": "p1", "type": "pin_image", "pin_id": "pin-8812",
        "image_url": "https://i.example.com/pins/pin-8812.jpg", "text": "...",
        "impressions": 377, "risk_scores": {...}}
     ]}

- ``interaction_id``: ``YYYYMMDD-NNNNNN`` (sequence number zero-padded to at least 6 digits),
  unique within the day and, because it embeds the date, across days.
- ``event_ts``: ISO 8601 UTC timestamp with second precision and ``Z`` suffix, within the day.
- ``surface``: one of :data:`SURFACES`.
- ``components``: exactly one ``user_query`` (``component_id`` ``"q"``), exactly one
  ``system_response`` (``"r"``) and 1..6 ``pin_image`` components (``"p1"``, ``"p2"``, ...), in
  that order. Pin components additionally have ``pin_id``, ``image_url`` and a ``text`` caption
  (always present).
- ``impressions``: non-negative int, heavy tailed (Pareto). The query and response share the
  interaction-level view count; every pin gets a (binomially thinned) fraction of it. May be 0.
- ``risk_scores``: object policy -> float in [0, 1], rounded to 4 decimals. A missing score is
  represented by the key being absent (the object may be empty).
- Ground truth marker: a component violating policy ``P`` (sub-policy ``S``) contains the token
  ``[[violates:P/S]]`` in its ``text`` (one token per violated policy, appended after the
  synthetic text). Non-violating texts contain no such token. A unit violates ``P`` iff any of
  its components does; all components of a unit carrying ``P`` share the same sub-policy.

Generative model (summary)
--------------------------
- Views per interaction ``V = floor(40 * Lomax(pareto_shape))`` (capped at 1e9); query and
  response get ``V`` impressions each, pin ``k`` gets ``Binomial(V, Beta(2, 3) * 0.8**(k-1))``.
- Day-level probability per policy: ``base * exp(sigma * Z - sigma**2 / 2)``,
  ``sigma = day_prevalence_jitter``. Each interaction violates each policy independently with
  that probability times a relative propensity (by surface, and decreasing with reach because
  risky content is demoted) normalised to mean one over the day. Hence the expected share of
  violating *interactions* is the day probability, while the impression-weighted prevalence is
  typically lower.
- A violating unit's primary carrier component is drawn with policy-specific weights by
  component type; every other component of the unit also carries it with probability 0.15.
- Risk score ``= expit(-3.5 + 1.5 * (d * y + Z))`` with ``d = sqrt(2) * Phi^-1(auc_target)``
  (binormal model: ROC AUC of score vs component truth equals the target up to rounding ties),
  rounded to 4 decimals; each (component, policy) score is dropped with probability
  ``missing_score_rate``. ``risk_scores`` keys follow the configured policy order.

Truth output
------------
``{truth_dir}/dt=YYYY-MM-DD/truth.json``::

    {"day": "2026-11-20", "seed": 7, "n_interactions": 50000, "total_impressions": 123,
     "policies": {"adult": {"unit_prevalence": ..., "component_prevalence": ...,
                            "n_violating_units": ..., "violating_impressions": ...,
                            "n_violating_components": ..., "violating_component_impressions": ...,
                            "unit_count_prevalence": ..., "day_probability": ...,
                            "base_prevalence": ...}, ...},
     "by_surface": {"search": {"adult": 0.0123, ...}, ...},
     "by_surface_component": {"search": {"adult": 0.0051, ...}, ...},
     "config": {...}}

where ``unit_prevalence = violating_impressions / total_impressions`` with unit impressions being
the sum of the unit's component impressions, ``violating_impressions`` the sum of impressions of
units violating the policy, and ``component_prevalence`` = impressions of violating components /
all component impressions. ``by_surface`` holds the unit prevalence within each surface (0.0 for
a surface without impressions), ``by_surface_component`` the component prevalence.
``{truth_dir}/dt=YYYY-MM-DD/unit_truth.csv`` has the header ``interaction_id,policy,sub_policy``
and one row per violating (unit, policy).

Randomness: everything for day ``D`` is derived from ``numpy.random.SeedSequence([seed,
D.toordinal()])``, so a day is identical no matter how many days are simulated in one run.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit, ndtri

__all__ = [
    "COMPONENT_TYPES",
    "DEFAULT_POLICIES",
    "SUB_POLICIES",
    "SURFACES",
    "VIOLATION_TOKEN_RE",
    "SimulatedDay",
    "SimulationConfig",
    "day_partition",
    "read_truth",
    "simulate",
    "simulate_day",
    "violation_token",
    "write_day",
]

DEFAULT_POLICIES: dict[str, float] = {
    "adult": 0.02,
    "harassment": 0.008,
    "self_harm": 0.002,
    "misinformation": 0.001,
}
"""True unit-level base prevalence (probability that an interaction violates the policy)."""

SUB_POLICIES: dict[str, tuple[str, ...]] = {
    "adult": ("nudity", "sexual_activity"),
    "harassment": ("insults", "threats"),
    "self_harm": ("ideation", "instructions"),
    "misinformation": ("health", "civic"),
}
"""Sub-policies per policy; policies not listed here use ``("general",)``."""

SURFACES: tuple[str, ...] = ("search", "home_feed", "related_pins", "assistant")

COMPONENT_TYPES: tuple[str, ...] = ("user_query", "system_response", "pin_image")

VIOLATION_TOKEN_RE: re.Pattern[str] = re.compile(r"\[\[violates:([^/\]]+)/([^\]]+)\]\]")
"""Regex matching the ground-truth token; groups are (policy, sub_policy)."""

MAX_PINS = 6
_SECONDS_PER_DAY = 86_400
_SURFACE_WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])
# Relative violation propensity per surface.
_SURFACE_RISK = np.array([1.2, 0.9, 1.0, 0.6])
_VIEW_SCALE = 40.0
_DEMOTION_SCALE = 100.0  # views at which demotion starts to bite
_DEMOTION_EXPONENT = 0.4
_MAX_VIEWS = 10**9
_PIN_FRACTION_BETA = (2.0, 3.0)
_PIN_POSITION_DECAY = 0.8
_EXTRA_COMPONENT_RATE = 0.15
# Per-component weight of carrying a unit's violation, by (query, response, pin).
_TYPE_AFFINITY: dict[str, tuple[float, float, float]] = {
    "adult": (1.0, 1.0, 3.0),
    "harassment": (4.0, 2.0, 0.5),
    "self_harm": (3.0, 2.0, 1.0),
    "misinformation": (1.0, 4.0, 1.0),
}
# Risk score = expit(_SCORE_OFFSET + _SCORE_SCALE * (d * y + Z)), Z ~ N(0, 1): binormal AUC.
_SCORE_OFFSET = -3.5
_SCORE_SCALE = 1.5
_SCORE_DENOM = 10_000  # scores are multiples of 1e-4
_TOPICS: tuple[str, ...] = (
    "cooking",
    "gardening",
    "travel",
    "home decor",
    "fitness",
    "fashion",
    "woodworking",
    "photography",
    "baking",
    "hiking",
    "knitting",
    "weddings",
    "pets",
    "painting",
    "camping",
    "skincare",
)


def _default_policies() -> dict[str, float]:
    return dict(DEFAULT_POLICIES)


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of the simulation (per day).

    Attributes:
        n_interactions: Number of interactions (units) per day.
        policies: Policy -> true unit-level base prevalence (probability per interaction).
        score_auc_target: Approximate ROC AUC of a component's risk score vs its truth.
        missing_score_rate: Share of (component, policy) scores that are missing.
        pareto_shape: Pareto tail index of interaction-level views (smaller = heavier tail).
        day_prevalence_jitter: Sigma of the mean-one lognormal day-to-day multiplier applied
            to each policy's base prevalence.
    """

    n_interactions: int = 50_000
    policies: Mapping[str, float] = field(default_factory=_default_policies)
    score_auc_target: float = 0.9
    missing_score_rate: float = 0.05
    pareto_shape: float = 1.3
    day_prevalence_jitter: float = 0.15

    def __post_init__(self) -> None:
        if self.n_interactions < 1:
            raise ValueError("n_interactions must be >= 1")
        if not self.policies:
            raise ValueError("at least one policy is required")
        for name, rate in self.policies.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"invalid policy name {name!r}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"base prevalence of {name!r} must be in [0, 1]")
        if not 0.5 <= self.score_auc_target < 1.0:
            raise ValueError("score_auc_target must be in [0.5, 1)")
        if not 0.0 <= self.missing_score_rate <= 1.0:
            raise ValueError("missing_score_rate must be in [0, 1]")
        if self.pareto_shape <= 0.0:
            raise ValueError("pareto_shape must be > 0")
        if self.day_prevalence_jitter < 0.0:
            raise ValueError("day_prevalence_jitter must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable representation."""
        return {
            "n_interactions": self.n_interactions,
            "policies": dict(self.policies),
            "score_auc_target": self.score_auc_target,
            "missing_score_rate": self.missing_score_rate,
            "pareto_shape": self.pareto_shape,
            "day_prevalence_jitter": self.day_prevalence_jitter,
        }


@dataclass
class SimulatedDay:
    """One simulated day.

    Attributes:
        day: The UTC day.
        seed: The run seed (the day's generator is derived from ``(seed, day)``).
        jsonl: The raw log of the day, exactly as written to ``interactions.jsonl``.
        truth: The truth summary (content of ``truth.json``).
        unit_truth: Rows ``(interaction_id, policy, sub_policy)`` for violating units, ordered
            by interaction then policy.
        components: One row per component (in file order) with columns ``interaction_id``,
            ``component_id``, ``type``, ``impressions`` and, per policy ``P``, ``score_P`` (NaN
            if missing) and ``violates_P`` (bool). Convenience for analysis; not written.
    """

    day: dt.date
    seed: int
    jsonl: str
    truth: dict[str, Any]
    unit_truth: list[tuple[str, str, str]]
    components: pd.DataFrame

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """The interactions as parsed raw records (parsed lazily from :attr:`jsonl`)."""
        return [json.loads(line) for line in self.jsonl.splitlines()]


def _sub_policies(policy: str) -> tuple[str, ...]:
    return SUB_POLICIES.get(policy, ("general",))


def violation_token(policy: str, sub_policy: str) -> str:
    """The ground-truth marker embedded in the text of a violating component."""
    return f"[[violates:{policy}/{sub_policy}]]"


def day_partition(day: dt.date) -> str:
    """Partition directory name for a day, e.g. ``dt=2026-11-20``."""
    return f"dt={day.isoformat()}"


def _day_seed_sequence(seed: int, day: dt.date) -> np.random.SeedSequence:
    if seed < 0:
        raise ValueError("seed must be non-negative")
    return np.random.SeedSequence([int(seed), day.toordinal()])


def _group_sum(
    values: npt.NDArray[np.int64], starts: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Exact integer sums of consecutive groups starting at ``starts`` (all groups non-empty)."""
    return np.add.reduceat(values, starts).astype(np.int64)


def simulate_day(
    day: dt.date, seed: int, config: SimulationConfig = SimulationConfig()
) -> SimulatedDay:
    """Simulate one day of interactions and compute its ground truth.

    Args:
        day: UTC day to simulate.
        seed: Non-negative run seed; the day's randomness is derived from ``(seed, day)``.
        config: Simulation parameters.

    Returns:
        The simulated day (raw JSON lines plus truth).
    """
    day_ss, data_ss = _day_seed_sequence(seed, day).spawn(2)
    # Day-level prevalence only depends on (seed, day, policies), not on n_interactions.
    jitter_rng = np.random.default_rng(day_ss)
    rng = np.random.default_rng(data_ss)

    policies = tuple(config.policies)
    n_pol = len(policies)
    base = np.array([config.policies[p] for p in policies], dtype=float)
    sigma = config.day_prevalence_jitter
    jitter = np.exp(sigma * jitter_rng.standard_normal(n_pol) - 0.5 * sigma**2)
    day_prob = np.clip(base * jitter, 0.0, 1.0)

    # ---- interactions -------------------------------------------------------------------
    n = config.n_interactions
    seconds = np.sort(rng.integers(0, _SECONDS_PER_DAY, size=n))
    surface_idx = rng.choice(len(SURFACES), size=n, p=_SURFACE_WEIGHTS)
    n_pins = rng.integers(1, MAX_PINS + 1, size=n)
    views = np.minimum(
        np.floor(_VIEW_SCALE * rng.pareto(config.pareto_shape, size=n)), _MAX_VIEWS
    ).astype(np.int64)
    topic_idx = rng.integers(0, len(_TOPICS), size=n)

    # ---- components (flat, grouped by interaction) ---------------------------------------
    n_comp = n_pins + 2
    ends = np.cumsum(n_comp)
    starts = ends - n_comp
    total = int(ends[-1])
    comp_unit = np.repeat(np.arange(n), n_comp)
    position = np.arange(total) - starts[comp_unit]
    comp_type = np.minimum(position, 2)  # 0 query, 1 response, 2 pin
    is_pin = comp_type == 2
    pin_no = np.where(is_pin, position - 1, 0)  # 1-based pin slot, 0 for query/response

    decay = _PIN_POSITION_DECAY ** np.maximum(pin_no - 1, 0)
    pin_frac = rng.beta(*_PIN_FRACTION_BETA, size=total) * decay
    pin_imps = rng.binomial(views[comp_unit], pin_frac)
    comp_imps = np.where(is_pin, pin_imps, views[comp_unit]).astype(np.int64)
    pin_numbers = np.zeros(total, dtype=np.int64)
    pin_numbers[is_pin] = rng.choice(900_000_000, size=int(is_pin.sum()), replace=False)
    pin_numbers[is_pin] += 100_000_000

    # ---- violations ----------------------------------------------------------------------
    # Relative violation propensity: by surface, and decreasing with reach (risky content gets
    # demoted). Normalised to mean one so the expected violating share is the day probability.
    propensity = _SURFACE_RISK[surface_idx] * (1.0 + views / _DEMOTION_SCALE) ** -_DEMOTION_EXPONENT
    propensity /= propensity.mean()
    unit_viol = np.zeros((n, n_pol), dtype=bool)
    comp_viol = np.zeros((total, n_pol), dtype=bool)
    unit_sub = np.zeros((n, n_pol), dtype=np.int64)
    for j, policy in enumerate(policies):
        p_unit = np.clip(day_prob[j] * propensity, 0.0, 1.0)
        uv = rng.random(n) < p_unit
        # Primary carrier: one component per violating unit, weighted by type affinity.
        weights = np.asarray(_TYPE_AFFINITY.get(policy, (1.0, 1.0, 1.0)), dtype=float)[comp_type]
        cum = np.cumsum(weights)
        before = cum[starts] - weights[starts]
        target = before + rng.random(n) * (cum[ends - 1] - before)
        primary = np.clip(np.searchsorted(cum, target, side="right"), starts, ends - 1)
        cv = uv[comp_unit] & (rng.random(total) < _EXTRA_COMPONENT_RATE)
        cv[primary[uv]] = True
        unit_viol[:, j] = uv
        comp_viol[:, j] = cv
        unit_sub[:, j] = rng.integers(0, len(_sub_policies(policy)), size=n)

    # ---- risk scores (integer ten-thousandths; -1 = missing) -----------------------------
    separation = float(np.sqrt(2.0) * ndtri(config.score_auc_target))
    latent = separation * comp_viol + rng.standard_normal((total, n_pol))
    score_units = np.rint(expit(_SCORE_OFFSET + _SCORE_SCALE * latent) * _SCORE_DENOM)
    score_units = score_units.astype(np.int64)
    score_units[rng.random((total, n_pol)) < config.missing_score_rate] = -1
    scores = np.where(score_units >= 0, score_units / _SCORE_DENOM, np.nan)

    # ---- truth ---------------------------------------------------------------------------
    unit_imps = _group_sum(comp_imps, starts)
    truth = _truth_summary(
        day=day,
        seed=seed,
        config=config,
        policies=policies,
        base=base,
        day_prob=day_prob,
        surface_idx=surface_idx,
        unit_imps=unit_imps,
        comp_imps=comp_imps,
        unit_viol=unit_viol,
        comp_viol=comp_viol,
        comp_unit=comp_unit,
    )
    width = max(6, len(str(n)))
    prefix = day.strftime("%Y%m%d")
    interaction_ids = [f"{prefix}-{i:0{width}d}" for i in range(1, n + 1)]
    viol_units, viol_pols = np.nonzero(unit_viol)  # row-major: by unit, then policy order
    unit_truth = [
        (interaction_ids[i], policies[j], _sub_policies(policies[j])[k])
        for i, j, k in zip(
            viol_units.tolist(),
            viol_pols.tolist(),
            unit_sub[viol_units, viol_pols].tolist(),
            strict=True,
        )
    ]

    # ---- raw JSON lines ------------------------------------------------------------------
    # Ground-truth tokens, pre-escaped for embedding in a JSON string; "" for most components.
    suffix = np.full(total, "", dtype=object)
    for j, policy in enumerate(policies):
        tokens = np.array(
            [json.dumps(" " + violation_token(policy, s))[1:-1] for s in _sub_policies(policy)],
            dtype=object,
        )
        carriers = np.flatnonzero(comp_viol[:, j])
        suffix[carriers] = suffix[carriers] + tokens[unit_sub[comp_unit[carriers], j]]
    stamps = np.datetime64(day.isoformat(), "s") + seconds.astype("timedelta64[s]")
    jsonl = _encode_jsonl(
        interaction_ids=interaction_ids,
        event_ts=np.datetime_as_string(stamps, unit="s").tolist(),
        surfaces=[SURFACES[k] for k in surface_idx.tolist()],
        comp_unit=comp_unit,
        ends=ends,
        comp_type=comp_type,
        pin_no=pin_no,
        pin_numbers=pin_numbers,
        topics=[_TOPICS[k] for k in topic_idx[comp_unit].tolist()],
        suffix=suffix,
        comp_imps=comp_imps,
        score_units=score_units,
        policies=policies,
    )

    comp_frame: dict[str, Any] = {
        "interaction_id": np.asarray(interaction_ids, dtype=object)[comp_unit],
        "component_id": np.where(
            comp_type == 0, "q", np.where(comp_type == 1, "r", np.char.add("p", pin_no.astype(str)))
        ).astype(object),
        "type": np.asarray(COMPONENT_TYPES, dtype=object)[comp_type],
        "impressions": comp_imps,
    }
    for j, policy in enumerate(policies):
        comp_frame[f"score_{policy}"] = scores[:, j]
        comp_frame[f"violates_{policy}"] = comp_viol[:, j]

    return SimulatedDay(
        day=day,
        seed=seed,
        jsonl=jsonl,
        truth=truth,
        unit_truth=unit_truth,
        components=pd.DataFrame(comp_frame),
    )


def _truth_summary(
    *,
    day: dt.date,
    seed: int,
    config: SimulationConfig,
    policies: Sequence[str],
    base: npt.NDArray[np.float64],
    day_prob: npt.NDArray[np.float64],
    surface_idx: npt.NDArray[np.int64],
    unit_imps: npt.NDArray[np.int64],
    comp_imps: npt.NDArray[np.int64],
    unit_viol: npt.NDArray[np.bool_],
    comp_viol: npt.NDArray[np.bool_],
    comp_unit: npt.NDArray[np.int64],
) -> dict[str, Any]:
    """Exact truth summary; all sums are integer sums, divided once."""

    def ratio(num: int, den: int) -> float:
        return num / den if den > 0 else 0.0

    n = len(unit_imps)
    total_imps = int(comp_imps.sum())
    policy_truth: dict[str, dict[str, Any]] = {}
    for j, policy in enumerate(policies):
        viol_imps = int(unit_imps[unit_viol[:, j]].sum())
        viol_comp_imps = int(comp_imps[comp_viol[:, j]].sum())
        n_units = int(unit_viol[:, j].sum())
        policy_truth[policy] = {
            "unit_prevalence": ratio(viol_imps, total_imps),
            "component_prevalence": ratio(viol_comp_imps, total_imps),
            "n_violating_units": n_units,
            "violating_impressions": viol_imps,
            "n_violating_components": int(comp_viol[:, j].sum()),
            "violating_component_impressions": viol_comp_imps,
            "unit_count_prevalence": n_units / n,
            "day_probability": float(day_prob[j]),
            "base_prevalence": float(base[j]),
        }
    by_surface: dict[str, dict[str, float]] = {}
    by_surface_component: dict[str, dict[str, float]] = {}
    for s, surface in enumerate(SURFACES):
        mask = surface_idx == s
        den = int(unit_imps[mask].sum())
        by_surface[surface] = {
            policy: ratio(int(unit_imps[mask & unit_viol[:, j]].sum()), den)
            for j, policy in enumerate(policies)
        }
        comp_mask = mask[comp_unit]
        by_surface_component[surface] = {
            policy: ratio(int(comp_imps[comp_mask & comp_viol[:, j]].sum()), den)
            for j, policy in enumerate(policies)
        }
    return {
        "day": day.isoformat(),
        "seed": int(seed),
        "n_interactions": n,
        "total_impressions": total_imps,
        "policies": policy_truth,
        "by_surface": by_surface,
        "by_surface_component": by_surface_component,
        "config": config.to_dict(),
    }


def _encode_jsonl(
    *,
    interaction_ids: list[str],
    event_ts: list[str],
    surfaces: list[str],
    comp_unit: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    comp_type: npt.NDArray[np.int64],
    pin_no: npt.NDArray[np.int64],
    pin_numbers: npt.NDArray[np.int64],
    topics: list[str],
    suffix: npt.NDArray[np.object_],
    comp_imps: npt.NDArray[np.int64],
    score_units: npt.NDArray[np.int64],
    policies: Sequence[str],
) -> str:
    """Serialise the generated columns to JSON Lines.

    Equivalent to ``json.dumps`` of each record with default separators (keys in documented
    order, floats in shortest round-trip form), but assembled from pre-formatted pieces for
    speed. All interpolated strings are JSON-safe by construction (fixed vocabularies, validated
    policy names, pre-escaped tokens).
    """
    n = len(interaction_ids)
    total = len(comp_unit)
    # '"policy": score, ' per present score (lookup tables over the 10001 possible values).
    risk = np.full(total, "", dtype=object)
    for j, policy in enumerate(policies):
        table = np.array(
            [f'"{policy}": {k / _SCORE_DENOM!r}, ' for k in range(_SCORE_DENOM + 1)] + [""],
            dtype=object,
        )
        risk = risk + table[score_units[:, j]]  # index -1 -> "" (missing)
    last_in_unit = np.zeros(total, dtype=bool)
    last_in_unit[ends - 1] = True
    comps = [
        (
            f'{{"component_id": "q", "type": "user_query", '
            f'"text": "synthetic query {unit} about {topic}{sfx}", '
            if typ == 0
            else f'{{"component_id": "r", "type": "system_response", '
            f'"text": "synthetic response {unit} suggesting ideas for {topic}{sfx}", '
            if typ == 1
            else f'{{"component_id": "p{slot}", "type": "pin_image", "pin_id": "pin-{pin}", '
            f'"image_url": "https://i.example.com/pins/pin-{pin}.jpg", '
            f'"text": "synthetic pin pin-{pin} caption: {topic} inspiration{sfx}", '
        )
        + f'"impressions": {imp}, "risk_scores": {{{rsk[:-2]}}}}}'
        + ("]}\n" if last else ", ")
        for unit, typ, slot, pin, topic, sfx, imp, rsk, last in zip(
            (comp_unit + 1).tolist(),
            comp_type.tolist(),
            pin_no.tolist(),
            pin_numbers.tolist(),
            topics,
            suffix.tolist(),
            comp_imps.tolist(),
            risk.tolist(),
            last_in_unit.tolist(),
            strict=True,
        )
    ]
    heads = [
        f'{{"interaction_id": "{iid}", "event_ts": "{ts}Z", "surface": "{surface}", "components": ['
        for iid, ts, surface in zip(interaction_ids, event_ts, surfaces, strict=True)
    ]
    # Interleave each interaction's head with its components, then join once.
    pieces = np.empty(n + total, dtype=object)
    pieces[ends - np.diff(ends, prepend=0) + np.arange(n)] = heads
    pieces[np.arange(total) + comp_unit + 1] = comps
    return "".join(pieces.tolist())


def _atomic_write_text(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(content)
    os.replace(tmp, path)


def write_day(sim: SimulatedDay, raw_dir: Path, truth_dir: Path) -> tuple[Path, Path]:
    """Write a simulated day's raw log and truth files (overwriting existing ones).

    Args:
        sim: The simulated day.
        raw_dir: Root of the raw log partitions.
        truth_dir: Root of the truth partitions.

    Returns:
        ``(path of interactions.jsonl, path of truth.json)``; ``unit_truth.csv`` is written next
        to ``truth.json``.
    """
    part = day_partition(sim.day)
    raw_path = Path(raw_dir) / part / "interactions.jsonl"
    truth_path = Path(truth_dir) / part / "truth.json"
    unit_truth_path = truth_path.with_name("unit_truth.csv")

    _atomic_write_text(raw_path, sim.jsonl)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("interaction_id", "policy", "sub_policy"))
    writer.writerows(sim.unit_truth)
    _atomic_write_text(unit_truth_path, buf.getvalue())
    _atomic_write_text(truth_path, json.dumps(sim.truth, indent=2, allow_nan=False) + "\n")
    return raw_path, truth_path


def simulate(
    days: int,
    seed: int,
    start: dt.date,
    raw_dir: Path,
    truth_dir: Path,
    config: SimulationConfig = SimulationConfig(),
) -> list[dt.date]:
    """Simulate and write ``days`` consecutive days starting at ``start``.

    Day ``D`` depends only on ``(seed, D, config)``, so it is identical regardless of how many
    days are simulated in one call.

    Returns:
        The simulated days, in order.
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    out: list[dt.date] = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        write_day(simulate_day(day, seed, config), Path(raw_dir), Path(truth_dir))
        out.append(day)
    return out


def read_truth(truth_dir: Path, day: dt.date) -> dict[str, Any]:
    """Read the parsed ``truth.json`` summary of ``day``."""
    path = Path(truth_dir) / day_partition(day) / "truth.json"
    with open(path, encoding="utf-8") as fh:
        result: dict[str, Any] = json.load(fh)
    return result
