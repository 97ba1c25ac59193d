-- 0001: the tsmetrics warehouse (schema tsm). See docs/schema.md.
CREATE SCHEMA IF NOT EXISTS tsm;

-- Raw layer: one day's interaction logs, partitioned by event_date (one partition a day, created
-- by the extractor). Re-loading a day truncates its partitions: never duplicates.
CREATE TABLE tsm.raw_interactions (
    event_date      date        NOT NULL,
    interaction_id  text        NOT NULL,
    event_ts        timestamptz NOT NULL,
    surface         text        NOT NULL,
    load_id         bigint      NOT NULL,
    PRIMARY KEY (event_date, interaction_id)
) PARTITION BY RANGE (event_date);

CREATE TABLE tsm.raw_components (
    event_date      date    NOT NULL,
    interaction_id  text    NOT NULL,
    component_id    text    NOT NULL,
    component_type  text    NOT NULL
        CHECK (component_type IN ('user_query', 'system_response', 'pin_image')),
    position        int     NOT NULL,
    content_text    text,
    pin_id          text,
    image_url       text,
    impressions     bigint  NOT NULL CHECK (impressions >= 0),
    PRIMARY KEY (event_date, interaction_id, component_id)
) PARTITION BY RANGE (event_date);

CREATE TABLE tsm.raw_risk_scores (
    event_date      date             NOT NULL,
    interaction_id  text             NOT NULL,
    component_id    text             NOT NULL,
    policy          text             NOT NULL,
    score           double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    PRIMARY KEY (event_date, interaction_id, component_id, policy)
) PARTITION BY RANGE (event_date);

-- Every load of a day's file: counts reconcile (rows_read = rows_loaded + rows_quarantined).
CREATE TABLE tsm.load_batches (
    load_id           bigserial   PRIMARY KEY,
    event_date        date        NOT NULL,
    source_path       text        NOT NULL,
    rows_read         bigint,
    rows_loaded       bigint,
    rows_quarantined  bigint,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);

-- Lines as read, before validation (COPY target). Cleared per load.
CREATE UNLOGGED TABLE tsm.staging_lines (
    load_id  bigint NOT NULL,
    line_no  bigint GENERATED ALWAYS AS IDENTITY,
    line     text
);
CREATE INDEX ON tsm.staging_lines (load_id);

-- Rejected input rows, with the reason. Replaced per day on re-load.
CREATE TABLE tsm.quarantine (
    event_date      date        NOT NULL,
    load_id         bigint      NOT NULL REFERENCES tsm.load_batches (load_id),
    source_path     text        NOT NULL,
    line_no         bigint      NOT NULL,
    reason          text        NOT NULL,
    raw_line        text,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON tsm.quarantine (event_date);

-- Measurement units: one multi-component interaction = one unit.
CREATE TABLE tsm.units (
    event_date    date    NOT NULL,
    unit_id       text    NOT NULL,
    surface       text    NOT NULL,
    impressions   bigint  NOT NULL,
    n_components  int     NOT NULL,
    PRIMARY KEY (event_date, unit_id)
) PARTITION BY RANGE (event_date);

-- Unit risk per policy: max over components; imputed (never zero) when every score is missing.
CREATE TABLE tsm.unit_risk (
    event_date    date             NOT NULL,
    unit_id       text             NOT NULL,
    policy        text             NOT NULL,
    risk          double precision NOT NULL CHECK (risk >= 0 AND risk <= 1),
    risk_imputed  boolean          NOT NULL,
    PRIMARY KEY (event_date, unit_id, policy)
) PARTITION BY RANGE (event_date);

-- A day's sampling design: enough to recompute every selection probability and estimate.
CREATE TABLE tsm.sample_designs (
    event_date         date             NOT NULL,
    design_id          text             NOT NULL,
    method             text             NOT NULL,
    seed               bigint           NOT NULL,
    n_draws            int              NOT NULL CHECK (n_draws > 0),
    size_floor         double precision NOT NULL,
    total_size         double precision NOT NULL,
    total_impressions  bigint           NOT NULL,
    n_units            bigint           NOT NULL,
    params             jsonb            NOT NULL DEFAULT '{}',
    created_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, design_id)
);

-- Selected units, one row per draw (PPS with replacement: a unit may be drawn more than once).
CREATE TABLE tsm.samples (
    event_date      date             NOT NULL,
    design_id       text             NOT NULL,
    draw_no         int              NOT NULL,
    unit_id         text             NOT NULL,
    size            double precision NOT NULL,
    selection_prob  double precision NOT NULL CHECK (selection_prob > 0 AND selection_prob <= 1),
    expected_hits   double precision NOT NULL,
    impressions     bigint           NOT NULL,
    PRIMARY KEY (event_date, design_id, draw_no),
    FOREIGN KEY (event_date, design_id) REFERENCES tsm.sample_designs ON DELETE CASCADE
);

-- One task = one unit sent to one labeler, as one unified record (payload).
CREATE TABLE tsm.label_tasks (
    task_id     bigserial   PRIMARY KEY,
    event_date  date        NOT NULL,
    unit_id     text        NOT NULL,
    labeler_id  text        NOT NULL,
    purpose     text        NOT NULL CHECK (purpose IN ('primary', 'overlap')),
    payload     jsonb       NOT NULL,
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts    int         NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_date, unit_id, labeler_id)
);

-- Labels: one row per unit, labeler and policy. A failed attempt never becomes a label.
CREATE TABLE tsm.labels (
    event_date    date             NOT NULL,
    unit_id       text             NOT NULL,
    labeler_id    text             NOT NULL,
    policy        text             NOT NULL,
    is_violating  boolean          NOT NULL,
    sub_policy    text,
    confidence    double precision,
    labeled_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, unit_id, labeler_id, policy)
);

CREATE TABLE tsm.estimates (
    event_date             date             NOT NULL,
    design_id              text             NOT NULL,
    policy                 text             NOT NULL,
    domain                 text             NOT NULL DEFAULT 'all',
    estimator              text             NOT NULL,
    estimate               double precision NOT NULL,
    std_error              double precision NOT NULL,
    ci_lower               double precision NOT NULL,
    ci_upper               double precision NOT NULL,
    ci_method              text             NOT NULL,
    confidence             double precision NOT NULL,
    n_draws                int              NOT NULL,
    n_distinct_units       int,
    n_positive_draws       int              NOT NULL,
    effective_sample_size  double precision,
    total_impressions      bigint           NOT NULL,
    computed_at            timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, design_id, policy, domain, estimator)
);

CREATE TABLE tsm.agreement (
    event_date          date             NOT NULL,
    policy              text             NOT NULL,
    labeler_a           text             NOT NULL,
    labeler_b           text             NOT NULL,
    metric              text             NOT NULL,
    value               double precision,
    std_error           double precision,
    percent_agreement   double precision,
    n_items             int              NOT NULL,
    computed_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, policy, labeler_a, labeler_b, metric)
);

CREATE TABLE tsm.checks (
    event_date   date             NOT NULL,
    check_name   text             NOT NULL,
    policy       text             NOT NULL,
    statistic    double precision,
    threshold    double precision,
    p_value      double precision,
    outcome      text             NOT NULL CHECK (outcome IN ('pass', 'breach', 'skipped')),
    details      jsonb            NOT NULL DEFAULT '{}',
    computed_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, check_name, policy)
);

-- Alert outbox: one row per breach (dedup_key), sent at most once, retried until sent.
CREATE TABLE tsm.alerts (
    alert_id    bigserial   PRIMARY KEY,
    event_date  date        NOT NULL,
    dedup_key   text        NOT NULL UNIQUE,
    policy      text        NOT NULL,
    check_name  text        NOT NULL,
    message     jsonb       NOT NULL,
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    attempts    int         NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
