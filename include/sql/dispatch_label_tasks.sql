-- Send the day's sampled units to labelers as one unified record each (idempotent: a unit is
-- queued at most once per labeler). Every sampled unit goes to the primary labeler; a
-- deterministic hash-selected share (overlap_fraction) also goes to the overlap labeler, for
-- agreement and label-error correction, and so does every certainty unit (selection
-- probability 1: the few giant units that carry much of the day's impressions; validating them
-- all keeps the corrected estimate's variance down). The overlap subsample is therefore a
-- Bernoulli subsample with probability 1 for certainty units and overlap_fraction otherwise.
-- design_ids lists the day's designs (comma-separated: the shared sample and any per-policy
-- samples): a unit selected by several designs is queued, and labeled, once per labeler, and
-- is a certainty unit when any design took it with probability 1.
-- Bind parameters: day, design_ids, primary_labeler, overlap_labeler, overlap_fraction.

INSERT INTO tsm.label_tasks (event_date, unit_id, labeler_id, purpose, payload)
SELECT s.event_date, s.unit_id, l.labeler_id, l.purpose, rec.payload
FROM (
    SELECT event_date, unit_id, max(selection_prob) AS selection_prob
    FROM tsm.samples
    WHERE event_date = %(day)s::date
        AND design_id = ANY(string_to_array(%(design_ids)s::text, ','))
    GROUP BY event_date, unit_id
) AS s
CROSS JOIN LATERAL (
    VALUES
        (%(primary_labeler)s::text, 'primary', true),
        (%(overlap_labeler)s::text, 'overlap',
            tsm.hash_uniform('overlap:' || %(day)s::text || ':' || s.unit_id)
            < %(overlap_fraction)s::double precision OR s.selection_prob >= 1)
) AS l (labeler_id, purpose, wanted)
CROSS JOIN LATERAL (
    SELECT jsonb_build_object(
        'unit_id', u.unit_id,
        'event_date', u.event_date,
        'surface', u.surface,
        'impressions', u.impressions,
        'components', jsonb_agg(
            jsonb_strip_nulls(jsonb_build_object(
                'component_id', c.component_id,
                'type', c.component_type,
                'text', c.content_text,
                'pin_id', c.pin_id,
                'image_url', c.image_url
            ))
            ORDER BY c.position
        )
    ) AS payload
    FROM tsm.units AS u
    JOIN tsm.raw_components AS c
        ON c.event_date = u.event_date AND c.interaction_id = u.unit_id
    WHERE u.event_date = s.event_date AND u.unit_id = s.unit_id
    GROUP BY u.unit_id, u.event_date, u.surface, u.impressions
) AS rec
WHERE l.wanted
ON CONFLICT (event_date, unit_id, labeler_id) DO NOTHING;
