-- permit.requeue_dead: put dead letters back in the queue (all of them, or the given staged row
-- ids) with a fresh attempt count and no expired claims counted. Returns the requeued ids;
-- journals a 'requeued' step.
CREATE OR REPLACE FUNCTION permit.requeue_dead(p_ids bigint[] DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH requeued AS (
        UPDATE tps.staged_permit AS s
           SET state = 'pending', attempts = 0, expired_claims = 0, next_attempt_at = now(),
               dead_at = NULL
         WHERE s.state = 'dead' AND (p_ids IS NULL OR s.staged_permit_id = ANY (p_ids))
        RETURNING s.staged_permit_id, s.process_id, s.last_error
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, process_id, detail)
        SELECT 'permits', r.staged_permit_id, 'requeued', r.process_id,
               jsonb_build_object('last_error', r.last_error)
          FROM requeued AS r
        RETURNING item_id
    )
    SELECT item_id FROM journaled
$function$;

REVOKE ALL ON FUNCTION permit.requeue_dead(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.requeue_dead(bigint[]) TO pgferry_worker;
