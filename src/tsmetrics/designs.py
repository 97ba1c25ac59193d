"""The registry of sampling designs: how each ``sampling.method`` draws a day's sample in the
warehouse and which estimator its samples are estimated with.

``DESIGNS[method]`` gives a :class:`SampleDesign`. Adding a design means adding an entry here (and
its SQL in ``include/sql``), never a branch on the method name elsewhere:

* ``poisson_pps``: ``sample_poisson_design.sql``; estimator ``horvitz_thompson``
  (Horvitz-Thompson with the Poisson variance);
* ``pps_with_replacement``: ``sample_pps_wr.sql``; estimator ``hansen_hurwitz``;
* ``stratified``: allocation in :mod:`tsmetrics.stratified_design`, then
  ``sample_stratified_design.sql``; estimator ``stratified`` (Cochran's stratified estimator
  with the design's ``N_h``).

Each estimator gets one :class:`LabelledSample` (the design's units with a valid label for the
policy) and the per-unit values ``y_i`` of the quantity estimated: violating impressions
``x_i v_i`` for unit-level prevalence, the impressions of the unit's violating components for
component-level prevalence (both over the known total impressions ``X``; domain values are
zero outside the domain, with the domain's known ``X_d``). Units without a valid label are left
out as missing at random within the design's selection groups: Poisson, a Bernoulli subsample at
the labelling rate (``pi_i r``); stratified, ``n_h`` counts the labelled units of each stratum.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import psycopg

from tsmetrics.config import PRIMARY_ESTIMATOR, RunConfig, SamplingConfig
from tsmetrics.estimation import PrevalenceEstimate, hansen_hurwitz_prevalence
from tsmetrics.gamma_interval import EVENT_WEIGHT_CI_METHODS, mean_uncertain_weight
from tsmetrics.sampling import horvitz_thompson_prevalence
from tsmetrics.stratified import stratified_prevalence
from tsmetrics.stratified_design import draw as draw_stratified
from tsmetrics.stratified_design import stratum_sizes

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
COMPONENT_SUFFIX = "_component"


@dataclass(frozen=True)
class LabelledSample:
    """One design's labelled units for one policy (and level), as its estimator needs them.

    ``selection_prob`` is the stored ``tsm.samples.selection_prob`` (``pi_i``, or the single-draw
    ``p_i`` with replacement), ``strata`` the stored stratum (stratified designs), ``n_sampled``
    the design's number of sampled units or draws (labelled or not), ``params`` the design's
    ``tsm.sample_designs.params``.
    """

    impressions: FloatArray
    selection_prob: FloatArray
    unit_ids: npt.NDArray[np.str_]
    strata: npt.NDArray[np.int64]
    n_sampled: int
    params: dict[str, Any]


class SampleDesign(Protocol):
    """What the DAG needs of a sampling design."""

    @property
    def method(self) -> str:
        """The ``sampling.method`` name."""
        ...

    @property
    def sql_file(self) -> str:
        """Its draw in ``include/sql``."""
        ...

    @property
    def plans_size(self) -> bool:
        """Whether the day's expected size can be planned from recent estimates."""
        ...

    @property
    def label_correction(self) -> bool:
        """Whether PPI++ label correction is defined for its samples."""
        ...

    @property
    def estimator(self) -> str:
        """``tsm.estimates.estimator`` of its unit-level rows."""
        ...

    def draw(self, conn: psycopg.Connection, run: DrawContext) -> None: ...

    def estimate(
        self,
        sample: LabelledSample,
        values: FloatArray,
        in_domain: npt.NDArray[np.bool_],
        total: float,
        config: RunConfig,
    ) -> PrevalenceEstimate: ...


@dataclass(frozen=True)
class DrawContext:
    """Everything a design's draw needs: the day, the design, its SQL and bind parameters."""

    day: date
    spec: SamplingConfig
    sql: str
    params: dict[str, Any]
    policies: tuple[str, ...]
    labeler_id: str


def run_sql(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> None:
    """Run an ``include/sql`` file's statements in one transaction (split as
    ``SQLExecuteQueryOperator(split_statements=True)`` does)."""
    import sqlparse

    statements = [
        s.strip().rstrip(";")
        for s in sqlparse.split(sql)
        if sqlparse.format(s, strip_comments=True).strip()
    ]
    with conn.transaction():
        for statement in statements:
            conn.execute(statement, params)
    conn.commit()


def _gamma_or(ci_method: str) -> str:
    return "wilson_kg" if ci_method in EVENT_WEIGHT_CI_METHODS else ci_method


@dataclass(frozen=True)
class _SqlDesign:
    """What the registered designs share: the estimator's name, and a draw that runs the
    design's SQL file."""

    method: str
    sql_file: str
    plans_size: bool
    label_correction: bool

    @property
    def estimator(self) -> str:
        return PRIMARY_ESTIMATOR[self.method]

    def draw(self, conn: psycopg.Connection, run: DrawContext) -> None:
        run_sql(conn, run.sql, run.params)


@dataclass(frozen=True)
class PoissonDesign(_SqlDesign):
    """Poisson PPS (``tsm.poisson_pps_sample``); Horvitz-Thompson with the Poisson variance and
    the configured interval (the gamma interval by default)."""

    method: str = "poisson_pps"
    sql_file: str = "sample_poisson_design.sql"
    plans_size: bool = True
    label_correction: bool = True

    def estimate(
        self,
        sample: LabelledSample,
        values: FloatArray,
        in_domain: npt.NDArray[np.bool_],
        total: float,
        config: RunConfig,
    ) -> PrevalenceEstimate:
        probs = sample.selection_prob * (len(values) / sample.n_sampled)
        weight = None
        if config.ci_method in EVENT_WEIGHT_CI_METHODS:
            weight = mean_uncertain_weight(sample.impressions[in_domain], probs[in_domain], total)
        return horvitz_thompson_prevalence(
            values,
            probs,
            total,
            confidence=config.confidence,
            ci_method=config.ci_method,
            event_weight=weight,
        )


@dataclass(frozen=True)
class WithReplacementDesign(_SqlDesign):
    """PPS with replacement (``sample_pps_wr.sql``); Hansen-Hurwitz (Wilson-KG when the
    configured interval is the gamma one, which is defined for Poisson-type samples)."""

    method: str = "pps_with_replacement"
    sql_file: str = "sample_pps_wr.sql"
    plans_size: bool = False
    label_correction: bool = False

    def estimate(
        self,
        sample: LabelledSample,
        values: FloatArray,
        in_domain: npt.NDArray[np.bool_],
        total: float,
        config: RunConfig,
    ) -> PrevalenceEstimate:
        return hansen_hurwitz_prevalence(
            values,
            sample.selection_prob,
            total,
            confidence=config.confidence,
            ci_method=_gamma_or(config.ci_method),
            unit_ids=sample.unit_ids,
        )


@dataclass(frozen=True)
class StratifiedDesign(_SqlDesign):
    """Stratified SRS by risk strata (:mod:`tsmetrics.stratified_design`); the stratified
    estimator ``P_hat = sum_h N_h ybar_h / X``, ``v = sum_h N_h^2 (1 - f_h) s_h^2 / n_h / X^2``
    (:func:`tsmetrics.stratified.stratified_prevalence`, strata with one labelled unit collapsed
    with a neighbour). With a gamma interval (``gamma_tcz``, ``gamma_midp``) it is taken on
    that estimate and variance with the mean weight ``x_i N_h / (n_h X)`` of the units not taken
    whole."""

    method: str = "stratified"
    sql_file: str = "sample_stratified_design.sql"
    plans_size: bool = True
    label_correction: bool = False

    def draw(self, conn: psycopg.Connection, run: DrawContext) -> None:
        draw_stratified(
            conn, run.day, run.spec, run.params, run.sql, run.policies, run.labeler_id, run_sql
        )

    def estimate(
        self,
        sample: LabelledSample,
        values: FloatArray,
        in_domain: npt.NDArray[np.bool_],
        total: float,
        config: RunConfig,
    ) -> PrevalenceEstimate:
        sizes = stratum_sizes(sample.params)
        labelled = np.bincount(sample.strata, minlength=len(sizes))
        empty = np.flatnonzero((labelled == 0) & (sizes > 0))
        if len(empty):
            raise ValueError(
                f"stratified estimate: expected a labelled unit in every stratum, got none in "
                f"strata {empty.tolist()}"
            )
        weight = None
        if config.ci_method in EVENT_WEIGHT_CI_METHODS:
            pi = labelled[sample.strata] / sizes[sample.strata]
            weight = mean_uncertain_weight(sample.impressions[in_domain], pi[in_domain], total)
        return stratified_prevalence(
            values,
            sample.strata,
            sizes,
            total,
            confidence=config.confidence,
            ci_method=config.ci_method,
            event_weight=weight,
            single_unit_strata="collapse",
        )


_REGISTERED: tuple[SampleDesign, ...] = (
    PoissonDesign(),
    WithReplacementDesign(),
    StratifiedDesign(),
)
DESIGNS: dict[str, SampleDesign] = {d.method: d for d in _REGISTERED}


def design_of(method: str) -> SampleDesign:
    """The registered design of ``method``."""
    try:
        return DESIGNS[method]
    except KeyError:
        raise ValueError(
            f"sampling.method: expected one of {sorted(DESIGNS)}, got {method!r}"
        ) from None


def estimator_name(method: str, level: str) -> str:
    """``tsm.estimates.estimator`` of a design's unit- or component-level rows."""
    base = design_of(method).estimator
    return base if level == "unit" else base + COMPONENT_SUFFIX


def draw_params(
    spec: SamplingConfig, day: date, config_version: int, expected_n: float
) -> dict[str, Any]:
    """Bind parameters of a design's ``include/sql`` draw."""
    return {
        "day": day.isoformat(),
        "design_id": spec.design_id,
        "seed": spec.seed,
        "n_draws": spec.n_draws,
        "expected_n": expected_n,
        "size_measure": spec.size_measure,
        "size_floor": spec.size_floor,
        "design_policy": spec.policy,
        "config_version": config_version,
    }


def draw_design(
    conn: psycopg.Connection,
    day: date,
    config: RunConfig,
    spec: SamplingConfig,
    sql_dir: Path,
    plan_size: Callable[[psycopg.Connection, date, RunConfig, SamplingConfig], dict[str, Any]],
) -> dict[str, Any]:
    """Plan the size of and draw one design of the day; returns a summary for XCom."""
    design = design_of(spec.method)
    sizing = plan_size(conn, day, config, spec)
    run = DrawContext(
        day,
        spec,
        (sql_dir / design.sql_file).read_text(),
        draw_params(spec, day, config.version, float(sizing["expected_n"])),
        tuple(config.design_policies(spec)),
        config.primary_labeler.labeler_id,
    )
    design.draw(conn, run)
    row = conn.execute(
        "SELECT method, n_draws, (SELECT count(DISTINCT unit_id) FROM tsm.samples s "
        "WHERE s.event_date = d.event_date AND s.design_id = d.design_id) "
        "FROM tsm.sample_designs d WHERE event_date = %s AND design_id = %s",
        (day, spec.design_id),
    ).fetchone()
    assert row is not None
    log.info("sample %s (%s) on %s: %s draws, %s units", spec.design_id, *row[:1], day, *row[1:])
    return {
        "design_id": spec.design_id,
        "policy": spec.policy,
        "method": row[0],
        "n_draws": row[1],
        "n_units": row[2],
        "plan": sizing,
    }
