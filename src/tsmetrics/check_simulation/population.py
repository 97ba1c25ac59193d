"""Population of the check simulation (units of one simulated day) and the designs over it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from tsmetrics.calibration import Calibration
from tsmetrics.check_simulation._common import (
    _HEAD_RE,
    _STREAM_CALIBRATE,
    START_DAY,
    BoolArray,
    FloatArray,
    IntArray,
)
from tsmetrics.config import RunConfig
from tsmetrics.design_day import fit_day_calibrations
from tsmetrics.measure import DOMAIN_ALL
from tsmetrics.sampling import poisson_pps_inclusion, sqrt_calibrated_size
from tsmetrics.simulate import SURFACES, SimulatedDay

# --------------------------------------------------------------------------------------------
# Population and design
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Population:
    """Measurement units of one day (as ``build_units.sql`` builds them) with their truth.

    Attributes
    ----------
    policies : tuple of str
        Policy names, the order of the policy axis.
    surfaces : tuple of str
        Surface names, the order of the surface codes.
    impressions : ndarray of float, shape (N,)
        Unit impressions (sum over components).
    surface : ndarray of int, shape (N,)
        Index of the unit's surface in ``surfaces``.
    observed_risk : ndarray of float, shape (N, P)
        Max component score per policy, ``nan`` when no component has a score.
    violates : ndarray of bool, shape (N, P)
        Whether the unit violates each policy (any component does).
    """

    policies: tuple[str, ...]
    surfaces: tuple[str, ...]
    impressions: FloatArray
    surface: IntArray
    observed_risk: FloatArray
    violates: BoolArray

    @property
    def domains(self) -> list[str]:
        """Domain names, the order of the domain axis: ``all`` then ``surface=S``."""
        return [DOMAIN_ALL] + [f"surface={s}" for s in self.surfaces]

    def domain_masks(self) -> BoolArray:
        """Shape (S + 1, N): unit membership per domain."""
        rows = [np.ones(len(self.impressions), dtype=bool)]
        rows += [self.surface == s for s in range(len(self.surfaces))]
        return np.stack(rows)

    def domain_totals(self) -> FloatArray:
        """Known impressions per domain, shape (S + 1,)."""
        out: FloatArray = self.domain_masks().astype(np.float64) @ self.impressions
        return out

    def unit_risk(self) -> FloatArray:
        """Risk per unit and policy: the observed max score, or the impression-weighted mean of
        the observed unit risks of the policy when missing (0 when no unit has one), as
        ``build_units.sql``'s ``coalesce(o.risk, f.mean_risk, 0)``."""
        observed = ~np.isnan(self.observed_risk)
        weights = np.where(observed, self.impressions[:, None], 0.0)
        den = weights.sum(axis=0)
        num = np.where(observed, self.observed_risk * self.impressions[:, None], 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            fill = np.where(den > 0, num / den, 0.0)
        out: FloatArray = np.where(observed, self.observed_risk, fill[None, :])
        return out

    def prevalence(self) -> FloatArray:
        """True impression-weighted prevalence, shape (P, S + 1) (0 for an empty domain)."""
        masks = self.domain_masks().astype(np.float64)
        violating = (self.violates * self.impressions[:, None]).T @ masks.T  # (P, S + 1)
        totals = self.domain_totals()
        with np.errstate(invalid="ignore", divide="ignore"):
            out: FloatArray = np.where(totals > 0, violating / totals, 0.0)
        return out


def population_from_day(sim: SimulatedDay) -> Population:
    """Units of a simulated day, grouped from ``sim.components`` (surfaces from the raw lines).

    Raises
    ------
    ValueError
        When the raw lines and the component frame do not describe the same interactions.
    """
    comps = sim.components
    policies = tuple(c[len("score_") :] for c in comps.columns if c.startswith("score_"))
    heads = [_HEAD_RE.match(line) for line in sim.jsonl.splitlines()]
    if any(h is None for h in heads):
        raise ValueError("raw lines: expected every line to start with id, event_ts and surface")
    ids = [h.group(1) for h in heads if h is not None]
    surface_of = {s: i for i, s in enumerate(SURFACES)}
    surface = np.array([surface_of[h.group(2)] for h in heads if h is not None], dtype=np.int64)
    codes = comps["interaction_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    if len(starts) != len(ids) or list(codes[starts]) != ids:
        raise ValueError("components: expected the interactions of the raw lines, in order")
    impressions = np.add.reduceat(comps["impressions"].to_numpy(np.int64), starts)
    observed = np.empty((len(ids), len(policies)))
    violates = np.empty((len(ids), len(policies)), dtype=bool)
    unit_of = np.repeat(np.arange(len(ids)), np.diff(np.r_[starts, len(codes)]))
    for j, policy in enumerate(policies):
        scores = comps[f"score_{policy}"].to_numpy(np.float64)
        best = np.full(len(ids), -np.inf)
        np.maximum.at(best, unit_of, np.where(np.isnan(scores), -np.inf, scores))
        observed[:, j] = np.where(np.isfinite(best), best, np.nan)
        violates[:, j] = np.logical_or.reduceat(comps[f"violates_{policy}"].to_numpy(bool), starts)
    return Population(
        policies=policies,
        surfaces=SURFACES,
        impressions=impressions.astype(np.float64),
        surface=surface,
        observed_risk=observed,
        violates=violates,
    )


@dataclass(frozen=True, eq=False)
class Design:
    """PPS-with-replacement design of ``sample_pps_wr.sql``.

    Attributes
    ----------
    units : ndarray of int
        Indices of the drawable units (impressions > 0).
    prob : ndarray of float
        Their single-draw probabilities ``size / sum(size)``.
    n_draws : int
        Draws per day.
    """

    units: IntArray
    prob: FloatArray
    n_draws: int


def pps_design(population: Population, size_floor: float, n_draws: int) -> Design:
    """``size = impressions * (size_floor + max over policies of unit risk)`` over the units
    with impressions (and a positive size), ``p = size / sum(size)``."""
    if n_draws < 2:
        raise ValueError(f"n_draws: expected at least 2, got {n_draws}")
    size = population.impressions * (size_floor + population.unit_risk().max(axis=1))
    units = np.flatnonzero((population.impressions > 0) & (size > 0)).astype(np.int64)
    prob = size[units] / size[units].sum()
    return Design(units=units, prob=prob, n_draws=int(n_draws))


def design_variance(population: Population, design: Design | PoissonDesign) -> FloatArray:
    """Exact design variance of the daily prevalence estimate, shape (P, S + 1) (NaN for an
    empty domain).

    * PPS with replacement, Hansen-Hurwitz: ``V = (sum_i y_i^2 / p_i - Y^2) / (n X^2)``
      (Cochran 1977, 9A);
    * Poisson PPS, Horvitz-Thompson: ``V = sum_i (1 / pi_i - 1) y_i^2 / X^2`` (Sarndal et al.
      1992, 3.2; certainty units contribute nothing),

    with ``y_i`` unit ``i``'s violating impressions in the domain and ``X`` the domain's
    impressions.
    """
    if isinstance(design, PoissonDesign):
        return variance_at(population, design, design.expected_n)
    x = population.impressions[design.units]
    v = population.violates[design.units].astype(np.float64)  # (M, P)
    masks = population.domain_masks()[:, design.units].astype(np.float64)  # (D, M)
    totals = population.domain_totals()
    y2p = (v * (x * x / design.prob)[:, None]).T @ masks.T  # (P, D)
    y = (v * x[:, None]).T @ masks.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(
            totals > 0, np.maximum(y2p - y * y, 0.0) / (design.n_draws * totals**2), np.nan
        )
    return out


def variance_at(population: Population, design: Design | PoissonDesign, n: float) -> FloatArray:
    """:func:`design_variance` of the same design at sample size ``n`` (shape (P, S + 1)).

    With replacement the variance is ``V_1 / n`` (``V_1`` the one-draw variance). Poisson: the
    same sizes with ``pi = poisson_pps_inclusion(size, n)`` re-solved at ``n`` (more units
    become certainty units as ``n`` grows), ``n`` at most the number of sized units (then every
    ``pi = 1`` and ``V = 0``).
    """
    if not (math.isfinite(n) and n > 0):
        raise ValueError(f"n: expected a finite number > 0, got {n!r}")
    if not isinstance(design, PoissonDesign):
        return design_variance(population, design) * (design.n_draws / n)
    units = design.units
    pi = poisson_pps_inclusion(design.size, min(float(n), float(len(units))))
    x = population.impressions[units]
    v = population.violates[units].astype(np.float64)  # (M, P)
    masks = population.domain_masks()[:, units].astype(np.float64)  # (D, M)
    totals = population.domain_totals()
    factor = (1.0 / pi - 1.0) * x * x  # (M,)
    num = (v * factor[:, None]).T @ masks.T  # (P, D)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(totals > 0, num / totals**2, np.nan)
    return out


def relabel_to_prevalence(
    population: Population,
    policy: str,
    target: float,
    rng: np.random.Generator,
    *,
    model_aware: bool = True,
) -> Population:
    """A copy of the population with ``policy``'s true prevalence moved to ``target``.

    Units are relabelled in random order. When the prevalence is above ``target``, violating
    units are made non-violating until it is at or below ``target``; then non-violating units
    (with impressions) are made violating, each only if it does not overshoot, until the
    violating impressions are within one impression of ``target * X``. With ``model_aware`` a
    relabelled unit gets the observed ``policy`` risk of a random unit of its new class in the
    original population (new violations are scored like the existing ones, so the risk-steered
    design sees them; removed ones like non-violations); otherwise it keeps its own score.
    Other policies are untouched.
    """
    j = population.policies.index(policy)
    x = population.impressions
    goal = target * float(x.sum())
    violates = population.violates.copy()
    observed = population.observed_risk.copy()

    def relabel(units: list[int], to: bool) -> None:
        picked = np.asarray(units, dtype=np.int64)
        violates[picked, j] = to
        donors = np.flatnonzero(population.violates[:, j] == to)
        if model_aware and len(picked) and len(donors):
            observed[picked, j] = population.observed_risk[rng.choice(donors, len(picked)), j]

    current = float(x[violates[:, j]].sum())
    removed: list[int] = []
    for unit in rng.permutation(np.flatnonzero(violates[:, j])).tolist():
        if current <= goal:
            break
        removed.append(unit)
        current -= float(x[unit])
    relabel(removed, False)
    added: list[int] = []
    for unit in rng.permutation(np.flatnonzero(~violates[:, j] & (x > 0))).tolist():
        if goal - current < 1.0:
            break
        if x[unit] <= goal - current:
            added.append(unit)
            current += float(x[unit])
    relabel(added, True)
    return dataclasses.replace(population, violates=violates, observed_risk=observed)


# --------------------------------------------------------------------------------------------
# Calibrated Poisson PPS design (the default)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PoissonDesign:
    """Calibrated Poisson PPS design of ``sample_poisson_design.sql`` (``tsm.unit_sizes`` with
    ``sqrt_calibrated`` and ``tsm.poisson_pps_sample``).

    Attributes
    ----------
    units : ndarray of int, shape (M,)
        Indices of the sized units (impressions > 0).
    size : ndarray of float, shape (M,)
        Their ``sqrt_calibrated`` sizes.
    pi : ndarray of float, shape (M,)
        Inclusion probabilities ``min(1, c size)`` with ``sum pi = expected_n``.
    expected_n : float
        Expected sample size (``sampling.n_draws``).
    calibrations : tuple of Calibration
        Per policy (population order), the calibration of the risk scores behind the sizes.
    """

    units: IntArray
    size: FloatArray
    pi: FloatArray
    expected_n: float
    calibrations: tuple[Calibration, ...]

    @property
    def n_draws(self) -> int:
        """The expected sample size, rounded (the configuration's ``n_draws``)."""
        return round(self.expected_n)


def calibrated_q(
    population: Population, calibrations: Sequence[Calibration]
) -> tuple[FloatArray, BoolArray]:
    """``(q, imputed)``, both (N, P): each unit's calibrated risk per policy
    (:meth:`Calibration.predict` of the observed risk), and whether its risk is imputed (no
    component has a score). Where imputed, ``q`` holds a placeholder (0.5) that
    :func:`tsmetrics.sampling.sqrt_calibrated_size` replaces by the calibrated prevalence."""
    if len(calibrations) != len(population.policies):
        raise ValueError(
            f"calibrations: expected one per policy ({len(population.policies)}), "
            f"got {len(calibrations)}"
        )
    imputed = np.isnan(population.observed_risk)
    scores = np.where(imputed, 0.5, population.observed_risk)
    q = np.column_stack([c.predict(scores[:, j]) for j, c in enumerate(calibrations)])
    return q.astype(np.float64), imputed


def poisson_design(
    population: Population,
    calibrations: Sequence[Calibration],
    relative_floor: float,
    expected_n: float,
) -> PoissonDesign:
    """The default design of ``population``: ``sqrt_calibrated`` sizes of the units with
    impressions under ``calibrations`` and ``pi = poisson_pps_inclusion(size, expected_n)``."""
    units = np.flatnonzero(population.impressions > 0).astype(np.int64)
    q, imputed = calibrated_q(population, calibrations)
    size = sqrt_calibrated_size(
        population.impressions[units], q[units], imputed[units], relative_floor
    )
    return PoissonDesign(
        units=units,
        size=size,
        pi=poisson_pps_inclusion(size, expected_n),
        expected_n=float(expected_n),
        calibrations=tuple(calibrations),
    )


def draw_poisson(design: PoissonDesign, rng: np.random.Generator, n_days: int) -> BoolArray:
    """Selection indicators, shape (n_days, M): unit ``k`` of ``design.units`` is in day
    ``t``'s sample iff ``u_tk < pi_k``, independent uniforms (as
    :func:`tsmetrics.sampling.poisson_pps_select`)."""
    out: BoolArray = rng.random((n_days, len(design.pi))) < design.pi[None, :]
    return out


def _training_window(
    population: Population, design: PoissonDesign, selected: BoolArray
) -> dict[str, tuple[FloatArray, BoolArray, FloatArray, list[str]]]:
    """``calibration_training_data`` of the days in ``selected``: per policy the observed risk,
    label and weight ``1 / pi`` of each selected unit whose risk was observed."""
    out = {}
    days = [
        (START_DAY - timedelta(days=len(selected) - t)).isoformat() for t in range(len(selected))
    ]
    rows = np.nonzero(selected)
    units, pi = design.units[rows[1]], design.pi[rows[1]]
    for j, policy in enumerate(population.policies):
        risk = population.observed_risk[units, j]
        keep = ~np.isnan(risk)
        out[policy] = (
            risk[keep],
            population.violates[units[keep], j],
            1.0 / pi[keep],
            sorted({days[t] for t in rows[0][keep].tolist()}),
        )
    return out


def fit_population_calibrations(
    population: Population, config: RunConfig, seed: int, *, stages: int = 2, realisation: int = 0
) -> tuple[Calibration, ...]:
    """The calibration production reaches on ``population`` (fitted once, then held fixed).

    Stage 0 samples ``calibration.window_days`` days with the identity calibration (what
    :func:`tsmetrics.design_day.fit_day_calibrations` returns without labels: production's
    first days); every later stage fits the calibration on the previous stage's days with
    :func:`~tsmetrics.design_day.fit_day_calibrations` (design weights ``1 / pi``, imputed risks
    left out, identity below ``min_positives`` Kish-effective positives) and samples its
    window with it. With ``stages = 2`` the result is fitted on days of the calibrated design
    itself (production's steady state). Random stream ``[seed, 20, realisation, stage]``.
    """
    if stages < 1:
        raise ValueError(f"stages: expected at least 1, got {stages}")
    empty = np.zeros(0)
    calibrations = fit_day_calibrations(
        {p: (empty, empty.astype(bool), empty, []) for p in population.policies}, config
    )
    fitted = tuple(calibrations[p] for p in population.policies)
    window = config.sampling.calibration_window_days
    for stage in range(stages):
        design = poisson_design(
            population, fitted, config.sampling.size_floor, config.sampling.n_draws
        )
        rng = np.random.default_rng([seed, _STREAM_CALIBRATE, realisation, stage])
        selected = draw_poisson(design, rng, window)
        calibrations = fit_day_calibrations(_training_window(population, design, selected), config)
        fitted = tuple(calibrations[p] for p in population.policies)
    return fitted


def make_design(
    population: Population,
    config: RunConfig,
    *,
    n: float | None = None,
    calibrations: Sequence[Calibration] | None = None,
) -> Design | PoissonDesign:
    """The configured design (``config.sampling.method``) of ``population`` with sample size
    ``n`` (default ``config.sampling.n_draws``); the Poisson design needs ``calibrations``."""
    size = config.sampling.n_draws if n is None else n
    if config.sampling.method == "poisson_pps":
        if config.sampling.size_measure != "sqrt_calibrated":
            raise ValueError(
                "config.sampling.size_measure: the simulation supports sqrt_calibrated with "
                f"poisson_pps, got {config.sampling.size_measure!r}"
            )
        if calibrations is None:
            raise ValueError("calibrations: required with sampling.method poisson_pps")
        return poisson_design(population, calibrations, config.sampling.size_floor, size)
    if config.sampling.method == "pps_with_replacement":
        return pps_design(population, wr_size_floor(config), round(size))
    raise ValueError(
        f"config.sampling.method: expected poisson_pps or pps_with_replacement, "
        f"got {config.sampling.method!r}"
    )


#: Absolute size floor of the walking skeleton's PPS-with-replacement design, used when the
#: configured design is the Poisson one (whose ``size_floor`` is relative).
WR_SIZE_FLOOR = 0.02


def wr_size_floor(config: RunConfig) -> float:
    """The PPS-with-replacement size floor this simulation uses for ``config``."""
    if config.sampling.size_measure == "max_risk":
        return config.sampling.size_floor
    return WR_SIZE_FLOOR
