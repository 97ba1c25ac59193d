"""Reproducible simulation ("proof") of the daily alerting checks under the production design.

Modules: :mod:`.population` (units and designs), :mod:`.estimates` (daily estimates,
vectorised), :mod:`.experiments` (checks, incidents, false alerts, detection, sample sizes),
:mod:`.report` (Markdown), :mod:`.cli` (``python -m tsmetrics.check_simulation``).

What is simulated
-----------------
1. **Population.** One day of :func:`tsmetrics.simulate.simulate_day` (no day-to-day jitter) is
   turned into measurement units exactly as ``include/sql/build_units.sql`` does: unit
   impressions = sum of the components' impressions; unit risk per policy = max of the
   components' scores, imputed by the day's impression-weighted mean of the observed unit risks
   when no component has a score; a unit violates a policy when any component does (the primary
   labeler of the default configuration has error rate 0, so labels are the truth). The same
   population is used every day: there is **no true change**.
2. **Design and estimator**, chosen by ``config.sampling.method`` as production chooses them:

   * ``poisson_pps`` (the default, ``include/sql/sample_poisson_design.sql``): each policy's
     risk is calibrated into ``q = P(violating | score)`` by the production fit
     (:func:`tsmetrics.design_day.fit_day_calibrations`: design-weighted Platt on
     ``calibration.window_days`` days of labelled sample units, weights ``1 / pi``, units with
     an imputed risk left out, identity while labels are too few). :func:`fit_population_
     calibrations` fits it once per population in two stages: ``window_days`` days sampled with
     the identity calibration (production's cold start: no labels yet), then ``window_days``
     days sampled with that first fit, refitted (production's steady state: a calibration
     fitted on days of the same design). Sizes ``x sqrt(sum_p max(q_p, phi Pbar_p) / Pbar_p^2)``
     (:func:`tsmetrics.sampling.sqrt_calibrated_size`; an imputed risk gets the calibrated
     prevalence), ``pi = min(1, c size)`` with ``sum pi = n_draws``
     (:func:`tsmetrics.sampling.poisson_pps_inclusion`), unit ``i`` selected iff ``u_i < pi_i``
     with independent uniforms (numpy's in place of the warehouse's hash uniforms: same
     distribution). Per day, policy and domain (``all`` and ``surface=S``) the Horvitz-Thompson
     estimate ``sum_s y / pi / X_d`` and variance ``sum_s (1 - pi) (y / pi)^2 / X_d^2`` (``y = 0``
     outside the domain, the domain's known impressions ``X_d``), vectorised over days, and the
     ``gamma_tcz`` interval with the event weight of the domain's sampled uncertain units
     (:func:`tsmetrics.gamma_interval.mean_uncertain_weight`), as
     :func:`tsmetrics.measure.estimate_day` computes them.
   * ``pps_with_replacement`` (the walking skeleton, ``include/sql/sample_pps_wr.sql``):
     ``size = impressions * (size_floor + max over policies of unit risk)``, ``n_draws`` draws
     with replacement (:meth:`numpy.random.Generator.choice`), Hansen-Hurwitz estimates.

   :func:`verify_estimates` checks the vectorised numbers against the production estimator
   (``tsmetrics.designs``, i.e. :func:`tsmetrics.sampling.horvitz_thompson_prevalence` or
   :func:`tsmetrics.estimation.hansen_hurwitz_prevalence` called exactly as ``estimate_day``
   calls them: estimate, standard error and interval); the CLI does so on every run.
3. **Checks.** The production check functions on a history shaped like
   ``measure._estimate_history``, through :func:`tsmetrics.prevalence_checks.prevalence_checks`
   (limit, day-over-day rise, baseline change across cells, baseline rise of each policy's
   ``all`` domain, CUSUM on normal scores), with the default configuration of
   :func:`tsmetrics.config.load_config` (:func:`checks_for_day`). Incidents are counted with
   :func:`tsmetrics.alerts.incident_transitions` (an *opened* incident = a breach whose cell's
   last decided outcome was not a breach).
4. **Experiments.** (a) False alerts: ``days`` consecutive days after a burn-in long enough for
   every check to have its full history. (b) Detection: the policy closest to the target
   prevalence (default 0.5%) is relabelled to exactly that prevalence, a full history is drawn,
   then on day ``T`` the prevalence doubles (more units relabelled as violating); the
   probability that a check breaches for that policy on day ``T``. Under the Poisson design the
   calibration is fitted on the unchanged population (days before ``T``) and applied to day
   ``T``'s scores, as production does. (c) The sample size for 90% same-day detection: normal
   approximations per check from the exact design variances (:func:`analytic_requirements`),
   and simulation over a grid of ``n_draws``. (d) Run lengths on normal data
   (:mod:`.run_lengths`): the charts against Montgomery's tables, and the production CUSUM
   check's false incidents against its stated in-control ARL.

Run ``python -m tsmetrics.check_simulation --days 30 --replications 1500 --seed 20261123`` (the
full command of ``docs/checks_proof.md`` adds the detection, grid and realisation settings;
``--method pps_with_replacement`` simulates the walking skeleton's design); the Markdown report
goes to stdout (progress to stderr). Results do not depend on ``--workers``: every
replication has its own generator ``default_rng([seed, stream, replication])``.

References
----------
Horvitz, D. G. and Thompson, D. J. (1952). A generalization of sampling without replacement from
a finite universe. *JASA* 47, 663-685. Sarndal, C.-E., Swensson, B. and Wretman, J. (1992).
*Model Assisted Survey Sampling*, Springer, Chapter 3 (Poisson sampling: ``V(Y_hat) = sum (1 /
pi - 1) y^2``). Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed., Wiley, 9A (Hansen-Hurwitz).
Page, E. S. (1954). Continuous inspection schemes. *Biometrika* 41, 100-115 (CUSUM).
"""

from __future__ import annotations

from tsmetrics.check_simulation._common import (
    CHECKS,
    DETECTION_POWER,
    POPULATION_DAY,
    START_DAY,
    History,
    Overall,
)
from tsmetrics.check_simulation.cli import closest_policy, configure, doubling_scenario, main
from tsmetrics.check_simulation.estimates import (
    DailyEstimates,
    draw_days,
    draw_positions,
    estimate_days,
    estimate_draws,
    estimate_poisson,
    verify_estimates,
)
from tsmetrics.check_simulation.experiments import (
    Z_STATS,
    DetectionSummary,
    NullSummary,
    TransitionCounts,
    analytic_requirements,
    checks_for_day,
    count_transitions,
    history_days,
    run_detection,
    run_null,
)
from tsmetrics.check_simulation.population import (
    WR_SIZE_FLOOR,
    Design,
    PoissonDesign,
    Population,
    calibrated_q,
    design_variance,
    draw_poisson,
    fit_population_calibrations,
    make_design,
    poisson_design,
    population_from_day,
    pps_design,
    relabel_to_prevalence,
    variance_at,
)
from tsmetrics.check_simulation.report import Report, render_markdown
from tsmetrics.check_simulation.run_lengths import (
    ProductionRunLength,
    RunLengthRow,
    production_cusum_false_incidents,
    textbook_run_lengths,
)
from tsmetrics.prevalence_checks import DOMAIN_ALL

__all__ = [
    "CHECKS",
    "CHECKS",
    "DETECTION_POWER",
    "DOMAIN_ALL",
    "DailyEstimates",
    "Design",
    "DetectionSummary",
    "History",
    "NullSummary",
    "Overall",
    "POPULATION_DAY",
    "PoissonDesign",
    "Population",
    "ProductionRunLength",
    "Report",
    "RunLengthRow",
    "START_DAY",
    "TransitionCounts",
    "WR_SIZE_FLOOR",
    "Z_STATS",
    "analytic_requirements",
    "calibrated_q",
    "checks_for_day",
    "closest_policy",
    "configure",
    "count_transitions",
    "design_variance",
    "doubling_scenario",
    "draw_days",
    "draw_poisson",
    "draw_positions",
    "estimate_days",
    "estimate_draws",
    "estimate_poisson",
    "fit_population_calibrations",
    "history_days",
    "main",
    "make_design",
    "poisson_design",
    "population_from_day",
    "pps_design",
    "production_cusum_false_incidents",
    "relabel_to_prevalence",
    "render_markdown",
    "run_detection",
    "run_null",
    "textbook_run_lengths",
    "variance_at",
    "verify_estimates",
]
