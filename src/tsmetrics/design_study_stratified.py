"""The design study's stratified arms: risk strata, Neyman allocation from earlier days' labels.

Design (per day, :func:`stratified_design`)
------------------------------------------
1. A stratification score per unit from the day's calibrated risks ``qhat_p`` (the calibration
   the default design uses, :mod:`tsmetrics.calibration`), either

   * ``risk``: ``r_i = sqrt(sum_p max(qhat_ip, phi Pbar_p) / Pbar_p^2)``, the default design's
     size divided by impressions -- strata on the (combined, calibrated) risk score alone; or
   * ``size``: ``x_i r_i``, the default design's size measure -- strata on risk x reach, so
     that the few units holding most impressions form their own (take-all) strata.

2. ``H`` strata at the impression-weighted quantiles of that score
   (:func:`tsmetrics.stratified.weighted_quantile_boundaries`, each stratum about ``1/H`` of the
   day's impressions).
3. Neyman allocation of ``n`` units (:func:`tsmetrics.stratified.neyman_allocation`, at least two
   per stratum, take-all where the optimum exceeds ``N_h``) with the within-stratum standard
   deviations ``S_hp`` of ``y = x v_p`` estimated from *earlier days' labelled samples*
   (:func:`tsmetrics.stratified.stratum_sd_from_sample`, the training days' units put in today's
   strata by their own score, design weights ``1/pi``). A stratum where the earlier samples
   hold fewer than two units, or no violation (``S_hp = 0``, which would starve it of labels),
   takes the calibrated model's anticipated ``S_hp``
   (:func:`tsmetrics.stratified.stratum_sd_from_model`). Policies are combined by their
   relative variances: ``S_h = sqrt(sum_p (S_hp / Pbar_p)^2)``, the allocation that minimises
   the sum of the policies' anticipated relative variances.
4. A simple random sample without replacement of ``n_h`` units in every stratum.

Estimator: the stratified estimator ``sum_h N_h ybar_h / X`` with the unbiased variance
``sum_h N_h^2 (1 - f_h) s_h^2 / n_h / X^2`` (:func:`tsmetrics.stratified.stratified_total`),
event weight of the gamma intervals :func:`tsmetrics.stratified.event_weight`. Its anticipated
variance (efficiency experiment) is :func:`tsmetrics.stratified.stratified_variance` with the
exact model ``E S_h^2`` under the true ``q`` (:func:`tsmetrics.stratified.stratum_sd_from_model`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tsmetrics import stratified as st
from tsmetrics.gamma_interval import model_event_scale
from tsmetrics.sampling import poisson_pps_inclusion

if TYPE_CHECKING:  # the study imports this module: only types from it here
    from tsmetrics.design_study import Calibrations, Day, PopulationModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_STRATA = 10
MIN_PER_STRATUM = 2


def _risk_score(day: Day, qhat_raw: FloatArray, relative_floor: float) -> FloatArray:
    from tsmetrics.design_study import calibrated_size

    out: FloatArray = calibrated_size(day, qhat_raw, relative_floor) / day.impressions
    return out


def _size_score(day: Day, qhat_raw: FloatArray, relative_floor: float) -> FloatArray:
    from tsmetrics.design_study import calibrated_size

    return calibrated_size(day, qhat_raw, relative_floor)


#: Stratification scores, name -> ``(day, qhat_raw, relative_floor) -> score per unit``.
STRATIFICATION_SCORES: Mapping[str, Callable[[Day, FloatArray, float], FloatArray]] = (
    MappingProxyType({"risk": _risk_score, "size": _size_score})
)


@dataclass(frozen=True)
class TrainingSample:
    """The training days' labelled units (naive design), with their stratification scores."""

    violating_impressions: FloatArray  # (m, P): x v_p
    weight: FloatArray  # (m,): 1 / pi in their own day's design
    scores: Mapping[str, FloatArray]  # score name -> (m,)


def training_sample(
    model: PopulationModel,
    calibrations: Calibrations,
    *,
    seed: int,
    training_days: int,
    n: int,
    relative_floor: float,
) -> TrainingSample:
    """Re-draw the training days of :func:`tsmetrics.design_study.fit_calibrations` (same
    generators, hence the same units) and keep their sampled units' labels, weights and scores
    (each score computed within its own day's population)."""
    from tsmetrics import design_study as ds

    values, weights = [], []
    scores: dict[str, list[FloatArray]] = {name: [] for name in STRATIFICATION_SCORES}
    for t in range(training_days):
        day = ds.generate_day(model, np.random.default_rng([seed, ds.STREAM_TRAIN, t]))
        pi = poisson_pps_inclusion(ds.naive_size(day), n)
        selected = np.random.default_rng([seed, ds.STREAM_TRAIN, t, 1]).random(len(pi)) < pi
        values.append((day.violates * day.impressions[:, None])[selected])
        weights.append(1.0 / pi[selected])
        qhat_raw = calibrations.predict_raw(day)
        for name, score in STRATIFICATION_SCORES.items():
            scores[name].append(score(day, qhat_raw, relative_floor)[selected])
    return TrainingSample(
        violating_impressions=np.concatenate(values),
        weight=np.concatenate(weights),
        scores={name: np.concatenate(parts) for name, parts in scores.items()},
    )


@dataclass(frozen=True)
class StratifiedDesign:
    stratum: IntArray  # (N,)
    stratum_sizes: IntArray  # (H,)
    sample_sizes: IntArray  # (H,)


def stratified_design(
    day: Day,
    qhat: FloatArray,
    qhat_raw: FloatArray,
    training: TrainingSample,
    *,
    score: str,
    n: int,
    relative_floor: float,
    n_strata: int = DEFAULT_STRATA,
) -> StratifiedDesign:
    """Strata and Neyman allocation of one day (module docstring, steps 1-3)."""
    today = STRATIFICATION_SCORES[score](day, qhat_raw, relative_floor)
    cuts = st.weighted_quantile_boundaries(today, day.impressions, n_strata)
    h = len(cuts) + 1
    stratum = st.stratum_of(today, cuts)
    sizes = np.bincount(stratum, minlength=h).astype(np.int64)
    earlier = st.stratum_of(training.scores[score], cuts)
    pbar = (day.impressions[:, None] * qhat).sum(0) / day.total_impressions
    relative = np.zeros(h)
    for p in range(qhat.shape[1]):
        sample_sd = st.stratum_sd_from_sample(
            training.violating_impressions[:, p], earlier, training.weight, h
        )
        model_sd = st.stratum_sd_from_model(day.impressions, qhat[:, p], stratum, h)
        sd = np.where(np.isnan(sample_sd) | (sample_sd <= 0.0), model_sd, sample_sd)
        relative += (sd / pbar[p]) ** 2
    n_h = st.neyman_allocation(sizes, np.sqrt(relative), n, MIN_PER_STRATUM)
    return StratifiedDesign(stratum=stratum, stratum_sizes=sizes, sample_sizes=n_h)


@dataclass(frozen=True)
class StratifiedEstimates:
    estimate: FloatArray  # (P,)
    variance: FloatArray  # (P,)
    n: int
    event_weight: float
    event_scale: FloatArray  # (P,)


def stratified_estimates(
    day: Day, design: StratifiedDesign, qhat: FloatArray, rng: np.random.Generator
) -> StratifiedEstimates:
    """Select the stratified SRS and estimate every policy's prevalence (step 4)."""
    chosen = st.stratified_random_select(design.stratum, design.sample_sizes, rng)
    strata = design.stratum[chosen]
    x = day.impressions[chosen]
    total = day.total_impressions
    est, var = [], []
    for p in range(day.violates.shape[1]):
        result = st.stratified_total(
            x * day.violates[chosen, p], strata, design.stratum_sizes, single_unit_strata="collapse"
        )
        est.append(result.total / total)
        var.append(result.variance / total**2)
    weight = st.event_weight(x, strata, design.stratum_sizes, total)
    n_h = design.sample_sizes[strata]
    unit_weights = design.stratum_sizes[strata] / n_h * x / total
    scale = model_event_scale(unit_weights, n_h >= design.stratum_sizes[strata], qhat[chosen])
    return StratifiedEstimates(np.array(est), np.array(var), len(chosen), weight, scale)


def anticipated_variance(day: Day, design: StratifiedDesign) -> FloatArray:
    """Design variance averaged over the violations given the scores, per policy (P,)."""
    h = len(design.stratum_sizes)
    out = []
    for p in range(day.q_true.shape[1]):
        sd = st.stratum_sd_from_model(day.impressions, day.q_true[:, p], design.stratum, h)
        out.append(st.stratified_variance(design.stratum_sizes, sd, design.sample_sizes))
    return np.array(out) / day.total_impressions**2
