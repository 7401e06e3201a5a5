-- etl.failure_causes: etl.error_log grouped by cause (object, SQLSTATE, field as etl.failures
-- reads it) over [p_from, p_to), most frequent first, with the latest message of each: what
-- failed, not one row per failure.
CREATE OR REPLACE FUNCTION etl.failure_causes(p_from timestamptz DEFAULT NULL,
                                              p_to timestamptz DEFAULT NULL)
RETURNS TABLE (object_name text, sqlstate text, field text, errors bigint,
               first_at timestamptz, last_at timestamptz, last_message text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- a plan for the filters given: `p_x IS NULL OR ...` folds away and LIMIT is known, so a
-- page reads an index instead of the whole table (a generic plan cannot)
SET plan_cache_mode = force_custom_plan
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        -- the latest message of a cause is read once per cause, by its newest error_id, instead
        -- of sorting every message
        SELECT c.object_name, c.sqlstate, c.field, c.errors, c.first_at, c.last_at, l.message
          FROM (SELECT e.object_name, e.sqlstate, f.field, count(*) AS errors,
                       min(e.logged_at) AS first_at, max(e.logged_at) AS last_at,
                       max(e.error_id) AS last_id
                  FROM etl.error_log AS e
                 CROSS JOIN LATERAL (
                       SELECT coalesce(
                           nullif(substring(split_part(e.detail, 'field: ', 2)
                                            FROM '^[A-Za-z0-9_]+'), ''),
                           CASE WHEN split_part(split_part(e.message, 'rejected: ', 2), ':', 1)
                                     ~ '^[A-Za-z0-9_]+$'
                                THEN split_part(split_part(e.message, 'rejected: ', 2), ':', 1)
                           END) AS field) AS f
                 WHERE (p_from IS NULL OR e.logged_at >= p_from)
                   AND (p_to IS NULL OR e.logged_at < p_to)
                 GROUP BY e.object_name, e.sqlstate, f.field) AS c
          JOIN etl.error_log AS l ON l.error_id = c.last_id
         ORDER BY c.errors DESC, c.object_name, c.sqlstate, c.field;
END
$function$;

REVOKE ALL ON FUNCTION etl.failure_causes(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.failure_causes(timestamptz, timestamptz)
    TO pgferry_viewer, pgferry_owner;
