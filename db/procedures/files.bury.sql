-- files.bury: file p_file (its row locked by the caller) is a dead letter: its error class and
-- message kept with it, its lease released, one journal row 'dead', the error logged in
-- etl.error_log and one alert 'files_dead' whose body is p_explanation and the command that
-- requeues it. For files.record_failure (a failure not retried) and files.claim_files (a file
-- whose lease expired max_attempts times).
CREATE OR REPLACE FUNCTION files.bury(p_file files.file, p_error_class text, p_message text,
                                      p_explanation text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    UPDATE files.file
       SET state = 'dead', error_class = p_error_class, error = p_message, lease_worker = NULL,
           lease_token = NULL, lease_expires_at = NULL
     WHERE file_id = p_file.file_id;
    INSERT INTO etl.journal (pipeline, item_id, step, detail)
    VALUES ('files', p_file.file_id, 'dead',
            jsonb_build_object('error_class', p_error_class, 'message', p_message));
    PERFORM etl.log_error(
        p_object_name => 'harness files',
        p_sqlstate    => CASE p_error_class WHEN 'network' THEN '08006'
                                            WHEN 'auth' THEN '28000'
                                            WHEN 'missing' THEN '58P01'
                                            WHEN 'storage' THEN '58030'
                                            WHEN 'lease_expired' THEN '57014'
                                            ELSE '22000' END,
        p_message     => format('file %s of source %s: %s', p_file.path, p_file.source,
                                p_message),
        p_detail      => p_explanation,
        p_row_key     => jsonb_build_object('file_id', p_file.file_id));
    PERFORM etl.queue_alert(
        'files_dead',
        format('pgferry: file %s of source %s is a dead letter', p_file.path, p_file.source),
        format('%s Then: harness files requeue %s', p_explanation, p_file.file_id),
        'files');
END
$function$;

REVOKE ALL ON FUNCTION files.bury(files.file, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.bury(files.file, text, text, text) TO pgferry_owner;
