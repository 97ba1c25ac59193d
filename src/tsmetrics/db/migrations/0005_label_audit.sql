-- 0005: label provenance and the audit trail of labeler calls.

-- Which prompt (template + policy texts, tsmetrics.prompts.prompt_version) and model produced a
-- label; NULL for labelers without prompts (the simulator, human queues).
ALTER TABLE tsm.labels ADD COLUMN IF NOT EXISTS prompt_version text;
ALTER TABLE tsm.labels ADD COLUMN IF NOT EXISTS model text;

-- One row per HTTP attempt of an LLM labeler (tsmetrics.llm_labeler.AttemptRecord): what was
-- asked of which model under which prompt version, what came back (raw, API key redacted), how
-- long it took, tokens and cost, and why it failed when it did. Rows of a day are replaced when
-- the day's label tasks are re-dispatched; a re-run of collect_labels appends (attempts are
-- history) and the day's budget counts them.
CREATE TABLE IF NOT EXISTS tsm.label_attempts (
    attempt_id         bigserial        PRIMARY KEY,
    event_date         date             NOT NULL,
    labeler_id         text             NOT NULL,
    unit_id            text,
    model              text             NOT NULL,
    prompt_version     text             NOT NULL,
    attempt            int              NOT NULL,
    started_at         timestamptz      NOT NULL,
    latency_ms         double precision NOT NULL,
    http_status        int,
    prompt_tokens      int,
    completion_tokens  int,
    usage_estimated    boolean          NOT NULL,
    cost_usd           double precision NOT NULL,
    finish_reason      text,
    raw_response       text,
    error_reason       text,
    error_detail       text,
    retry_after_s      double precision,
    next_delay_s       double precision
);
CREATE INDEX IF NOT EXISTS label_attempts_day ON tsm.label_attempts (event_date, labeler_id);
