-- etl.end_di_run: close a run of a data-integration process (etl.end_process: a failed run
-- records its message, queues an alert, and its window is covered again by the next run). A DI
-- run has no downstream consumer: the run itself merged what it read, so a succeeded run is
-- consumed as it ends and never counts as waiting.
CREATE OR REPLACE FUNCTION etl.end_di_run(p_process_id bigint, p_status text,
                                          p_rows_loaded bigint DEFAULT NULL,
                                          p_message text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF NOT EXISTS (SELECT FROM etl.di_process AS d JOIN etl.process AS p ON p.pipeline = d.name
                    WHERE p.process_id = p_process_id) THEN
        RAISE EXCEPTION 'etl.end_di_run: process % is not a run of a DI process', p_process_id
            USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM etl.end_process(p_process_id, p_status, p_rows_loaded, p_message);
    UPDATE etl.process SET consumed_at = ended_at
     WHERE process_id = p_process_id AND status = 'succeeded';
END
$function$;

REVOKE ALL ON FUNCTION etl.end_di_run(bigint, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.end_di_run(bigint, text, bigint, text)
    TO pgferry_worker, pgferry_owner;
