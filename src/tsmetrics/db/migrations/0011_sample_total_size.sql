-- 0011: tsm.poisson_pps_sample also returns the day's total size, so the design SQL sizes the
-- day's units once instead of twice.
--
-- sample_poisson_design.sql recorded tsm.sample_designs.total_size with its own
-- sum(size) FROM tsm.unit_sizes(...): a second pass of the size measure over every (unit, policy)
-- row, about 40% of the design step at 10M units (BENCHMARKS.md). The sampling function already
-- holds every unit's size; total_size is its running sum in the fixed (size, unit_id) order, the
-- same on every re-run to the last bit. Same body as 0008 otherwise; the return type changes, so
-- both forms are dropped and recreated.
DROP FUNCTION IF EXISTS tsm.poisson_pps_sample(date, text, float8, float8, bigint);
DROP FUNCTION IF EXISTS tsm.poisson_pps_sample(date, text, float8, float8, bigint, text[]);

CREATE FUNCTION tsm.poisson_pps_sample(
    p_day date, p_size_measure text, p_size_floor float8, p_expected_n float8, p_seed bigint,
    p_policies text[]
) RETURNS TABLE (
    unit_id text, size double precision, inclusion_prob double precision, impressions bigint,
    expected_size double precision, total_size double precision
)
LANGUAGE sql STABLE AS $$
    WITH sized AS (
        SELECT s.unit_id, s.impressions, s.size
        FROM tsm.unit_sizes(p_day, p_size_measure, p_size_floor, p_policies) AS s
    ),
    ranked AS (
        SELECT sized.unit_id, sized.impressions, sized.size,
            row_number() OVER (ORDER BY sized.size DESC, sized.unit_id) AS size_rank,
            sum(sized.size) OVER (ORDER BY sized.size ASC, sized.unit_id DESC
                                  ROWS UNBOUNDED PRECEDING) AS tail_size
        FROM sized
    ),
    certainty AS (
        SELECT min(ranked.size_rank) - 1 AS n_certain
        FROM ranked
        WHERE ranked.size * (p_expected_n - (ranked.size_rank - 1)) < ranked.tail_size
    ),
    scale AS (
        SELECT coalesce(k.n_certain, (SELECT count(*) FROM ranked)) AS n_certain,
            (p_expected_n - k.n_certain) / rk.tail_size AS c
        FROM certainty AS k
        LEFT JOIN ranked AS rk ON rk.size_rank = k.n_certain + 1
    ),
    probs AS (
        SELECT r.unit_id, r.impressions, r.size,
            CASE WHEN r.size_rank <= s.n_certain THEN 1.0::double precision
                 ELSE least(1.0::double precision, r.size * s.c) END AS inclusion_prob
        FROM ranked AS r
        CROSS JOIN scale AS s
    )
    SELECT probs.unit_id, probs.size, probs.inclusion_prob, probs.impressions,
        (SELECT sum(p2.inclusion_prob) FROM probs AS p2),
        (SELECT max(r2.tail_size) FROM ranked AS r2)
    FROM probs
    WHERE tsm.hash_uniform(
            p_seed::text || ':' || to_char(p_day, 'YYYY-MM-DD') || ':' || probs.unit_id
        ) < probs.inclusion_prob
    ORDER BY probs.unit_id
$$;

CREATE FUNCTION tsm.poisson_pps_sample(
    p_day date, p_size_measure text, p_size_floor float8, p_expected_n float8, p_seed bigint
) RETURNS TABLE (
    unit_id text, size double precision, inclusion_prob double precision, impressions bigint,
    expected_size double precision, total_size double precision
)
LANGUAGE sql STABLE AS $$
    SELECT * FROM tsm.poisson_pps_sample(
        p_day, p_size_measure, p_size_floor, p_expected_n, p_seed, NULL::text[])
$$;
