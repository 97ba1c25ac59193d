-- Inject SME gold items (tsm.gold_items) blind into one labeler's queue for the day
-- (idempotent: a re-run adds nothing). With n of the day's sampled units queued for the
-- labeler and rate r, round(n r / (1 - r)) gold tasks join them, so that a share r of the
-- queue is gold (fewer when the active gold set is smaller); once a day has gold tasks for the
-- labeler, nothing more is injected for it. Items the labeler has been shown
-- least often on earlier days go first, then a hash order that changes with the day, so
-- repeats are spread out. The record has exactly the shape of a sampled unit's
-- (dispatch_label_tasks.sql), with the blind queue key as its unit_id; in the warehouse the
-- task is purpose 'gold' with unit_id 'gold:<gold_id>', never part of a sample.
-- Bind parameters: day, labeler_id, rate.

WITH queued AS (
    SELECT count(*) AS n
    FROM tsm.label_tasks
    WHERE event_date = %(day)s::date AND labeler_id = %(labeler_id)s::text AND purpose <> 'gold'
),
chosen AS (
    SELECT g.gold_id, g.surface, g.impressions, g.components
    FROM tsm.gold_items AS g
    LEFT JOIN LATERAL (
        SELECT count(*) AS shown
        FROM tsm.label_tasks AS t
        WHERE t.labeler_id = %(labeler_id)s::text AND t.gold_id = g.gold_id
            AND t.event_date < %(day)s::date
    ) AS history ON true
    WHERE g.active
        AND NOT EXISTS (  -- the day's first injection stands: re-runs and backfills add nothing
            SELECT 1 FROM tsm.label_tasks AS d
            WHERE d.event_date = %(day)s::date AND d.labeler_id = %(labeler_id)s::text
                AND d.purpose = 'gold'
        )
    ORDER BY history.shown,
        tsm.hash_uniform('gold:' || %(day)s::text || ':' || %(labeler_id)s::text || ':' || g.gold_id),
        g.gold_id
    LIMIT (
        SELECT round(n * %(rate)s::double precision / (1 - %(rate)s::double precision))::bigint
        FROM queued
    )
)
INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, gold_id, payload)
SELECT
    %(day)s::date,
    'gold:' || c.gold_id,
    %(labeler_id)s::text,
    'gold',
    c.gold_id,
    jsonb_build_object(
        'unit_id', tsm.queue_key(%(day)s::date, 'gold:' || c.gold_id, %(labeler_id)s::text),
        'event_date', %(day)s::date,
        'surface', c.surface,
        'impressions', c.impressions,
        'components', c.components
    )
FROM chosen AS c
ON CONFLICT (event_date, unit_id, labeler_id) DO NOTHING;
