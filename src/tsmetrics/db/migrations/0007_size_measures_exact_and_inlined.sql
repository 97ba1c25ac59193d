-- 0007: faster and order-exact size measures: tsm.calibrated_q inlined, exact sums, work_mem.
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

-- tsm.unit_sizes as in 0004, but every sum over rows is exact (numeric, cast back to float8):
-- a float sum depends on the order rows arrive in, which changes with the plan (parallel
-- workers, fresh statistics), and a re-run of a day must give the same sizes and inclusion
-- probabilities to the last bit (idempotent by data interval).
CREATE OR REPLACE FUNCTION tsm.unit_sizes(p_day date, p_size_measure text, p_size_floor float8)
RETURNS TABLE (unit_id text, impressions bigint, size double precision)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_size_measure = 'max_risk' THEN
        RETURN QUERY
        SELECT u.unit_id, u.impressions, u.impressions * (p_size_floor + r.max_risk)
        FROM tsm.units AS u
        JOIN (
            SELECT ur.unit_id, max(ur.risk) AS max_risk
            FROM tsm.unit_risk AS ur
            WHERE ur.event_date = p_day
            GROUP BY ur.unit_id
        ) AS r ON r.unit_id = u.unit_id
        WHERE u.event_date = p_day AND u.impressions > 0
            AND u.impressions * (p_size_floor + r.max_risk) > 0;
    ELSIF p_size_measure = 'sqrt_calibrated' THEN
        IF EXISTS (
            SELECT 1 FROM (SELECT DISTINCT ur.policy FROM tsm.unit_risk AS ur
                           WHERE ur.event_date = p_day) AS p
            WHERE NOT EXISTS (SELECT 1 FROM tsm.score_calibrations AS c
                              WHERE c.event_date = p_day AND c.policy = p.policy)
        ) THEN
            RAISE EXCEPTION 'unit_sizes: no score calibration for % for every policy', p_day;
        END IF;
        RETURN QUERY
        WITH q AS (
            SELECT ur.unit_id, ur.policy, u.impressions, ur.risk_imputed, c.eps,
                tsm.calibrated_q(ur.risk, c.method, c.eps, c.a, c.b, c.thresholds, c.q_values) AS q
            FROM tsm.unit_risk AS ur
            JOIN tsm.units AS u ON u.event_date = ur.event_date AND u.unit_id = ur.unit_id
            JOIN tsm.score_calibrations AS c ON c.event_date = ur.event_date AND c.policy = ur.policy
            WHERE ur.event_date = p_day AND u.impressions > 0
        ),
        fill AS (
            SELECT q.policy,
                (sum(q.impressions * q.q::numeric) FILTER (WHERE NOT q.risk_imputed)
                    / nullif(sum(q.impressions) FILTER (WHERE NOT q.risk_imputed), 0)
                )::double precision AS q_fill
            FROM q
            GROUP BY q.policy
        ),
        filled AS (
            SELECT q.unit_id, q.policy, q.impressions,
                CASE WHEN q.risk_imputed THEN coalesce(f.q_fill, q.eps) ELSE q.q END AS q
            FROM q
            JOIN fill AS f ON f.policy = q.policy
        ),
        pbar AS (
            SELECT filled.policy,
                (sum(filled.impressions * filled.q::numeric) / sum(filled.impressions)
                )::double precision AS p
            FROM filled
            GROUP BY filled.policy
        )
        SELECT f.unit_id, max(f.impressions),
            max(f.impressions) * sqrt(
                sum((greatest(f.q, p_size_floor * b.p) / (b.p * b.p))::numeric)::double precision)
        FROM filled AS f
        JOIN pbar AS b ON b.policy = f.policy
        GROUP BY f.unit_id;
    ELSE
        RAISE EXCEPTION 'unit_sizes: unknown size measure %', p_size_measure;
    END IF;
END
$$;

-- The size measures hash-aggregate and sort a day's (unit, policy) rows: with the server's
-- default work_mem (4MB) they spill to disk several times over. 256MB for the function's own
-- execution only (the setting is restored when it returns).
ALTER FUNCTION tsm.unit_sizes(date, text, double precision) SET work_mem = '256MB';

-- Fresh planner statistics for one day's partition of a day-partitioned table. build_units calls
-- it for the units and unit_risk partitions it has just filled: without statistics the planner
-- assumes a few hundred rows and picks nested loops over millions (BENCHMARKS.md, "analyze").
CREATE OR REPLACE FUNCTION tsm.analyze_day(parent text, day date) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ANALYZE tsm.%I', parent || '_' || to_char(day, 'YYYYMMDD'));
END;
$$;
