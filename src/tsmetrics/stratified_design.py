"""The stratified design of a day (``sampling.method: stratified``): strata inside the warehouse,
Neyman allocation from earlier days' labels, selection inside the warehouse.

Design (one day, one design)
----------------------------
1. *Frame and strata* (``tsm.stratified_frame`` / ``tsm.stratified_strata``, migration 0008, over
   every unit of the day with impressions): the unit's score is its size measure's risk factor
   ``score_i = size_i / x_i`` (``tsm.unit_sizes``: ``floor + max risk`` for ``max_risk``, the
   combined relative calibrated risk ``sqrt(sum_p max(q_ip, phi Pbar_p) / Pbar_p^2)`` for
   ``sqrt_calibrated``; restricted to the design's policy for a per-policy sample). Units with
   ``x_i >= f X / n`` (``take_all_factor`` f, default 1: units that PPS by impressions would
   take with certainty) form a take-all stratum. The others are cut into at most ``H`` risk
   strata at the impression-weighted ``k / H`` quantiles of the score
   (:func:`tsmetrics.stratified.weighted_quantile_boundaries`).
2. *Allocation* (:func:`allocate`, Python, sample-sized): the take-all stratum gets
   ``n_h = N_h``; the other ``n - N_TA`` units go to the risk strata by Neyman allocation
   ``n_h ~ N_h S_h`` (:func:`tsmetrics.stratified.neyman_allocation`, at least
   ``min_per_stratum`` per stratum, integer by largest remainder, ``sum n_h = n`` exactly). For
   several policies ``S_h = sqrt(sum_p S_hp^2 / ybar_p^2)``, which minimises the sum of the
   policies' relative variances ``sum_p V(Y_hat_p) / Y_p^2`` (the compromise allocation; Cochran
   1977, Sec. 5A.3, with equal weights on the relative variances). ``S_hp`` and ``ybar_p`` come
   from the labelled units of the previous ``history_days`` days' samples of designs of the same
   role (shared, or this policy's), each unit placed in today's strata by its score under
   today's size measure (``tsm.history_scores``: its own day's risks through today's
   calibration) and weighted by its design weight in its own design
   (:func:`tsmetrics.stratified.stratum_sd_from_sample`). **Fallback rule**: proportional
   allocation (``n_h ~ N_h``) when some risk stratum has fewer than ``min_history_units``
   earlier labelled units, or when no policy of the design has ``min_history_positives``
   violating ones; policies below that count are left out of the compromise. The rule applied
   and its reason are stored with the design.
3. *Selection* (``tsm.stratified_sample``): in each stratum the ``n_h`` units of smallest
   ``tsm.hash_uniform(seed:day:unit_id)``, a simple random sample without replacement,
   reproduced bit for bit by :func:`reference_strata` + :func:`tsmetrics.stratified.
   stratified_hash_select`. Each selected unit stores ``pi_i = n_h / N_h`` and its stratum;
   ``tsm.sample_designs.params`` stores cut points, ``N_h``, ``n_h``, ``S_h`` and the rule.

Estimator: :func:`tsmetrics.stratified.stratified_prevalence` (``tsmetrics.designs``).

References: Cochran (1977), *Sampling Techniques*, Ch. 5 and 5A; Neyman (1934), *JRSS* 97,
558-625; Hidiroglou (1986), The construction of a self-representing stratum of large units in
survey design, *The American Statistician* 40(1), 27-31.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from tsmetrics.config import SamplingConfig
from tsmetrics.stratified import (
    neyman_allocation,
    proportional_allocation,
    stratum_of,
    stratum_sd_from_sample,
    weighted_quantile_boundaries,
)

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RISK, TAKE_ALL = "risk", "take_all"


@dataclass(frozen=True)
class Stratum:
    """One stratum of a day's frame: index, kind (risk/take_all), cut points, ``N_h``."""

    stratum: int
    kind: str
    lower_cut: float | None
    upper_cut: float | None
    n_units: int
    impressions: int


@dataclass(frozen=True)
class History:
    """Earlier days' labelled sample units for the allocation: score, impressions, violating
    impressions per policy (columns in ``policies`` order), design weight, day."""

    policies: tuple[str, ...]
    score: FloatArray
    impressions: FloatArray
    violating: FloatArray  # shape (m, P)
    weight: FloatArray
    days: tuple[str, ...]


@dataclass(frozen=True)
class Allocation:
    """``n_h`` per stratum with the ``S_h`` used (None for proportional) and why."""

    n_h: IntArray
    rule: str  # "neyman" or "proportional"
    reason: str
    stratum_sd: FloatArray | None
    policies_used: tuple[str, ...]


def reference_strata(
    impressions: npt.ArrayLike,
    size: npt.ArrayLike,
    n_strata: int,
    take_all_factor: float | None,
    expected_n: float,
) -> tuple[FloatArray, IntArray]:
    """The strata of ``tsm.stratified_strata`` in Python: (cut points, stratum per unit).

    Pass the frame in ``unit_id`` order (code points, ``COLLATE "C"``) with the warehouse's
    ``size`` (``tsm.unit_sizes``): ``score = size / x``; take-all iff
    ``x >= take_all_factor * X / expected_n``; cut points from
    :func:`~tsmetrics.stratified.weighted_quantile_boundaries` on the other units; risk stratum
    ``stratum_of(score, cuts)``, take-all stratum ``len(cuts) + 1``.
    """
    x = np.asarray(impressions, dtype=np.float64)
    s = np.asarray(size, dtype=np.float64)
    score = s / x
    if take_all_factor is None:
        take_all = np.zeros(len(x), dtype=bool)
    else:
        take_all = x >= take_all_factor * float(x.sum()) / float(expected_n)
    cuts = weighted_quantile_boundaries(score[~take_all], x[~take_all], n_strata)
    strata = stratum_of(score, cuts)
    strata[take_all] = len(cuts) + 1
    return cuts, strata


def frame_strata(
    conn: psycopg.Connection, day: date, spec: SamplingConfig, expected_n: float
) -> tuple[list[Stratum], list[float]]:
    """The day's strata from the warehouse (day-sized work in Postgres) and the cut points."""
    rows = conn.execute(
        "SELECT stratum, kind, lower_cut, upper_cut, n_units, impressions, cuts "
        "FROM tsm.stratified_strata(%s::date, %s, %s, %s, %s, %s, %s)",
        (
            day,
            spec.size_measure,
            spec.size_floor,
            None if spec.policy is None else [spec.policy],
            spec.stratified.take_all_factor,
            float(expected_n),
            spec.stratified.n_strata,
        ),
    ).fetchall()
    if not rows:
        raise ValueError(f"stratified design {spec.design_id}: no unit with impressions on {day}")
    strata = [Stratum(int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5])) for r in rows]
    return strata, [float(c) for c in rows[0][6]]


def load_history(
    conn: psycopg.Connection,
    day: date,
    spec: SamplingConfig,
    policies: Sequence[str],
    labeler_id: str,
) -> History:
    """Labelled sample units of the ``history_days`` days before ``day`` from designs of the
    same role (``params->>'policy'``: shared, or this policy's), primary labeler only; one row
    per labelled unit (per draw with replacement), weight ``1 / pi`` (``1 / (n p)`` per draw)
    in its own design, score under *today's* size measure (``tsm.history_scores``: their own
    day's risks through today's calibration), so they fall in today's strata whatever the
    calibration of their own day was."""
    since = day - timedelta(days=spec.stratified.history_days)
    design_policies = None if spec.policy is None else [spec.policy]
    rows = conn.execute(
        """
        SELECT s.event_date, s.design_id, s.draw_no, h.score, s.impressions,
            CASE d.method WHEN 'pps_with_replacement' THEN 1.0 / (d.n_draws * s.selection_prob)
                          ELSE 1.0 / s.selection_prob END,
            l.policy, l.is_violating
        FROM tsm.samples AS s
        JOIN tsm.sample_designs AS d USING (event_date, design_id)
        JOIN tsm.labels AS l
            ON l.event_date = s.event_date AND l.unit_id = s.unit_id AND l.labeler_id = %s
        JOIN tsm.history_scores(%s::date, %s, %s, %s, %s::date) AS h
            ON h.event_date = s.event_date AND h.unit_id = s.unit_id
        WHERE s.event_date >= %s AND s.event_date < %s AND s.impressions > 0
            AND (d.params->>'policy') IS NOT DISTINCT FROM %s
            AND l.policy = ANY(%s)
        ORDER BY s.event_date, s.design_id, s.draw_no
        """,
        (
            labeler_id,
            day,
            spec.size_measure,
            spec.size_floor,
            design_policies,
            since,
            since,
            day,
            spec.policy,
            list(policies),
        ),
    ).fetchall()
    index: dict[tuple[Any, str, int], int] = {}
    score: list[float] = []
    impressions: list[float] = []
    weight: list[float] = []
    violating: list[list[float]] = []
    days: set[str] = set()
    column = {p: j for j, p in enumerate(policies)}
    for event_date, design_id, draw_no, sc, x, w, policy, verdict in rows:
        key = (event_date, design_id, int(draw_no))
        if key not in index:
            index[key] = len(score)
            score.append(float(sc))
            impressions.append(float(x))
            weight.append(float(w))
            violating.append([np.nan] * len(policies))
            days.add(event_date.isoformat())
        violating[index[key]][column[policy]] = float(x) if verdict else 0.0
    y = np.array(violating, dtype=np.float64).reshape(len(score), len(policies))
    complete = ~np.isnan(y).any(axis=1)  # units labelled for every policy of the design
    return History(
        tuple(policies),
        np.array(score, dtype=np.float64)[complete],
        np.array(impressions, dtype=np.float64)[complete],
        y[complete],
        np.array(weight, dtype=np.float64)[complete],
        tuple(sorted(days)),
    )


def allocate(
    strata: Sequence[Stratum],
    cuts: Sequence[float],
    n_total: int,
    history: History,
    *,
    min_per_stratum: int,
    min_history_units: int,
    min_history_positives: int,
    take_all_min_impressions: float | None,
) -> Allocation:
    """``n_h`` for every stratum (take-all: ``N_h``; risk strata: Neyman or proportional).

    ``n_total`` is the day's sample size (capped at ``N``); see the module docstring for the
    compromise ``S_h`` and the fallback rule. History units at least as large as today's
    take-all threshold are left out (today they would not be sampled at random).
    """
    sizes = np.array([s.n_units for s in strata], dtype=np.int64)
    risk = np.array([s.kind == RISK for s in strata], dtype=bool)
    n = min(int(n_total), int(sizes.sum()))
    n_take_all = int(sizes[~risk].sum())
    n_risk = n - n_take_all
    floor = int(np.minimum(sizes[risk], min_per_stratum).sum())
    if n_risk < floor:
        raise ValueError(
            f"expected_n: expected at least {n_take_all + floor} (the {n_take_all} take-all "
            f"units and min_per_stratum={min_per_stratum} in each of {int(risk.sum())} risk "
            f"strata), got {n}; raise n_draws or take_all_factor"
        )
    n_h = sizes.copy()  # take-all strata whole
    keep = np.ones(len(history.score), dtype=bool)
    if take_all_min_impressions is not None:
        keep = history.impressions < take_all_min_impressions
    h_count = int(risk.sum())
    hist_stratum = stratum_of(history.score[keep], np.asarray(cuts, dtype=np.float64))
    counts = np.bincount(hist_stratum, minlength=h_count)[:h_count]
    y = history.violating[keep]
    w = history.weight[keep]
    positives = (y > 0).sum(axis=0)
    used = tuple(p for j, p in enumerate(history.policies) if positives[j] >= min_history_positives)
    reason = ""
    if len(history.score) == 0:
        reason = "no labelled history"
    elif counts.min() < min_history_units:
        reason = (
            f"fewer than {min_history_units} earlier labelled units in risk stratum "
            f"{int(np.argmin(counts))} ({int(counts.min())})"
        )
    elif not used:
        reason = f"no policy with {min_history_positives} violating earlier labelled units"
    if reason:
        n_h[risk] = proportional_allocation(sizes[risk], n_risk, min_per_stratum)
        return Allocation(n_h, "proportional", reason, None, ())
    relative = np.zeros(h_count, dtype=np.float64)
    for j, policy in enumerate(history.policies):
        if policy not in used:
            continue
        ybar = float(np.sum(w * y[:, j]) / np.sum(w))
        sd = stratum_sd_from_sample(y[:, j], hist_stratum, w, h_count)
        relative += np.nan_to_num(sd) ** 2 / ybar**2
    sd_h = np.sqrt(relative)
    n_h[risk] = neyman_allocation(sizes[risk], sd_h, n_risk, min_per_stratum)
    return Allocation(
        n_h, "neyman", f"history of {len(history.days)} day(s), {len(w)} units", sd_h, used
    )


def draw(
    conn: psycopg.Connection,
    day: date,
    spec: SamplingConfig,
    params: dict[str, Any],
    sql: str,
    policies: Sequence[str],
    labeler_id: str,
    run_sql: Any,
) -> None:
    """Strata (warehouse), allocation (here), selection and rows (``sql``, warehouse)."""
    expected_n = float(params["expected_n"])
    strata, cuts = frame_strata(conn, day, spec, expected_n)
    total = float(sum(s.impressions for s in strata))
    factor = spec.stratified.take_all_factor
    threshold = None if factor is None else factor * total / expected_n
    history = load_history(conn, day, spec, policies, labeler_id)
    allocation = allocate(
        strata,
        cuts,
        int(round(expected_n)),
        history,
        min_per_stratum=spec.stratified.min_per_stratum,
        min_history_units=spec.stratified.min_history_units,
        min_history_positives=spec.stratified.min_history_positives,
        take_all_min_impressions=threshold,
    )
    log.info(
        "stratified design %s on %s: %s allocation (%s), n_h = %s",
        spec.design_id,
        day,
        allocation.rule,
        allocation.reason,
        allocation.n_h.tolist(),
    )
    n_h_by_index = np.zeros(max(s.stratum for s in strata) + 1, dtype=np.int64)
    for s, n in zip(strata, allocation.n_h, strict=True):
        n_h_by_index[s.stratum] = n
    design_params = {
        "size_measure": spec.size_measure,
        "policy": spec.policy,
        "expected_n": expected_n,
        "n_strata_requested": spec.stratified.n_strata,
        "min_per_stratum": spec.stratified.min_per_stratum,
        "take_all_factor": factor,
        "take_all_min_impressions": threshold,
        "cuts": list(cuts),
        "allocation": allocation.rule,
        "allocation_reason": allocation.reason,
        "allocation_policies": list(allocation.policies_used),
        "history_days": list(history.days),
        "strata": [
            {
                "stratum": s.stratum,
                "kind": s.kind,
                "lower_cut": s.lower_cut,
                "upper_cut": s.upper_cut,
                "N_h": s.n_units,
                "n_h": int(n),
                "impressions": s.impressions,
                "S_h": None
                if allocation.stratum_sd is None or s.kind != RISK
                else float(allocation.stratum_sd[s.stratum]),
            }
            for s, n in zip(strata, allocation.n_h, strict=True)
        ],
        "uniforms": "tsm.hash_uniform(seed:day:unit_id), n_h smallest per stratum",
    }
    run_sql(
        conn,
        sql,
        {
            **params,
            "take_all_factor": factor,
            "cuts": json.dumps(list(cuts)),
            "n_h": json.dumps(n_h_by_index.tolist()),
            "design_params": json.dumps(design_params),
            "n_draws": int(allocation.n_h.sum()),
        },
    )


def stratum_sizes(params: dict[str, Any]) -> IntArray:
    """``N_h`` by stratum index from a stratified design's ``sample_designs.params``."""
    strata = params.get("strata")
    if not strata:
        raise ValueError("sample_designs.params: expected 'strata' of a stratified design")
    sizes = np.zeros(max(int(s["stratum"]) for s in strata) + 1, dtype=np.int64)
    for s in strata:
        sizes[int(s["stratum"])] = int(s["N_h"])
    return sizes
