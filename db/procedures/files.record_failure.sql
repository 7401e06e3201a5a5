-- files.record_failure: step p_step of file p_file_id failed under the lease p_lease_token,
-- with the typed error p_error_class (network, auth, missing, empty, corrupt, bomb, unsafe_path,
-- format, storage, import) and p_message (one line, no secrets). One journal row 'failed'.
-- A retryable failure with attempts left goes back to pending after a backoff (30 s doubled per
-- attempt, at most an hour) and resumes after its last completed step; otherwise the file is a
-- dead letter: logged in etl.error_log and alerted once. A file that changed since it was listed
-- (p_error_class 'changed') is superseded by its new version. Returns 'retry', 'dead',
-- 'superseded' or 'fenced' (the file no longer carries the token: nothing written).
CREATE OR REPLACE FUNCTION files.record_failure(p_file_id bigint, p_lease_token bigint,
                                                p_step text, p_error_class text,
                                                p_message text, p_retryable boolean)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_file     files.file;
    v_attempts integer;
    v_retry_at timestamptz;
BEGIN
    v_file := files.held_file(p_file_id, p_lease_token);
    IF v_file.file_id IS NULL THEN
        RETURN 'fenced';
    END IF;
    SELECT max_attempts INTO v_attempts FROM files.source WHERE name = v_file.source;
    IF p_error_class = 'changed' THEN  -- the file changed since it was listed: its new
        -- version is a file of its own (the next listing finds it); this one is done, no alert
        UPDATE files.file
           SET state = 'superseded', error_class = p_error_class, error = p_message,
               lease_worker = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE file_id = p_file_id;
        INSERT INTO etl.journal (pipeline, item_id, step, detail)
        VALUES ('files', p_file_id, 'superseded',
                jsonb_build_object('reason', p_message, 'step', p_step));
        RETURN 'superseded';
    END IF;
    IF p_retryable AND v_file.attempts < v_attempts THEN
        -- the exponent capped first: 2 ^ 40 seconds would be out of an interval's range
        v_retry_at := now() + least(interval '30 seconds' * 2 ^ least(v_file.attempts - 1, 7),
                                    interval '1 hour');
    END IF;
    INSERT INTO etl.journal (pipeline, item_id, step, detail)
    VALUES ('files', p_file_id, 'failed',
            jsonb_build_object('step', p_step, 'error_class', p_error_class,
                               'message', p_message, 'attempt', v_file.attempts,
                               'worker', v_file.lease_worker, 'retry_at', v_retry_at));
    IF v_retry_at IS NOT NULL THEN
        UPDATE files.file
           SET state = 'pending', next_attempt_at = v_retry_at, error_class = p_error_class,
               error = p_message, lease_worker = NULL, lease_token = NULL,
               lease_expires_at = NULL
         WHERE file_id = p_file_id;
        RETURN 'retry';
    END IF;
    PERFORM files.bury(v_file, p_error_class, p_message,
                       format('Step %s failed (%s) at attempt %s: %s. Fix the cause.', p_step,
                              p_error_class, v_file.attempts, p_message));
    RETURN 'dead';
END
$function$;

REVOKE ALL ON FUNCTION files.record_failure(bigint, bigint, text, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.record_failure(bigint, bigint, text, text, text, boolean)
    TO pgferry_worker;
