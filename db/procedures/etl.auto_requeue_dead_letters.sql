-- etl.auto_requeue_dead_letters: the scheduled retry of dead letters (seed 003: every ten
-- minutes): requeue the dead letters of both pipelines that have been requeued fewer than
-- p_cap times before and have been dead for at least p_min_age. A dead letter past the cap
-- stays listed (status, `harness permits dead`) until an operator requeues it: it never
-- vanishes. Returns how many were requeued per pipeline.
CREATE OR REPLACE FUNCTION etl.auto_requeue_dead_letters(p_cap integer,
                                                         p_min_age interval DEFAULT interval '10 minutes')
RETURNS TABLE (pipeline text, requeued bigint)
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT 'permits', count(*)
      FROM permit.requeue_dead(ARRAY(
               SELECT s.staged_permit_id FROM tps.staged_permit AS s
                WHERE s.state = 'dead' AND s.dead_at <= now() - p_min_age
                  -- invalid data would only be rejected again: those wait for an operator
                  AND NOT EXISTS (SELECT FROM etl.journal AS j
                                   WHERE j.pipeline = 'permits' AND j.item_id = s.staged_permit_id
                                     AND j.step = 'dead' AND j.detail ->> 'retryable' = 'false')
                  AND (SELECT count(*) FROM etl.journal AS j
                        WHERE j.pipeline = 'permits' AND j.item_id = s.staged_permit_id
                          AND j.step = 'requeued') < p_cap))
    UNION ALL
    SELECT 'shipments', count(*)
      FROM delivery.requeue_dead(ARRAY(
               SELECT d.job_id FROM delivery.job AS d
                WHERE d.sync_state = 'dead' AND d.updated_at <= now() - p_min_age
                  AND (SELECT count(*) FROM etl.journal AS j
                        WHERE j.pipeline = 'shipments' AND j.item_id = d.job_id
                          AND j.step = 'requeued') < p_cap))
$function$;

REVOKE ALL ON FUNCTION etl.auto_requeue_dead_letters(integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.auto_requeue_dead_letters(integer, interval) TO pgferry_worker;
