-- 0004: score calibrations, the designs' size measures in one place, and Poisson PPS selection
-- as a function (so every design and test shares one implementation).

-- Per day and policy: the calibration q(score) = P(violating | score) used by that day's design,
-- fitted on earlier days' labels (tsmetrics.calibration). Columns hold what tsm.calibrated_q
-- needs; `calibration` keeps the full auditable record (Calibration.to_dict()).
CREATE TABLE tsm.score_calibrations (
    event_date   date             NOT NULL,
    policy       text             NOT NULL,
    version      text             NOT NULL,
    method       text             NOT NULL CHECK (method IN ('identity', 'platt', 'isotonic')),
    eps          double precision NOT NULL CHECK (eps > 0 AND eps < 0.5),
    a            double precision,
    b            double precision,
    thresholds   double precision[],
    q_values     double precision[],
    fitted_from  date,
    fitted_to    date,
    n_labels     int              NOT NULL DEFAULT 0,
    n_positive   double precision NOT NULL DEFAULT 0,
    calibration  jsonb            NOT NULL,
    created_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, policy),
    CHECK (method <> 'platt' OR (a IS NOT NULL AND b IS NOT NULL)),
    CHECK (method <> 'isotonic' OR (thresholds IS NOT NULL AND q_values IS NOT NULL))
);

-- q from a score, exactly as tsmetrics.calibration.Calibration.predict computes it.
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
$$;

-- The size measure of a day's units with impressions (units of size 0 are left out).
--   'max_risk':        size = impressions * (size_floor + max over policies of unit risk)
--   'sqrt_calibrated': size = impressions * sqrt(sum_p max(q_p, size_floor * Pbar_p) / Pbar_p^2)
--       q_p = tsm.calibrated_q of the unit's risk under the day's tsm.score_calibrations (for a
--       unit whose risk is imputed: the impression-weighted mean q of the units with a score),
--       Pbar_p = sum x q_p / sum x the calibrated prevalence, size_floor the relative floor.
--       Mirrors tsmetrics.sampling.sqrt_calibrated_size.
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
                sum(q.impressions * q.q) FILTER (WHERE NOT q.risk_imputed)
                    / nullif(sum(q.impressions) FILTER (WHERE NOT q.risk_imputed), 0) AS q_fill
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
            SELECT filled.policy, sum(filled.impressions * filled.q) / sum(filled.impressions) AS p
            FROM filled
            GROUP BY filled.policy
        )
        SELECT f.unit_id, max(f.impressions),
            max(f.impressions) * sqrt(sum(greatest(f.q, p_size_floor * b.p) / (b.p * b.p)))
        FROM filled AS f
        JOIN pbar AS b ON b.policy = f.policy
        GROUP BY f.unit_id;
    ELSE
        RAISE EXCEPTION 'unit_sizes: unknown size measure %', p_size_measure;
    END IF;
END
$$;

-- Poisson PPS sample of a day's units: pi_i = min(1, c size_i) with sum pi_i = expected_n (the
-- iterative capping of certainty units solved exactly, as tsmetrics.sampling.
-- poisson_pps_inclusion), unit i selected iff
-- tsm.hash_uniform(seed || ':' || day || ':' || unit_id) < pi_i (tsmetrics.sampling.
-- hash_poisson_pps_select reproduces it bit for bit). Returns the selected units with
-- expected_size = sum_i pi_i over all units (smaller than expected_n only when expected_n
-- exceeds the number of units, then every unit is selected with pi_i = 1).
CREATE OR REPLACE FUNCTION tsm.poisson_pps_sample(
    p_day date, p_size_measure text, p_size_floor float8, p_expected_n float8, p_seed bigint
) RETURNS TABLE (
    unit_id text, size double precision, inclusion_prob double precision, impressions bigint,
    expected_size double precision
)
LANGUAGE sql STABLE AS $$
    WITH sized AS (
        SELECT s.unit_id, s.impressions, s.size
        FROM tsm.unit_sizes(p_day, p_size_measure, p_size_floor) AS s
    ),
    ranked AS (
        SELECT sized.unit_id, sized.impressions, sized.size,
            row_number() OVER (ORDER BY sized.size DESC, sized.unit_id) AS size_rank,
            sum(sized.size) OVER (ORDER BY sized.size ASC, sized.unit_id DESC
                                  ROWS UNBOUNDED PRECEDING) AS tail_size
        FROM sized
    ),
    certainty AS (
        -- k = number of certainty units; NULL (all certain) when no unit stays below the cap.
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
