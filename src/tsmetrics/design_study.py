"""Reproducible study ("proof") of the sampling designs and prevalence estimators.

What is simulated
-----------------
A *day* is a population of ``n_units`` measurement units with

* impressions ``x_i = 1 + floor(40 * Lomax(1.3))`` (Pareto-tailed: the top 1% of units hold
  about 40% of the impressions, as in :mod:`tsmetrics.simulate`);
* for each policy ``p`` a violation ``v_ip ~ Bernoulli(P_p)`` independent of impressions, so
  the impression-weighted prevalence is ``P_p`` in expectation (the day's realised
  ``sum x v / sum x`` is the truth each estimate is compared with);
* a risk score from the binormal model: latent ``l = d v + Z``, ``Z ~ N(0, 1)``,
  ``d = sqrt(2) Phi^-1(AUC)`` (so the score's ROC AUC is ``AUC``), reported as
  ``score = expit(-3.5 + 1.5 l)`` (a score that is *not* a calibrated probability); 5% of
  scores are missing and imputed, as in ``build_units.sql``, by the impression-weighted mean
  of the observed scores;
* the *oracle* probability ``q_i = P(v_i = 1 | l_i)`` (``P_p`` when the score is missing),
  known only to the oracle design.

Designs (all Poisson PPS, ``pi_i = min(1, c size_i)``, ``sum pi = n``, except where noted)
----------------------------------------------------------------------------------------
* ``uniform_views``: ``size = x`` (what a platform without ML assistance does);
* ``srs``: simple random sample of units (the validation control);
* ``naive``: ``size = x (0.02 + score)`` (the walking skeleton's size measure), and
  ``pps_wr_naive``: the same size with ``n`` draws *with* replacement (Hansen-Hurwitz);
* ``calibrated`` (the default): the score calibrated into ``qhat = P(v | score)`` by a
  weighted isotonic regression fitted on earlier days' labels with their design weights
  (:mod:`tsmetrics.calibration`), and ``size = x sqrt(sum_p max(qhat_p, phi Phat_p) / Phat_p^2)``
  with ``Phat_p = sum x qhat_p / X`` and ``phi`` the relative floor (default 0.1). For one
  policy this is ``x sqrt(max(qhat, phi Phat))``: the size that minimises the anticipated
  variance ``sum x^2 q (1 - pi) / pi`` of the Horvitz-Thompson estimator (Sarndal, Swensson &
  Wretman 1992, Sec. 12.2); for several policies it minimises the sum of their anticipated
  *relative* variances. The floor bounds the loss when the model misses a unit's risk;
* ``oracle``: the same with the true ``q`` and a small floor (``phi = 0.01``).

Estimators of ``P = Y / X`` (``X`` known)
---------------------------------------
``ht`` Horvitz-Thompson ``sum_s y/pi / X``; ``ratio`` (Hajek) ``sum_s y/pi / sum_s x/pi``;
``difference`` ``(M + sum_s (y - m)/pi) / X`` with ``m = x qhat`` and ``M = sum_U m``;
``hh`` Hansen-Hurwitz for ``pps_wr_naive``; ``ratio`` for ``srs``. Intervals from
:data:`tsmetrics.estimation.CI_METHODS` with ``n`` = sample size.

Experiments
-----------
1. *Coverage*: ``days`` independent days (default 2,000), ``n = 2,000`` expected labels, one
   shared sample for policies at 2%, 0.5% and 0.05% with AUC 0.9 scores; per design, estimator,
   interval method and policy: coverage of the nominal 95% interval, bias in units of its
   simulation standard error, mean relative half-width.
2. *Efficiency*: per (prevalence, AUC) in {2%, 0.5%, 0.05%} x {0.9, 0.98}, per-policy designs at
   equal expected sample size; the *anticipated variance* (the design variance averaged over the
   violations given the scores -- exact, no Monte Carlo noise) of each design and estimator,
   averaged over ``populations`` days: ``AV_HT = sum x^2 q (1 - pi)/pi / X^2``,
   ``AV_ratio = sum (1 - pi)/pi x^2 (q (1 - 2P) + P^2) / X^2``,
   ``AV_diff = sum (1 - pi)/pi x^2 (q (1 - 2 qhat) + qhat^2) / X^2``; for PPS with replacement
   ``(sum x^2 q / p - (sum x q)^2 - sum x^2 q (1 - q)) / (n X^2)``. Reported: the efficiency of
   each design relative to the oracle (``AV_oracle / AV``) and how many times narrower its CI is
   than uniform-views sampling (``sqrt(AV_uniform / AV)``).

The calibration used by the ``calibrated`` design is fitted on ``training_days`` earlier days
sampled with the ``naive`` design (what runs before any labels exist), weights ``1/pi``.

Run ``python -m tsmetrics.design_study --days 2000 --seed 20261123``; the Markdown report goes
to stdout. Every day has its own generator ``default_rng([seed, stream, day])``, so results do
not depend on ``--workers``.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from scipy.special import expit, ndtri

from tsmetrics import design_study_stratified as strat
from tsmetrics.calibration import Calibration, fit_isotonic, fit_platt
from tsmetrics.design_study_labels import LABEL_ESTIMATORS, LabelErrorModel, label_estimates
from tsmetrics.estimation import interval_function
from tsmetrics.gamma_interval import (
    GAMMA_METHOD,
    GAMMA_MIDP_METHOD,
    gamma_midp_bounds,
    mean_uncertain_weight,
    model_event_scale,
)
from tsmetrics.sampling import poisson_pps_inclusion, sqrt_calibrated_size

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
TaskT = TypeVar("TaskT")
ResultT = TypeVar("ResultT")

SCORE_OFFSET = -3.5
SCORE_SCALE = 1.5
VIEW_SCALE = 40.0
NAIVE_FLOOR = 0.02
DEFAULT_RELATIVE_FLOOR = 0.03
ORACLE_RELATIVE_FLOOR = 0.01

STREAM_TRAIN = 1
_STREAM_COVERAGE = 2
_STREAM_EFFICIENCY = 3
_STREAM_LABELS = 4


# --------------------------------------------------------------------------------------------
# Population
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PopulationModel:
    """Generative model of one day's units (see the module docstring)."""

    prevalences: tuple[float, ...] = (0.02, 0.005, 0.0005)
    auc: float = 0.9
    n_units: int = 100_000
    pareto_shape: float = 1.3
    missing_score_rate: float = 0.05

    def __post_init__(self) -> None:
        if not self.prevalences or not all(0.0 < p < 1.0 for p in self.prevalences):
            raise ValueError(f"prevalences: expected values in (0, 1), got {self.prevalences}")
        if not 0.5 < self.auc < 1.0:
            raise ValueError(f"auc: expected a value in (0.5, 1), got {self.auc}")
        if self.n_units < 100:
            raise ValueError(f"n_units: expected at least 100, got {self.n_units}")
        if not 0.0 <= self.missing_score_rate < 1.0:
            raise ValueError(f"missing_score_rate: expected [0, 1), got {self.missing_score_rate}")

    @property
    def separation(self) -> float:
        """Binormal separation ``d = sqrt(2) Phi^-1(AUC)``."""
        return float(math.sqrt(2.0) * ndtri(self.auc))


@dataclass(frozen=True)
class Day:
    """One simulated day. Arrays are (N,) or (N, P) with P policies."""

    impressions: FloatArray
    score: FloatArray  # observed score, imputed where missing
    score_missing: BoolArray
    q_true: FloatArray
    violates: BoolArray

    @property
    def total_impressions(self) -> float:
        return float(self.impressions.sum())

    def truth(self) -> FloatArray:
        """Realised impression-weighted prevalence per policy, shape (P,)."""
        out: FloatArray = (self.violates * self.impressions[:, None]).sum(
            0
        ) / self.total_impressions
        return out


def generate_day(model: PopulationModel, rng: np.random.Generator) -> Day:
    """Draw one day from ``model``."""
    n, prev = model.n_units, np.asarray(model.prevalences, dtype=np.float64)
    x = 1.0 + np.floor(VIEW_SCALE * rng.pareto(model.pareto_shape, size=n))
    violates = rng.random((n, len(prev))) < prev[None, :]
    d = model.separation
    latent = d * violates + rng.standard_normal((n, len(prev)))
    # q = P(v=1 | l) = P phi(l-d) / (P phi(l-d) + (1-P) phi(l)); phi(l-d)/phi(l) = exp(d l - d^2/2)
    odds = prev / (1.0 - prev) * np.exp(d * latent - d * d / 2.0)
    q_true = odds / (1.0 + odds)
    score = expit(SCORE_OFFSET + SCORE_SCALE * latent)
    missing = rng.random((n, len(prev))) < model.missing_score_rate
    observed_weight = np.where(missing, 0.0, x[:, None])
    fill = (observed_weight * score).sum(0) / observed_weight.sum(0)
    score = np.where(missing, fill[None, :], score)
    q_true = np.where(missing, prev[None, :], q_true)
    return Day(impressions=x, score=score, score_missing=missing, q_true=q_true, violates=violates)


# --------------------------------------------------------------------------------------------
# Designs
# --------------------------------------------------------------------------------------------


def naive_size(day: Day) -> FloatArray:
    """``x (0.02 + max_p score_p)``: the walking skeleton's size measure."""
    out: FloatArray = day.impressions * (NAIVE_FLOOR + day.score.max(axis=1))
    return out


def calibrated_size(day: Day, q: FloatArray, relative_floor: float) -> FloatArray:
    """The default design's size (:func:`tsmetrics.sampling.sqrt_calibrated_size`)."""
    return sqrt_calibrated_size(day.impressions, q, day.score_missing, relative_floor)


def oracle_size(day: Day) -> FloatArray:
    """``x sqrt(max(q, 0.01 Pbar))`` with the true ``q`` (which is ``P`` when a score is
    missing, so nothing is imputed)."""
    return sqrt_calibrated_size(
        day.impressions, day.q_true, np.zeros_like(day.score_missing), ORACLE_RELATIVE_FLOOR
    )


@dataclass(frozen=True)
class Calibrations:
    """One fitted calibration per policy, applied column by column."""

    per_policy: tuple[Calibration, ...]

    def predict_raw(self, day: Day) -> FloatArray:
        """``qhat`` (N, P): the calibrated (imputed) score of every unit."""
        return np.column_stack([c.predict(day.score[:, j]) for j, c in enumerate(self.per_policy)])

    def predict(self, day: Day) -> FloatArray:
        """``qhat`` (N, P): the calibrated score, and for units whose score is missing the
        impression-weighted mean ``qhat`` of the units with a score (the calibrated prevalence;
        a missing score says nothing about the unit, so it gets the average probability)."""
        qhat = self.predict_raw(day)
        observed = np.where(day.score_missing, 0.0, day.impressions[:, None])
        fill = (observed * qhat).sum(0) / observed.sum(0)
        out: FloatArray = np.where(day.score_missing, fill[None, :], qhat)
        return out


CALIBRATION_METHODS = {"platt": fit_platt, "isotonic": fit_isotonic}


def fit_calibrations(
    model: PopulationModel, seed: int, training_days: int, n: int, method: str = "platt"
) -> Calibrations:
    """Weighted calibration per policy (Platt by default), fitted on ``training_days`` days
    sampled with the naive design (weights ``1/pi``), as the DAG does before the default design
    takes over."""
    scores, labels, weights = [], [], []
    for t in range(training_days):
        day = generate_day(model, np.random.default_rng([seed, STREAM_TRAIN, t]))
        pi = poisson_pps_inclusion(naive_size(day), n)
        rng = np.random.default_rng([seed, STREAM_TRAIN, t, 1])
        selected = rng.random(len(pi)) < pi
        keep = selected[:, None] & ~day.score_missing
        scores.append(np.where(keep, day.score, np.nan)[selected])
        labels.append(day.violates[selected])
        weights.append(1.0 / pi[selected])
    s, v, w = np.concatenate(scores), np.concatenate(labels), np.concatenate(weights)
    fit = CALIBRATION_METHODS[method]
    fitted = []
    for j in range(s.shape[1]):
        has_score = ~np.isnan(s[:, j])
        fitted.append(fit(s[has_score, j], v[has_score, j], w[has_score], policy=f"p{j}"))
    return Calibrations(tuple(fitted))


# --------------------------------------------------------------------------------------------
# Estimators (Poisson sampling) and anticipated variances
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointAndVariance:
    estimate: FloatArray  # (P,)
    variance: FloatArray  # (P,)
    n: int
    event_weight: float  # mean x / (pi X) of the uncertain sampled units (gamma interval)
    event_scale: FloatArray | None = None  # (P,) model_event_scale; None: use event_weight


def poisson_estimates(
    day: Day, pi: FloatArray, selected: BoolArray, estimator: str, qhat: FloatArray | None = None
) -> PointAndVariance:
    """HT, ratio (Hajek) or difference estimates of every policy's prevalence and their
    variance estimators under Poisson sampling (Sarndal et al. 1992, 3.3, 5.7, 6.3)."""
    x, pis = day.impressions[selected], pi[selected]
    y = day.violates[selected] * x[:, None]
    total, w = day.total_impressions, (1.0 / pis)[:, None]
    shrink = (1.0 - pis)[:, None]
    if estimator == "ht":
        est = (w * y).sum(0) / total
        resid = y
    elif estimator == "ratio":
        est = (w * y).sum(0) / (w[:, 0] * x).sum()
        resid = y - est[None, :] * x[:, None]
    elif estimator == "difference":
        if qhat is None:
            raise ValueError("difference: qhat is required")
        m = qhat * day.impressions[:, None]
        ms = m[selected]
        est = (m.sum(0) + (w * (y - ms)).sum(0)) / total
        resid = y - ms
    else:
        raise ValueError(f"estimator: expected ht, ratio or difference, got {estimator!r}")
    var = (shrink * (w * resid) ** 2).sum(0) / total**2
    scale = (
        None if qhat is None else model_event_scale(x / (pis * total), pis >= 1.0, qhat[selected])
    )
    return PointAndVariance(
        est, var, int(selected.sum()), mean_uncertain_weight(x, pis, total), scale
    )


def anticipated_variance(
    day: Day, pi: FloatArray, estimator: str, qhat: FloatArray | None = None
) -> FloatArray:
    """Design variance averaged over the violations given the scores, per policy (P,)."""
    x2 = (day.impressions**2)[:, None]
    factor = ((1.0 - pi) / pi)[:, None]
    q = day.q_true
    if estimator == "ht":
        second_moment = q
    elif estimator == "ratio":
        p = (day.impressions[:, None] * q).sum(0) / day.total_impressions
        second_moment = q * (1.0 - 2.0 * p[None, :]) + p[None, :] ** 2
    elif estimator == "difference":
        if qhat is None:
            raise ValueError("difference: qhat is required")
        second_moment = q * (1.0 - 2.0 * qhat) + qhat**2
    else:
        raise ValueError(f"estimator: expected ht, ratio or difference, got {estimator!r}")
    out: FloatArray = (factor * x2 * second_moment).sum(0) / day.total_impressions**2
    return out


def anticipated_variance_pps_wr(day: Day, size: FloatArray, n: int) -> FloatArray:
    """Hansen-Hurwitz anticipated variance with single-draw ``p = size / sum(size)``."""
    p = size / size.sum()
    x, q = day.impressions[:, None], day.q_true
    mean = (x * q).sum(0)
    second = (x * x * q / p[:, None]).sum(0) - mean**2 - (x * x * q * (1.0 - q)).sum(0)
    out: FloatArray = second / (n * day.total_impressions**2)
    return out


def pps_wr_estimates(
    day: Day, size: FloatArray, n: int, rng: np.random.Generator
) -> PointAndVariance:
    """Hansen-Hurwitz estimates from ``n`` draws with replacement, ``p = size / sum(size)``."""
    p = size / size.sum()
    draws = rng.choice(len(p), size=n, p=p)
    z = day.violates[draws] * (day.impressions[draws] / p[draws])[:, None]
    est = z.mean(0) / day.total_impressions
    var = z.var(0, ddof=1) / n / day.total_impressions**2
    weight = float(np.mean(day.impressions[draws] / p[draws])) / (n * day.total_impressions)
    return PointAndVariance(est, var, n, weight)


# --------------------------------------------------------------------------------------------
# Experiment 1: coverage
# --------------------------------------------------------------------------------------------

#: (design, estimator) pairs of the coverage experiment; the first is the default.
COVERAGE_ARMS: tuple[tuple[str, str], ...] = (
    ("calibrated", "ht"),
    ("calibrated", "ratio"),
    ("calibrated", "difference"),
    ("stratified_size", "stratified"),
    ("stratified_risk", "stratified"),
    ("naive", "ht"),
    ("pps_wr_naive", "hh"),
    ("uniform_views", "ht"),
    ("srs", "ratio"),
)
#: Suffix of an interval label whose gamma event weight is the model's event scale
#: (:func:`tsmetrics.gamma_interval.model_event_scale`) instead of the mean weight.
SCALE_SUFFIX = "+scale"
COVERAGE_CI_METHODS: tuple[str, ...] = (
    GAMMA_MIDP_METHOD,
    GAMMA_MIDP_METHOD + SCALE_SUFFIX,
    GAMMA_METHOD,
    "wilson_kg",
    "clopper_pearson_kg",
    "wald",
)
#: The stratified designs of the study, design name -> stratification score.
STRATIFIED_DESIGNS: dict[str, str] = {"stratified_size": "size", "stratified_risk": "risk"}

#: Per arm and day: truth, estimate, variance, n, event weight (mean weight), event scale
#: (model_event_scale, or the mean weight where the arm has no model), each of shape (P,).
DayResult = dict[tuple[str, str], tuple[FloatArray, ...]]


@dataclass(frozen=True)
class _CoverageTask:
    model: PopulationModel
    calibrations: Calibrations
    seed: int
    n: int
    training: strat.TrainingSample | None = None
    errors: LabelErrorModel | None = None


def _coverage_day(task: _CoverageTask, day_no: int) -> DayResult:
    """Per arm: the :data:`DayResult` entries of one day."""
    rng = np.random.default_rng([task.seed, _STREAM_COVERAGE, day_no])
    day = generate_day(task.model, rng)
    qhat = task.calibrations.predict(day)
    qhat_raw = task.calibrations.predict_raw(day)
    sizes = {
        "calibrated": calibrated_size(day, qhat_raw, DEFAULT_RELATIVE_FLOOR),
        "naive": naive_size(day),
        "uniform_views": day.impressions,
        "srs": np.ones_like(day.impressions),
    }
    truth = day.truth()
    out: DayResult = {}
    pis: dict[str, FloatArray] = {}
    selections: dict[str, BoolArray] = {}
    for design, estimator in COVERAGE_ARMS:
        if design == "pps_wr_naive":
            result = pps_wr_estimates(day, sizes["naive"], task.n, rng)
        elif design in STRATIFIED_DESIGNS:
            if task.training is None:
                raise ValueError("stratified arms: the task needs the training sample")
            plan = strat.stratified_design(
                day,
                qhat,
                qhat_raw,
                task.training,
                score=STRATIFIED_DESIGNS[design],
                n=task.n,
                relative_floor=DEFAULT_RELATIVE_FLOOR,
            )
            s_result = strat.stratified_estimates(day, plan, qhat, rng)
            result = PointAndVariance(
                s_result.estimate,
                s_result.variance,
                s_result.n,
                s_result.event_weight,
                s_result.event_scale,
            )
        else:
            if design not in pis:
                pis[design] = poisson_pps_inclusion(sizes[design], task.n)
                selections[design] = rng.random(len(day.impressions)) < pis[design]
            result = poisson_estimates(day, pis[design], selections[design], estimator, qhat)
        out[(design, estimator)] = (
            truth,
            result.estimate,
            result.variance,
            np.full(len(truth), float(result.n)),
            np.full(len(truth), result.event_weight),
            np.full(len(truth), result.event_weight)
            if result.event_scale is None
            else result.event_scale,
        )
    return out


def _coverage_chunk(task: _CoverageTask, days: range) -> list[DayResult]:
    return [_coverage_day(task, d) for d in days]


@dataclass(frozen=True)
class CoverageRow:
    design: str
    estimator: str
    ci_method: str
    prevalence: float
    coverage: float
    coverage_se: float
    bias_in_se: float
    relative_bias: float
    mean_relative_half_width: float
    days: int
    below: float = 0.0  # share of days whose interval lies above the truth
    above: float = 0.0  # share of days whose interval lies below the truth


def map_chunks(
    fn: Callable[[TaskT, range], list[ResultT]], task: TaskT, count: int, workers: int
) -> list[ResultT]:
    """``fn(task, range(count))``, split into ``4 workers`` chunks run by a process pool
    (results in order; each item seeds its own generator, so they do not depend on
    ``workers``)."""
    if workers <= 1:
        return fn(task, range(count))
    bounds = np.linspace(0, count, workers * 4 + 1).astype(int)
    chunks = [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(fn, [task] * len(chunks), chunks)
        return [row for part in parts for row in part]


def _scalar_bounds(
    method: str,
    estimate: FloatArray,
    variance: FloatArray,
    n: FloatArray,
    weight: FloatArray,
    confidence: float,
) -> tuple[FloatArray, FloatArray]:
    bounds = np.array(
        [
            interval_function(method, float(w))(float(e), float(v), int(k), confidence)
            for e, v, k, w in zip(estimate, variance, n, weight, strict=True)
        ]
    )
    return bounds[:, 0], bounds[:, 1]


def _midp_bounds(
    method: str,
    estimate: FloatArray,
    variance: FloatArray,
    n: FloatArray,
    weight: FloatArray,
    confidence: float,
) -> tuple[FloatArray, FloatArray]:
    return gamma_midp_bounds(estimate, variance, weight, confidence)


#: Vectorised interval computations of the study (same numbers as ``interval_function``).
_VECTORISED_BOUNDS = {GAMMA_MIDP_METHOD: _midp_bounds}


def interval_bounds(
    method: str,
    estimate: FloatArray,
    variance: FloatArray,
    n: FloatArray,
    weight: FloatArray,
    confidence: float,
) -> tuple[FloatArray, FloatArray]:
    """Every day's interval of ``method`` at ``max(estimate, 0)`` (as the estimators do)."""
    bounds = _VECTORISED_BOUNDS.get(method, _scalar_bounds)
    return bounds(
        method, np.maximum(estimate, 0.0), np.maximum(variance, 0.0), n, weight, confidence
    )


def coverage_rows(
    arm: tuple[str, str],
    per_day: Sequence[DayResult],
    prevalences: Sequence[float],
    ci_methods: Sequence[str],
    confidence: float,
) -> list[CoverageRow]:
    """Coverage, bias and width of one arm's intervals over the simulated days."""
    truth, est, var, n_used, mean_w, scale_w = (
        np.stack([d[arm][k] for d in per_day]) for k in range(6)
    )
    days = len(per_day)
    err = est - truth
    rows = []
    for j, prevalence in enumerate(prevalences):
        sim_se = float(err[:, j].std(ddof=1) / math.sqrt(days))
        bias = float(err[:, j].mean())
        for label in ci_methods:
            method, scaled, _ = label.partition(SCALE_SUFFIX)
            weight = scale_w if scaled else mean_w
            lower, upper = interval_bounds(
                method, est[:, j], var[:, j], n_used[:, j], weight[:, j], confidence
            )
            t = truth[:, j]
            covered = (lower <= t) & (t <= upper)
            cov = float(covered.mean())
            rows.append(
                CoverageRow(
                    design=arm[0],
                    estimator=arm[1],
                    ci_method=label,
                    prevalence=prevalence,
                    coverage=cov,
                    coverage_se=math.sqrt(cov * (1 - cov) / days),
                    bias_in_se=bias / sim_se if sim_se > 0 else 0.0,
                    relative_bias=bias / float(t.mean()),
                    mean_relative_half_width=float(((upper - lower) / 2 / t).mean()),
                    days=days,
                    below=float(np.mean(t < lower)),
                    above=float(np.mean(t > upper)),
                )
            )
    return rows


def run_coverage(
    model: PopulationModel,
    calibrations: Calibrations,
    *,
    days: int,
    seed: int,
    n: int = 2000,
    ci_methods: Sequence[str] = COVERAGE_CI_METHODS,
    confidence: float = 0.95,
    workers: int = 1,
    training_days: int = 7,
) -> list[CoverageRow]:
    """Coverage, bias and width of each arm's intervals over ``days`` simulated days."""
    training = strat.training_sample(
        model,
        calibrations,
        seed=seed,
        training_days=training_days,
        n=n,
        relative_floor=DEFAULT_RELATIVE_FLOOR,
    )
    task = _CoverageTask(model, calibrations, seed, n, training=training)
    per_day = map_chunks(_coverage_chunk, task, days, workers)
    rows = []
    for arm in COVERAGE_ARMS:
        rows += coverage_rows(arm, per_day, model.prevalences, ci_methods, confidence)
    return rows


# --------------------------------------------------------------------------------------------
# Experiment 3: label-error correction (PPI++) on the default design
# --------------------------------------------------------------------------------------------

LABEL_PREVALENCES: tuple[float, ...] = (0.02, 0.005, 0.001, 0.0005)
LABEL_CI_METHODS: tuple[str, ...] = (GAMMA_MIDP_METHOD, GAMMA_METHOD, "wilson_kg", "wald")


def _label_day(task: _CoverageTask, day_no: int) -> DayResult:
    """Per label estimator: the :data:`DayResult` entries of one day."""
    if task.errors is None:
        raise ValueError("label arm: the task needs the label-error model")
    rng = np.random.default_rng([task.seed, _STREAM_LABELS, day_no])
    day = generate_day(task.model, rng)
    size = calibrated_size(day, task.calibrations.predict_raw(day), DEFAULT_RELATIVE_FLOOR)
    pi = poisson_pps_inclusion(size, task.n)
    selected = rng.random(len(pi)) < pi
    truth = day.truth()
    results = label_estimates(day, pi, selected, task.errors, rng)
    # no model scale for these estimators: the mean weight twice
    return {("calibrated", name): (truth, *values, values[3]) for name, values in results.items()}


def _label_chunk(task: _CoverageTask, days: range) -> list[DayResult]:
    return [_label_day(task, d) for d in days]


def run_label_correction(
    model: PopulationModel,
    calibrations: Calibrations,
    errors: LabelErrorModel,
    *,
    days: int,
    seed: int,
    n: int = 2000,
    ci_methods: Sequence[str] = LABEL_CI_METHODS,
    confidence: float = 0.95,
    workers: int = 1,
) -> list[CoverageRow]:
    """Coverage, bias and width of the naive LLM, human-only and PPI++ estimates."""
    task = _CoverageTask(model, calibrations, seed, n, errors=errors)
    per_day = map_chunks(_label_chunk, task, days, workers)
    rows = []
    for name in LABEL_ESTIMATORS:
        rows += coverage_rows(
            ("calibrated", name), per_day, model.prevalences, ci_methods, confidence
        )
    return rows


# --------------------------------------------------------------------------------------------
# Experiment 2: efficiency (anticipated variances)
# --------------------------------------------------------------------------------------------

EFFICIENCY_PREVALENCES: tuple[float, ...] = (0.02, 0.005, 0.0005)
EFFICIENCY_AUCS: tuple[float, ...] = (0.9, 0.98)


@dataclass(frozen=True)
class EfficiencyRow:
    prevalence: float
    auc: float
    #: mean anticipated variance per (design, estimator)
    variances: dict[str, float] = field(default_factory=dict)

    def efficiency_vs_oracle(self, arm: str, oracle_arm: str = "oracle/ht") -> float:
        return self.variances[oracle_arm] / self.variances[arm]

    def narrower_than_uniform(self, arm: str) -> float:
        return math.sqrt(self.variances["uniform_views/ht"] / self.variances[arm])


def efficiency_for(
    model: PopulationModel, *, seed: int, n: int, populations: int, training_days: int
) -> EfficiencyRow:
    """Mean anticipated variance of every arm for one (prevalence, AUC) scenario."""
    calibrations = fit_calibrations(model, seed, training_days, n)
    isotonic = fit_calibrations(model, seed, training_days, n, method="isotonic")
    training = strat.training_sample(
        model,
        calibrations,
        seed=seed,
        training_days=training_days,
        n=n,
        relative_floor=DEFAULT_RELATIVE_FLOOR,
    )
    sums: dict[str, float] = {}
    for k in range(populations):
        day = generate_day(model, np.random.default_rng([seed, _STREAM_EFFICIENCY, k]))
        qhat = calibrations.predict(day)
        qhat_raw = calibrations.predict_raw(day)
        designs = {
            "calibrated_isotonic": calibrated_size(
                day, isotonic.predict_raw(day), DEFAULT_RELATIVE_FLOOR
            ),
            "uniform_views": day.impressions,
            "srs": np.ones_like(day.impressions),
            "naive": naive_size(day),
            "calibrated": calibrated_size(
                day, calibrations.predict_raw(day), DEFAULT_RELATIVE_FLOOR
            ),
            "oracle": oracle_size(day),
        }
        values: dict[str, float] = {
            "pps_wr_naive/hh": float(anticipated_variance_pps_wr(day, designs["naive"], n)[0])
        }
        for design, score in STRATIFIED_DESIGNS.items():
            plan = strat.stratified_design(
                day,
                qhat,
                qhat_raw,
                training,
                score=score,
                n=n,
                relative_floor=DEFAULT_RELATIVE_FLOOR,
            )
            values[f"{design}/stratified"] = float(strat.anticipated_variance(day, plan)[0])
        for design, size in designs.items():
            pi = poisson_pps_inclusion(size, n)
            for estimator in ("ht", "ratio", "difference"):
                values[f"{design}/{estimator}"] = float(
                    anticipated_variance(day, pi, estimator, qhat)[0]
                )
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value / populations
    return EfficiencyRow(model.prevalences[0], model.auc, sums)


def run_efficiency(
    *,
    seed: int,
    n: int = 2000,
    populations: int = 20,
    training_days: int = 7,
    n_units: int = 100_000,
    prevalences: Sequence[float] = EFFICIENCY_PREVALENCES,
    aucs: Sequence[float] = EFFICIENCY_AUCS,
) -> list[EfficiencyRow]:
    """The efficiency table: one row per (prevalence, AUC)."""
    return [
        efficiency_for(
            PopulationModel(prevalences=(p,), auc=a, n_units=n_units),
            seed=seed,
            n=n,
            populations=populations,
            training_days=training_days,
        )
        for p in prevalences
        for a in aucs
    ]


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

DEFAULT_ARM = "calibrated/ht"
EFFICIENCY_ARMS: tuple[str, ...] = (
    "calibrated/ht",
    "calibrated/ratio",
    "calibrated/difference",
    "oracle/ht",
    "calibrated_isotonic/ht",
    "stratified_size/stratified",
    "stratified_risk/stratified",
    "naive/ht",
    "pps_wr_naive/hh",
    "srs/ratio",
    "uniform_views/ht",
)


def _coverage_table(rows: Sequence[CoverageRow], with_ratio: bool = False) -> list[str]:
    head = (
        "| design | estimator | CI | prevalence | coverage (SE) | below / above | bias / SE "
        "| rel. bias | mean rel. half-width |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bias = f"{1.0 + r.relative_bias:.2f}x truth" if with_ratio else f"{r.relative_bias:+.2%}"
        lines.append(
            f"| {r.design} | {r.estimator} | {r.ci_method} | {r.prevalence:.2%} "
            f"| {r.coverage:.3f} ({r.coverage_se:.3f}) | {r.below:.3f} / {r.above:.3f} "
            f"| {r.bias_in_se:+.2f} | {bias} | {r.mean_relative_half_width:.2f} |"
        )
    return lines


def render_markdown(
    coverage: Sequence[CoverageRow],
    efficiency: Sequence[EfficiencyRow],
    command: str,
    labels: Sequence[CoverageRow] = (),
    errors: LabelErrorModel | None = None,
) -> str:
    lines = [
        "# Design study: coverage, bias and efficiency",
        "",
        f"Reproduce with `{command}`.",
        "",
    ]
    if coverage:
        lines += [
            "## Coverage of nominal 95% intervals",
            "",
            f"{coverage[0].days} simulated days, expected 2,000 labels a day, one shared sample "
            "for three policies, AUC 0.9 scores. `below / above`: share of days with the truth "
            "below the lower / above the upper limit. Bias is in units of its simulation SE "
            "(|bias| < 2 passes).",
            "",
            *_coverage_table(coverage),
            "",
        ]
    if labels:
        rates = (
            ""
            if errors is None
            else f" (false-positive rate {errors.fpr:.0%}, false-negative rate {errors.fnr:.0%})"
        )
        rate = "" if errors is None else f" and {errors.validation_rate:.0%} of the others"
        lines += [
            "## Label-error correction on the default design",
            "",
            f"{labels[0].days} simulated days of the default design (n = 2,000, AUC 0.9, one "
            "shared sample for four policies); every sampled unit has an LLM label"
            f"{rates}, a human label on every certainty unit{rate}. `x truth` is the mean "
            "estimate over the mean truth.",
            "",
            *_coverage_table(labels, with_ratio=True),
            "",
        ]
    if efficiency:
        lines += [
            "## Efficiency at equal expected sample size (n = 2,000)",
            "",
            "Efficiency = AV(oracle, HT) / AV(arm) (1 = as good as the oracle); "
            "`x narrower` = sqrt(AV(uniform views) / AV(arm)), how many times narrower the CI is "
            "than uniform-views sampling.",
            "",
            "| prevalence | AUC | "
            + " | ".join(f"{a} eff. / x narrower" for a in EFFICIENCY_ARMS)
            + " |",
            "|---|---|" + "---|" * len(EFFICIENCY_ARMS),
        ]
        for row in efficiency:
            cells = [
                f"{row.efficiency_vs_oracle(a):.2f} / {row.narrower_than_uniform(a):.2f}"
                for a in EFFICIENCY_ARMS
            ]
            lines.append(f"| {row.prevalence:.2%} | {row.auc} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every study shares: ``--training-days``, ``--n``, ``--units``, ``--seed``
    and ``--workers`` (same defaults everywhere, so the studies' commands line up)."""
    parser.add_argument("--training-days", type=int, default=7)
    parser.add_argument("--n", type=int, default=2000, help="expected labels per day")
    parser.add_argument("--units", type=int, default=100_000, help="units per simulated day")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--workers", type=int, default=1)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tsmetrics.design_study", description=__doc__)
    parser.add_argument("--days", type=int, default=2000, help="days of the coverage experiment")
    parser.add_argument("--label-days", type=int, default=2000, help="days of the label arm")
    parser.add_argument("--populations", type=int, default=20, help="days per efficiency cell")
    add_simulation_arguments(parser)
    parser.add_argument("--skip-coverage", action="store_true")
    parser.add_argument("--skip-labels", action="store_true")
    parser.add_argument("--skip-efficiency", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.monotonic()
    coverage: list[CoverageRow] = []
    labels: list[CoverageRow] = []
    efficiency: list[EfficiencyRow] = []
    errors = LabelErrorModel()
    if not args.skip_coverage:
        model = PopulationModel(n_units=args.units)
        calibrations = fit_calibrations(model, args.seed, args.training_days, args.n)
        coverage = run_coverage(
            model,
            calibrations,
            days=args.days,
            seed=args.seed,
            n=args.n,
            workers=args.workers,
            training_days=args.training_days,
        )
        print(f"coverage done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if not args.skip_labels:
        label_model = PopulationModel(prevalences=LABEL_PREVALENCES, n_units=args.units)
        label_calibrations = fit_calibrations(label_model, args.seed, args.training_days, args.n)
        labels = run_label_correction(
            label_model,
            label_calibrations,
            errors,
            days=args.label_days,
            seed=args.seed,
            n=args.n,
            workers=args.workers,
        )
        print(f"label arm done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if not args.skip_efficiency:
        efficiency = run_efficiency(
            seed=args.seed,
            n=args.n,
            populations=args.populations,
            training_days=args.training_days,
            n_units=args.units,
        )
    argv_text = shlex.join(sys.argv[1:] if argv is None else list(argv))
    command = f"python -m tsmetrics.design_study {argv_text}"
    print(render_markdown(coverage, efficiency, command, labels, errors))
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
