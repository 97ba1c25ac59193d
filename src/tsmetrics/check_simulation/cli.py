"""Command line of the check simulation: ``python -m tsmetrics.check_simulation``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Sequence

import numpy as np

from tsmetrics.calibration import Calibration
from tsmetrics.check_simulation._common import (
    _STREAM_DETECT,
    _STREAM_DETECT_BLIND,
    _STREAM_GRID,
    _STREAM_NULL,
    _STREAM_RELABEL,
    CHECKS,
    DETECTION_POWER,
    POPULATION_DAY,
)
from tsmetrics.check_simulation.estimates import draw_days, estimate_days, verify_estimates
from tsmetrics.check_simulation.experiments import (
    analytic_requirements,
    history_days,
    run_detection,
    run_null,
)
from tsmetrics.check_simulation.population import (
    WR_SIZE_FLOOR,
    PoissonDesign,
    Population,
    design_variance,
    fit_population_calibrations,
    make_design,
    population_from_day,
    pps_design,
    relabel_to_prevalence,
)
from tsmetrics.check_simulation.report import Report, render_markdown
from tsmetrics.check_simulation.run_lengths import (
    production_cusum_false_incidents,
    textbook_run_lengths,
)
from tsmetrics.config import RunConfig, load_config
from tsmetrics.simulate import SimulationConfig, simulate_day

# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def closest_policy(population: Population, target: float) -> str:
    """The policy whose true prevalence is closest to ``target`` on the log scale (policies
    without any violation are not candidates unless all are)."""
    prevalence = population.prevalence()[:, 0]
    with np.errstate(divide="ignore"):
        distance = np.where(prevalence > 0, np.abs(np.log(prevalence / target)), np.inf)
    return population.policies[int(np.argmin(distance))]


def doubling_scenario(
    population: Population, policy: str, target: float, seed: int, realisation: int = 0
) -> tuple[Population, Population, Population]:
    """``(base, doubled, blind)``: ``policy`` relabelled to ``target``, then to ``2 * target``
    with the added violations scored like existing ones (``doubled``) or keeping their own
    non-violator scores (``blind``); ``doubled`` and ``blind`` relabel the same units."""
    base = relabel_to_prevalence(
        population, policy, target, np.random.default_rng([seed, _STREAM_RELABEL, realisation])
    )
    stream = [seed, _STREAM_RELABEL, realisation, 1]
    doubled = relabel_to_prevalence(base, policy, 2 * target, np.random.default_rng(stream))
    blind = relabel_to_prevalence(
        base, policy, 2 * target, np.random.default_rng(stream), model_aware=False
    )
    return base, doubled, blind


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tsmetrics.check_simulation",
        description="Simulate the alerting checks (false alerts without change, same-day "
        "detection of a doubling) under the production design and default configuration.",
    )
    parser.add_argument("--days", type=int, default=30, help="window length (default 30)")
    parser.add_argument("--replications", type=int, default=1000, help="windows (default 1000)")
    parser.add_argument(
        "--detection-replications", type=int, default=None, help="default: --replications"
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--n-interactions", type=int, default=50_000)
    parser.add_argument(
        "--n-draws",
        type=int,
        default=None,
        help="daily (expected) sample size (default: the configuration's)",
    )
    parser.add_argument(
        "--method",
        choices=("poisson_pps", "pps_with_replacement"),
        default=None,
        help="sampling method (default: the configuration's); pps_with_replacement uses "
        f"size_measure max_risk with the absolute floor {WR_SIZE_FLOOR}",
    )
    parser.add_argument("--target-prevalence", type=float, default=0.005)
    parser.add_argument(
        "--policy", default=None, help="policy to double (default: the closest to the target)"
    )
    parser.add_argument(
        "--grid",
        default="3000,4000,5000,6000",
        help="comma-separated n_draws for the simulated sample-size search ('' to skip)",
    )
    parser.add_argument(
        "--grid-replications", type=int, default=300, help="per grid point (default 300)"
    )
    parser.add_argument(
        "--calibration-pool",
        type=int,
        default=10,
        help="independent calibration fits per population (Poisson design; default 10)",
    )
    parser.add_argument(
        "--realisations",
        type=int,
        default=20,
        help="relabelling realisations for the spread of the analytic sample sizes (default 20)",
    )
    parser.add_argument(
        "--arl-sims",
        type=int,
        default=20_000,
        help="simulated charts per textbook run length (default 20000; 0 to skip)",
    )
    parser.add_argument(
        "--arl-replications",
        type=int,
        default=2_000,
        help="windows of the production CUSUM check on normal data (default 2000; 0 to skip)",
    )
    args = parser.parse_args(argv)
    if args.days < 1 or args.replications < 2:
        parser.error("--days must be >= 1 and --replications >= 2")
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def configure(
    config: RunConfig, *, n_draws: int | None = None, method: str | None = None
) -> RunConfig:
    """``config`` with a what-if sample size and/or sampling method (thresholds unchanged).
    Switching to ``pps_with_replacement`` from the default uses ``size_measure: max_risk`` with
    the absolute floor :data:`WR_SIZE_FLOOR` (the walking skeleton's design)."""
    sampling = config.sampling
    if n_draws is not None:
        sampling = dataclasses.replace(sampling, n_draws=n_draws)
    if method is not None and method != sampling.method:
        if method == "pps_with_replacement":
            sampling = dataclasses.replace(
                sampling, method=method, size_measure="max_risk", size_floor=WR_SIZE_FLOOR
            )
        else:
            sampling = dataclasses.replace(
                sampling, method=method, size_measure="sqrt_calibrated", size_floor=0.03
            )
    return dataclasses.replace(config, sampling=sampling)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the experiments and print the Markdown report to stdout."""
    args = _parse_args(argv)
    started = time.perf_counter()
    config = configure(load_config(), n_draws=args.n_draws, method=args.method)
    n_draws = config.sampling.n_draws
    poisson = config.sampling.method == "poisson_pps"
    sim = simulate_day(
        POPULATION_DAY,
        args.seed,
        SimulationConfig(n_interactions=args.n_interactions, day_prevalence_jitter=0.0),
    )
    population = population_from_day(sim)
    if list(population.policies) != config.policy_names:
        raise ValueError(
            f"simulated policies {population.policies} differ from the config's "
            f"{config.policy_names}"
        )
    pool_size = max(1, args.calibration_pool) if poisson else 1
    calibrations = (
        [
            fit_population_calibrations(population, config, args.seed, realisation=c)
            for c in range(pool_size)
        ]
        if poisson
        else None
    )
    members: list[tuple[Calibration, ...] | None] = [None]
    if calibrations:
        members = list(calibrations)
    designs = [make_design(population, config, calibrations=c) for c in members]
    design = designs[0]
    check_rng = np.random.default_rng([args.seed, _STREAM_NULL, 0])
    draws = draw_days(design, check_rng, 1)
    max_diff = verify_estimates(
        population, design, draws, estimate_days(population, design, draws), config
    )
    if max_diff > 1e-9:
        raise RuntimeError(f"reproduced estimator differs from production: {max_diff:.3e}")
    _log(f"population ready ({time.perf_counter() - started:.1f} s); null experiment ...")
    null = run_null(
        population,
        designs,
        config,
        days=args.days,
        replications=args.replications,
        seed=args.seed,
        workers=args.workers,
    )
    truth = population.prevalence()
    member_var = np.stack([design_variance(population, d) for d in designs])
    exact_var = member_var.mean(axis=0)
    n_days = history_days(config) + args.days
    bias_sim_se = np.sqrt(exact_var / (n_days * args.replications))
    bias = null.mean_estimate.mean(axis=0) - truth
    safe = np.where(bias_sim_se > 0, bias_sim_se, 1.0)
    bias_z = np.where(bias_sim_se > 0, bias / safe, np.nan)
    _log(f"null done ({time.perf_counter() - started:.1f} s); detection ...")

    policy = args.policy or closest_policy(population, args.target_prevalence)
    base, doubled, blind = doubling_scenario(population, policy, args.target_prevalence, args.seed)
    base_pool = (
        [
            fit_population_calibrations(base, config, args.seed, realisation=1000 + c)
            for c in range(pool_size)
        ]
        if poisson
        else None
    )
    reps = args.detection_replications or args.replications
    detection = []
    for label, changed, stream in (
        ("new violations scored like existing ones", doubled, _STREAM_DETECT),
        ("new violations unseen by the risk model", blind, _STREAM_DETECT_BLIND),
    ):
        detection.append(
            (
                label,
                run_detection(
                    base,
                    changed,
                    policy,
                    config,
                    n_draws=n_draws,
                    replications=reps,
                    seed=args.seed,
                    stream=stream,
                    workers=args.workers,
                    calibration_pool=base_pool,
                ),
            )
        )
    _log(f"detection done ({time.perf_counter() - started:.1f} s); sample sizes ...")
    per_member = [
        analytic_requirements(base, doubled, policy, config, DETECTION_POWER, calibrations=c)
        for c in (list(base_pool) if base_pool else [None])
    ]
    requirements = {
        check: {
            key: float(np.median([m[check][key] for m in per_member]))
            for key in ("n_draws", "se_needed")
        }
        for check in CHECKS
    }
    spread: dict[str, list[float]] = {check: [] for check in CHECKS}
    for realisation in range(args.realisations):
        scenario = doubling_scenario(
            population, policy, args.target_prevalence, args.seed, realisation
        )
        fitted = (
            fit_population_calibrations(
                scenario[0], config, args.seed, realisation=2000 + realisation
            )
            if poisson
            else None
        )
        needs = analytic_requirements(
            scenario[0], scenario[1], policy, config, DETECTION_POWER, calibrations=fitted
        )
        for check in CHECKS:
            spread[check].append(needs[check]["n_draws"])
    grid = []
    for i, n in enumerate(int(v) for v in args.grid.split(",") if v.strip()):
        _log(f"grid n_draws={n} ({time.perf_counter() - started:.1f} s) ...")
        grid.append(
            run_detection(
                base,
                doubled,
                policy,
                config,
                n_draws=n,
                replications=args.grid_replications,
                seed=args.seed,
                stream=_STREAM_GRID + i,
                workers=args.workers,
                calibration_pool=base_pool,
            )
        )
    _log(f"run lengths ({time.perf_counter() - started:.1f} s) ...")
    cusum_h = float(config.rule("cusum").get("h", 5.0))
    run_lengths = (
        textbook_run_lengths(cusum_h, n_sims=args.arl_sims, seed=args.seed)
        if args.arl_sims > 1
        else []
    )
    production_arl = (
        [
            production_cusum_false_incidents(
                config, h=h, days=args.days, replications=args.arl_replications, seed=args.seed
            )
            for h in sorted({5.0, cusum_h})
        ]
        if args.arl_replications > 1
        else []
    )
    command = "python -m tsmetrics.check_simulation " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    wr_exact_se = None
    if isinstance(design, PoissonDesign):
        wr_design = pps_design(population, WR_SIZE_FLOOR, n_draws)
        wr_exact_se = np.sqrt(design_variance(population, wr_design))
    report = Report(
        command=command.strip(),
        seed=args.seed,
        workers=args.workers,
        runtime_seconds=time.perf_counter() - started,
        n_interactions=args.n_interactions,
        population=population,
        config=config,
        exact_se=np.sqrt(exact_var),
        max_relative_difference=max_diff,
        bias_z=bias_z,
        null=null,
        detection=detection,
        requirements=requirements,
        requirement_spread={c: np.asarray(v) for c, v in spread.items()},
        grid=grid,
        calibrations=calibrations,
        member_se=np.sqrt(member_var[:, :, 0]),
        wr_exact_se=wr_exact_se,
        run_lengths=run_lengths,
        production_run_lengths=production_arl,
        certainty_units=(
            int(np.count_nonzero(design.pi >= 1.0)) if isinstance(design, PoissonDesign) else 0
        ),
    )
    sys.stdout.write(render_markdown(report))
    return 0
