-- permit.purge_stranded: delete the staged permits no consumer will ever take, once they have
-- been stranded for p_older_than (PERMITS_PURGE_FAILED_AFTER_HOURS): rows of permits runs that
-- failed or were abandoned (only succeeded runs are consumed; the next run covers their window
-- again), and rows staged before 0008 into a run that had already been consumed or into another
-- pipeline's process (tps.require_open_permit_run refuses those now). Until they are purged,
-- `harness status` shows them (stranded), so an operator can look first.
--
-- Age counts from when the row became stranded: the later of its run's end and its staging.
-- Each purged row is journaled ('purged', with its process's pipeline and status). Returns how
-- many rows and processes were purged.
CREATE OR REPLACE FUNCTION permit.purge_stranded(p_older_than interval)
RETURNS TABLE (rows_purged bigint, processes bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION 'permit.purge_stranded: the age must be an interval of 0 or more, not %',
                        coalesce(p_older_than::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH purged AS (
        DELETE FROM tps.staged_permit AS s
         USING etl.process AS p
         WHERE p.process_id = s.process_id
           AND NOT (p.pipeline = 'permits'
                    AND (p.status = 'running' OR (p.status = 'succeeded' AND p.consumed_at IS NULL)))
           AND greatest(p.ended_at, s.staged_at) < now() - p_older_than
        RETURNING s.staged_permit_id, s.process_id, p.pipeline, p.status, p.consumed_at
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, process_id, detail)
        SELECT 'permits', u.staged_permit_id, 'purged', u.process_id,
               jsonb_build_object('process_pipeline', u.pipeline, 'process_status', u.status,
                                  'process_consumed', u.consumed_at IS NOT NULL,
                                  'older_than', p_older_than::text)
          FROM purged AS u
        RETURNING process_id
    )
    SELECT count(*), count(DISTINCT j.process_id) FROM journaled AS j;
END
$function$;

REVOKE ALL ON FUNCTION permit.purge_stranded(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.purge_stranded(interval) TO pgferry_worker;
