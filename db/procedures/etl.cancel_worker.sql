-- etl.cancel_worker: ask one worker to stop cleanly (it finishes the batch in hand and exits).
-- Two paths, so that it stops even when one is down: the cancel NOTIFY the worker LISTENs for
-- (pgferry_cancel with its id, as `harness cancel --worker` sends; delivered at commit, so the
-- worker stops at once), and stop_requested_at, which its next heartbeat (at most 10 s later)
-- answers when LISTEN is off. Returns 1 when the worker is registered and not stopped, else 0.
CREATE OR REPLACE FUNCTION etl.cancel_worker(p_worker_id text, p_reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_action_id bigint := etl.begin_operator_action(
        'cancel_worker', NULL, jsonb_build_object('worker_id', p_worker_id), p_reason);
    v_affected  integer;
BEGIN
    UPDATE etl.worker
       SET stop_requested_at = coalesce(stop_requested_at, clock_timestamp())
     WHERE worker_id = p_worker_id AND stopped_at IS NULL;
    GET DIAGNOSTICS v_affected = ROW_COUNT;
    IF v_affected > 0 THEN
        -- harness.runtime.lifecycle.CANCEL_CHANNEL; an empty payload would stop every worker
        PERFORM etl.notify('pgferry_cancel', p_worker_id);
    END IF;
    UPDATE etl.operator_action SET affected = v_affected WHERE action_id = v_action_id;
    RETURN v_affected;
END
$function$;

REVOKE ALL ON FUNCTION etl.cancel_worker(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.cancel_worker(text, text) TO pgferry_operator, pgferry_owner;
