-- etl.get_time_range: the half-open window [window_from, window_to) a process must load.
-- Source rows changed at or after window_from and before window_to belong to this run.
CREATE OR REPLACE FUNCTION etl.get_time_range(p_process_id bigint)
RETURNS TABLE (window_from timestamptz, window_to timestamptz)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF p_process_id IS NULL THEN
        RAISE EXCEPTION 'etl.get_time_range: process id must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
        SELECT p.window_from, p.window_to FROM etl.process AS p WHERE p.process_id = p_process_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'etl.get_time_range: unknown process id %', p_process_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Use the id that etl.start_process returned.';
    END IF;
END
$function$;

REVOKE ALL ON FUNCTION etl.get_time_range(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.get_time_range(bigint) TO pgferry_loader, pgferry_worker, pgferry_owner;
