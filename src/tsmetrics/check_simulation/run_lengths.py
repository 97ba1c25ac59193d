"""In-control run lengths of the control charts: textbook values and the production scheme.

Two checks on normal data (what the textbook tables assume):

* :func:`textbook_run_lengths` -- the charts of :mod:`tsmetrics.control_charts` with known
  parameters against Montgomery's Table 9.3 (tabular CUSUM, ``k = 0.5``, ``h = 4`` and ``5``),
  Siegmund's approximation (Montgomery eq. 9.20, also for the configured ``h``) and Lucas &
  Saccucci's EWMA table (Montgomery Table 9.11), by :func:`~tsmetrics.control_charts.
  average_run_length`.
* :func:`production_cusum_false_incidents` -- the production check
  (:func:`tsmetrics.prevalence_checks.cusum_checks`: ``mu0`` and ``sigma0`` estimated from the
  ``baseline_days`` before a ``window_days`` window that slides daily) on i.i.d. normal daily
  estimates, its incidents counted as production counts them
  (:func:`tsmetrics.alerts.incident_transitions`): the false incidents per window and the mean
  days between them, to compare with the rule's stated ``in_control_arl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from tsmetrics.check_simulation._common import _STREAM_RUN_LENGTH, START_DAY
from tsmetrics.check_simulation.experiments import count_transitions
from tsmetrics.config import RunConfig
from tsmetrics.control_charts import CusumChart, EwmaChart, RunLengthEstimate, average_run_length
from tsmetrics.prevalence_checks import DOMAIN_ALL, History, cusum_checks

__all__ = [
    "ProductionRunLength",
    "RunLengthRow",
    "production_cusum_false_incidents",
    "siegmund_cusum_arl",
    "textbook_run_lengths",
]

#: Montgomery (2019), Table 9.3: two-sided tabular CUSUM, k = 1/2 -- ARL at shifts 0 and 1 sigma.
MONTGOMERY_TABLE_9_3 = {4.0: {0.0: 168.0, 1.0: 8.38}, 5.0: {0.0: 465.0, 1.0: 10.4}}
#: Lucas & Saccucci (1990) / Montgomery Table 9.11: EWMA lambda = 0.1, L = 2.814 (asymptotic
#: limits) -- ARL at shifts 0 and 1 sigma.
LUCAS_SACCUCCI = {0.0: 500.0, 1.0: 10.3}


def siegmund_cusum_arl(k: float, h: float, shift: float) -> float:
    """Siegmund's approximation of the two-sided tabular CUSUM's ARL (Montgomery eq. 9.20).

    One side: ``ARL = (exp(-2 D b) + 2 D b - 1) / (2 D^2)`` with ``b = h + 1.166``, ``D = shift
    - k`` for the upper arm and ``-shift - k`` for the lower (``b^2`` when ``D = 0``); two sides:
    ``1 / ARL = 1 / ARL+ + 1 / ARL-``.
    """

    def one_side(delta: float) -> float:
        b = h + 1.166
        if abs(delta) < 1e-12:
            return b * b
        return (math.exp(-2.0 * delta * b) + 2.0 * delta * b - 1.0) / (2.0 * delta * delta)

    return 1.0 / (1.0 / one_side(shift - k) + 1.0 / one_side(-shift - k))


@dataclass(frozen=True)
class RunLengthRow:
    """One chart and shift: the simulated ARL next to the textbook value(s)."""

    chart: str
    shift: float
    table: float | None
    siegmund: float | None
    simulated: RunLengthEstimate


def textbook_run_lengths(h: float, *, n_sims: int, seed: int) -> list[RunLengthRow]:
    """Simulated zero-state ARLs (shift 0 and 1 sigma) of the two-sided CUSUM ``k = 0.5`` at
    ``h = 4``, ``5`` and the configured ``h``, and of the EWMA ``lambda = 0.1, L = 2.814``
    (asymptotic limits), with the textbook values. Stream ``[seed, 200, row]``."""
    charts: list[tuple[str, CusumChart | EwmaChart, dict[float, float]]] = [
        (f"CUSUM k = 0.5, h = {value:g}", CusumChart(k=0.5, h=value), table)
        for value, table in MONTGOMERY_TABLE_9_3.items()
    ]
    if h not in MONTGOMERY_TABLE_9_3:
        charts.append((f"CUSUM k = 0.5, h = {h:g} (configured)", CusumChart(k=0.5, h=h), {}))
    charts.append(
        (
            "EWMA lambda = 0.1, L = 2.814",
            EwmaChart(lam=0.1, L=2.814, limits="asymptotic"),
            LUCAS_SACCUCCI,
        )
    )
    rows = []
    for i, (name, chart, table) in enumerate(charts):
        for j, shift in enumerate((0.0, 1.0)):
            rng = np.random.default_rng([seed, _STREAM_RUN_LENGTH, i, j])
            estimate = average_run_length(chart, shift, n_sims=n_sims, horizon=1_000_000, rng=rng)
            rows.append(
                RunLengthRow(
                    chart=name,
                    shift=shift,
                    table=table.get(shift),
                    siegmund=(
                        siegmund_cusum_arl(chart.k, chart.h, shift)
                        if isinstance(chart, CusumChart)
                        else None
                    ),
                    simulated=estimate,
                )
            )
    return rows


@dataclass(frozen=True)
class ProductionRunLength:
    """False incidents of the production CUSUM check on i.i.d. normal daily estimates.

    Attributes
    ----------
    h : float
        Decision interval simulated.
    days, replications : int
        Window length and number of windows (each after a full burn-in).
    opened_mean, opened_se : float
        Mean false incidents opened per window (one policy) and its simulation SE.
    stated_arl : float or None
        The rule's ``in_control_arl``.
    """

    h: float
    days: int
    replications: int
    opened_mean: float
    opened_se: float
    stated_arl: float | None

    @property
    def days_between(self) -> float:
        """Mean days between false incidents, ``days / opened_mean`` (comparable with an ARL)."""
        return self.days / self.opened_mean if self.opened_mean > 0 else math.inf


def production_cusum_false_incidents(
    config: RunConfig, *, h: float | None = None, days: int, replications: int, seed: int
) -> ProductionRunLength:
    """Windows of ``days`` days of the production CUSUM check on one policy whose daily estimate
    is ``N(mu, s^2)`` with SE ``s`` (``mu = 1%``, ``s = 0.01%``: normal scores equal the linear
    standardization there), each after ``baseline_days + window_days`` days of burn-in; false
    incidents counted as :func:`tsmetrics.alerts.incident_transitions` opens them. ``h``
    overrides the rule's (default: the configured). Stream ``[seed, 200, 100, replication]``."""
    rule = config.rule("cusum")
    if h is not None:
        rule["h"] = h
    burn_in = int(rule.get("baseline_days", 28)) + int(rule.get("window_days", 14))
    n_days = burn_in + days
    mean, se = 0.01, 0.0001
    dates = [START_DAY + timedelta(days=t) for t in range(n_days)]
    opened = np.empty(replications)
    for r in range(replications):
        rng = np.random.default_rng([seed, _STREAM_RUN_LENGTH, 100, r])
        x = mean + se * rng.standard_normal(n_days)
        history: History = {
            ("p", DOMAIN_ALL): {d: (float(v), se) for d, v in zip(dates, x, strict=True)}
        }
        results = [cusum_checks(dates[t], history, ["p"], rule) for t in range(burn_in - 1, n_days)]
        opened[r] = count_transitions(results).opened["cusum"]
    stated = rule.get("in_control_arl")
    return ProductionRunLength(
        h=float(rule.get("h", 5.0)),
        days=days,
        replications=replications,
        opened_mean=float(opened.mean()),
        opened_se=float(opened.std(ddof=1) / math.sqrt(replications)) if replications > 1 else 0,
        stated_arl=None if stated is None else float(stated),
    )
