-- etl.retry_job: retry one item now: a permit (staged row id) or a shipment job (job id). A dead
-- letter is requeued by its pipeline's requeue (fresh attempts, journaled); a pending item waiting
-- out its retry delay becomes due at once. Journaled with who and why; returns 1 or 0.
CREATE OR REPLACE FUNCTION etl.retry_job(p_pipeline text, p_item_id bigint, p_reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_action_id bigint := etl.begin_operator_action(
        'retry_job', p_pipeline, jsonb_build_object('item_id', p_item_id), p_reason);
    v_item      record;
    v_affected  integer := 0;
BEGIN
    SELECT * INTO v_item FROM etl.item_to_retry(p_pipeline, p_item_id);
    IF FOUND AND v_item.dead THEN
        IF p_pipeline = 'permits' THEN
            SELECT count(*) INTO v_affected FROM permit.requeue_dead(ARRAY[p_item_id]);
        ELSE
            SELECT count(*) INTO v_affected FROM delivery.requeue_dead(ARRAY[p_item_id]);
        END IF;
    ELSIF FOUND AND p_pipeline = 'permits' THEN
        UPDATE tps.staged_permit SET next_attempt_at = now()
         WHERE staged_permit_id = p_item_id AND state = 'pending' AND next_attempt_at > now();
        GET DIAGNOSTICS v_affected = ROW_COUNT;
    ELSIF FOUND THEN
        UPDATE delivery.job SET next_attempt_at = now(), updated_at = clock_timestamp()
         WHERE job_id = p_item_id AND sync_state = 'pending' AND next_attempt_at > now();
        GET DIAGNOSTICS v_affected = ROW_COUNT;
    END IF;
    UPDATE etl.operator_action SET affected = v_affected WHERE action_id = v_action_id;
    RETURN v_affected;
END
$function$;

REVOKE ALL ON FUNCTION etl.retry_job(text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.retry_job(text, bigint, text) TO pgferry_operator, pgferry_owner;
