"""Markdown report of the check simulation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tsmetrics.calibration import Calibration
from tsmetrics.check_simulation._common import (
    CHECKS,
    DETECTION_POWER,
    FloatArray,
    IntArray,
)
from tsmetrics.check_simulation.estimates import wr_ci_method
from tsmetrics.check_simulation.experiments import DetectionSummary, NullSummary, history_days
from tsmetrics.check_simulation.population import Population, wr_size_floor
from tsmetrics.check_simulation.run_lengths import ProductionRunLength, RunLengthRow
from tsmetrics.config import RunConfig

# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Everything :func:`render_markdown` prints."""

    command: str
    seed: int
    workers: int
    runtime_seconds: float
    n_interactions: int
    population: Population
    config: RunConfig
    exact_se: FloatArray
    max_relative_difference: float
    bias_z: FloatArray
    null: NullSummary
    detection: list[tuple[str, DetectionSummary]]
    requirements: dict[str, dict[str, float]]
    requirement_spread: dict[str, FloatArray]
    grid: list[DetectionSummary]
    calibrations: list[tuple[Calibration, ...]] | None = None
    wr_exact_se: FloatArray | None = None
    certainty_units: int = 0
    member_se: FloatArray | None = None
    run_lengths: list[RunLengthRow] = field(default_factory=list)
    production_run_lengths: list[ProductionRunLength] = field(default_factory=list)


def _pct(value: float, digits: int = 3) -> str:
    return f"{100.0 * value:.{digits}f}%"


def _label(check: str) -> str:
    if check == "any":
        return "any production check"
    return check


def _design_text(config: RunConfig, certainty_units: int) -> str:
    sampling = config.sampling
    if sampling.method == "poisson_pps":
        return (
            f"calibrated Poisson PPS (size_measure {sampling.size_measure}, relative floor "
            f"{sampling.size_floor}), expected n = {sampling.n_draws:,} ({certainty_units:,} "
            f"certainty units), Horvitz-Thompson, CI {config.ci_method} {config.confidence:.0%}"
        )
    return (
        f"PPS with replacement, n_draws = {sampling.n_draws:,}, size_floor = "
        f"{wr_size_floor(config)}, Hansen-Hurwitz, CI {wr_ci_method(config)} "
        f"{config.confidence:.0%}"
    )


def _calibration_text(policies: Sequence[str], pool: Sequence[Sequence[Calibration]]) -> list[str]:
    lines = []
    for j, policy in enumerate(policies):
        fits = [member[j] for member in pool]
        methods = sorted({c.method for c in fits})
        counts = ", ".join(f"{m} in {sum(c.method == m for c in fits)}" for m in methods)
        platt = [c.params.to_dict() for c in fits if c.method == "platt"]
        shown = ""
        if platt:
            a_values = [p["a"] for p in platt]
            b_values = [p["b"] for p in platt]
            shown = (
                f"; Platt a in [{min(a_values):+.2f}, {max(a_values):+.2f}], "
                f"b in [{min(b_values):.2f}, {max(b_values):.2f}]"
            )
        positives = [c.n_positive for c in fits]
        lines.append(
            f"  - {policy}: {counts} of {len(fits)} fits{shown}; weighted positives in the "
            f"training window {min(positives):,.0f}-{max(positives):,.0f}"
        )
    return lines


def render_markdown(report: Report) -> str:
    """The report as Markdown (tables and the run's facts; interpretation is left to the doc)."""
    pop, config, null = report.population, report.config, report.null
    limits = {p.name: p.limit for p in config.policies}
    prevalence = pop.prevalence()
    lines = [
        "## Check simulation",
        "",
        f"- command: `{report.command}`",
        f"- seed: {report.seed}; workers: {report.workers}; "
        f"runtime: {report.runtime_seconds:.0f} s",
        f"- population: {report.n_interactions:,} interactions "
        f"({len(pop.impressions):,} units, {int(pop.impressions.sum()):,} impressions), "
        "fixed: no true change",
        f"- design: {_design_text(config, report.certainty_units)}",
    ]
    if report.calibrations is not None:
        lines.append(
            f"- calibration: a pool of {len(report.calibrations)} independent steady-state fits "
            "(`fit_population_calibrations`), window r uses fit r mod pool size:"
        )
        lines += _calibration_text(pop.policies, report.calibrations)
    estimator = (
        "horvitz_thompson_prevalence"
        if config.sampling.method == "poisson_pps"
        else "hansen_hurwitz_prevalence"
    )
    lines += [
        f"- burn-in: {history_days(config)} days before each {null.days}-day window",
        f"- reproduced estimator vs `{estimator}` as `estimate_day` calls it (one day, every "
        f"policy and domain; estimate, SE, CI): max relative difference "
        f"{report.max_relative_difference:.1e}",
        f"- unbiasedness over {null.replications} windows: max |bias| / simulation SE over "
        f"policies x domains = {np.nanmax(np.abs(report.bias_z)):.2f}",
        "",
    ]
    if report.wr_exact_se is not None:
        lines += [
            "| policy | true prevalence | limit | exact SE at n_draws (RMS over fits) "
            "[min, max] | exact SE of PPS with replacement at the same n (old default) "
            "| variance ratio old / new |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines += [
            "| policy | true prevalence | limit | exact SE at n_draws |",
            "|---|---|---|---|",
        ]
    for j, policy in enumerate(pop.policies):
        se_text = _pct(report.exact_se[j, 0])
        if report.member_se is not None and len(report.member_se) > 1:
            members = report.member_se[:, j]
            se_text += f" [{_pct(members.min())}, {_pct(members.max())}]"
        row = (
            f"| {policy} | {_pct(prevalence[j, 0])} | {_pct(limits.get(policy, math.nan), 2)} "
            f"| {se_text} |"
        )
        if report.wr_exact_se is not None:
            old, new = report.wr_exact_se[j, 0], report.exact_se[j, 0]
            ratio = (old / new) ** 2 if new > 0 else math.inf
            row += f" {_pct(old)} | {ratio:.2f} |"
        lines.append(row)
    lines += [
        "",
        f"### (a) False alerts per {null.days} days, all policies and cells "
        f"({null.replications} windows)",
        "",
        f"| check | mean opened per {null.days} d (sim. SE) | share of windows >= 1 | "
        "share > 1 | mean escalations |",
        "|---|---|---|---|---|",
    ]
    per_check: dict[str, IntArray] = {c: null.opened[c] for c in CHECKS}
    escalations: dict[str, IntArray] = {c: null.escalated[c] for c in CHECKS}
    per_check["all production checks"] = null.total_opened()
    escalations["all production checks"] = np.sum([null.escalated[c] for c in CHECKS], axis=0)
    r = null.replications
    for name, counts in per_check.items():
        mean = float(counts.mean())
        se = float(counts.std(ddof=1)) / math.sqrt(r) if r > 1 else math.nan
        ge1, gt1 = float((counts >= 1).mean()), float((counts > 1).mean())
        lines.append(
            f"| {name} | {mean:.3f} ({se:.3f}) | {ge1:.3f} ({math.sqrt(ge1 * (1 - ge1) / r):.3f})"
            f" | {gt1:.3f} ({math.sqrt(gt1 * (1 - gt1) / r):.3f}) "
            f"| {float(escalations[name].mean()):.3f} |"
        )
    lines += [
        "",
        f"False alerts by source (mean opened per {null.days} days; sources never opened: 0):",
        "",
        f"| check | policy | direction | mean opened per {null.days} d |",
        "|---|---|---|---|",
    ]
    for (check, policy, direction), counts in null.opened_by.items():
        lines.append(f"| {_label(check)} | {policy} | {direction} | {float(counts.mean()):.3f} |")
    lines += [
        "",
        f"Of these, {float(null.opened_after_skip.mean()):.3f} per {null.days} days opened on a "
        "cell that was skipped the day before.",
        "",
        "Daily estimates under no change, over all simulated days: standardised, `z = (estimate "
        "- truth) / SE_exact` with the exact design SE, and the normal scores the CUSUM charts "
        "(`poisson_normal_scores` with the true mean and exact variance; nominal for both: "
        "mean 0, sd 1, P(< -3) = P(> 3) = 0.0013):",
        "",
        "| policy | days with estimated SE = 0 | mean z | sd z | P(z < -3) | P(z > 3) "
        "| mean score | sd score | P(score < -3) | P(score > 3) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for j, policy in enumerate(pop.policies):
        days, sum_z, sum_z2, below, above, zero, sum_s, sum_s2, s_below, s_above = null.z_stats[j]
        n = max(days, 1.0)
        mean = sum_z / days if days else math.nan
        sd = math.sqrt(max(sum_z2 / days - mean * mean, 0.0)) if days else math.nan
        mean_s = sum_s / days if days else math.nan
        sd_s = math.sqrt(max(sum_s2 / days - mean_s * mean_s, 0.0)) if days else math.nan
        total_days = max(days, zero, 1.0)
        lines.append(
            f"| {policy} | {zero / total_days:.3f} | {mean:+.3f} | {sd:.3f} "
            f"| {below / n:.4f} | {above / n:.4f} | {mean_s:+.3f} | {sd_s:.3f} "
            f"| {s_below / n:.4f} | {s_above / n:.4f} |"
        )
    outcomes = (*CHECKS, "any")
    for label, det in report.detection:
        lines += [
            "",
            f"### (b) Same-day detection: {det.policy} {_pct(det.before)} -> {_pct(det.after)}, "
            f"{label} (n_draws = {det.n_draws:,}, {det.replications} replications)",
            "",
            f"Exact SE of the day's estimate: {_pct(det.se_before)} before, "
            f"{_pct(det.se_after)} on the day; true change / sqrt(SE_before^2 + SE_after^2) = "
            f"{(det.after - det.before) / math.hypot(det.se_before, det.se_after):.2f}.",
            "",
            "| check | P(breach on the day) (sim. SE) |",
            "|---|---|",
        ]
        for check in outcomes:
            p, se = det.probability(check)
            lines.append(f"| {_label(check)} | {p:.3f} ({se:.3f}) |")
    if report.requirements:
        det = report.detection[0][1]
        lines += [
            "",
            f"### (c) Sample size for {DETECTION_POWER:.0%} same-day detection "
            f"({det.policy} {_pct(det.before)} -> {_pct(det.after)}, current thresholds)",
            "",
            "Normal approximation from the exact design variances (per check alone):",
            "",
        ]
        n_spread = len(report.requirement_spread.get(CHECKS[0], ()))
        if n_spread:
            lines += [
                "| check | n_draws needed | SE of the day's estimate (domain all) needed "
                f"| n_draws over {n_spread} relabellings: median [min, max] |",
                "|---|---|---|---|",
            ]
        else:
            lines += [
                "| check | n_draws needed | SE of the day's estimate (domain all) needed |",
                "|---|---|---|",
            ]
        for check in CHECKS:
            req = report.requirements[check]
            values = report.requirement_spread.get(check, np.array([]))
            spread = (
                ""
                if not n_spread
                else " - |"
                if np.isinf(values).all()
                else f" {np.median(values):,.0f} [{values.min():,.0f}, {values.max():,.0f}] |"
            )
            never = check == "limit" and math.isinf(req["n_draws"])
            n_text = (
                "never (true level below the limit)"
                if never
                else "more than the population"
                if math.isinf(req["n_draws"])
                else f"{req['n_draws']:,.0f}"
            )
            se_text = "-" if math.isinf(req["n_draws"]) else _pct(req["se_needed"])
            lines.append(f"| {_label(check)} | {n_text} | {se_text} |{spread}")
    if report.grid:
        lines += [
            "",
            "Simulated (same experiment as (b), first variant) over n_draws:",
            "",
            "| n_draws | replications | "
            + " | ".join(f"P({_label(c)})" for c in CHECKS)
            + " | P(any production check) |",
            "|---|---|" + "---|" * (len(CHECKS) + 1),
        ]
        for det in report.grid:
            cells = [f"{det.probability(c)[0]:.3f}" for c in CHECKS]
            p, se = det.probability("any")
            lines.append(
                f"| {det.n_draws:,} | {det.replications} | "
                + " | ".join(cells)
                + f" | {p:.3f} ({se:.3f}) |"
            )
    lines += _run_length_lines(report)
    return "\n".join(lines) + "\n"


def _run_length_lines(report: Report) -> list[str]:
    """Section (d): textbook run lengths and the production CUSUM check on normal data."""
    lines: list[str] = []
    if report.run_lengths:
        n_sims = report.run_lengths[0].simulated.n_sims
        lines += [
            "",
            "### (d) In-control run lengths on normal data",
            "",
            f"Zero-state ARL with known parameters, simulated ({n_sims:,} charts each, "
            "`control_charts.average_run_length`), against Montgomery (2019) Table 9.3 (CUSUM), "
            "Siegmund's approximation (Montgomery eq. 9.20) and Lucas & Saccucci (1990) / "
            "Montgomery Table 9.11 (EWMA, asymptotic limits):",
            "",
            "| chart | shift (sigma) | table | Siegmund | simulated (sim. SE) | censored |",
            "|---|---|---|---|---|---|",
        ]
        for row in report.run_lengths:
            table = "-" if row.table is None else f"{row.table:g}"
            siegmund = "-" if row.siegmund is None else f"{row.siegmund:.1f}"
            sim = row.simulated
            lines.append(
                f"| {row.chart} | {row.shift:g} | {table} | {siegmund} | {sim.arl:.1f} "
                f"({sim.std_error:.1f}) | {sim.n_censored} |"
            )
    if report.production_run_lengths:
        first = report.production_run_lengths[0]
        lines += [
            "",
            f"The production CUSUM check (`prevalence_checks.cusum_checks`: `mu0`, `sigma0` from "
            f"the 28 baseline days before a 14-day window sliding daily) on i.i.d. normal daily "
            f"estimates, {first.replications:,} windows of {first.days} days, one policy; "
            "incidents counted as production opens them:",
            "",
            f"| h | false incidents per {first.days} d (sim. SE) | mean days between false "
            "incidents | stated in-control ARL |",
            "|---|---|---|---|",
        ]
        for prod in report.production_run_lengths:
            stated = "-" if prod.stated_arl is None else f"{prod.stated_arl:g}"
            lines.append(
                f"| {prod.h:g} | {prod.opened_mean:.4f} ({prod.opened_se:.4f}) | "
                f"{prod.days_between:.0f} | {stated} |"
            )
    return lines
