-- 0003: pipeline health and risk-score drift (filled by include/sql/score_histograms.sql, read
-- by tsmetrics.health).

-- Impression-weighted histogram of each policy's OBSERVED unit risk over a day, on fixed bins
-- [lower, upper) (the last bin includes 1): the same edges every day, so any two days compare
-- without re-reading old partitions. Units whose risk is imputed (no score for the policy) are
-- left out: their risk is a constant fill, not a model score; they are counted in
-- tsm.score_day_stats. Every bin of every policy is written, empty ones with 0.
CREATE TABLE tsm.score_histograms (
    event_date   date             NOT NULL,
    policy       text             NOT NULL,
    bin          int              NOT NULL CHECK (bin >= 0),
    lower        double precision NOT NULL,
    upper        double precision NOT NULL CHECK (upper > lower),
    impressions  double precision NOT NULL CHECK (impressions >= 0),
    n_units      bigint           NOT NULL CHECK (n_units >= 0),
    PRIMARY KEY (event_date, policy, bin)
);

-- Per policy and day: all units and those with an imputed risk (count and impressions), as seen
-- when the day's histogram was built (n_units also tells whether the histogram is stale).
CREATE TABLE tsm.score_day_stats (
    event_date           date             NOT NULL,
    policy               text             NOT NULL,
    n_units              bigint           NOT NULL CHECK (n_units >= 0),
    n_imputed            bigint           NOT NULL CHECK (n_imputed >= 0 AND n_imputed <= n_units),
    impressions          double precision NOT NULL CHECK (impressions >= 0),
    imputed_impressions  double precision NOT NULL CHECK (imputed_impressions >= 0),
    computed_at          timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_date, policy)
);
