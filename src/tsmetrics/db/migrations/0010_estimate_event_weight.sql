-- 0010: the gamma intervals' weight of one more violating unit (the mean x / (pi X) of the
-- uncertain sampled units, tsmetrics.gamma_interval.mean_uncertain_weight) kept with each
-- estimate, so that a small cell's 7-day pool uses the same interval as the day
-- (tsmetrics.pooling.pool_days). Null for the other interval methods and for rows written
-- before this migration (those days are left out of a gamma pool).
ALTER TABLE tsm.estimates ADD COLUMN IF NOT EXISTS event_weight double precision
    CHECK (event_weight IS NULL OR event_weight > 0);
