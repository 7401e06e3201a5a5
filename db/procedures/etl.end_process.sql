-- etl.end_process: close a running process as 'succeeded' or 'failed'.
-- A failed run records its message and queues an alert; its window is covered again by the next
-- run. Consumers are woken with NOTIFY etl_process_ended (payload: JSON with pipeline, process_id,
-- status), through etl.notify, so a full notification queue never fails the loader's COMMIT.
CREATE OR REPLACE FUNCTION etl.end_process(
    p_process_id   bigint,
    p_status       text,
    p_rows_loaded  bigint DEFAULT NULL,
    p_message      text   DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_process etl.process;
BEGIN
    IF p_process_id IS NULL OR p_status IS NULL THEN
        RAISE EXCEPTION 'etl.end_process: process id and status must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_status NOT IN ('succeeded', 'failed') THEN
        RAISE EXCEPTION 'etl.end_process: status must be ''succeeded'' or ''failed'', not "%"', p_status
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '''running'' and ''abandoned'' are set by etl.start_process only.';
    END IF;
    IF p_rows_loaded < 0 THEN
        RAISE EXCEPTION 'etl.end_process: rows loaded must not be negative, got %', p_rows_loaded
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE etl.process
       SET status = p_status, ended_at = clock_timestamp(),
           rows_loaded = p_rows_loaded, message = p_message
     WHERE process_id = p_process_id AND status = 'running'
    RETURNING * INTO v_process;

    IF NOT FOUND THEN
        SELECT * INTO v_process FROM etl.process WHERE process_id = p_process_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'etl.end_process: unknown process id %', p_process_id
                USING ERRCODE = 'no_data_found',
                      HINT = 'Use the id that etl.start_process returned.';
        END IF;
        RAISE EXCEPTION 'etl.end_process: process % already ended as % at %',
                        p_process_id, v_process.status, v_process.ended_at
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = CASE v_process.status
                      WHEN 'abandoned' THEN 'It ran longer than the pipeline''s hung_after and was '
                                            'abandoned; the next run covers its window again.'
                      ELSE 'A process can be ended once.' END;
    END IF;

    IF p_status = 'failed' THEN
        PERFORM etl.queue_alert(
            'process_failed',
            format('pgferry: %s process %s failed', v_process.pipeline, p_process_id),
            format('Process %s of pipeline %s failed at %s: %s. The next run covers its window again.',
                   p_process_id, v_process.pipeline, v_process.ended_at,
                   coalesce(p_message, '(no message given)')),
            v_process.pipeline, p_process_id);
    END IF;
    PERFORM etl.notify('etl_process_ended',
                       json_build_object('pipeline', v_process.pipeline,
                                         'process_id', p_process_id,
                                         'status', p_status)::text);
END
$function$;

REVOKE ALL ON FUNCTION etl.end_process(bigint, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.end_process(bigint, text, bigint, text) TO pgferry_loader, pgferry_worker, pgferry_owner;
