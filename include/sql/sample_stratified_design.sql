-- Draw and record the day's stratified sample (sampling.method: stratified), entirely inside
-- the warehouse; the allocation n_h comes from tsmetrics.stratified_design (earlier days'
-- labels, Neyman or proportional). Re-running replaces the design's rows with identical ones.
--
-- Frame: tsm.stratified_frame (score = size / impressions of tsm.unit_sizes, take-all units with
-- impressions >= take_all_factor x X / expected_n); risk strata by the cut points of
-- tsm.stratified_strata; in stratum h the n_h units of smallest
-- tsm.hash_uniform(seed:day:unit_id) (tsm.stratified_sample). Each selected unit stores its
-- stratum and pi_i = n_h / N_h; the design row stores cut points, N_h, n_h, S_h and the rule.
-- Bind parameters: day, design_id, seed, expected_n, size_measure, size_floor, design_policy
-- (NULL = the shared sample), take_all_factor (NULL = none), cuts and n_h (JSON arrays),
-- design_params (JSON object), n_draws (sum n_h), config_version.

DELETE FROM tsm.sample_designs
WHERE event_date = %(day)s::date AND design_id = %(design_id)s::text;

CREATE TEMP TABLE tmp_stratified_sample ON COMMIT DROP AS
SELECT *
FROM tsm.stratified_sample(
    %(day)s::date, %(size_measure)s::text, %(size_floor)s::double precision,
    string_to_array(%(design_policy)s::text, ','), %(take_all_factor)s::double precision,
    %(expected_n)s::double precision,
    ARRAY(SELECT e.value::double precision
          FROM jsonb_array_elements_text(%(cuts)s::jsonb) WITH ORDINALITY AS e (value, ord)
          ORDER BY e.ord),
    ARRAY(SELECT e.value::int
          FROM jsonb_array_elements_text(%(n_h)s::jsonb) WITH ORDINALITY AS e (value, ord)
          ORDER BY e.ord),
    %(seed)s::bigint
);

INSERT INTO tsm.sample_designs (
    event_date, design_id, method, seed, n_draws, size_floor, total_size, total_impressions,
    n_units, params
)
SELECT %(day)s::date, %(design_id)s::text, 'stratified', %(seed)s::bigint,
    greatest(%(n_draws)s::int, 1), %(size_floor)s::double precision,
    coalesce((SELECT sum(size) FROM tsm.unit_sizes(
        %(day)s::date, %(size_measure)s::text, %(size_floor)s::double precision,
        string_to_array(%(design_policy)s::text, ','))), 0),
    (SELECT sum(impressions) FROM tsm.units WHERE event_date = %(day)s::date),
    (SELECT count(*) FROM tsm.units WHERE event_date = %(day)s::date),
    %(design_params)s::jsonb || jsonb_build_object(
        'calibrations', (
            SELECT jsonb_object_agg(policy, version) FROM tsm.score_calibrations
            WHERE event_date = %(day)s::date
        ),
        'config_version', %(config_version)s::int
    );

INSERT INTO tsm.samples (
    event_date, design_id, draw_no, unit_id, size, selection_prob, expected_hits, impressions,
    stratum
)
SELECT %(day)s::date, %(design_id)s::text, row_number() OVER (ORDER BY unit_id), unit_id, size,
    inclusion_prob, inclusion_prob, impressions, stratum
FROM tmp_stratified_sample;
