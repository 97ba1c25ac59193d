-- The day's risk-score histograms, for the score-drift check (tsmetrics.health): per policy, the
-- impressions and the number of units whose OBSERVED unit risk falls in each of 20 fixed,
-- equal-width bins [0, 0.05), [0.05, 0.1), ..., [0.95, 1]: bin = least(floor(20 * risk), 19).
-- The edges never depend on the data, so days compare without re-reading old partitions.
-- Units with an imputed risk (no score for the policy) are not binned (the fill is not a model
-- score); tsm.score_day_stats counts them. Every (policy, bin) row is written, empty bins with 0.
-- Runs after build_units.sql; re-running replaces the day. Bind parameters: day, policies
-- (comma-separated, as for build_units.sql).

DELETE FROM tsm.score_histograms WHERE event_date = %(day)s::date;

DELETE FROM tsm.score_day_stats WHERE event_date = %(day)s::date;

INSERT INTO tsm.score_histograms (event_date, policy, bin, lower, upper, impressions, n_units)
WITH policies AS (
    SELECT DISTINCT unnest(string_to_array(%(policies)s::text, ',')) AS policy
),
bins AS (
    SELECT b AS bin, b / 20.0::double precision AS lower, (b + 1) / 20.0::double precision AS upper
    FROM generate_series(0, 19) AS b
),
observed AS (
    SELECT r.policy, least(floor(r.risk * 20)::int, 19) AS bin, u.impressions
    FROM tsm.unit_risk AS r
    JOIN tsm.units AS u ON u.event_date = %(day)s::date AND u.unit_id = r.unit_id
    WHERE r.event_date = %(day)s::date AND NOT r.risk_imputed
)
SELECT %(day)s::date, p.policy, b.bin, b.lower, b.upper,
    coalesce(sum(o.impressions), 0)::double precision, count(o.bin)
FROM policies AS p
CROSS JOIN bins AS b
LEFT JOIN observed AS o ON o.policy = p.policy AND o.bin = b.bin
GROUP BY p.policy, b.bin, b.lower, b.upper;

INSERT INTO tsm.score_day_stats (
    event_date, policy, n_units, n_imputed, impressions, imputed_impressions
)
WITH policies AS (
    SELECT DISTINCT unnest(string_to_array(%(policies)s::text, ',')) AS policy
),
per_policy AS (
    SELECT r.policy, count(*) AS n_units, count(*) FILTER (WHERE r.risk_imputed) AS n_imputed,
        sum(u.impressions) AS impressions,
        sum(u.impressions) FILTER (WHERE r.risk_imputed) AS imputed_impressions
    FROM tsm.unit_risk AS r
    JOIN tsm.units AS u ON u.event_date = %(day)s::date AND u.unit_id = r.unit_id
    WHERE r.event_date = %(day)s::date
    GROUP BY r.policy
)
SELECT %(day)s::date, p.policy, coalesce(s.n_units, 0), coalesce(s.n_imputed, 0),
    coalesce(s.impressions, 0), coalesce(s.imputed_impressions, 0)
FROM policies AS p
LEFT JOIN per_policy AS s USING (policy);
