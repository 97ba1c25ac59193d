-- 0006: what is published for each estimate cell (tsmetrics.pooling.classify_cell): report the
-- day, flag a day without violations (upper bound only), pool the week, or suppress (upper
-- bound only), with the reason and the text ops see.
ALTER TABLE tsm.estimates ADD COLUMN IF NOT EXISTS cell_status text
    CHECK (cell_status IN ('report', 'flag', 'pool', 'suppress'));
ALTER TABLE tsm.estimates ADD COLUMN IF NOT EXISTS cell_reason text;
ALTER TABLE tsm.estimates ADD COLUMN IF NOT EXISTS published text;
