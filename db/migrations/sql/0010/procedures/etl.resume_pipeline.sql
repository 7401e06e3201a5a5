-- etl.resume_pipeline: let a paused pipeline claim again, and wake its workers (the channels they
-- LISTEN on) so that they claim now rather than at their next poll, which may be minutes away.
-- Journaled with who and why; returns 1 when it resumed the pipeline, 0 when it was not paused.
CREATE OR REPLACE FUNCTION etl.resume_pipeline(p_pipeline text, p_reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_action_id bigint := etl.begin_operator_action('resume_pipeline', p_pipeline, '{}', p_reason);
    v_affected  integer;
BEGIN
    UPDATE etl.pipeline SET paused_at = NULL, paused_by = NULL, pause_reason = NULL
     WHERE name = p_pipeline AND paused_at IS NOT NULL;
    GET DIAGNOSTICS v_affected = ROW_COUNT;
    IF v_affected > 0 THEN
        -- the channels harness.runtime.worker.CHANNELS listens on
        PERFORM etl.notify(CASE p_pipeline WHEN 'permits' THEN 'etl_process_ended'
                                           ELSE 'delivery_job_pending' END, p_pipeline);
    END IF;
    UPDATE etl.operator_action SET affected = v_affected WHERE action_id = v_action_id;
    RETURN v_affected;
END
$function$;

REVOKE ALL ON FUNCTION etl.resume_pipeline(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.resume_pipeline(text, text) TO pgferry_operator, pgferry_owner;
