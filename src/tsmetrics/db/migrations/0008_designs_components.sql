-- 0008: the stratified design in the warehouse, per-policy samples, and component verdicts.
-- See docs/schema.md and docs/methodology.md.

-- Stratified designs: the stratum of each selected unit (index into
-- tsm.sample_designs.params->'strata', where N_h, n_h, S_h and the cut points are stored).
-- NULL for the other designs.
ALTER TABLE tsm.samples ADD COLUMN IF NOT EXISTS stratum int CHECK (stratum >= 0);

-- Component verdicts: the ids of the unit's components that violate the policy, as the
-- labeler gave them ('{}' = none; is_violating is then false). NULL when the labeler gives
-- unit verdicts only (the component-level estimate then leaves the unit out as unlabelled).
ALTER TABLE tsm.labels ADD COLUMN IF NOT EXISTS violating_components text[];
ALTER TABLE tsm.labels DROP CONSTRAINT IF EXISTS labels_component_verdicts_consistent;
ALTER TABLE tsm.labels ADD CONSTRAINT labels_component_verdicts_consistent CHECK (
    violating_components IS NULL OR is_violating = (cardinality(violating_components) > 0)
);

-- What an estimate measures: 'unit' = share of impressions on violating units (a unit violates
-- when any component does), 'component' = share of component impressions on violating
-- components. Component-level rows carry the estimator name '<estimator>_component'.
ALTER TABLE tsm.estimates ADD COLUMN IF NOT EXISTS level text NOT NULL DEFAULT 'unit'
    CHECK (level IN ('unit', 'component'));

-- The day's calibration constants per policy (NULL policies = every policy): the calibration
-- (tsm.score_calibrations), q_fill = the impression-weighted mean calibrated q of the units with
-- a score (the q of a unit whose risk is imputed; eps when no unit has one) and pbar = the
-- calibrated prevalence sum x q / sum x over the day's units with impressions.
CREATE OR REPLACE FUNCTION tsm.calibrated_constants(p_day date, p_policies text[])
RETURNS TABLE (
    policy text, method text, eps double precision, a double precision, b double precision,
    thresholds double precision[], q_values double precision[], q_fill double precision,
    pbar double precision
)
LANGUAGE sql STABLE AS $$
    WITH q AS (
        SELECT ur.policy, u.impressions, ur.risk_imputed, c.eps,
            tsm.calibrated_q(ur.risk, c.method, c.eps, c.a, c.b, c.thresholds, c.q_values) AS q
        FROM tsm.unit_risk AS ur
        JOIN tsm.units AS u ON u.event_date = ur.event_date AND u.unit_id = ur.unit_id
        JOIN tsm.score_calibrations AS c ON c.event_date = ur.event_date AND c.policy = ur.policy
        WHERE ur.event_date = p_day AND u.impressions > 0
            AND (p_policies IS NULL OR ur.policy = ANY(p_policies))
    ),
    fill AS (
        SELECT q.policy,
            (sum(q.impressions * q.q::numeric) FILTER (WHERE NOT q.risk_imputed)
                / nullif(sum(q.impressions) FILTER (WHERE NOT q.risk_imputed), 0)
            )::double precision AS q_fill
        FROM q
        GROUP BY q.policy
    ),
    pbar AS (
        SELECT q.policy,
            (sum(q.impressions
                 * (CASE WHEN q.risk_imputed THEN coalesce(f.q_fill, q.eps) ELSE q.q END)::numeric)
                / sum(q.impressions))::double precision AS p
        FROM q
        JOIN fill AS f ON f.policy = q.policy
        GROUP BY q.policy
    )
    SELECT c.policy, c.method, c.eps, c.a, c.b, c.thresholds, c.q_values, f.q_fill, pb.p
    FROM tsm.score_calibrations AS c
    JOIN fill AS f ON f.policy = c.policy
    JOIN pbar AS pb ON pb.policy = c.policy
    WHERE c.event_date = p_day
$$;

-- Every sum over rows is exact (numeric, cast back to float8), as in 0007: a re-run of a day must
-- give the same sizes to the last bit whatever order the plan aggregates rows in.

-- Size measures restricted to a set of policies (NULL = every policy of the day): a per-policy
-- sample sizes its units from its own policy's calibrated risk. The one definition of the size
-- measures from now on; the 3-argument form of 0004 delegates to it with every policy.
--   'max_risk':        size = impressions * (size_floor + max over the policies of unit risk)
--   'sqrt_calibrated': size = impressions * sqrt(sum_p max(q_p, size_floor * pbar_p) / pbar_p^2)
--       with q_p and pbar_p from tsm.calibrated_constants (q_fill for an imputed risk).
CREATE OR REPLACE FUNCTION tsm.unit_sizes(
    p_day date, p_size_measure text, p_size_floor float8, p_policies text[]
)
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
            WHERE ur.event_date = p_day AND (p_policies IS NULL OR ur.policy = ANY(p_policies))
            GROUP BY ur.unit_id
        ) AS r ON r.unit_id = u.unit_id
        WHERE u.event_date = p_day AND u.impressions > 0
            AND u.impressions * (p_size_floor + r.max_risk) > 0;
    ELSIF p_size_measure = 'sqrt_calibrated' THEN
        IF EXISTS (
            SELECT 1 FROM (SELECT DISTINCT ur.policy FROM tsm.unit_risk AS ur
                           WHERE ur.event_date = p_day
                               AND (p_policies IS NULL OR ur.policy = ANY(p_policies))) AS p
            WHERE NOT EXISTS (SELECT 1 FROM tsm.score_calibrations AS c
                              WHERE c.event_date = p_day AND c.policy = p.policy)
        ) THEN
            RAISE EXCEPTION 'unit_sizes: no score calibration for % for every policy', p_day;
        END IF;
        RETURN QUERY
        WITH k AS (SELECT * FROM tsm.calibrated_constants(p_day, p_policies)),
        filled AS (
            SELECT ur.unit_id, u.impressions, k.pbar,
                CASE WHEN ur.risk_imputed THEN coalesce(k.q_fill, k.eps)
                     ELSE tsm.calibrated_q(ur.risk, k.method, k.eps, k.a, k.b, k.thresholds,
                                           k.q_values) END AS q
            FROM tsm.unit_risk AS ur
            JOIN tsm.units AS u ON u.event_date = ur.event_date AND u.unit_id = ur.unit_id
            JOIN k ON k.policy = ur.policy
            WHERE ur.event_date = p_day AND u.impressions > 0
        )
        SELECT f.unit_id, max(f.impressions),
            max(f.impressions) * sqrt(sum(
                (greatest(f.q, p_size_floor * f.pbar) / (f.pbar * f.pbar))::numeric)::double precision)
        FROM filled AS f
        GROUP BY f.unit_id;
    ELSE
        RAISE EXCEPTION 'unit_sizes: unknown size measure %', p_size_measure;
    END IF;
END
$$;

-- The score (size / impressions) that units sampled on earlier days [p_since, p_day) would have
-- under p_day's size measure: their own day's risks, p_day's calibrations and constants. Places
-- earlier labelled units in today's strata whatever the calibration was on their own day
-- (tsmetrics.stratified_design.load_history). Sample-sized: only the sampled units are scored.
-- Its hash aggregates and sorts over a day's (unit, policy) rows: its own work_mem (see 0007).
ALTER FUNCTION tsm.unit_sizes(date, text, double precision, text[]) SET work_mem = '256MB';

CREATE OR REPLACE FUNCTION tsm.history_scores(
    p_day date, p_size_measure text, p_size_floor float8, p_policies text[], p_since date
)
RETURNS TABLE (event_date date, unit_id text, score double precision)
LANGUAGE sql STABLE AS $$
    WITH sampled AS (
        SELECT DISTINCT s.event_date, s.unit_id
        FROM tsm.samples AS s
        WHERE s.event_date >= p_since AND s.event_date < p_day
    ),
    risks AS (
        SELECT s.event_date, s.unit_id, ur.policy, ur.risk, ur.risk_imputed
        FROM sampled AS s
        JOIN tsm.unit_risk AS ur ON ur.event_date = s.event_date AND ur.unit_id = s.unit_id
        WHERE p_policies IS NULL OR ur.policy = ANY(p_policies)
    )
    SELECT r.event_date, r.unit_id, p_size_floor + max(r.risk)
    FROM risks AS r
    WHERE p_size_measure = 'max_risk'
    GROUP BY r.event_date, r.unit_id
    UNION ALL
    SELECT r.event_date, r.unit_id,
        sqrt(sum((greatest(
            CASE WHEN r.risk_imputed THEN coalesce(k.q_fill, k.eps)
                 ELSE tsm.calibrated_q(r.risk, k.method, k.eps, k.a, k.b, k.thresholds,
                                       k.q_values) END,
            p_size_floor * k.pbar) / (k.pbar * k.pbar))::numeric)::double precision)
    FROM risks AS r
    JOIN tsm.calibrated_constants(p_day, p_policies) AS k ON k.policy = r.policy
    WHERE p_size_measure = 'sqrt_calibrated'
    GROUP BY r.event_date, r.unit_id
$$;

CREATE OR REPLACE FUNCTION tsm.unit_sizes(p_day date, p_size_measure text, p_size_floor float8)
RETURNS TABLE (unit_id text, impressions bigint, size double precision)
LANGUAGE sql STABLE AS $$
    SELECT * FROM tsm.unit_sizes(p_day, p_size_measure, p_size_floor, NULL::text[])
$$;

-- Poisson PPS over the sizes of a set of policies (NULL = every policy); as the 5-argument
-- form of 0004, which now delegates to it.
CREATE OR REPLACE FUNCTION tsm.poisson_pps_sample(
    p_day date, p_size_measure text, p_size_floor float8, p_expected_n float8, p_seed bigint,
    p_policies text[]
) RETURNS TABLE (
    unit_id text, size double precision, inclusion_prob double precision, impressions bigint,
    expected_size double precision
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
        (SELECT sum(p2.inclusion_prob) FROM probs AS p2)
    FROM probs
    WHERE tsm.hash_uniform(
            p_seed::text || ':' || to_char(p_day, 'YYYY-MM-DD') || ':' || probs.unit_id
        ) < probs.inclusion_prob
    ORDER BY probs.unit_id
$$;

CREATE OR REPLACE FUNCTION tsm.poisson_pps_sample(
    p_day date, p_size_measure text, p_size_floor float8, p_expected_n float8, p_seed bigint
) RETURNS TABLE (
    unit_id text, size double precision, inclusion_prob double precision, impressions bigint,
    expected_size double precision
)
LANGUAGE sql STABLE AS $$
    SELECT * FROM tsm.poisson_pps_sample(
        p_day, p_size_measure, p_size_floor, p_expected_n, p_seed, NULL::text[])
$$;

-- The frame of a stratified design: every unit with impressions (tsm.unit_sizes), its score
-- = size / impressions (the size measure's risk factor, e.g. sqrt of the summed relative
-- calibrated risks) and whether it belongs to the take-all stratum:
-- impressions >= p_take_all_factor * X / p_expected_n (X = the frame's impressions; a unit
-- that large would have inclusion probability >= 1 under PPS by impressions). NULL factor: no
-- take-all stratum. Mirrored by tsmetrics.stratified_design.reference_strata.
CREATE OR REPLACE FUNCTION tsm.stratified_frame(
    p_day date, p_size_measure text, p_size_floor float8, p_policies text[],
    p_take_all_factor float8, p_expected_n float8
) RETURNS TABLE (
    unit_id text, impressions bigint, size double precision, score double precision,
    take_all boolean
)
LANGUAGE sql STABLE AS $$
    WITH sized AS (
        SELECT s.unit_id, s.impressions, s.size
        FROM tsm.unit_sizes(p_day, p_size_measure, p_size_floor, p_policies) AS s
    ),
    threshold AS (
        SELECT p_take_all_factor * sum(sized.impressions)::float8 / p_expected_n AS min_impressions
        FROM sized
    )
    SELECT sized.unit_id, sized.impressions, sized.size, sized.size / sized.impressions,
        coalesce(sized.impressions >= t.min_impressions, false)
    FROM sized
    CROSS JOIN threshold AS t
$$;

-- Strata of a stratified design: cut points at the impression-weighted k / H quantiles of the
-- score among the units not taken whole (cut k = the smallest score c whose cumulative
-- impressions, units ordered by score then unit_id, reach k / H of the total; duplicates and a
-- cut at the largest score dropped, so fewer than H - 1 cuts may come back), as
-- tsmetrics.stratified.weighted_quantile_boundaries. Risk stratum h (0-based) holds the scores
-- in (cut_h, cut_{h+1}] (stratum = number of cuts below the score); the take-all stratum, when
-- it has units, comes last. One row per non-empty stratum: N_h, impressions and the cut points
-- (NULL = unbounded); `cuts` repeats the whole array on every row.
CREATE OR REPLACE FUNCTION tsm.stratified_strata(
    p_day date, p_size_measure text, p_size_floor float8, p_policies text[],
    p_take_all_factor float8, p_expected_n float8, p_n_strata int
) RETURNS TABLE (
    stratum int, kind text, lower_cut double precision, upper_cut double precision,
    n_units bigint, impressions numeric, cuts double precision[]
)
LANGUAGE sql STABLE AS $$
    WITH frame AS (
        SELECT * FROM tsm.stratified_frame(
            p_day, p_size_measure, p_size_floor, p_policies, p_take_all_factor, p_expected_n)
    ),
    risk AS (
        SELECT frame.score,
            sum(frame.impressions) OVER (ORDER BY frame.score, frame.unit_id COLLATE "C"
                                         ROWS UNBOUNDED PRECEDING) AS cum
        FROM frame
        WHERE NOT frame.take_all
    ),
    total AS (
        SELECT sum(frame.impressions)::float8 AS x, max(frame.score) AS top
        FROM frame
        WHERE NOT frame.take_all
    ),
    quantiles AS (
        SELECT (SELECT min(r.score) FROM risk AS r
                WHERE r.cum::float8 >= t.x * k::float8 / p_n_strata::float8) AS cut
        FROM total AS t
        CROSS JOIN generate_series(1, p_n_strata - 1) AS k
    ),
    cut_array AS (
        SELECT coalesce(array_agg(DISTINCT q.cut ORDER BY q.cut)
                        FILTER (WHERE q.cut < (SELECT total.top FROM total)),
                        '{}'::float8[]) AS cuts
        FROM quantiles AS q
    ),
    assigned AS (
        SELECT f.impressions,
            CASE WHEN f.take_all THEN cardinality(a.cuts) + 1
                 ELSE (SELECT count(*) FROM unnest(a.cuts) AS c WHERE c < f.score)::int
            END AS stratum,
            f.take_all
        FROM frame AS f
        CROSS JOIN cut_array AS a
    )
    SELECT s.stratum, CASE WHEN bool_or(s.take_all) THEN 'take_all' ELSE 'risk' END,
        CASE WHEN bool_or(s.take_all) OR s.stratum = 0 THEN NULL ELSE a.cuts[s.stratum] END,
        CASE WHEN bool_or(s.take_all) OR s.stratum = cardinality(a.cuts) THEN NULL
             ELSE a.cuts[s.stratum + 1] END,
        count(*), sum(s.impressions), a.cuts
    FROM assigned AS s
    CROSS JOIN cut_array AS a
    GROUP BY s.stratum, a.cuts
    ORDER BY s.stratum
$$;

-- Stratified simple random sample without replacement: in stratum h the n_h (p_n_h[h + 1])
-- units of smallest tsm.hash_uniform(seed:day:unit_id), ties by unit_id in code-point order;
-- inclusion probability n_h / N_h. tsmetrics.stratified.stratified_hash_select reproduces it
-- bit for bit. p_cuts: the cut points of tsm.stratified_strata.
CREATE OR REPLACE FUNCTION tsm.stratified_sample(
    p_day date, p_size_measure text, p_size_floor float8, p_policies text[],
    p_take_all_factor float8, p_expected_n float8, p_cuts float8[], p_n_h int[], p_seed bigint
) RETURNS TABLE (
    unit_id text, stratum int, size double precision, impressions bigint, n_h int,
    stratum_units bigint, inclusion_prob double precision
)
LANGUAGE sql STABLE AS $$
    WITH frame AS (
        SELECT f.unit_id, f.impressions, f.size,
            CASE WHEN f.take_all THEN cardinality(p_cuts) + 1
                 ELSE (SELECT count(*) FROM unnest(p_cuts) AS c WHERE c < f.score)::int
            END AS stratum
        FROM tsm.stratified_frame(
            p_day, p_size_measure, p_size_floor, p_policies, p_take_all_factor, p_expected_n) AS f
    ),
    ranked AS (
        SELECT frame.*,
            row_number() OVER (
                PARTITION BY frame.stratum
                ORDER BY tsm.hash_uniform(
                    p_seed::text || ':' || to_char(p_day, 'YYYY-MM-DD') || ':' || frame.unit_id),
                    frame.unit_id COLLATE "C"
            ) AS rk,
            count(*) OVER (PARTITION BY frame.stratum) AS big_n
        FROM frame
    )
    SELECT r.unit_id, r.stratum, r.size, r.impressions, p_n_h[r.stratum + 1], r.big_n,
        p_n_h[r.stratum + 1]::float8 / r.big_n::float8
    FROM ranked AS r
    WHERE r.rk <= p_n_h[r.stratum + 1]
    ORDER BY r.unit_id
$$;
