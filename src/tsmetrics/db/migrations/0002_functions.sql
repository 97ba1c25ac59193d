-- 0002: helper functions used by the templated SQL in include/sql.

-- Parse text as jsonb; NULL when it is not valid JSON (the caller quarantines the line).
CREATE OR REPLACE FUNCTION tsm.try_jsonb(txt text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN txt::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;

-- Parse an ISO-8601 date-time; NULL when unparseable, date-only or without a time zone.
CREATE OR REPLACE FUNCTION tsm.try_timestamptz(txt text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF txt IS NULL
       OR txt !~ '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d(:?\d\d)?)$' THEN
        RETURN NULL;
    END IF;
    RETURN txt::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;

-- Create the day partitions of every day-partitioned table (idempotent).
CREATE OR REPLACE FUNCTION tsm.ensure_day_partitions(day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    parent text;
BEGIN
    FOREACH parent IN ARRAY ARRAY['raw_interactions', 'raw_components', 'raw_risk_scores',
                                  'units', 'unit_risk'] LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS tsm.%I PARTITION OF tsm.%I FOR VALUES FROM (%L) TO (%L)',
            parent || '_' || to_char(day, 'YYYYMMDD'), parent, day, day + 1);
    END LOOP;
END;
$$;

-- Empty one day's partition of a day-partitioned table (re-running a day replaces it).
CREATE OR REPLACE FUNCTION tsm.truncate_day(parent text, day date) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('TRUNCATE tsm.%I', parent || '_' || to_char(day, 'YYYYMMDD'));
END;
$$;

-- A deterministic uniform number in (0, 1) from a text key (hash-based selection).
CREATE OR REPLACE FUNCTION tsm.hash_uniform(key text) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((hashtextextended(key, 0) & 4503599627370495)::double precision + 0.5)
           / 4503599627370496.0
$$;
