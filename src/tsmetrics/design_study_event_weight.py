"""How the gamma intervals' coverage depends on the weight of "one more event", per prevalence.

Why
---
Under the default design the gamma intervals cover 0.95-0.97 at 2% and 0.5% but 0.99-0.997 at
0.05% (``docs/design_study.md``). Their upper limit adds one event of weight ``w`` (the mean
weight of the uncertain sampled units, :func:`tsmetrics.gamma_interval.mean_uncertain_weight`),
and at 0.05% that event is the whole difference between a conservative interval and one that
misses whenever the sample holds none of the few heavy-weight violators. This study asks whether
*any* one rule for ``w`` -- or a lower nominal level -- puts all three prevalences in the band
``[0.94, 0.97]`` at once.

What is simulated
-----------------
``days`` independent days of the default design of :mod:`tsmetrics.design_study` (Poisson PPS
with the Platt-calibrated ``sqrt_calibrated`` size, ``n`` expected labels, one shared sample for
policies at 2%, 0.5% and 0.05%, AUC 0.9 scores), the Horvitz-Thompson estimate and its Poisson
variance estimator; each day is scored against its realised prevalence. Rules for ``w``:

* ``mean x c``: ``c`` times the mean weight (``c = 1`` is what ``estimate_day`` uses);
* ``model violator``: the weight the calibration model expects of a violating sampled unit,
  ``sum_s qhat w / sum_s qhat`` over the uncertain units
  (:func:`tsmetrics.gamma_interval.model_violator_weight`);
* ``model scale``: the model's gamma scale ``sum_s qhat w^2 / sum_s qhat w``
  (:func:`tsmetrics.gamma_interval.model_event_scale`).

Each rule is crossed with the two gamma intervals (``gamma_midp``, ``gamma_tcz``) at nominal
95%, and the mean weight also with ``gamma_midp`` at nominal 90% and 85% (a calibrated level).
Reported per prevalence: coverage (binomial simulation SE), the shares of days with the truth
below the lower / above the upper limit (nominal 2.5% each; the columns of the main study) and
the mean relative half-width ``(U - L) / (2 P)``.

Every day has its own generator ``default_rng([seed, 6, day])``: the numbers do not depend on
``--workers``. Run ``python -m tsmetrics.design_study_event_weight --days 4000 --workers 2``.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tsmetrics.design_study import (
    DEFAULT_RELATIVE_FLOOR,
    Calibrations,
    FloatArray,
    PopulationModel,
    add_simulation_arguments,
    calibrated_size,
    fit_calibrations,
    generate_day,
    interval_bounds,
    map_chunks,
    poisson_estimates,
)
from tsmetrics.gamma_interval import GAMMA_METHOD, GAMMA_MIDP_METHOD, model_violator_weight
from tsmetrics.sampling import poisson_pps_inclusion

_STREAM_EVENT_WEIGHT = 6
MEAN_WEIGHT_MULTIPLIERS: tuple[float, ...] = (1.0, 0.5, 0.3, 0.2, 0.1)
CALIBRATED_LEVELS: tuple[float, ...] = (0.90, 0.85)
CONFIDENCE = 0.95
#: Keys of :class:`SimulatedDays`'s per-day arrays, each of shape (days, P).
_FIELDS = (
    "truth",
    "estimate",
    "variance",
    "mean_weight",
    "violator_weight",
    "model_scale",
    "violators",
)


@dataclass(frozen=True)
class _DaysTask:
    model: PopulationModel
    calibrations: Calibrations
    seed: int
    n: int


@dataclass(frozen=True)
class SimulatedDays:
    """Per day and policy (arrays of shape (days, P)): the realised prevalence, the HT estimate,
    its variance estimate, three candidate event weights and the number of violating sampled
    units."""

    truth: FloatArray
    estimate: FloatArray
    variance: FloatArray
    mean_weight: FloatArray
    violator_weight: FloatArray
    model_scale: FloatArray
    violators: FloatArray


def simulate_day(task: _DaysTask, day_no: int) -> tuple[FloatArray, ...]:
    """One day of the default design: the :data:`_FIELDS` arrays, each of shape (P,)."""
    rng = np.random.default_rng([task.seed, _STREAM_EVENT_WEIGHT, day_no])
    day = generate_day(task.model, rng)
    qhat = task.calibrations.predict(day)
    size = calibrated_size(day, task.calibrations.predict_raw(day), DEFAULT_RELATIVE_FLOOR)
    pi = poisson_pps_inclusion(size, task.n)
    selected = rng.random(len(pi)) < pi
    result = poisson_estimates(day, pi, selected, "ht", qhat)
    assert result.event_scale is not None  # qhat was given
    pis = pi[selected]
    weights = day.impressions[selected] / (pis * day.total_impressions)
    violator = model_violator_weight(weights, pis >= 1.0, qhat[selected])
    p = len(task.model.prevalences)
    return (
        day.truth(),
        result.estimate,
        result.variance,
        np.full(p, result.event_weight),
        violator,
        result.event_scale,
        day.violates[selected].sum(0).astype(np.float64),
    )


def _days_chunk(task: _DaysTask, days: range) -> list[tuple[FloatArray, ...]]:
    return [simulate_day(task, d) for d in days]


def simulate_days(
    model: PopulationModel,
    calibrations: Calibrations,
    *,
    days: int,
    seed: int,
    n: int = 2000,
    workers: int = 1,
) -> SimulatedDays:
    """``days`` independent days of the default design (module docstring)."""
    rows = map_chunks(_days_chunk, _DaysTask(model, calibrations, seed, n), days, workers)
    stacked = {name: np.stack([r[k] for r in rows]) for k, name in enumerate(_FIELDS)}
    return SimulatedDays(**stacked)


@dataclass(frozen=True)
class EventWeightRow:
    """Coverage of one (interval, event-weight rule, nominal level) for one prevalence."""

    ci_method: str
    rule: str
    confidence: float
    prevalence: float
    coverage: float
    coverage_se: float
    below: float  # share of days with the truth below the lower limit
    above: float  # share of days with the truth above the upper limit
    mean_relative_half_width: float


def _rules(sim: SimulatedDays) -> list[tuple[str, str, float, FloatArray]]:
    """(interval, rule label, nominal level, event weights) of the study."""
    rules = []
    for method in (GAMMA_MIDP_METHOD, GAMMA_METHOD):
        for c in MEAN_WEIGHT_MULTIPLIERS:
            rules.append((method, f"mean x {c:g}", CONFIDENCE, c * sim.mean_weight))
        rules.append((method, "model violator", CONFIDENCE, sim.violator_weight))
        rules.append((method, "model scale", CONFIDENCE, sim.model_scale))
    for level in CALIBRATED_LEVELS:
        rules.append((GAMMA_MIDP_METHOD, "mean x 1", level, sim.mean_weight))
    return rules


def sweep(sim: SimulatedDays, prevalences: Sequence[float]) -> list[EventWeightRow]:
    """Every rule of the study scored on the simulated days."""
    days = sim.truth.shape[0]
    n_dummy = np.zeros(days)  # the gamma intervals do not use n
    rows = []
    for method, rule, confidence, weight in _rules(sim):
        for j, prevalence in enumerate(prevalences):
            lower, upper = interval_bounds(
                method,
                sim.estimate[:, j],
                sim.variance[:, j],
                n_dummy,
                weight[:, j],
                confidence,
            )
            truth = sim.truth[:, j]
            covered = (lower <= truth) & (truth <= upper)
            cov = float(covered.mean())
            with np.errstate(invalid="ignore", divide="ignore"):
                half = np.where(truth > 0, (upper - lower) / (2.0 * truth), np.nan)
            rows.append(
                EventWeightRow(
                    ci_method=method,
                    rule=rule,
                    confidence=confidence,
                    prevalence=prevalence,
                    coverage=cov,
                    coverage_se=math.sqrt(cov * (1.0 - cov) / days),
                    below=float((truth < lower).mean()),
                    above=float((truth > upper).mean()),
                    mean_relative_half_width=float(np.nanmean(half)),
                )
            )
    return rows


def render_markdown(rows: Sequence[EventWeightRow], prevalences: Sequence[float]) -> str:
    """One line per (interval, rule, level); per prevalence: coverage (SE), the shares of days
    with the truth below the lower / above the upper limit, and the mean relative half-width."""
    head = " | ".join(f"{p:.2%}: coverage (SE), below / above, rel. hw" for p in prevalences)
    lines = [
        f"| CI | event weight | nominal | {head} |",
        "|---|---|---|" + "---|" * len(prevalences),
    ]
    keyed: dict[tuple[str, str, float], list[EventWeightRow]] = {}
    for r in rows:
        keyed.setdefault((r.ci_method, r.rule, r.confidence), []).append(r)
    for (method, rule, confidence), cells in keyed.items():
        shown = " | ".join(
            f"{c.coverage:.3f} ({c.coverage_se:.3f}), {c.below:.3f} / {c.above:.3f}, "
            f"{c.mean_relative_half_width:.2f}"
            for c in cells
        )
        lines.append(f"| {method} | {rule} | {confidence:.0%} | {shown} |")
    return "\n".join(lines)


def render_violator_counts(sim: SimulatedDays, prevalences: Sequence[float]) -> str:
    """Per prevalence: the mean number of violating sampled units a day, the shares of days with
    at most 0, 1 and 2 of them, the median over days of the model violator weight relative to
    the mean weight, and the median of ``c* = P / (w ln(2 / alpha))``: a ``gamma_tcz`` interval
    with event weight ``c w`` covers a zero-event day iff ``c >= c*`` (its upper limit is then
    ``c w ln(2 / alpha)``, ``3.69 c w`` at 95%)."""
    lines = [
        "| prevalence | violating sampled units a day (mean) | days with 0 | <= 1 | <= 2 "
        "| model violator weight / mean weight (median) | zero-event cut-off c* (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for j, prevalence in enumerate(prevalences):
        k = sim.violators[:, j]
        shares = " | ".join(f"{float(np.mean(k <= m)):.3f}" for m in (0, 1, 2))
        ratio = float(np.median(sim.violator_weight[:, j] / sim.mean_weight[:, j]))
        # gamma_tcz at zero events: upper = c w ln(2 / alpha); it covers iff c >= c*
        cut = float(np.median(sim.truth[:, j] / (sim.mean_weight[:, j] * math.log(2 / 0.05))))
        lines.append(
            f"| {prevalence:.2%} | {float(k.mean()):.2f} | {shares} | {ratio:.2f} | {cut:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tsmetrics.design_study_event_weight", description=__doc__
    )
    parser.add_argument("--days", type=int, default=4000)
    parser.add_argument(
        "--prevalences",
        type=lambda text: tuple(float(p) for p in text.split(",")),
        default=PopulationModel.prevalences,
        help="comma-separated policy prevalences of the shared sample (default 0.02,0.005,0.0005)",
    )
    add_simulation_arguments(parser)
    args = parser.parse_args(argv)
    started = time.monotonic()
    model = PopulationModel(prevalences=args.prevalences, n_units=args.units)
    calibrations = fit_calibrations(model, args.seed, args.training_days, args.n)
    sim = simulate_days(
        model, calibrations, days=args.days, seed=args.seed, n=args.n, workers=args.workers
    )
    argv_text = shlex.join(sys.argv[1:] if argv is None else list(argv))
    print(f"Reproduce with `python -m tsmetrics.design_study_event_weight {argv_text}`.\n")
    print(render_markdown(sweep(sim, model.prevalences), model.prevalences))
    print()
    print(render_violator_counts(sim, model.prevalences))
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
