-- 0009: human queues in the daily run, label completion, SME gold calibration, adjudication.

-- Who gave a label (the Label Studio user's email, the vendor file's annotator column, the model
-- of an LLM labeler; NULL for the simulator) and free-text notes (an LLM's rationale, an
-- annotator's notes).
ALTER TABLE tsm.labels ADD COLUMN IF NOT EXISTS annotator text;
ALTER TABLE tsm.labels ADD COLUMN IF NOT EXISTS notes text;

-- The blind key under which a task is shown to a labeler queue: 'u' + 19 hex digits of
-- sha256('<days since 2000-01-01>|<unit_id>|<labeler_id>'), mirrored by
-- tsmetrics.human_labeling.queue_key. Real units and gold items get keys of the same form, so
-- a human cannot tell them apart (nor see the interaction id).
CREATE OR REPLACE FUNCTION tsm.queue_key(day date, unit_id text, labeler_id text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'u' || left(encode(sha256(convert_to(
        (day - DATE '2000-01-01')::text || '|' || unit_id || '|' || labeler_id, 'UTF8')), 'hex'), 19)
$$;

ALTER TABLE tsm.label_tasks ADD COLUMN IF NOT EXISTS queue_key text;
-- the gold item of a gold task (purpose 'gold'); NULL for the day's sampled units
ALTER TABLE tsm.label_tasks ADD COLUMN IF NOT EXISTS gold_id text;
UPDATE tsm.label_tasks SET queue_key = tsm.queue_key(event_date, unit_id, labeler_id)
WHERE queue_key IS NULL;

CREATE OR REPLACE FUNCTION tsm.fill_queue_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.queue_key := coalesce(NEW.queue_key, tsm.queue_key(NEW.event_date, NEW.unit_id, NEW.labeler_id));
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS label_tasks_queue_key ON tsm.label_tasks;
CREATE TRIGGER label_tasks_queue_key BEFORE INSERT ON tsm.label_tasks
    FOR EACH ROW EXECUTE FUNCTION tsm.fill_queue_key();
ALTER TABLE tsm.label_tasks ALTER COLUMN queue_key SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS label_tasks_labeler_queue_key
    ON tsm.label_tasks (labeler_id, queue_key);

ALTER TABLE tsm.label_tasks DROP CONSTRAINT IF EXISTS label_tasks_purpose_check;
ALTER TABLE tsm.label_tasks ADD CONSTRAINT label_tasks_purpose_check
    CHECK (purpose IN ('primary', 'overlap', 'gold'));
ALTER TABLE tsm.label_tasks ADD CONSTRAINT label_tasks_gold_id_check
    CHECK ((purpose = 'gold') = (gold_id IS NOT NULL));

-- The SME gold set: items with known answers (tsmetrics.gold.load_gold_file), injected blind
-- into the labelers' queues at labeling.gold.rate; never part of a sample or an estimate.
CREATE TABLE IF NOT EXISTS tsm.gold_items (
    gold_id         text        PRIMARY KEY,
    surface         text        NOT NULL,
    components      jsonb       NOT NULL,  -- as in a unit record (component_id, type, text, ...)
    impressions     bigint      NOT NULL,
    answers         jsonb       NOT NULL,  -- policy -> {"is_violating": bool, "sub_policy": id|null}
    notes           text,
    active          boolean     NOT NULL DEFAULT true,
    source          text        NOT NULL,  -- the file it was (last) loaded from
    content_sha256  text        NOT NULL,  -- of the item as loaded; a change updates the row
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Per day, policy and labeler: the labeler's confusion matrix against a reference, 'gold' (the
-- SME answers of the day's gold tasks: counts) or the day's adjudication method ('primary',
-- 'majority': counts against the adjudicated label on the sampled units; 'dawid_skene': the
-- model's expected counts, sum over items of P(true class | labels) x 1[observed label]).
CREATE TABLE IF NOT EXISTS tsm.labeler_confusion (
    event_date       date             NOT NULL,
    policy           text             NOT NULL,
    labeler_id       text             NOT NULL,
    reference        text             NOT NULL,
    n_items          double precision NOT NULL,
    true_positive    double precision NOT NULL,
    false_positive   double precision NOT NULL,
    false_negative   double precision NOT NULL,
    true_negative    double precision NOT NULL,
    accuracy         double precision,
    accuracy_se      double precision,
    sensitivity      double precision,
    specificity      double precision,
    computed_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, policy, labeler_id, reference)
);

-- How complete the day's labels were when estimation went ahead (tsmetrics.label_wait): per
-- labeler and policy, the sampled units' tasks (gold excluded), done (a label for the policy),
-- failed, pending, the completion fraction, the configured minimum, the deadline, and whether
-- the deadline cut the wait short.
CREATE TABLE IF NOT EXISTS tsm.label_completion (
    event_date       date             NOT NULL,
    labeler_id       text             NOT NULL,
    policy           text             NOT NULL,
    backend          text             NOT NULL,
    tasks            int              NOT NULL,
    done             int              NOT NULL,
    failed           int              NOT NULL,
    pending          int              NOT NULL,
    completion       double precision,
    min_completion   double precision NOT NULL,
    gold_tasks       int              NOT NULL,
    gold_done        int              NOT NULL,
    deadline_at      timestamptz,
    outcome          text             NOT NULL CHECK (outcome IN ('complete', 'deadline', 'no_wait')),
    cut_by_deadline  boolean          NOT NULL,
    wait_rounds      int              NOT NULL,
    waited_seconds   double precision NOT NULL,
    decided_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, labeler_id, policy)
);

-- Which adjudication produced the labels an estimate used ('primary', 'majority',
-- 'dawid_skene'), with per-policy details (units with several labels, labels changed against
-- the primary labeler's, unresolved ties, EM convergence).
ALTER TABLE tsm.estimates ADD COLUMN IF NOT EXISTS adjudication text;
ALTER TABLE tsm.estimates ADD COLUMN IF NOT EXISTS adjudication_details jsonb;
