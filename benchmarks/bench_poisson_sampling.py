"""Benchmark: the default design's Poisson PPS selection inside Postgres over one day of units.

    # quick mode (about a minute): the migrations as they are
    .venv/bin/python benchmarks/bench_poisson_sampling.py --units 100000
    # 10M units: as loaded, then as the DAG runs it (build_units ANALYZEs the day), plus plans
    .venv/bin/python benchmarks/bench_poisson_sampling.py --variants as_loaded,analyze --explain
    # what each change buys, one after the other (cumulative)
    .venv/bin/python benchmarks/bench_poisson_sampling.py --units 1000000 \
        --variants as_loaded,analyze,work_mem,no_nestloop
    # what migration 0007's inlined tsm.calibrated_q bought (analyze, then analyze + 0004's body)
    .venv/bin/python benchmarks/bench_poisson_sampling.py --units 1000000 --variants analyze,q_0004

Uses $TSMETRICS_BENCH_SERVER_URL (default: the local Postgres at 127.0.0.1:5432), creates a
throwaway database, applies the migrations (``tsmetrics.db.migrate.upgrade``) and drops it at the
end. Everything day-sized happens in SQL.

Data (one day, ``--units`` N, default 10,000,000; ``generate_series`` after ``setseed``, no
Python loops):

* ``tsm.units``: ids ``YYYYMMDD-00000001``..., surfaces 40/30/20/10 %, Pareto-tailed
  impressions ``ceil(5 exp(E / 1.3))`` with ``E = -ln(1 - random())`` ~ Exp(1) (Pareto
  x_m = 5, alpha = 1.3: a few units carry a large share of the day).
* ``tsm.unit_risk``: 4 policies, risk = logistic(mu_p + 1.5 z), z standard normal by
  Box-Muller (mean risk about 2 % .. 0.2 %); 5 % of (unit, policy) imputed (flag set, risk =
  the constant logistic(mu_p), as build_units writes a constant fill).
* ``tsm.score_calibrations``: Platt for three policies, identity for one (both branches of
  ``tsm.calibrated_q``), rows built from ``tsmetrics.calibration.Calibration``.

Timed, each statement on its own (wall clock, rows, temp bytes written by the server --
``pg_stat_database.temp_bytes`` delta -- and the largest temp file, from ``log_temp_files``):

* ``tsm.unit_sizes(day, 'max_risk', 0.02)`` and ``tsm.unit_sizes(day, 'sqrt_calibrated', 0.03)``,
  streamed to the client by binary COPY as (unit number, size): 26 bytes a row, about 1 % of
  the time; the sqrt_calibrated sizes feed the checks;
* ``tsm.poisson_pps_sample(day, 'sqrt_calibrated', 0.03, expected_n = 2000, seed)``;
* ``include/sql/sample_poisson_design.sql``, split by sqlparse and run in one transaction as
  the DAG's ``draw_sample`` does (one ``tsm.unit_sizes`` pass since migration 0011: the
  recorded ``total_size`` comes from the sampling function; before it, the design's row summed
  the sizes again).

*Variants* (``--variants``, comma-separated, applied cumulatively in the order given; ``+``
joins changes into one variant) show what a maintenance step or session setting buys without
changing the result:

* ``as_loaded``: right after the load, no ANALYZE (autovacuum is disabled on the day's
  partitions so the state cannot change under the benchmark), the server's ``work_mem``
  (``tsm.unit_sizes`` runs with its own ``work_mem = 256MB``, migration 0008);
* ``analyze``: ``ANALYZE`` of the day's partitions and ``tsm.score_calibrations`` -- the state
  the DAG samples in, since ``build_units.sql`` ends with ``tsm.analyze_day``;
* ``work_mem``: ``SET work_mem = '256MB'`` for the session (the window sorts of
  ``tsm.poisson_pps_sample`` run outside ``tsm.unit_sizes``);
* ``no_nestloop``: ``SET enable_nestloop = off`` (the planner joins 4N unit_risk rows to
  ``tsm.units`` by N index probes otherwise);
* ``q_0004``: ``tsm.calibrated_q`` put back *in the scratch database only* to migration 0004's
  body, whose ``FROM`` subquery the planner cannot inline (one SQL-function call per unit and
  policy); migration 0007 replaced it by the same formula as one expression.

Checks (the run stops with AssertionError if one fails): ``sum pi_i`` of Python's
``poisson_pps_inclusion`` on the SQL sizes equals SQL's ``expected_size`` (= expected_n); the
realised size is within 4 SD of it, ``SD = sqrt(sum pi (1 - pi))``; SQL's ``pi_i`` of the
selected units equal Python's; membership is exactly ``tsm.hash_uniform < pi`` (recomputed by
``sampling.hash_uniforms``) for the selected units and 20,000 random others; the design SQL
(a second, independent run of the selection) records exactly the units and ``pi`` of the
sample query; every variant gives the same sizes and units as the first. ``--explain`` prints
EXPLAIN (ANALYZE, BUFFERS) summary lines of the sample query (plan nodes with >= 5 % of the
time, sorts, spills) in the last variant, and via ``auto_explain`` the plans of the statements
nested inside ``tsm.unit_sizes``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import struct
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import sqlparse
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from tsmetrics.calibration import Calibration, IdentityParams, PlattParams
from tsmetrics.db.migrate import upgrade
from tsmetrics.sampling import hash_uniforms, poisson_pps_inclusion

PROJECT_DIR = Path(__file__).resolve().parent.parent
DESIGN_SQL = PROJECT_DIR / "include" / "sql" / "sample_poisson_design.sql"
DAY = date(2026, 6, 1)
SIZE_MEASURE = "sqrt_calibrated"
SQRT_FLOOR = 0.03  # relative floor phi (config sampling.size_floor)
MAX_RISK_FLOOR = 0.02  # absolute floor of the walking skeleton's max_risk sizes
DESIGN_ID = "bench_poisson"
IMPUTED_SHARE = 0.05
N_CHECK_OTHERS = 20_000

#: policy -> (mu of the logit-normal risk, calibration). Platt a/b shift and stretch log-odds.
POLICIES: dict[str, tuple[float, Calibration]] = {
    "adult": (-4.5, Calibration(PlattParams(a=-0.3, b=0.9), policy="adult")),
    "harassment": (-5.3, Calibration(PlattParams(a=-0.6, b=1.1), policy="harassment")),
    "self_harm": (-6.6, Calibration(PlattParams(a=0.2, b=1.0), policy="self_harm")),
    "misinformation": (-7.2, Calibration(IdentityParams(), policy="misinformation")),
}
RISK_SD = 1.5
VARIANTS = ("as_loaded", "analyze", "work_mem", "no_nestloop", "q_0004")
MEASURES = ("max_risk", "sqrt_calibrated")
FloatArray = npt.NDArray[np.float64]

# 0004's tsm.calibrated_q (a FROM subquery: not inlinable, one SQL-function call per unit and
# policy), restored in the scratch database only to show what migration 0007's inlined body buys.
CALIBRATED_Q_0004 = """
CREATE OR REPLACE FUNCTION tsm.calibrated_q(
    score double precision, method text, eps double precision, a double precision,
    b double precision, thresholds double precision[], q_values double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN score IS NULL THEN NULL
        WHEN method = 'identity' THEN c.s
        WHEN method = 'isotonic' THEN q_values[greatest(width_bucket(score, thresholds), 1)]
        WHEN method = 'platt' THEN 1::float8 / (1::float8 + exp(-(least(greatest(
            a + b * ln(c.s / (1::float8 - c.s)), -ln((1::float8 - eps) / eps)),
            ln((1::float8 - eps) / eps)))))
    END
    FROM (SELECT least(greatest(score, eps), 1::float8 - eps) AS s) AS c
$$
"""


# --------------------------------------------------------------------------------------------
# Scratch database and data
# --------------------------------------------------------------------------------------------


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A fresh, migrated database (dropped on exit)."""
    name = f"tsm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def partition(table: str) -> str:
    return f"tsm.{table}_{DAY:%Y%m%d}"


UNITS_SQL = """
INSERT INTO tsm.units (event_date, unit_id, surface, impressions, n_components)
SELECT %(day)s::date, %(prefix)s || lpad(g::text, %(width)s, '0'),
    CASE WHEN us < 0.4 THEN 'search' WHEN us < 0.7 THEN 'home_feed'
         WHEN us < 0.9 THEN 'related_pins' ELSE 'assistant' END,
    ceil(5.0 * exp(-ln(1.0 - ux) / 1.3))::bigint,
    1 + floor(8.0 * uc)::int
FROM (
    SELECT g, random() AS us, random() AS ux, random() AS uc
    FROM generate_series(1, %(n)s::bigint) AS g
    OFFSET 0  -- fence: each random() once per row
) AS r
"""

RISK_SQL = """
INSERT INTO tsm.unit_risk (event_date, unit_id, policy, risk, risk_imputed)
SELECT event_date, unit_id, policy,
    CASE WHEN ui < %(imputed)s THEN 1.0 / (1.0 + exp(-mu))
         ELSE 1.0 / (1.0 + exp(-(mu + %(sd)s * sqrt(-2.0 * ln(1.0 - u1)) * cos(2.0 * pi() * u2))))
    END,
    ui < %(imputed)s
FROM (
    SELECT u.event_date, u.unit_id, p.policy, p.mu, random() AS u1, random() AS u2,
        random() AS ui
    FROM tsm.units AS u
    CROSS JOIN unnest(%(policies)s::text[], %(mus)s::float8[]) WITH ORDINALITY AS p(policy, mu, k)
    WHERE u.event_date = %(day)s::date
    ORDER BY u.unit_id, p.k  -- index-friendly insertion order
    OFFSET 0
) AS r
"""


def load_day(conn: psycopg.Connection, n_units: int, seed: float) -> dict[str, float]:
    """Generate the day in SQL; returns seconds per step."""
    timings = {}
    conn.execute("SELECT tsm.ensure_day_partitions(%s::date)", (DAY,))
    for table in ("units", "unit_risk"):
        conn.execute(f"ALTER TABLE {partition(table)} SET (autovacuum_enabled = false)")
    conn.execute("SET synchronous_commit = off")
    conn.execute("SELECT setseed(%s)", (seed,))
    started = time.perf_counter()
    conn.execute(
        UNITS_SQL,
        {"day": DAY, "prefix": f"{DAY:%Y%m%d}-", "width": id_width(n_units), "n": n_units},
    )
    timings["generate tsm.units"] = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute(
        RISK_SQL,
        {
            "day": DAY,
            "imputed": IMPUTED_SHARE,
            "sd": RISK_SD,
            "policies": list(POLICIES),
            "mus": [mu for mu, _ in POLICIES.values()],
        },
    )
    timings["generate tsm.unit_risk"] = time.perf_counter() - started
    conn.execute("RESET synchronous_commit")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tsm.score_calibrations (event_date, policy, version, method, eps, a, b, "
            "calibration) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    DAY,
                    policy,
                    cal.version,
                    cal.method,
                    cal.eps,
                    getattr(cal.params, "a", None),
                    getattr(cal.params, "b", None),
                    Jsonb(cal.to_dict()),
                )
                for policy, (_, cal) in POLICIES.items()
            ],
        )
    return timings


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    seconds: float
    rows: int
    temp_bytes: int
    largest_temp_file: int


@dataclass
class Session:
    """A benchmark connection that collects the server's LOG notices (temp files, plans)."""

    conn: psycopg.Connection
    notices: list[str] = field(default_factory=list)

    def on_notice(self, diag: psycopg.errors.Diagnostic) -> None:
        self.notices.append(diag.message_primary or "")

    def temp_bytes(self) -> int:
        # Flush this backend's pending statistics, then read a fresh snapshot.
        self.conn.execute("SELECT pg_stat_force_next_flush()")
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        return int(row[0])

    def timed(self, run: Any) -> tuple[Step, Any]:
        before = self.temp_bytes()
        self.notices.clear()
        started = time.perf_counter()
        result, rows = run()
        seconds = time.perf_counter() - started
        files = [int(m.group(1)) for n in self.notices if (m := TEMP_FILE_RE.search(n))]
        print(f"  ... {seconds:.1f} s, {rows:,} rows", flush=True)  # progress; the table follows
        return Step(seconds, rows, self.temp_bytes() - before, max(files, default=0)), result


TEMP_FILE_RE = re.compile(r'temporary file: path ".*?", size (\d+)')


def connect(url: str) -> Session:
    conn = psycopg.connect(url, autocommit=True)
    session = Session(conn)
    conn.add_notice_handler(session.on_notice)
    conn.execute("SET log_temp_files = 0")  # one LOG line per temp file, with its size
    conn.execute("SET client_min_messages = log")
    return session


def design_statements() -> list[str]:
    """sample_poisson_design.sql split as the DAG's SQL hook does (sqlparse)."""
    text = DESIGN_SQL.read_text()
    return [
        s.strip().rstrip(";")
        for s in sqlparse.split(text)
        if sqlparse.format(s, strip_comments=True).strip()
    ]


def unit_id(no: int, n_units: int) -> str:
    """The generated id of unit number ``no`` (UNITS_SQL)."""
    return f"{DAY:%Y%m%d}-{no:0{id_width(n_units)}d}"


def id_width(n_units: int) -> int:
    return max(8, len(str(n_units)))


def copy_sizes(
    conn: psycopg.Connection, query: sql.Composable
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """(unit number, size) rows streamed by binary COPY straight into numpy, by unit number."""
    buf = bytearray()
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    with conn.cursor().copy(statement) as copy:
        for chunk in copy:
            buf += chunk
    header = 19 + struct.unpack(">I", buf[15:19])[0]
    row = np.dtype(
        [("nfields", ">i2"), ("len0", ">i4"), ("no", ">i8"), ("len1", ">i4"), ("size", ">f8")]
    )
    rec = np.frombuffer(
        bytes(buf), dtype=row, count=(len(buf) - header - 2) // row.itemsize, offset=header
    )
    if not (np.all(rec["nfields"] == 2) and np.all(rec["len1"] == 8)):
        raise AssertionError("binary COPY: unexpected row layout (NULL sizes?)")
    order = np.argsort(rec["no"], kind="stable")
    return rec["no"][order].astype(np.int64), rec["size"][order].astype(np.float64)


def run_variant(s: Session, expected_n: float, seed: int) -> tuple[dict[str, Step], dict[str, Any]]:
    """Time the four statements once each; return timings, sizes and selections for checking."""
    steps: dict[str, Step] = {}
    out: dict[str, Any] = {}
    for measure, floor in (("max_risk", MAX_RISK_FLOOR), ("sqrt_calibrated", SQRT_FLOOR)):
        query = sql.SQL(
            "SELECT split_part(unit_id, '-', 2)::bigint, size FROM tsm.unit_sizes({}, {}, {})"
        ).format(sql.Literal(DAY), sql.Literal(measure), sql.Literal(floor))

        def sizes(query: sql.Composable = query) -> tuple[Any, int]:
            got = copy_sizes(s.conn, query)
            return got, len(got[0])

        steps[f"tsm.unit_sizes '{measure}'"], out[measure] = s.timed(sizes)

    def sample() -> tuple[Any, int]:
        rows = s.conn.execute(
            "SELECT unit_id, size, inclusion_prob, expected_size "
            "FROM tsm.poisson_pps_sample(%s, %s, %s, %s, %s)",
            (DAY, SIZE_MEASURE, SQRT_FLOOR, expected_n, seed),
        ).fetchall()
        return rows, len(rows)

    steps[f"tsm.poisson_pps_sample n={expected_n:,.0f}"], out["sample"] = s.timed(sample)

    statements = design_statements()
    params = {
        "day": DAY.isoformat(),
        "design_id": DESIGN_ID,
        "seed": seed,
        "expected_n": expected_n,
        "size_measure": SIZE_MEASURE,
        "size_floor": SQRT_FLOOR,
        "design_policy": None,  # the shared multi-policy sample
        "config_version": 1,
    }

    def design() -> tuple[Any, int]:
        with s.conn.transaction():
            for statement in statements:
                s.conn.execute(statement, params)
        rows = s.conn.execute(
            "SELECT unit_id, selection_prob FROM tsm.samples "
            "WHERE event_date = %s AND design_id = %s ORDER BY unit_id",
            (DAY, DESIGN_ID),
        ).fetchall()
        return rows, len(rows)

    steps["sample_poisson_design.sql"], out["design"] = s.timed(design)
    return steps, out


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_selection(
    sample: list[tuple[str, float, float, float]],
    unit_no: npt.NDArray[np.int64],
    sizes: FloatArray,
    n_units: int,
    expected_n: float,
    seed: int,
) -> dict[str, float]:
    """The SQL sample against the Python reference on the SQL sizes; raises on a mismatch."""
    pi = poisson_pps_inclusion(sizes, expected_n)
    expected = float(pi.sum())
    sd = math.sqrt(float(np.sum(pi * (1.0 - pi))))
    sql_expected = sample[0][3]
    if not math.isclose(sql_expected, expected, rel_tol=1e-9):
        raise AssertionError(f"expected size: SQL {sql_expected!r}, Python {expected!r}")
    realised = len(sample)
    if abs(realised - expected) > 4.0 * sd:
        raise AssertionError(f"realised size {realised} not within 4 SD ({sd:.1f}) of {expected}")
    # pi of the selected units: SQL against poisson_pps_inclusion on the same sizes.
    numbers = np.array([int(r[0].rsplit("-", 1)[1]) for r in sample], dtype=np.int64)
    chosen = np.searchsorted(unit_no, numbers)
    if not np.array_equal(unit_no[chosen], numbers):
        raise AssertionError("selected units missing from tsm.unit_sizes")
    np.testing.assert_allclose([r[2] for r in sample], pi[chosen], rtol=1e-9)
    # Membership u < pi (tsm.hash_uniform recomputed by sampling.hash_uniforms) for the selected
    # units and 20,000 others drawn at random: selected exactly when u < pi.
    rng = np.random.default_rng(seed)
    others = rng.choice(len(sizes), size=min(N_CHECK_OTHERS, len(sizes)), replace=False)
    check = np.unique(np.concatenate([chosen, others]))
    ids = [unit_id(int(unit_no[k]), n_units) for k in check]
    u = hash_uniforms(ids, DAY, seed)
    is_selected = np.isin(check, chosen)
    decided = np.abs(u - pi[check]) > 1e-12  # a u within rounding of pi could go either way
    if not np.array_equal((u < pi[check])[decided], is_selected[decided]):
        raise AssertionError("hash selection: SQL and Python disagree on u < pi")
    return {
        "units with size > 0": float(len(sizes)),
        "expected size (sum pi, Python on the SQL sizes)": expected,
        "SD of the realised size": sd,
        "realised size": float(realised),
        "certainty units": float(np.count_nonzero(pi >= 1.0)),
        "units checked for u < pi (selected + random)": float(len(ids)),
        "of them undecided within 1e-12": float(np.count_nonzero(~decided)),
    }


def same_selection(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """Same units, and pi equal up to float summation order (parallel plans sum differently)."""
    return [u for u, _ in a] == [u for u, _ in b] and all(
        math.isclose(p, q, rel_tol=1e-9) for (_, p), (_, q) in zip(a, b, strict=True)
    )


# --------------------------------------------------------------------------------------------
# EXPLAIN
# --------------------------------------------------------------------------------------------

PLAN_KEEP = re.compile(
    r"Sort Method|Execution Time|Planning Time|temp read|temp written|Batches|Workers|"
    r"Hash Cond|Rows Removed"
)
ACTUAL_TIME = re.compile(r"actual time=[\d.]+\.\.([\d.]+) rows=\d+ loops=(\d+)")


def summarize_plan(lines: list[str], total_ms: float, share: float = 0.05) -> list[str]:
    """Plan nodes taking at least ``share`` of the total time, plus sort/hash/temp lines."""
    keep = []
    for line in lines:
        m = ACTUAL_TIME.search(line)
        if m and float(m.group(1)) * int(m.group(2)) >= share * total_ms:
            keep.append(line)
        elif PLAN_KEEP.search(line):
            keep.append(line)
    return keep


def explain(s: Session, expected_n: float, seed: int) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the sample query, and auto_explain's nested plans."""
    s.conn.execute("LOAD 'auto_explain'")
    for setting, value in (
        ("auto_explain.log_min_duration", "50ms"),
        ("auto_explain.log_analyze", "on"),
        ("auto_explain.log_buffers", "on"),
        ("auto_explain.log_timing", "on"),
        ("auto_explain.log_nested_statements", "on"),
    ):
        s.conn.execute(f"SET {setting} = '{value}'")
    s.notices.clear()
    plan = [
        r[0]
        for r in s.conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM tsm.poisson_pps_sample(%s, %s, %s, %s, %s)",
            (DAY, SIZE_MEASURE, SQRT_FLOOR, expected_n, seed),
        ).fetchall()
    ]
    s.conn.execute("SET auto_explain.log_min_duration = -1")
    total = float(re.findall(r"Execution Time: ([\d.]+)", "\n".join(plan))[-1])
    out = ["-- EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM tsm.poisson_pps_sample(...)"]
    out += summarize_plan(plan, total)
    for notice in s.notices:
        if "Query Text:" not in notice or "EXPLAIN" in notice:
            continue
        m = re.search(r"duration: ([\d.]+) ms", notice)
        ms = float(m.group(1)) if m else total
        lines = notice.splitlines()
        text = next((ln for ln in lines if "Query Text:" in ln), "")
        out.append(f"-- auto_explain (nested), {ms:,.0f} ms: {text.strip()[:100]}")
        out += summarize_plan(lines, ms)
    return out


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def apply_variant(s: Session, variant: str) -> None:
    """Apply a variant's changes (``+``-joined) on top of the session's current state."""
    for change in variant.split("+"):
        if change == "analyze":
            for table in (partition("units"), partition("unit_risk"), "tsm.score_calibrations"):
                s.conn.execute(f"ANALYZE {table}")
        elif change == "work_mem":
            s.conn.execute("SET work_mem = '256MB'")
        elif change == "no_nestloop":
            s.conn.execute("SET enable_nestloop = off")
        elif change == "q_0004":
            s.conn.execute(CALIBRATED_Q_0004)
        # plpgsql caches the plans of tsm.unit_sizes per session: plan afresh under the change
        s.conn.execute("DISCARD PLANS")


def server_facts(conn: psycopg.Connection) -> dict[str, str]:
    facts = {"nproc": str(os.cpu_count())}
    with open("/proc/meminfo") as meminfo:
        kb = int(meminfo.readline().split()[1])
    facts["RAM"] = f"{kb / 1024**2:.0f} GB"
    for name in ("server_version", "work_mem", "shared_buffers", "max_parallel_workers_per_gather"):
        row = conn.execute(f"SHOW {name}").fetchone()
        facts[name] = str(row[0]) if row else "?"
    return facts


def fmt_bytes(n: int) -> str:
    return "0" if n == 0 else f"{n / 1024**2:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000_000)
    parser.add_argument("--expected-n", type=float, default=2000.0)
    parser.add_argument("--seed", type=int, default=20261123, help="design seed (hash uniforms)")
    parser.add_argument("--data-seed", type=float, default=0.42, help="setseed() of the data")
    parser.add_argument(
        "--variants",
        default="as_loaded",
        help=f"comma-separated, cumulative; join changes with + to apply them together: "
        f"{','.join(VARIANTS)}",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="EXPLAIN ANALYZE the sample query in the first and last variant (one more run each)",
    )
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if not variants or any(c not in VARIANTS for v in variants for c in v.split("+")):
        parser.error(f"--variants: expected names from {VARIANTS}, got {args.variants!r}")
    server = os.environ.get(
        "TSMETRICS_BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    wall = time.perf_counter()
    with scratch_database(server) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            facts = server_facts(conn)
            print(f"machine: {facts}")
            load = load_day(conn, args.units, args.data_seed)
            size_row = conn.execute(
                "SELECT pg_size_pretty(pg_total_relation_size(%s)), "
                "pg_size_pretty(pg_total_relation_size(%s))",
                (partition("units"), partition("unit_risk")),
            ).fetchone()
            assert size_row is not None
        print(f"units: {args.units:,}; unit_risk rows: {len(POLICIES) * args.units:,}")
        print(f"on disk (with indexes): units {size_row[0]}, unit_risk {size_row[1]}")
        for name, seconds in load.items():
            print(f"{name}: {seconds:.1f} s")

        results: dict[str, dict[str, Step]] = {}
        reference: dict[str, Any] = {}
        s = connect(url)
        with s.conn:
            for k, variant in enumerate(variants):
                apply_variant(s, variant)
                steps, out = run_variant(s, args.expected_n, args.seed)
                results[variant] = steps
                print(
                    f"[{variant}] "
                    + ", ".join(f"{n} {st.seconds:.1f} s" for n, st in steps.items())
                )
                chosen = [(r[0], r[2]) for r in out["sample"]]
                # The design SQL draws the sample again (its own tsm.poisson_pps_sample call):
                # a second run must select, and record, exactly the same units and pi.
                if not same_selection(out["design"], chosen):
                    raise AssertionError(f"{variant}: the design SQL recorded other units")
                print(f"check [{variant}]: a second run (the design SQL) selects the same units")
                if k == 0:
                    unit_no, sizes = out["sqrt_calibrated"]
                    checks = check_selection(
                        out["sample"], unit_no, sizes, args.units, args.expected_n, args.seed
                    )
                    for name, value in checks.items():
                        print(f"check: {name} = {value:,.1f}")
                    reference = {"sample": chosen, **{m: out[m] for m in MEASURES}}
                    continue
                if not same_selection(chosen, reference["sample"]):
                    raise AssertionError(f"{variant}: selected other units than {variants[0]}")
                for measure in MEASURES:
                    (no_a, size_a), (no_b, size_b) = out[measure], reference[measure]
                    if not np.array_equal(no_a, no_b) or not np.allclose(
                        size_a, size_b, rtol=1e-9, atol=0.0
                    ):
                        raise AssertionError(f"{variant}: other {measure} sizes")
                print(f"check [{variant}]: the same sizes and units as {variants[0]}")
                if args.explain and k == len(variants) - 1:
                    print(f"\n[{variant}] plans")
                    print("\n".join(explain(s, args.expected_n, args.seed)))
            if args.explain and len(variants) == 1:
                print(f"\n[{variants[0]}] plans")
                print("\n".join(explain(s, args.expected_n, args.seed)))

    print(f"\nwhole benchmark (wall): {time.perf_counter() - wall:.0f} s\n")
    labels = list(next(iter(results.values())))
    print(f"{args.units:,} units; seconds (temp written by the server, largest temp file)\n")
    print("| step | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for label in labels:
        cells = []
        for variant in results:
            st = results[variant][label]
            temp = (
                f" ({fmt_bytes(st.temp_bytes)}, {fmt_bytes(st.largest_temp_file)})"
                if st.temp_bytes
                else ""
            )
            cells.append(f"{st.seconds:.1f}{temp}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    rows = {label: results[variants[0]][label].rows for label in labels}
    print("\nrows: " + ", ".join(f"{k}: {v:,}" for k, v in rows.items()))


if __name__ == "__main__":
    main()
