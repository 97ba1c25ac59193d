-- Draw the day's sample: probability proportional to size WITH replacement (multinomial draws),
-- entirely inside the warehouse. Re-running replaces the design's rows with identical ones.
--
-- size_i = impressions_i * (size_floor + max_p risk_ip) (tsm.unit_sizes, 'max_risk'): every unit
-- with impressions can be drawn
-- (the floor), and labels go where risk x reach is high. Draw k picks the unit whose cumulative
-- size interval (ordered by unit_id) contains u_k * total_size, where
-- u_k = tsm.hash_uniform('seed:day:k') is a deterministic uniform: reproducible and auditable.
-- Each draw stores its single-draw probability p_i = size_i / total_size and expected hits n p_i,
-- enough to recompute any estimate later. design_policy: NULL for the shared sample, or the one
-- policy whose risk alone sizes a per-policy sample. Bind parameters: day, design_id, seed,
-- n_draws, size_floor, design_policy, config_version.

DELETE FROM tsm.sample_designs
WHERE event_date = %(day)s::date AND design_id = %(design_id)s::text;

CREATE TEMP TABLE tmp_cumulative ON COMMIT DROP AS
SELECT unit_id, impressions, size,
    sum(size) OVER (ORDER BY unit_id ROWS UNBOUNDED PRECEDING) AS cum_end
FROM tsm.unit_sizes(%(day)s::date, 'max_risk', %(size_floor)s::double precision,
                    string_to_array(%(design_policy)s::text, ','));

CREATE INDEX ON tmp_cumulative (cum_end);

ANALYZE tmp_cumulative;

INSERT INTO tsm.sample_designs (
    event_date, design_id, method, seed, n_draws, size_floor, total_size, total_impressions,
    n_units, params
)
SELECT %(day)s::date, %(design_id)s::text, 'pps_with_replacement', %(seed)s::bigint, %(n_draws)s::int,
    %(size_floor)s::double precision, (SELECT max(cum_end) FROM tmp_cumulative),
    (SELECT sum(impressions) FROM tsm.units WHERE event_date = %(day)s::date),
    (SELECT count(*) FROM tsm.units WHERE event_date = %(day)s::date),
    jsonb_build_object(
        'size_measure', 'impressions * (size_floor + max over policies of unit risk)',
        'policy', %(design_policy)s::text,
        'uniforms', 'tsm.hash_uniform(seed:day:draw_no)',
        'unit_order', 'unit_id',
        'config_version', %(config_version)s::int
    );

INSERT INTO tsm.samples (
    event_date, design_id, draw_no, unit_id, size, selection_prob, expected_hits, impressions
)
SELECT %(day)s::date, %(design_id)s::text, d.draw_no, c.unit_id, c.size, c.size / t.total_size,
    %(n_draws)s::int * c.size / t.total_size, c.impressions
FROM generate_series(1, %(n_draws)s::int) AS d (draw_no)
CROSS JOIN (SELECT max(cum_end) AS total_size FROM tmp_cumulative) AS t
CROSS JOIN LATERAL (
    SELECT tc.unit_id, tc.size, tc.impressions
    FROM tmp_cumulative AS tc
    WHERE tc.cum_end > tsm.hash_uniform(%(seed)s::text || ':' || %(day)s::text || ':' || d.draw_no)
        * t.total_size
    ORDER BY tc.cum_end, tc.unit_id
    LIMIT 1
) AS c;
