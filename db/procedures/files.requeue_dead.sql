-- files.requeue_dead: dead files back to pending, with fresh attempts: those of p_file_ids, or
-- (NULL) every dead file of source p_source, or (both NULL) every dead file. Each resumes after
-- its last completed step and is journaled 'requeued'. Returns how many.
CREATE OR REPLACE FUNCTION files.requeue_dead(p_file_ids bigint[] DEFAULT NULL,
                                              p_source text DEFAULT NULL)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH requeued AS (
        UPDATE files.file AS f
           SET state = 'pending', attempts = 0, next_attempt_at = now()
         WHERE f.state = 'dead'
           AND (p_file_ids IS NULL OR f.file_id = ANY (p_file_ids))
           AND (p_source IS NULL OR f.source = p_source)
        RETURNING f.file_id
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, detail)
        SELECT 'files', r.file_id, 'requeued', '{}' FROM requeued AS r
        RETURNING 1
    )
    SELECT count(*)::integer FROM journaled
$function$;

REVOKE ALL ON FUNCTION files.requeue_dead(bigint[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.requeue_dead(bigint[], text) TO pgferry_worker, pgferry_owner;
