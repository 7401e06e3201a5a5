-- etl.item_to_retry: the one item etl.retry_job would retry now, if any: a dead letter (requeued)
-- or a pending item waiting out its retry delay (retried at once). Shared by the preview and the
-- action, so both select the same way. Internal.
CREATE OR REPLACE FUNCTION etl.item_to_retry(p_pipeline text, p_item_id bigint)
RETURNS TABLE (item_id bigint, item_key text, state text, attempts integer, last_error text,
               next_attempt_at timestamptz, dead boolean)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT s.staged_permit_id, format('permit %s generation %s', s.permit_number,
                                      s.permit_generation),
           s.state, s.attempts, s.last_error, s.next_attempt_at, s.state = 'dead'
      FROM tps.staged_permit AS s
     WHERE p_pipeline = 'permits' AND s.staged_permit_id = p_item_id
       AND (s.state = 'dead' OR (s.state = 'pending' AND s.next_attempt_at > now()))
    UNION ALL
    SELECT j.job_id, format('shipment %s DO %s', j.shipment_number, j.do_number),
           j.sync_state, j.attempts, j.last_error, j.next_attempt_at,
           j.sync_state IN ('failed', 'dead')
      FROM delivery.job AS j
     WHERE p_pipeline = 'shipments' AND j.job_id = p_item_id
       AND (j.sync_state IN ('failed', 'dead')
            OR (j.sync_state = 'pending' AND j.next_attempt_at > now()))
$function$;

REVOKE ALL ON FUNCTION etl.item_to_retry(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.item_to_retry(text, bigint) TO pgferry_owner;
