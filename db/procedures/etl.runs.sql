-- etl.runs: the runs (etl.process), newest first, filtered by pipeline, status and start time
-- ([p_from, p_to)), keyset-paged: pass the last process_id of a page as p_after for the next.
-- Keyset, not OFFSET, so a page costs the same at run 10 and at run 10,000, and a run that starts
-- meanwhile never shifts a page.
CREATE OR REPLACE FUNCTION etl.runs(p_pipeline text DEFAULT NULL, p_status text DEFAULT NULL,
                                    p_from timestamptz DEFAULT NULL,
                                    p_to timestamptz DEFAULT NULL,
                                    p_after bigint DEFAULT NULL, p_limit integer DEFAULT 50)
RETURNS TABLE (process_id bigint, pipeline text, status text, started_at timestamptz,
               ended_at timestamptz, window_from timestamptz, window_to timestamptz,
               rows_loaded bigint, message text, consumed_at timestamptz)
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
        SELECT p.process_id, p.pipeline, p.status, p.started_at, p.ended_at, p.window_from,
               p.window_to, p.rows_loaded, p.message, p.consumed_at
          FROM etl.process AS p
         WHERE (p_pipeline IS NULL OR p.pipeline = p_pipeline)
           AND (p_status IS NULL OR p.status = p_status)
           AND (p_from IS NULL OR p.started_at >= p_from)
           AND (p_to IS NULL OR p.started_at < p_to)
           AND (p_after IS NULL OR p.process_id < p_after)
         ORDER BY p.process_id DESC
         LIMIT p_limit;
END
$function$;

REVOKE ALL ON FUNCTION etl.runs(text, text, timestamptz, timestamptz, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.runs(text, text, timestamptz, timestamptz, bigint, integer)
    TO pgferry_viewer, pgferry_owner;
