-- etl.failures: etl.error_log rows, newest first, filtered by object, SQLSTATE, field, run and
-- time ([p_from, p_to)), keyset-paged on error_id (pass the last error_id of a page as p_after).
-- row_payload is what etl.log_error stored: secrets already redacted. field is the column a
-- rejected row failed on, where the message or detail names one (etl.error_field), as
-- etl.failure_causes groups by it.
CREATE OR REPLACE FUNCTION etl.failures(p_object text DEFAULT NULL, p_sqlstate text DEFAULT NULL,
                                        p_field text DEFAULT NULL, p_process_id bigint DEFAULT NULL,
                                        p_from timestamptz DEFAULT NULL,
                                        p_to timestamptz DEFAULT NULL,
                                        p_after bigint DEFAULT NULL, p_limit integer DEFAULT 50)
RETURNS TABLE (error_id bigint, logged_at timestamptz, logged_by text, object_name text,
               table_name text, field text, sqlstate text, message text, detail text, hint text,
               row_key jsonb, row_payload jsonb, process_id bigint)
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
        SELECT e.error_id, e.logged_at, e.logged_by, e.object_name, e.table_name, f.field,
               e.sqlstate, e.message, e.detail, e.hint, e.row_key, e.row_payload, e.process_id
          FROM etl.error_log AS e
         CROSS JOIN LATERAL (SELECT etl.error_field(e.message, e.detail) AS field) AS f
         WHERE (p_object IS NULL OR e.object_name = p_object)
           AND (p_sqlstate IS NULL OR e.sqlstate = p_sqlstate)
           AND (p_field IS NULL OR f.field = p_field)
           AND (p_process_id IS NULL OR e.process_id = p_process_id)
           AND (p_from IS NULL OR e.logged_at >= p_from)
           AND (p_to IS NULL OR e.logged_at < p_to)
           AND (p_after IS NULL OR e.error_id < p_after)
         ORDER BY e.error_id DESC
         LIMIT p_limit;
END
$function$;

REVOKE ALL ON FUNCTION etl.failures(text, text, text, bigint, timestamptz, timestamptz, bigint,
                                    integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.failures(text, text, text, bigint, timestamptz, timestamptz, bigint,
                                       integer) TO pgferry_viewer, pgferry_owner;
