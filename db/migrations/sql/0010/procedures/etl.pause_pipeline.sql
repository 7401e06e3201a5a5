-- etl.pause_pipeline: stop a pipeline's claims (permit.claim_batch, delivery.claim_jobs claim
-- nothing while paused_at is set). Every worker obeys at its next claim, without a restart;
-- batches already claimed finish. Journaled with who and why; returns 1 when it paused the
-- pipeline, 0 when it was paused already.
CREATE OR REPLACE FUNCTION etl.pause_pipeline(p_pipeline text, p_reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_action_id bigint := etl.begin_operator_action('pause_pipeline', p_pipeline, '{}', p_reason);
    v_affected  integer;
BEGIN
    UPDATE etl.pipeline
       SET paused_at = clock_timestamp(), paused_by = session_user, pause_reason = p_reason
     WHERE name = p_pipeline AND paused_at IS NULL;
    GET DIAGNOSTICS v_affected = ROW_COUNT;
    UPDATE etl.operator_action SET affected = v_affected WHERE action_id = v_action_id;
    RETURN v_affected;
END
$function$;

REVOKE ALL ON FUNCTION etl.pause_pipeline(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.pause_pipeline(text, text) TO pgferry_operator, pgferry_owner;
