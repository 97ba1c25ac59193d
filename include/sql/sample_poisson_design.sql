-- Draw and record the day's Poisson PPS sample (the default design), entirely inside the
-- warehouse. Re-running replaces the design's rows with identical ones.
--
-- Size measure (tsm.unit_sizes): 'sqrt_calibrated' = impressions x sqrt(sum over policies of
-- max(q_p, floor x Pbar_p) / Pbar_p^2) with q_p each policy's calibrated risk (the day's
-- tsm.score_calibrations, fitted on earlier days' labels); inclusion probabilities
-- pi_i = min(1, c size_i), sum pi_i = expected_n; unit i selected iff
-- tsm.hash_uniform(seed:day:unit_id) < pi_i (tsm.poisson_pps_sample). Each selected unit stores
-- pi_i (selection_prob) and expected hits pi_i, enough to recompute every estimate later. The
-- day's units are sized once (migration 0011: the sampling function returns the total size).
-- design_policy: NULL for the shared multi-policy sample, or the one policy whose calibrated risk
-- alone sizes a per-policy sample. Bind parameters: day, design_id, seed, expected_n,
-- size_measure, size_floor, design_policy, config_version.

DELETE FROM tsm.sample_designs
WHERE event_date = %(day)s::date AND design_id = %(design_id)s::text;

CREATE TEMP TABLE tmp_poisson_sample ON COMMIT DROP AS
SELECT *
FROM tsm.poisson_pps_sample(
    %(day)s::date, %(size_measure)s::text, %(size_floor)s::double precision,
    %(expected_n)s::double precision, %(seed)s::bigint,
    string_to_array(%(design_policy)s::text, ',')
);

INSERT INTO tsm.sample_designs (
    event_date, design_id, method, seed, n_draws, size_floor, total_size, total_impressions,
    n_units, params
)
SELECT %(day)s::date, %(design_id)s::text, 'poisson_pps', %(seed)s::bigint,
    greatest((SELECT count(*) FROM tmp_poisson_sample), 1)::int,
    %(size_floor)s::double precision,
    -- the sampling function's total; sized again only when no unit was selected (COALESCE
    -- evaluates its second argument only then)
    coalesce((SELECT max(total_size) FROM tmp_poisson_sample), (SELECT sum(size) FROM tsm.unit_sizes(
        %(day)s::date, %(size_measure)s::text, %(size_floor)s::double precision,
        string_to_array(%(design_policy)s::text, ','))), 0),
    (SELECT sum(impressions) FROM tsm.units WHERE event_date = %(day)s::date),
    (SELECT count(*) FROM tsm.units WHERE event_date = %(day)s::date),
    jsonb_build_object(
        'size_measure', %(size_measure)s::text,
        'policy', %(design_policy)s::text,
        'expected_n', %(expected_n)s::double precision,
        'expected_size', (SELECT max(expected_size) FROM tmp_poisson_sample),
        'uniforms', 'tsm.hash_uniform(seed:day:unit_id)',
        'calibrations', (
            SELECT jsonb_object_agg(policy, version) FROM tsm.score_calibrations
            WHERE event_date = %(day)s::date
        ),
        'config_version', %(config_version)s::int
    );

INSERT INTO tsm.samples (
    event_date, design_id, draw_no, unit_id, size, selection_prob, expected_hits, impressions
)
SELECT %(day)s::date, %(design_id)s::text, row_number() OVER (ORDER BY unit_id), unit_id, size,
    inclusion_prob, inclusion_prob, impressions
FROM tmp_poisson_sample;
