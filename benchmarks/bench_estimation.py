"""Benchmark: estimation over 1M labelled units (Horvitz-Thompson and stratified), and reading them.

    .venv/bin/python benchmarks/bench_estimation.py                  # 1,000,000 units, 5 repeats
    .venv/bin/python benchmarks/bench_estimation.py --units 100000 --no-db

What is timed (``time.perf_counter``, each block ``--repeats`` times, median and min reported):

* ``horvitz_thompson_prevalence`` on a labelled Poisson PPS sample, for 4 policies x (the whole
  day + 10 domains) = 44 estimates, as ``tsmetrics.measure.estimate_day`` computes them: per
  domain ``y = x`` for the violating units of the domain and 0 elsewhere, the whole sample's
  ``pi``, the domain's known impressions ``X_d``; ``ci_method="wilson_kg"``, and
  ``"gamma_tcz"`` with ``event_weight = mean_uncertain_weight(x_d, pi_d, X_d)`` (included in the
  time).
* ``stratified_prevalence`` on a stratified SRS of the same size (10 risk strata, population
  50x the sample), the same 44 estimates with ``domain=``.
* With a database (default; ``--no-db`` skips it): reading the 1M sample rows (8 columns:
  ids, impressions, pi, domain, 4 verdicts) from Postgres into numpy three ways -- ``fetchall``
  then ``np.array`` (what ``estimate_day`` does today, row tuples), psycopg binary ``COPY`` with
  ``read_row``, and binary ``COPY`` parsed in one go by ``np.frombuffer`` with a structured
  big-endian dtype (fixed-width columns, no NULLs). The three must give identical arrays. For
  scale, the server's share alone: the same COPY written by the server to ``/dev/null``.

The data are synthetic but shaped like a day's sample: Pareto-tailed impressions, logit-normal
risks per policy, violations drawn from them (0.1%-2% of units), ``pi_i = min(1, c x_i
sqrt(q_i))`` with 5% certainty units. Checks: the 10 domains' estimated totals add up to
the whole day's (``sum_d P_d X_d = P X``: the domain estimator is additive), and both interval
methods give the same point estimate and standard error.

Uses $TSMETRICS_BENCH_SERVER_URL (default: the local Postgres at 127.0.0.1:5432) and a
throwaway database.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.conninfo import make_conninfo

from tsmetrics.estimation import PrevalenceEstimate
from tsmetrics.gamma_interval import mean_uncertain_weight
from tsmetrics.sampling import horvitz_thompson_prevalence
from tsmetrics.stratified import stratified_prevalence

POLICIES = {"adult": -4.5, "harassment": -5.3, "self_harm": -6.6, "misinformation": -7.2}
N_DOMAINS = 10
N_STRATA = 10
POPULATION_FACTOR = 50  # stratified design: N_h = 50 n_h
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LabelledSample:
    """One day's labelled sample: per unit impressions, pi, domain, stratum, verdicts."""

    impressions: FloatArray
    inclusion_prob: FloatArray
    domain: npt.NDArray[np.int64]
    stratum: npt.NDArray[np.int64]
    violating: npt.NDArray[np.bool_]  # shape (n, policies)
    total: float
    domain_totals: FloatArray


def make_sample(n: int, seed: int) -> LabelledSample:
    rng = np.random.default_rng(seed)
    x = np.ceil(5.0 * (rng.pareto(1.3, n) + 1.0))
    mu = np.array(list(POLICIES.values()))
    q = 1.0 / (1.0 + np.exp(-(mu[None, :] + 1.5 * rng.standard_normal((n, len(mu))))))
    violating = rng.random((n, len(mu))) < q
    size = x * np.sqrt(q.sum(axis=1))
    c = 1.0 / float(np.quantile(size, 0.95))  # 5% of units reach pi = 1
    pi = np.minimum(1.0, c * size)
    domain = rng.integers(0, N_DOMAINS, n)
    # Risk strata: deciles of the summed risk.
    stratum = np.searchsorted(
        np.quantile(q.sum(axis=1), np.linspace(0, 1, N_STRATA + 1)[1:-1]), q.sum(axis=1)
    )
    weights = x / pi
    total = float(weights.sum())
    domain_totals = np.bincount(domain, weights=weights, minlength=N_DOMAINS).astype(np.float64)
    return LabelledSample(x, pi, domain, stratum.astype(np.int64), violating, total, domain_totals)


def domains(sample: LabelledSample) -> Iterator[tuple[str, npt.NDArray[np.bool_], float]]:
    yield "all", np.ones(len(sample.impressions), dtype=bool), sample.total
    for d in range(N_DOMAINS):
        yield f"d{d}", sample.domain == d, float(sample.domain_totals[d])


def ht_all(sample: LabelledSample, ci_method: str) -> dict[tuple[str, str], PrevalenceEstimate]:
    """The 44 Horvitz-Thompson estimates, as estimate_day computes them."""
    out = {}
    x, pi = sample.impressions, sample.inclusion_prob
    for j, policy in enumerate(POLICIES):
        v = sample.violating[:, j]
        for name, in_domain, total in domains(sample):
            weight = None
            if ci_method == "gamma_tcz":
                weight = mean_uncertain_weight(x[in_domain], pi[in_domain], total)
            out[(policy, name)] = horvitz_thompson_prevalence(
                np.where(v & in_domain, x, 0.0), pi, total, ci_method=ci_method, event_weight=weight
            )
    return out


def stratified_all(sample: LabelledSample) -> dict[tuple[str, str], PrevalenceEstimate]:
    """The 44 stratified estimates (stratified SRS, N_h = POPULATION_FACTOR n_h)."""
    stratum_sizes = POPULATION_FACTOR * np.bincount(sample.stratum, minlength=N_STRATA)
    x = sample.impressions
    # Under stratified SRS every unit weighs N_h / n_h = POPULATION_FACTOR.
    totals = {"all": POPULATION_FACTOR * float(x.sum())}
    totals.update(
        {f"d{d}": POPULATION_FACTOR * float(x[sample.domain == d].sum()) for d in range(N_DOMAINS)}
    )
    out = {}
    for j, policy in enumerate(POLICIES):
        y = np.where(sample.violating[:, j], x, 0.0)
        for name, in_domain, _ in domains(sample):
            out[(policy, name)] = stratified_prevalence(
                y,
                sample.stratum,
                stratum_sizes,
                totals[name],
                domain=None if name == "all" else in_domain,
            )
    return out


def check_estimates(
    sample: LabelledSample,
    wilson: dict[tuple[str, str], PrevalenceEstimate],
    gamma: dict[tuple[str, str], PrevalenceEstimate],
) -> None:
    for key, est in wilson.items():
        other = gamma[key]
        if not (
            math.isclose(est.estimate, other.estimate, rel_tol=1e-12)
            and math.isclose(est.std_error, other.std_error, rel_tol=1e-12)
        ):
            raise AssertionError(f"{key}: wilson_kg and gamma_tcz differ in estimate or SE")
    for policy in POLICIES:
        parts = sum(
            wilson[(policy, f"d{d}")].estimate * sample.domain_totals[d] for d in range(N_DOMAINS)
        )
        whole = wilson[(policy, "all")].estimate * sample.total
        if not math.isclose(parts, whole, rel_tol=1e-9):
            raise AssertionError(f"{policy}: domain totals {parts} do not add up to {whole}")


def repeat(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


# --------------------------------------------------------------------------------------------
# Reading the sample from Postgres
# --------------------------------------------------------------------------------------------

COLUMNS = "draw_no, impressions, selection_prob, domain, v0, v1, v2, v3"
READ_SQL = f"SELECT {COLUMNS} FROM bench_sample ORDER BY draw_no"
#: Binary COPY row of READ_SQL: field count, then (length, value) per column, big-endian.
ROW_DTYPE = np.dtype(
    [("nfields", ">i2")]
    + [
        item
        for name, kind in (
            ("draw_no", ">i4"),
            ("impressions", ">i8"),
            ("selection_prob", ">f8"),
            ("domain", ">i4"),
            ("v0", "?"),
            ("v1", "?"),
            ("v2", "?"),
            ("v3", "?"),
        )
        for item in ((f"{name}_len", ">i4"), (name, kind))
    ]
)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"tsm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load_sample(conn: psycopg.Connection, sample: LabelledSample) -> None:
    conn.execute(
        "CREATE TABLE bench_sample (draw_no int PRIMARY KEY, impressions bigint NOT NULL, "
        "selection_prob float8 NOT NULL, domain int NOT NULL, v0 bool NOT NULL, "
        "v1 bool NOT NULL, v2 bool NOT NULL, v3 bool NOT NULL)"
    )
    n = len(sample.impressions)
    with conn.cursor() as cur, cur.copy(f"COPY bench_sample ({COLUMNS}) FROM STDIN") as copy:
        v = sample.violating
        for i in range(n):
            copy.write_row(
                (
                    i + 1,
                    int(sample.impressions[i]),
                    float(sample.inclusion_prob[i]),
                    int(sample.domain[i]),
                    bool(v[i, 0]),
                    bool(v[i, 1]),
                    bool(v[i, 2]),
                    bool(v[i, 3]),
                )
            )
    conn.execute("VACUUM ANALYZE bench_sample")


Columns = dict[str, npt.NDArray[Any]]


def _columns(rows: list[tuple[Any, ...]] | npt.NDArray[Any]) -> Columns:
    arr = np.array(rows, dtype=object) if isinstance(rows, list) else rows
    return {
        "impressions": arr[:, 1].astype(np.float64),
        "selection_prob": arr[:, 2].astype(np.float64),
        "domain": arr[:, 3].astype(np.int64),
        "violating": arr[:, 4:8].astype(bool),
    }


def read_fetchall(conn: psycopg.Connection) -> Columns:
    return _columns(conn.execute(READ_SQL).fetchall())


def read_copy_rows(conn: psycopg.Connection) -> Columns:
    with conn.cursor() as cur, cur.copy(f"COPY ({READ_SQL}) TO STDOUT (FORMAT binary)") as copy:
        copy.set_types(["int4", "int8", "float8", "int4", "bool", "bool", "bool", "bool"])
        rows = list(copy.rows())
    return _columns(rows)


def read_copy_numpy(conn: psycopg.Connection) -> Columns:
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({READ_SQL}) TO STDOUT (FORMAT binary)") as copy:
        for chunk in copy:
            buf += chunk
    header = 19 + struct.unpack(">I", buf[15:19])[0]
    n = (len(buf) - header - 2) // ROW_DTYPE.itemsize
    rec = np.frombuffer(bytes(buf), dtype=ROW_DTYPE, count=n, offset=header)
    if not (np.all(rec["nfields"] == 8) and np.all(rec["impressions_len"] == 8)):
        raise AssertionError("binary COPY: unexpected row layout (NULLs?)")
    return {
        "impressions": rec["impressions"].astype(np.float64),
        "selection_prob": rec["selection_prob"].astype(np.float64),
        "domain": rec["domain"].astype(np.int64),
        "violating": np.column_stack([rec[f"v{k}"] for k in range(4)]),
    }


def server_only(conn: psycopg.Connection, repeats: int) -> list[float]:
    """The server's share of a read: the same binary COPY written to /dev/null by the server
    (needs pg_write_server_files; empty when not allowed)."""
    statement = f"COPY ({READ_SQL}) TO '/dev/null' (FORMAT binary)"
    try:
        times, _ = repeat(lambda: conn.execute(statement), repeats)
    except psycopg.errors.InsufficientPrivilege:
        return []
    return times


# --------------------------------------------------------------------------------------------


def fmt(times: list[float], per: int) -> str:
    med = statistics.median(times)
    return f"{med:.3f} | {min(times):.3f} | {1000 * med / per:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--no-db", action="store_true", help="skip reading from Postgres")
    args = parser.parse_args()
    sample = make_sample(args.units, args.seed)
    n_est = len(POLICIES) * (N_DOMAINS + 1)
    print(
        f"{args.units:,} labelled units; {n_est} estimates per block "
        f"({len(POLICIES)} policies x (all + {N_DOMAINS} domains)); {args.repeats} repeats; "
        f"certainty units {np.mean(sample.inclusion_prob >= 1):.1%}; violating units "
        + ", ".join(f"{p} {m:.2%}" for p, m in zip(POLICIES, sample.violating.mean(0), strict=True))
    )
    rows: list[tuple[str, list[float], int]] = []
    t_wilson, wilson = repeat(lambda: ht_all(sample, "wilson_kg"), args.repeats)
    t_gamma, gamma = repeat(lambda: ht_all(sample, "gamma_tcz"), args.repeats)
    check_estimates(sample, wilson, gamma)
    t_strat, strat = repeat(lambda: stratified_all(sample), args.repeats)
    if not all(math.isfinite(e.estimate) and e.std_error > 0 for e in strat.values()):
        raise AssertionError("stratified: non-finite estimate or zero SE")
    rows += [
        ("horvitz_thompson_prevalence, wilson_kg", t_wilson, n_est),
        ("horvitz_thompson_prevalence, gamma_tcz (+ mean_uncertain_weight)", t_gamma, n_est),
        ("stratified_prevalence, wilson_kg", t_strat, n_est),
    ]
    if not args.no_db:
        server = os.environ.get(
            "TSMETRICS_BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
        with scratch_database(server) as url, psycopg.connect(url, autocommit=True) as conn:
            load_sample(conn, sample)
            t_fetch, by_fetch = repeat(lambda: read_fetchall(conn), args.repeats)
            t_rows, by_rows = repeat(lambda: read_copy_rows(conn), args.repeats)
            t_numpy, by_numpy = repeat(lambda: read_copy_numpy(conn), args.repeats)
            t_server = server_only(conn, args.repeats)
        for got in (by_fetch, by_rows):
            for key, value in by_numpy.items():
                if not np.array_equal(got[key], value):
                    raise AssertionError(f"read paths disagree on {key}")
        if not np.array_equal(by_numpy["selection_prob"], sample.inclusion_prob):
            raise AssertionError("read back other inclusion probabilities than written")
        rows += [
            ("read: fetchall + np.array", t_fetch, 1),
            ("read: binary COPY, psycopg read_row per row", t_rows, 1),
            ("read: binary COPY, np.frombuffer structured dtype", t_numpy, 1),
        ]
        if t_server:
            rows.append(("(server alone: the same COPY to /dev/null)", t_server, 1))
    print("\n| block | median (s) | min (s) | per estimate / per read (ms) |")
    print("|---|---|---|---|")
    for label, times, per in rows:
        print(f"| {label} | {fmt(times, per)} |")


if __name__ == "__main__":
    main()
