-- Validate one day's staged log lines and load them into the raw tables; reject the rest to
-- tsm.quarantine with a reason. Re-running replaces the day (its partitions are truncated first).
-- Identifier (Jinja): the day's stage table, from the stage_raw task. Bind parameters: day (YYYY-MM-DD), load_id,
-- policies (comma-separated list of known policy names).

SELECT tsm.ensure_day_partitions(%(day)s::date);

SELECT tsm.truncate_day('raw_risk_scores', %(day)s::date);

SELECT tsm.truncate_day('raw_components', %(day)s::date);

SELECT tsm.truncate_day('raw_interactions', %(day)s::date);

DELETE FROM tsm.quarantine WHERE event_date = %(day)s::date;

CREATE TEMP TABLE tmp_docs ON COMMIT DROP AS
SELECT line_no, line, tsm.try_jsonb(line) AS doc
FROM {{ ti.xcom_pull(task_ids='stage_raw')['stage_table'] }};

CREATE TEMP TABLE tmp_components ON COMMIT DROP AS
SELECT d.line_no, c.ord::int AS position, c.elem
FROM tmp_docs AS d
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(d.doc -> 'components') = 'array' THEN d.doc -> 'components'
         ELSE '[]'::jsonb END
) WITH ORDINALITY AS c (elem, ord)
WHERE jsonb_typeof(d.doc) = 'object';

CREATE TEMP TABLE tmp_scores ON COMMIT DROP AS
SELECT c.line_no, c.elem ->> 'component_id' AS component_id, s.key AS policy, s.value
FROM tmp_components AS c
CROSS JOIN LATERAL jsonb_each(c.elem -> 'risk_scores') AS s (key, value)
WHERE jsonb_typeof(c.elem) = 'object' AND jsonb_typeof(c.elem -> 'risk_scores') = 'object'
  AND jsonb_typeof(s.value) <> 'null';

-- Reasons per bad component or score; a line with several keeps the alphabetically first.
CREATE TEMP TABLE tmp_component_reasons ON COMMIT DROP AS
SELECT line_no, min(reason) AS reason
FROM (
    SELECT line_no,
        CASE
            WHEN jsonb_typeof(elem) <> 'object' THEN 'component is not a JSON object'
            WHEN coalesce(elem ->> 'component_id', '') = '' THEN 'component without component_id'
            WHEN jsonb_typeof(elem -> 'component_id') <> 'string'
                THEN 'component_id is not a string'
            WHEN coalesce(elem ->> 'type', '') NOT IN ('user_query', 'system_response', 'pin_image')
                THEN 'unknown component type: ' || coalesce(elem ->> 'type', '<missing>')
            WHEN jsonb_typeof(elem -> 'impressions') IS DISTINCT FROM 'number'
                THEN 'impressions missing or not a number'
            WHEN (elem ->> 'impressions')::numeric < 0 THEN 'negative impressions'
            WHEN (elem ->> 'impressions')::numeric > 1e15 THEN 'impressions out of range'
            WHEN (elem ->> 'impressions')::numeric <> trunc((elem ->> 'impressions')::numeric)
                THEN 'impressions not a whole number'
            WHEN elem ? 'risk_scores' AND jsonb_typeof(elem -> 'risk_scores') NOT IN ('object', 'null')
                THEN 'risk_scores is not a JSON object'
        END AS reason
    FROM tmp_components
    UNION ALL
    SELECT line_no,
        CASE
            WHEN policy <> ALL (string_to_array(%(policies)s::text, ',')) THEN 'unknown policy: ' || policy
            WHEN jsonb_typeof(value) <> 'number' THEN 'risk score not a number: ' || policy
            WHEN value::text::numeric < 0 OR value::text::numeric > 1
                THEN 'risk score outside [0, 1]: ' || policy
        END
    FROM tmp_scores
    UNION ALL
    SELECT line_no, 'duplicate component_id: ' || (elem ->> 'component_id')
    FROM tmp_components
    WHERE jsonb_typeof(elem) = 'object'
    GROUP BY line_no, elem ->> 'component_id'
    HAVING count(*) > 1
) AS reasons
WHERE reason IS NOT NULL
GROUP BY line_no;

CREATE TEMP TABLE tmp_verdicts ON COMMIT DROP AS
SELECT d.line_no, d.line, d.doc,
    CASE
        WHEN d.doc IS NULL THEN 'unparseable JSON'
        WHEN jsonb_typeof(d.doc) <> 'object' THEN 'line is not a JSON object'
        WHEN coalesce(d.doc ->> 'interaction_id', '') = '' THEN 'missing interaction_id'
        WHEN jsonb_typeof(d.doc -> 'interaction_id') <> 'string'
            THEN 'interaction_id is not a string'
        WHEN coalesce(d.doc ->> 'surface', '') = '' THEN 'missing surface'
        WHEN jsonb_typeof(d.doc -> 'surface') <> 'string' THEN 'surface is not a string'
        WHEN tsm.try_timestamptz(d.doc ->> 'event_ts') IS NULL
            THEN 'missing or unparseable event_ts (ISO 8601 with time zone)'
        WHEN tsm.try_timestamptz(d.doc ->> 'event_ts') < %(day)s::date::timestamp AT TIME ZONE 'UTC'
          OR tsm.try_timestamptz(d.doc ->> 'event_ts')
             >= (%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC'
            THEN 'event_ts outside the day'
        WHEN jsonb_typeof(d.doc -> 'components') IS DISTINCT FROM 'array'
          OR jsonb_array_length(d.doc -> 'components') = 0 THEN 'no components'
        ELSE r.reason
    END AS reason
FROM tmp_docs AS d
LEFT JOIN tmp_component_reasons AS r USING (line_no);

-- A repeated interaction_id keeps its first valid line; later ones are quarantined.
UPDATE tmp_verdicts AS v
SET reason = 'duplicate interaction_id'
FROM (
    SELECT line_no,
        row_number() OVER (PARTITION BY doc ->> 'interaction_id' ORDER BY line_no) AS copy_no
    FROM tmp_verdicts
    WHERE reason IS NULL
) AS dup
WHERE v.line_no = dup.line_no AND dup.copy_no > 1;

INSERT INTO tsm.quarantine (event_date, load_id, source_path, line_no, reason, raw_line)
SELECT %(day)s::date, b.load_id, b.source_path, v.line_no, v.reason, v.line
FROM tmp_verdicts AS v
CROSS JOIN tsm.load_batches AS b
WHERE b.load_id = %(load_id)s::bigint AND v.reason IS NOT NULL;

INSERT INTO tsm.raw_interactions (event_date, interaction_id, event_ts, surface, load_id)
SELECT %(day)s::date, doc ->> 'interaction_id', tsm.try_timestamptz(doc ->> 'event_ts'),
    doc ->> 'surface', %(load_id)s::bigint
FROM tmp_verdicts
WHERE reason IS NULL;

INSERT INTO tsm.raw_components (
    event_date, interaction_id, component_id, component_type, position, content_text, pin_id,
    image_url, impressions
)
SELECT %(day)s::date, v.doc ->> 'interaction_id', c.elem ->> 'component_id', c.elem ->> 'type',
    c.position, c.elem ->> 'text', c.elem ->> 'pin_id', c.elem ->> 'image_url',
    (c.elem ->> 'impressions')::numeric::bigint
FROM tmp_verdicts AS v
JOIN tmp_components AS c USING (line_no)
WHERE v.reason IS NULL;

INSERT INTO tsm.raw_risk_scores (event_date, interaction_id, component_id, policy, score)
SELECT %(day)s::date, v.doc ->> 'interaction_id', s.component_id, s.policy,
    s.value::text::double precision
FROM tmp_verdicts AS v
JOIN tmp_scores AS s USING (line_no)
WHERE v.reason IS NULL;

UPDATE tsm.load_batches
SET rows_loaded = (SELECT count(*) FROM tmp_verdicts WHERE reason IS NULL),
    rows_quarantined = (SELECT count(*) FROM tmp_verdicts WHERE reason IS NOT NULL),
    finished_at = now()
WHERE load_id = %(load_id)s::bigint;

DROP TABLE {{ ti.xcom_pull(task_ids='stage_raw')['stage_table'] }};
