-- delivery.requeue_dead: put dead and failed jobs back in the queue (all, or the given job
-- ids) with a fresh attempt count; journals a 'requeued' step. Returns the requeued ids.
CREATE OR REPLACE FUNCTION delivery.requeue_dead(p_ids bigint[] DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH requeued AS (
        UPDATE delivery.job AS j
           SET sync_state = 'pending', attempts = 0, next_attempt_at = now(),
               due_since = clock_timestamp(), updated_at = clock_timestamp()
         WHERE j.sync_state IN ('dead', 'failed') AND (p_ids IS NULL OR j.job_id = ANY (p_ids))
        RETURNING j.job_id, j.last_error
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, detail)
        SELECT 'shipments', r.job_id, 'requeued', jsonb_build_object('last_error', r.last_error)
          FROM requeued AS r
        RETURNING item_id
    )
    SELECT item_id FROM journaled
$function$;

REVOKE ALL ON FUNCTION delivery.requeue_dead(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.requeue_dead(bigint[]) TO pgferry_worker;
