-- Poisson PPS sample of a day's units, entirely inside the warehouse; returns the selection and
-- writes nothing (tsm.poisson_pps_sample, migration 0004: size measure, exact capping of
-- certainty units, hash-based selection reproduced bit for bit by
-- tsmetrics.sampling.hash_poisson_pps_select).
--
-- Returns one row per selected unit:
--   unit_id, size, inclusion_prob, impressions, expected_size (sum of pi_i over the population).
-- Bind parameters: day, seed (an integer), expected_n, size_floor; size_measure ('max_risk' or
-- 'sqrt_calibrated', see tsm.unit_sizes).

SELECT unit_id, size, inclusion_prob, impressions, expected_size
FROM tsm.poisson_pps_sample(
    %(day)s::date, %(size_measure)s::text, %(size_floor)s::double precision,
    %(expected_n)s::double precision, %(seed)s::bigint
)
ORDER BY unit_id
