-- Poisson PPS sample of a day's units, entirely inside the warehouse; returns the selection.
--
-- size_i = impressions_i * (size_floor + max_p risk_ip), over the day's units with impressions
-- (as in sample_pps_wr.sql). Inclusion probabilities pi_i = min(1, c size_i) with
-- sum_i pi_i = expected_n, the iterative capping of certainty units solved exactly in one pass
-- (tsmetrics.sampling.poisson_pps_inclusion): with sizes sorted decreasingly and R_k the sum of
-- the sizes after the k largest, the number k of certainty units is the smallest k with
-- s_(k+1) * (expected_n - k) < R_k, and c = (expected_n - k) / R_k. When expected_n exceeds the
-- number of units every unit is selected with pi_i = 1 and expected_size reports the smaller
-- realised expected sample size sum_i pi_i.
--
-- Unit i is selected iff tsm.hash_uniform(seed || ':' || day || ':' || unit_id) < pi_i
-- (independent deterministic uniforms: reproducible, auditable, and reproduced bit for bit in
-- Python by tsmetrics.sampling.hash_uniforms). Estimate with the Horvitz-Thompson estimator
-- tsmetrics.sampling.horvitz_thompson_prevalence(y_i, pi_i, total impressions).
--
-- Writes nothing. Returns one row per selected unit:
--   unit_id, size, inclusion_prob, impressions, expected_size (sum of pi_i over the population).
-- Bind parameters: day, seed (an integer), expected_n, size_floor.

WITH sized AS (
    SELECT u.unit_id, u.impressions,
        u.impressions * (%(size_floor)s::double precision + r.max_risk) AS size
    FROM tsm.units AS u
    JOIN (
        SELECT unit_id, max(risk) AS max_risk
        FROM tsm.unit_risk
        WHERE event_date = %(day)s::date
        GROUP BY unit_id
    ) AS r USING (unit_id)
    WHERE u.event_date = %(day)s::date AND u.impressions > 0
),
ranked AS (
    SELECT unit_id, impressions, size,
        row_number() OVER (ORDER BY size DESC, unit_id) AS size_rank,
        sum(size) OVER (ORDER BY size ASC, unit_id DESC ROWS UNBOUNDED PRECEDING) AS tail_size
    FROM sized
    WHERE size > 0
),
certainty AS (
    -- k = number of certainty units; NULL (all certain) when no unit stays below the cap.
    SELECT min(size_rank) - 1 AS n_certain
    FROM ranked
    WHERE size * (%(expected_n)s::double precision - (size_rank - 1)) < tail_size
),
scale AS (
    SELECT coalesce(k.n_certain, (SELECT count(*) FROM ranked)) AS n_certain,
        (%(expected_n)s::double precision - k.n_certain) / rk.tail_size AS c
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
SELECT unit_id, size, inclusion_prob, impressions,
    (SELECT sum(inclusion_prob) FROM probs) AS expected_size
FROM probs
WHERE tsm.hash_uniform(
        %(seed)s::bigint::text || ':' || to_char(%(day)s::date, 'YYYY-MM-DD') || ':' || unit_id
    ) < inclusion_prob
ORDER BY unit_id
