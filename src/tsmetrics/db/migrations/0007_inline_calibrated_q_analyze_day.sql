-- 0007: tsm.calibrated_q inlined, and planner statistics for a freshly built day.
-- (0008 redefines tsm.unit_sizes with exact sums and its own work_mem.)
--
-- 0004's body had a FROM subquery (to clamp the score once), so the planner could not inline it
-- and ran it as a separate SQL-function call per unit and policy: at 1M units that was about
-- half of tsm.unit_sizes('sqrt_calibrated') (BENCHMARKS.md, "what each change buys"). The same
-- formula written as one expression is inlined into the calling query; results are identical
-- (the benchmark checks sizes and selected units against the 0004 body).
CREATE OR REPLACE FUNCTION tsm.calibrated_q(
    score double precision, method text, eps double precision, a double precision,
    b double precision, thresholds double precision[], q_values double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN score IS NULL THEN NULL
        WHEN method = 'identity' THEN least(greatest(score, eps), 1::float8 - eps)
        WHEN method = 'isotonic' THEN q_values[greatest(width_bucket(score, thresholds), 1)]
        WHEN method = 'platt' THEN 1::float8 / (1::float8 + exp(-(least(greatest(
            a + b * ln(least(greatest(score, eps), 1::float8 - eps)
                       / (1::float8 - least(greatest(score, eps), 1::float8 - eps))),
            -ln((1::float8 - eps) / eps)), ln((1::float8 - eps) / eps)))))
    END
$$;

-- Fresh planner statistics for one day's partition of a day-partitioned table. build_units calls
-- it for the units and unit_risk partitions it has just filled: without statistics the planner
-- assumes a few hundred rows and picks nested loops over millions (BENCHMARKS.md, "analyze").
CREATE OR REPLACE FUNCTION tsm.analyze_day(parent text, day date) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ANALYZE tsm.%I', parent || '_' || to_char(day, 'YYYYMMDD'));
END;
$$;
