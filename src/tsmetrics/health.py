"""Pipeline-health and risk-score-drift checks.

Pure functions of counts (or binned score masses) returning a
:class:`~tsmetrics.checks.CheckResult`; ``policy`` is ``"*"`` for day-level checks:

* :func:`input_volume_check` (``input_volume``) -- rows read today against the median of the
  trailing days, on the log scale.
* :func:`quarantine_rate_check` (``quarantine_rate``) -- share of the rows read that were rejected.
* :func:`missing_score_rate_check` (``missing_score_rate``, per policy) -- share of units whose
  risk had to be imputed because no component had a score.
* :func:`realized_sample_check` (``realized_sample``) -- draws written against draws planned.
* :func:`label_completion_check` (``label_completion``) -- label tasks done against queued.
* :func:`score_drift_check` (``score_drift``, per policy) -- population stability index (PSI) of
  today's risk-score histogram against the trailing days', with the Jensen-Shannon divergence.

Threshold semantics: a ``max_*`` bound breaches when the statistic is strictly above it, a
``min_*`` bound when strictly below; equality passes. A check is ``"skipped"`` (``statistic`` NaN)
when its statistic is undefined (nothing read, nothing planned, too short a baseline ...), with
the reason in ``details["reason"]``. ``details`` only holds JSON-safe values (finite floats, ints,
strings, ``None``, lists and dicts of those).

:func:`health_checks_day` reads one day's counts and histograms from the warehouse (day-sized
aggregation stays in the database; ``include/sql/score_histograms.sql`` must have run for the
day) and runs every check. It writes nothing: the caller stores the results in ``tsm.checks``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import statistics
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import psycopg
from numpy.typing import ArrayLike

from tsmetrics.checks import CheckResult
from tsmetrics.score_drift import jensen_shannon_divergence
from tsmetrics.validation import real_in_range

__all__ = [
    "ALL_POLICIES",
    "DEFAULT_THRESHOLDS",
    "HEALTH_CHECK_NAMES",
    "HEALTH_RULE_TEXT",
    "DriftWeight",
    "health_checks_day",
    "input_volume_check",
    "label_completion_check",
    "missing_score_rate_check",
    "quarantine_rate_check",
    "realized_sample_check",
    "score_drift_check",
]

FloatArray = npt.NDArray[np.float64]
DriftWeight = Literal["units", "impressions"]

ALL_POLICIES = "*"
"""``policy`` of the day-level checks (not specific to one policy)."""

INPUT_VOLUME = "input_volume"
QUARANTINE_RATE = "quarantine_rate"
MISSING_SCORE_RATE = "missing_score_rate"
REALIZED_SAMPLE = "realized_sample"
LABEL_COMPLETION = "label_completion"
SCORE_DRIFT = "score_drift"

HEALTH_CHECK_NAMES: tuple[str, ...] = (
    INPUT_VOLUME,
    QUARANTINE_RATE,
    MISSING_SCORE_RATE,
    REALIZED_SAMPLE,
    LABEL_COMPLETION,
    SCORE_DRIFT,
)

DEFAULT_THRESHOLDS: Mapping[str, Mapping[str, float]] = {
    INPUT_VOLUME: {"max_abs_log_ratio": 0.5, "min_baseline_days": 3},
    QUARANTINE_RATE: {"max_fraction": 0.01},
    MISSING_SCORE_RATE: {"max_fraction": 0.2},
    REALIZED_SAMPLE: {"min_fraction": 0.99},
    LABEL_COMPLETION: {"min_fraction": 0.95},
    SCORE_DRIFT: {"max_psi": 0.2, "min_baseline_days": 3, "epsilon": 1e-4},
}
"""Default parameters per check (the keyword arguments of the pure functions); override any of
them with ``health_checks_day(..., thresholds={"score_drift": {"max_psi": 0.25}})``."""

HEALTH_RULE_TEXT: Mapping[str, str] = {
    INPUT_VOLUME: "rows read far from the trailing median (|log ratio| above the bound)",
    QUARANTINE_RATE: "share of input rows quarantined above the bound",
    MISSING_SCORE_RATE: "share of units without a risk score (imputed) above the bound",
    REALIZED_SAMPLE: "share of planned sample draws written below the bound",
    LABEL_COMPLETION: "share of label tasks done below the bound",
    SCORE_DRIFT: "risk-score distribution shifted (PSI against the trailing days above the bound)",
}
"""One line per check for alert messages (like :data:`tsmetrics.alerts.RULE_TEXT`)."""


# --------------------------------------------------------------------------------------------
# Validation and result helpers
# --------------------------------------------------------------------------------------------


def _count(name: str, value: Any) -> int:
    """A non-negative integer (bool rejected)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or int(value) < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
    return int(value)


def _min_days(name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or int(value) < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def _policy(policy: Any) -> str:
    if not isinstance(policy, str) or not policy:
        raise ValueError(f"policy: expected a non-empty string, got {policy!r}")
    return policy


def _json_float(value: float) -> float | None:
    """``value`` as a float, ``None`` when not finite (tsm.checks.details is JSON)."""
    out = float(value)
    return out if math.isfinite(out) else None


def _decide(
    check_name: str,
    policy: str,
    statistic: float,
    threshold: float,
    breach: bool,
    details: dict[str, Any],
) -> CheckResult:
    return CheckResult(
        check_name=check_name,
        policy=policy,
        statistic=statistic,
        threshold=threshold,
        p_value=None,
        outcome="breach" if breach else "pass",
        details=details,
    )


def _skipped(
    check_name: str, policy: str, threshold: float, details: dict[str, Any], reason: str
) -> CheckResult:
    return CheckResult(
        check_name=check_name,
        policy=policy,
        statistic=float("nan"),
        threshold=threshold,
        p_value=None,
        outcome="skipped",
        details={**details, "reason": reason},
    )


def _with_details(result: CheckResult, **extra: Any) -> CheckResult:
    return dataclasses.replace(result, details={**result.details, **extra})


# --------------------------------------------------------------------------------------------
# Pure checks
# --------------------------------------------------------------------------------------------


def input_volume_check(
    today_rows: int,
    baseline_rows: Sequence[int],
    max_abs_log_ratio: float = 0.5,
    min_baseline_days: int = 3,
) -> CheckResult:
    """Is today's input volume in line with the trailing days?

    ``statistic = |ln(today_rows / median(baseline_rows))|``, ``threshold = max_abs_log_ratio``;
    breach when ``statistic > max_abs_log_ratio`` (the default 0.5 allows today within a factor
    ``e^0.5 = 1.65`` of the median either way: below 61% or above 165% breaches). The median
    makes one odd baseline day harmless. ``today_rows = 0`` breaches with ``statistic = inf``.
    ``details["log_ratio"]`` keeps the sign (negative: a drop). ``policy = "*"``.

    Skipped when fewer than ``min_baseline_days`` baseline values are given, or when their
    median is 0 (no reference volume).

    Parameters
    ----------
    today_rows : int
        Rows read today (``>= 0``).
    baseline_rows : sequence of int
        Rows read on each trailing day (``>= 0`` each), in any order.
    max_abs_log_ratio : float, default 0.5
        Bound on the absolute log ratio, ``> 0``.
    min_baseline_days : int, default 3
        Fewest baseline days for a decision, ``>= 1``.

    Raises
    ------
    ValueError
        On negative or non-integer counts, a non-sequence baseline, a bound ``<= 0`` or
        ``min_baseline_days < 1``.
    """
    today = _count("today_rows", today_rows)
    if isinstance(baseline_rows, str | bytes) or not isinstance(baseline_rows, Sequence):
        raise ValueError(f"baseline_rows: expected a sequence of integers, got {baseline_rows!r}")
    baseline = [_count(f"baseline_rows[{i}]", v) for i, v in enumerate(baseline_rows)]
    bound = real_in_range(
        "max_abs_log_ratio", max_abs_log_ratio, low=0.0, high=math.inf, closed="right"
    )
    min_days = _min_days("min_baseline_days", min_baseline_days)
    details: dict[str, Any] = {
        "today_rows": today,
        "baseline_rows": baseline,
        "n_baseline_days": len(baseline),
        "min_baseline_days": min_days,
    }
    if len(baseline) < min_days:
        return _skipped(
            INPUT_VOLUME,
            ALL_POLICIES,
            bound,
            details,
            f"baseline has {len(baseline)} day(s), fewer than {min_days}",
        )
    median = float(statistics.median(baseline))
    details["baseline_median"] = median
    if median == 0.0:
        return _skipped(INPUT_VOLUME, ALL_POLICIES, bound, details, "baseline median is 0")
    if today == 0:
        details.update(ratio=0.0, log_ratio=None)
        return _decide(INPUT_VOLUME, ALL_POLICIES, math.inf, bound, True, details)
    log_ratio = math.log(today / median)
    details.update(ratio=today / median, log_ratio=log_ratio)
    return _decide(
        INPUT_VOLUME, ALL_POLICIES, abs(log_ratio), bound, abs(log_ratio) > bound, details
    )


def quarantine_rate_check(
    rows_read: int, rows_quarantined: int, max_fraction: float = 0.01
) -> CheckResult:
    """Share of the day's input rows rejected to quarantine.

    ``statistic = rows_quarantined / rows_read``, ``threshold = max_fraction``; breach when
    ``statistic > max_fraction`` (default: more than 1% of the rows rejected). Skipped when
    ``rows_read = 0``. ``policy = "*"``.

    Raises
    ------
    ValueError
        On negative or non-integer counts, ``rows_quarantined > rows_read`` or ``max_fraction``
        outside ``[0, 1]``.
    """
    read = _count("rows_read", rows_read)
    quarantined = _count("rows_quarantined", rows_quarantined)
    bound = real_in_range("max_fraction", max_fraction, low=0.0, high=1.0)
    if quarantined > read:
        raise ValueError(
            f"rows_quarantined: expected an integer <= rows_read ({read}), got {rows_quarantined!r}"
        )
    details: dict[str, Any] = {"rows_read": read, "rows_quarantined": quarantined}
    if read == 0:
        return _skipped(QUARANTINE_RATE, ALL_POLICIES, bound, details, "no rows read")
    share = quarantined / read
    return _decide(QUARANTINE_RATE, ALL_POLICIES, share, bound, share > bound, details)


def missing_score_rate_check(
    policy: str,
    imputed_units: int,
    units: int,
    max_fraction: float = 0.2,
    *,
    imputed_impressions: float | None = None,
    impressions: float | None = None,
) -> CheckResult:
    """Share of the day's units without any risk score for ``policy`` (risk imputed).

    ``statistic = imputed_units / units``, ``threshold = max_fraction``; breach when
    ``statistic > max_fraction`` (default: more than 20% of the units unscored). Skipped when
    ``units = 0``. Imputed units get the day's mean risk, so a high share blunts the sampling
    design and hides score drift. ``imputed_impressions`` and ``impressions``, when both given,
    add the impression-weighted share to ``details`` (not used for the decision).

    Raises
    ------
    ValueError
        On an empty policy, negative or non-integer counts, ``imputed_units > units``,
        ``max_fraction`` outside ``[0, 1]`` or bad impressions.
    """
    name = _policy(policy)
    imputed = _count("imputed_units", imputed_units)
    total = _count("units", units)
    bound = real_in_range("max_fraction", max_fraction, low=0.0, high=1.0)
    if imputed > total:
        raise ValueError(f"imputed_units: expected an integer <= units ({total}), got {imputed!r}")
    details: dict[str, Any] = {"imputed_units": imputed, "units": total}
    if (imputed_impressions is None) != (impressions is None):
        raise ValueError(
            "imputed_impressions: expected it and impressions both given or both None, got "
            f"{imputed_impressions!r} and {impressions!r}"
        )
    if imputed_impressions is not None and impressions is not None:
        imp_total = real_in_range("impressions", impressions, low=0.0, high=math.inf)
        imp_imputed = real_in_range(
            "imputed_impressions", imputed_impressions, low=0.0, high=imp_total
        )
        details["imputed_impression_share"] = imp_imputed / imp_total if imp_total > 0 else None
    if total == 0:
        return _skipped(MISSING_SCORE_RATE, name, bound, details, "no units")
    share = imputed / total
    return _decide(MISSING_SCORE_RATE, name, share, bound, share > bound, details)


def realized_sample_check(
    planned_draws: int, realized_draws: int, min_fraction: float = 0.99
) -> CheckResult:
    """Were the sample draws the design planned actually written?

    ``statistic = realized_draws / planned_draws``, ``threshold = min_fraction``; breach when
    ``statistic < min_fraction`` (default: fewer than 99% of the draws), and also when
    ``statistic > 1`` (more draws than planned: the design and its draws disagree). Skipped when
    ``planned_draws = 0`` (no sample design for the day). ``policy = "*"``.

    Raises
    ------
    ValueError
        On negative or non-integer counts or ``min_fraction`` outside ``[0, 1]``.
    """
    planned = _count("planned_draws", planned_draws)
    realized = _count("realized_draws", realized_draws)
    bound = real_in_range("min_fraction", min_fraction, low=0.0, high=1.0)
    details: dict[str, Any] = {"planned_draws": planned, "realized_draws": realized}
    if planned == 0:
        return _skipped(REALIZED_SAMPLE, ALL_POLICIES, bound, details, "no draws planned")
    share = realized / planned
    breach = share < bound or share > 1.0
    if share > 1.0:
        details["problem"] = "more draws than planned"
    return _decide(REALIZED_SAMPLE, ALL_POLICIES, share, bound, breach, details)


def label_completion_check(
    tasks_total: int, tasks_done: int, min_fraction: float = 0.95
) -> CheckResult:
    """Share of the day's label tasks that got labels.

    ``statistic = tasks_done / tasks_total``, ``threshold = min_fraction``; breach when
    ``statistic < min_fraction`` (default: fewer than 95% done; pending and failed tasks are
    draws left out of the estimate). Skipped when ``tasks_total = 0``. ``policy = "*"``.

    Raises
    ------
    ValueError
        On negative or non-integer counts, ``tasks_done > tasks_total`` or ``min_fraction``
        outside ``[0, 1]``.
    """
    total = _count("tasks_total", tasks_total)
    done = _count("tasks_done", tasks_done)
    bound = real_in_range("min_fraction", min_fraction, low=0.0, high=1.0)
    if done > total:
        raise ValueError(f"tasks_done: expected an integer <= tasks_total ({total}), got {done!r}")
    details: dict[str, Any] = {"tasks_total": total, "tasks_done": done}
    if total == 0:
        return _skipped(LABEL_COMPLETION, ALL_POLICIES, bound, details, "no label tasks")
    share = done / total
    return _decide(LABEL_COMPLETION, ALL_POLICIES, share, bound, share < bound, details)


def _masses(name: str, value: ArrayLike, ndim: int) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected an array of numbers, got {value!r}") from error
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0.0):
        raise ValueError(f"{name}: expected finite numbers >= 0, got {value!r}")
    return arr


def _floored_shares(shares: FloatArray, epsilon: float) -> FloatArray:
    floored = np.maximum(shares, epsilon)
    out: FloatArray = floored / floored.sum()
    return out


def score_drift_check(
    policy: str,
    baseline_hist: ArrayLike,
    today_hist: ArrayLike,
    max_psi: float = 0.2,
    *,
    min_baseline_days: int = 3,
    epsilon: float = 1e-4,
    bin_edges: Sequence[float] | None = None,
) -> CheckResult:
    """Population stability index of today's risk-score histogram against the trailing days.

    Both histograms are on the same fixed bins (``B`` of them). Each baseline day with a
    positive total is normalised to shares, and the baseline distribution ``a`` is the mean of
    those shares (every day counts the same, whatever its volume); ``c`` is today's shares.
    Shares are floored at ``epsilon`` and renormalised (as
    :func:`tsmetrics.score_drift.population_stability_index` does), then::

        PSI = sum_b (c_b - a_b) ln(c_b / a_b)

    ``statistic = PSI``, ``threshold = max_psi``; breach when ``PSI > max_psi`` (rule of thumb:
    below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 major shift). ``details`` has the
    Jensen-Shannon divergence of the unfloored shares (base 2, in ``[0, 1]``,
    :func:`tsmetrics.score_drift.jensen_shannon_divergence`), both share vectors, the three bins
    that contribute most and, with ``bin_edges``, the shift of the mean score (bin midpoints).

    PSI on ``n`` items per side has sampling noise of about ``(B - 1) (1/n_a + 1/n_c)``: with
    impression masses, ``n`` is the Kish effective size, tiny when a few viral units carry
    most of a day's impressions, so pass unit counts to detect model drift on such data.

    Skipped when today's histogram is empty or fewer than ``min_baseline_days`` baseline days
    have a positive total (empty days are ignored).

    Parameters
    ----------
    policy : str
        Policy name.
    baseline_hist : array_like of float, shape (B, n_days)
        Masses (impressions or unit counts) per bin and baseline day, ``>= 0``; ``n_days`` may
        be 0.
    today_hist : array_like of float, shape (B,)
        Today's masses per bin, ``>= 0``; ``B >= 2``.
    max_psi : float, default 0.2
        Bound on the PSI, ``> 0``.
    min_baseline_days : int, default 3
        Fewest non-empty baseline days for a decision, ``>= 1``.
    epsilon : float, default 1e-4
        Floor of a bin's share, in ``(0, 0.01]``.
    bin_edges : sequence of float, optional
        The ``B + 1`` increasing bin edges, for ``details`` only.

    Raises
    ------
    ValueError
        On an empty policy, mismatched or malformed histograms (negative, non-finite, fewer than
        2 bins), bad edges, ``max_psi <= 0``, ``epsilon`` outside ``(0, 0.01]`` or
        ``min_baseline_days < 1``.
    """
    name = _policy(policy)
    today = _masses("today_hist", today_hist, 1)
    base = _masses("baseline_hist", baseline_hist, 2)
    n_bins = today.size
    if n_bins < 2:
        raise ValueError(f"today_hist: expected at least 2 bins, got {n_bins}")
    if base.shape[0] != n_bins:
        raise ValueError(
            f"baseline_hist: expected shape ({n_bins}, n_days) (bins as today_hist), "
            f"got {base.shape}"
        )
    bound = real_in_range("max_psi", max_psi, low=0.0, high=math.inf, closed="right")
    min_days = _min_days("min_baseline_days", min_baseline_days)
    eps = real_in_range("epsilon", epsilon, low=0.0, high=0.01, closed="right")
    edges: FloatArray | None = None
    if bin_edges is not None:
        try:
            edges = np.asarray(bin_edges, dtype=np.float64)
        except (TypeError, ValueError):
            edges = None
        if (
            edges is None
            or edges.shape != (n_bins + 1,)
            or not np.all(np.isfinite(edges))
            or np.any(np.diff(edges) <= 0.0)
        ):
            raise ValueError(
                f"bin_edges: expected {n_bins + 1} strictly increasing finite numbers, "
                f"got {bin_edges!r}"
            )
    day_totals = base.sum(axis=0)
    usable = day_totals > 0.0
    n_days = int(usable.sum())
    today_total = float(today.sum())
    details: dict[str, Any] = {
        "n_bins": n_bins,
        "n_baseline_days": n_days,
        "n_empty_baseline_days": int(base.shape[1] - n_days),
        "min_baseline_days": min_days,
        "today_total": today_total,
        "baseline_total": float(day_totals.sum()),
    }
    if today_total == 0.0:
        return _skipped(SCORE_DRIFT, name, bound, details, "today's histogram is empty")
    if n_days < min_days:
        return _skipped(
            SCORE_DRIFT,
            name,
            bound,
            details,
            f"{n_days} non-empty baseline day(s), fewer than {min_days}",
        )
    a_raw: FloatArray = (base[:, usable] / day_totals[usable]).mean(axis=1)
    c_raw: FloatArray = today / today_total
    a = _floored_shares(a_raw, eps)
    c = _floored_shares(c_raw, eps)
    contributions = (c - a) * np.log(c / a)
    psi = float(contributions.sum())
    top = np.argsort(-contributions, kind="stable")[:3]
    details.update(
        psi=psi,
        jensen_shannon=jensen_shannon_divergence(a_raw, c_raw),
        baseline_shares=[round(float(v), 6) for v in a_raw],
        today_shares=[round(float(v), 6) for v in c_raw],
        top_bins=[
            {
                "bin": int(b),
                **(
                    {"lower": float(edges[b]), "upper": float(edges[b + 1])}
                    if edges is not None
                    else {}
                ),
                "baseline_share": float(a_raw[b]),
                "today_share": float(c_raw[b]),
                "contribution": float(contributions[b]),
            }
            for b in top
        ],
    )
    if edges is not None:
        mid = 0.5 * (edges[:-1] + edges[1:])
        details["mean_score_shift"] = _json_float(float(mid @ c_raw - mid @ a_raw))
    return _decide(SCORE_DRIFT, name, psi, bound, psi > bound, details)


# --------------------------------------------------------------------------------------------
# Warehouse I/O
# --------------------------------------------------------------------------------------------


_INTEGER_PARAMS = frozenset({"min_baseline_days"})

_PARAM_CHECKS: dict[str, Callable[[str, Any], float]] = {
    "max_abs_log_ratio": lambda n, v: real_in_range(n, v, low=0.0, high=math.inf, closed="right"),
    "min_baseline_days": _min_days,
    "max_fraction": lambda n, v: real_in_range(n, v, low=0.0, high=1.0),
    "min_fraction": lambda n, v: real_in_range(n, v, low=0.0, high=1.0),
    "max_psi": lambda n, v: real_in_range(n, v, low=0.0, high=math.inf, closed="right"),
    "epsilon": lambda n, v: real_in_range(n, v, low=0.0, high=0.01, closed="right"),
}


def _resolve_thresholds(
    thresholds: Mapping[str, Mapping[str, float]] | None,
) -> dict[str, dict[str, Any]]:
    """DEFAULT_THRESHOLDS overridden by ``thresholds``; unknown names raise ValueError."""
    out: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEFAULT_THRESHOLDS.items()}
    if thresholds is None:
        return out
    if not isinstance(thresholds, Mapping):
        raise ValueError(
            f"thresholds: expected a mapping of check name to mapping, got {thresholds!r}"
        )
    for check, params in thresholds.items():
        if check not in out:
            raise ValueError(f"thresholds: expected check names among {sorted(out)}, got {check!r}")
        if not isinstance(params, Mapping):
            raise ValueError(f"thresholds[{check!r}]: expected a mapping, got {params!r}")
        for key, value in params.items():
            if key not in out[check]:
                raise ValueError(
                    f"thresholds[{check!r}]: expected parameters among {sorted(out[check])}, "
                    f"got {key!r}"
                )
            if key in _INTEGER_PARAMS and isinstance(value, float) and value.is_integer():
                value = int(value)  # e.g. 3.0 from a YAML/JSON float
            out[check][key] = _PARAM_CHECKS[key](f"thresholds[{check!r}][{key!r}]", value)
    return out


def _as_day(day: date | str) -> date:
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    if isinstance(day, str):
        try:
            return date.fromisoformat(day)
        except ValueError as error:
            raise ValueError(f"day: expected a date or YYYY-MM-DD, got {day!r}") from error
    raise ValueError(f"day: expected a date or YYYY-MM-DD, got {day!r}")


def _as_policies(policies: Sequence[str] | str) -> list[str]:
    names = policies.split(",") if isinstance(policies, str) else list(policies)
    if not names or any(not isinstance(p, str) or not p for p in names):
        raise ValueError(
            f"policies: expected non-empty policy names (a sequence or comma-separated), "
            f"got {policies!r}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"policies: expected distinct names, got {policies!r}")
    return names


def _loads(
    conn: psycopg.Connection, day: date, first: date
) -> dict[date, tuple[int, int | None, bool]]:
    """Latest load per day in ``[first, day]``: (load_id, rows_read, finished)."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (event_date) event_date, load_id, rows_read,
            finished_at IS NOT NULL AND rows_loaded IS NOT NULL
        FROM tsm.load_batches
        WHERE event_date BETWEEN %s AND %s
        ORDER BY event_date, load_id DESC
        """,
        (first, day),
    ).fetchall()
    return {r[0]: (int(r[1]), None if r[2] is None else int(r[2]), bool(r[3])) for r in rows}


def _volume_and_quarantine(
    conn: psycopg.Connection, day: date, baseline_days: int, params: dict[str, dict[str, Any]]
) -> list[CheckResult]:
    loads = _loads(conn, day, day - timedelta(days=baseline_days))
    units = conn.execute(
        "SELECT count(*), coalesce(sum(impressions), 0)::double precision "
        "FROM tsm.units WHERE event_date = %s",
        (day,),
    ).fetchone()
    n_units, impressions = (0, 0.0) if units is None else (int(units[0]), float(units[1]))
    baseline = {d: load[1] for d, load in sorted(loads.items()) if d != day and load[1] is not None}
    today = loads.get(day)
    day_details: dict[str, Any] = {"units": n_units, "impressions": impressions}
    volume = input_volume_check(
        0 if today is None or today[1] is None else today[1],
        list(baseline.values()),
        **params[INPUT_VOLUME],
    )
    volume = _with_details(
        volume,
        **day_details,
        load_id=None if today is None else today[0],
        baseline_dates=[d.isoformat() for d in baseline],
        **({"problem": "no load of the day"} if today is None else {}),
    )
    q_params = params[QUARANTINE_RATE]
    if today is None or today[1] is None or not today[2]:
        reason = "no load of the day" if today is None else "latest load of the day not finished"
        quarantine = _skipped(
            QUARANTINE_RATE,
            ALL_POLICIES,
            float(q_params["max_fraction"]),
            {"load_id": None if today is None else today[0]},
            reason,
        )
    else:
        row = conn.execute(
            "SELECT count(*) FROM tsm.quarantine WHERE event_date = %s AND load_id = %s",
            (day, today[0]),
        ).fetchone()
        quarantined = 0 if row is None else int(row[0])
        quarantine = _with_details(
            quarantine_rate_check(today[1], quarantined, **q_params), load_id=today[0]
        )
    return [volume, quarantine]


def _as_design_ids(design_id: str | Sequence[str]) -> list[str]:
    ids = [design_id] if isinstance(design_id, str) else list(design_id)
    if not ids or not all(isinstance(d, str) and d for d in ids):
        raise ValueError(
            f"design_id: expected a non-empty string or sequence of them, or None, "
            f"got {design_id!r}"
        )
    return ids


def _sample_and_labels(
    conn: psycopg.Connection,
    day: date,
    design_ids: list[str] | None,
    params: dict[str, dict[str, Any]],
) -> list[CheckResult]:
    designs = conn.execute(
        """
        SELECT d.design_id, d.n_draws,
            (SELECT count(*) FROM tsm.samples AS s
             WHERE s.event_date = d.event_date AND s.design_id = d.design_id)
        FROM tsm.sample_designs AS d
        WHERE d.event_date = %s AND (%s::text[] IS NULL OR d.design_id = ANY(%s::text[]))
        ORDER BY d.design_id
        """,
        (day, design_ids, design_ids),
    ).fetchall()
    sample = realized_sample_check(
        sum(int(r[1]) for r in designs), sum(int(r[2]) for r in designs), **params[REALIZED_SAMPLE]
    )
    sample = _with_details(
        sample,
        design_id=None if design_ids is None else ",".join(design_ids),
        designs={r[0]: {"planned_draws": int(r[1]), "realized_draws": int(r[2])} for r in designs},
    )
    tasks = conn.execute(
        "SELECT purpose, status, count(*) FROM tsm.label_tasks WHERE event_date = %s "
        "GROUP BY purpose, status ORDER BY purpose, status",
        (day,),
    ).fetchall()
    by_status: dict[str, int] = {}
    by_purpose: dict[str, dict[str, int]] = {}
    for purpose, status, count in tasks:
        if purpose != "gold":  # gold items are calibration, not the day's units
            by_status[status] = by_status.get(status, 0) + int(count)
        by_purpose.setdefault(purpose, {})[status] = int(count)
    labels = label_completion_check(
        sum(by_status.values()), by_status.get("done", 0), **params[LABEL_COMPLETION]
    )
    labels = _with_details(labels, by_status=by_status, by_purpose=by_purpose)
    return [sample, labels]


def _missing_scores(
    conn: psycopg.Connection, day: date, policies: list[str], params: dict[str, dict[str, Any]]
) -> tuple[list[CheckResult], dict[str, int]]:
    rows = conn.execute(
        """
        SELECT r.policy, count(*), count(*) FILTER (WHERE r.risk_imputed),
            coalesce(sum(u.impressions), 0)::double precision,
            coalesce(sum(u.impressions) FILTER (WHERE r.risk_imputed), 0)::double precision
        FROM tsm.unit_risk AS r
        JOIN tsm.units AS u ON u.event_date = %(day)s AND u.unit_id = r.unit_id
        WHERE r.event_date = %(day)s AND r.policy = ANY(%(policies)s)
        GROUP BY r.policy
        """,
        {"day": day, "policies": policies},
    ).fetchall()
    counts = {r[0]: (int(r[1]), int(r[2]), float(r[3]), float(r[4])) for r in rows}
    results = []
    for policy in policies:
        units, imputed, imps, imputed_imps = counts.get(policy, (0, 0, 0.0, 0.0))
        results.append(
            missing_score_rate_check(
                policy,
                imputed,
                units,
                **params[MISSING_SCORE_RATE],
                imputed_impressions=imputed_imps,
                impressions=imps,
            )
        )
    return results, {p: c[0] for p, c in counts.items()}


def _score_drift(
    conn: psycopg.Connection,
    day: date,
    policies: list[str],
    baseline_days: int,
    unit_counts: dict[str, int],
    drift_weight: DriftWeight,
    params: dict[str, dict[str, Any]],
) -> list[CheckResult]:
    first = day - timedelta(days=baseline_days)
    rows = conn.execute(
        """
        SELECT event_date, policy, bin, lower, upper, impressions, n_units
        FROM tsm.score_histograms
        WHERE event_date BETWEEN %s AND %s AND policy = ANY(%s)
        ORDER BY event_date, policy, bin
        """,
        (first, day, policies),
    ).fetchall()
    hists: dict[tuple[str, date], list[tuple[int, float, float, float, float]]] = {}
    for event_date, policy, b, lower, upper, imps, n in rows:
        hists.setdefault((policy, event_date), []).append(
            (int(b), float(lower), float(upper), float(imps), float(n))
        )
    built_on: dict[str, int] = {
        str(policy): int(n)
        for policy, n in conn.execute(
            "SELECT policy, n_units FROM tsm.score_day_stats WHERE event_date = %s", (day,)
        ).fetchall()
    }
    other: DriftWeight = "impressions" if drift_weight == "units" else "units"
    drift_params = params[SCORE_DRIFT]
    results = []
    for policy in policies:
        today = hists.get((policy, day))
        base_info: dict[str, Any] = {"weight": drift_weight}
        if today is None or policy not in built_on:
            reason = "no score histogram for the day (run score_histograms.sql)"
        elif built_on[policy] != unit_counts.get(policy, 0):
            reason = (
                f"score histogram is stale: built on {built_on[policy]} units, the day has "
                f"{unit_counts.get(policy, 0)} (re-run score_histograms.sql)"
            )
        else:
            reason = ""
        if today is None or reason:
            threshold = float(drift_params["max_psi"])
            results.append(_skipped(SCORE_DRIFT, policy, threshold, base_info, reason))
            continue
        layout = [(b, lo, up) for b, lo, up, _, _ in today]
        used: list[date] = []
        excluded: dict[str, str] = {}
        for d in (first + timedelta(days=i) for i in range(baseline_days)):
            hist = hists.get((policy, d))
            if hist is None:
                continue
            if [(b, lo, up) for b, lo, up, _, _ in hist] != layout:
                excluded[d.isoformat()] = "different bins"
                continue
            used.append(d)
        edges = [lo for _, lo, _ in layout] + [layout[-1][2]]
        # masses[k, b, w]: day k (baseline days, then today), bin b, weight w (impressions, units)
        masses = np.array(
            [[row[3:] for row in hists[(policy, d)]] for d in used] + [[row[3:] for row in today]],
            dtype=np.float64,
        )
        by_weight = {
            weight: score_drift_check(
                policy,
                masses[:-1, :, w].T,
                masses[-1, :, w],
                **drift_params,
                bin_edges=edges,
            )
            for w, weight in enumerate(("impressions", "units"))
        }
        results.append(
            _with_details(
                by_weight[drift_weight],
                **base_info,
                baseline_dates=[d.isoformat() for d in used],
                excluded_baseline_days=excluded,
                **{f"psi_by_{other}": _json_float(by_weight[other].statistic)},
            )
        )
    return results


def health_checks_day(
    conn: psycopg.Connection,
    day: date | str,
    policies: Sequence[str] | str,
    *,
    baseline_days: int = 7,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    design_id: str | Sequence[str] | None = None,
    drift_weight: DriftWeight = "units",
) -> list[CheckResult]:
    """Run every pipeline-health and score-drift check of ``day``; write nothing.

    Reads (aggregates computed in the database):

    * ``input_volume``: ``rows_read`` of the latest load (highest ``load_id``) of ``day`` and of
      each of the ``baseline_days`` previous days that has a load; no load of ``day`` counts as
      0 rows (a breach).
    * ``quarantine_rate``: that load's ``rows_read`` and its rows in ``tsm.quarantine``
      (skipped while the load has not finished).
    * ``missing_score_rate`` (per policy): units and imputed units in ``tsm.unit_risk``.
    * ``realized_sample``: ``n_draws`` of the day's ``tsm.sample_designs`` (the designs named by
      ``design_id`` when given, else all designs; summed) against their rows in ``tsm.samples``.
    * ``label_completion``: the day's ``tsm.label_tasks``, ``status = 'done'`` against all.
    * ``score_drift`` (per policy): ``tsm.score_histograms`` of ``day`` against those of the
      ``baseline_days`` previous days (days with other bins are left out), masses by
      ``drift_weight``: ``"units"`` (default: model drift, robust to viral units) or
      ``"impressions"``; the other weighting's PSI is in ``details``. Skipped when the day's
      histogram is missing or stale (``tsm.score_day_stats.n_units`` differs from the units in
      ``tsm.unit_risk``: re-run ``score_histograms.sql``).

    Parameters
    ----------
    conn : psycopg.Connection
        Warehouse connection. The reads run in one transaction block (a savepoint inside the
        caller's open transaction, else a transaction of their own); nothing is committed for
        the caller and nothing is written.
    day : date or str
        The day (``YYYY-MM-DD`` accepted).
    policies : sequence of str or str
        Policy names, or the DAG plan's comma-separated ``policies``.
    baseline_days : int, default 7
        Trailing days read for the volume and drift baselines, ``>= 1``.
    thresholds : mapping, optional
        Overrides of :data:`DEFAULT_THRESHOLDS`, by check name then parameter name, e.g.
        ``{"score_drift": {"max_psi": 0.25}, "input_volume": {"min_baseline_days": 5}}``.
    design_id : str or sequence of str, optional
        Sample design(s) of the realized-sample check: the configuration's designs (the shared
        sample and any per-policy samples).
    drift_weight : {"units", "impressions"}, default "units"
        Histogram masses used by the score-drift decision.

    Returns
    -------
    list of CheckResult
        ``input_volume``, ``quarantine_rate``, ``realized_sample``, ``label_completion`` (policy
        ``"*"``), then per policy, in the given order, ``missing_score_rate`` and
        ``score_drift``. ``(check_name, policy)`` pairs are unique.

    Raises
    ------
    ValueError
        On a bad day, policies, ``baseline_days``, ``drift_weight`` or ``thresholds`` (unknown
        check or parameter names, or values the check rejects).
    """
    the_day = _as_day(day)
    names = _as_policies(policies)
    n_days = _min_days("baseline_days", baseline_days)
    if drift_weight not in ("units", "impressions"):
        raise ValueError(f"drift_weight: expected 'units' or 'impressions', got {drift_weight!r}")
    design_ids = None if design_id is None else _as_design_ids(design_id)
    params = _resolve_thresholds(thresholds)
    with conn.transaction():
        results = _volume_and_quarantine(conn, the_day, n_days, params)
        results += _sample_and_labels(conn, the_day, design_ids, params)
        missing, unit_counts = _missing_scores(conn, the_day, names, params)
        drift = _score_drift(conn, the_day, names, n_days, unit_counts, drift_weight, params)
    by_policy: dict[str, list[CheckResult]] = {p: [] for p in names}
    for result in (*missing, *drift):
        by_policy[result.policy].append(result)
    return results + [r for p in names for r in by_policy[p]]
