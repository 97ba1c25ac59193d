-- Every line read is either loaded or quarantined, and the raw tables hold exactly the loaded
-- rows. Each column must be true (SQLCheckOperator fails the task otherwise).
SELECT
    b.rows_loaded > 0 AS some_rows_loaded,
    b.rows_read = b.rows_loaded + b.rows_quarantined AS read_equals_loaded_plus_quarantined,
    b.rows_loaded = (
        SELECT count(*) FROM tsm.raw_interactions WHERE event_date = %(day)s::date
    ) AS raw_rows_equal_loaded,
    b.rows_quarantined = (
        SELECT count(*) FROM tsm.quarantine WHERE event_date = %(day)s::date
    ) AS quarantine_rows_equal_quarantined
FROM tsm.load_batches AS b
WHERE b.load_id = %(load_id)s::bigint;
