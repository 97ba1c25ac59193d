-- Build the day's measurement units (one multi-component interaction = one unit) and each unit's
-- risk per policy. Re-running replaces the day. Bind parameters: day, policies (comma-separated).
--
-- Unit impressions = sum of its components' impressions.
-- Unit risk for a policy = max over its components' scores. When no component has a score for the
-- policy, the risk is imputed with the day's impression-weighted mean of observed unit risks
-- (flag risk_imputed), so a missing score never means "no risk" (0 only when no unit has a score
-- for the policy that day; the design's size floor still gives every unit a positive probability).

SELECT tsm.ensure_day_partitions(%(day)s::date);

SELECT tsm.truncate_day('unit_risk', %(day)s::date);

SELECT tsm.truncate_day('units', %(day)s::date);

INSERT INTO tsm.units (event_date, unit_id, surface, impressions, n_components)
SELECT i.event_date, i.interaction_id, i.surface, sum(c.impressions), count(*)
FROM tsm.raw_interactions AS i
JOIN tsm.raw_components AS c USING (event_date, interaction_id)
WHERE i.event_date = %(day)s::date
GROUP BY i.event_date, i.interaction_id, i.surface;

CREATE TEMP TABLE tmp_observed_risk ON COMMIT DROP AS
SELECT interaction_id AS unit_id, policy, max(score) AS risk
FROM tsm.raw_risk_scores
WHERE event_date = %(day)s::date
GROUP BY interaction_id, policy;

INSERT INTO tsm.unit_risk (event_date, unit_id, policy, risk, risk_imputed)
WITH policies AS (
    SELECT unnest(string_to_array(%(policies)s::text, ',')) AS policy
),
fill AS (
    -- numeric sums: exact, so the fill does not depend on the order rows are aggregated in (a
    -- re-run may get another plan once the day has statistics, and must give the same bits)
    SELECT o.policy,
        (sum(o.risk::numeric * u.impressions) / nullif(sum(u.impressions), 0))::double precision
            AS mean_risk
    FROM tmp_observed_risk AS o
    JOIN tsm.units AS u ON u.event_date = %(day)s::date AND u.unit_id = o.unit_id
    GROUP BY o.policy
)
SELECT u.event_date, u.unit_id, p.policy,
    coalesce(o.risk, f.mean_risk, 0), o.risk IS NULL
FROM tsm.units AS u
CROSS JOIN policies AS p
LEFT JOIN tmp_observed_risk AS o ON o.unit_id = u.unit_id AND o.policy = p.policy
LEFT JOIN fill AS f ON f.policy = p.policy
WHERE u.event_date = %(day)s::date;

-- Planner statistics for the partitions sampling reads next (tsm.analyze_day, migration 0007).
SELECT tsm.analyze_day('units', %(day)s::date);

SELECT tsm.analyze_day('unit_risk', %(day)s::date);
