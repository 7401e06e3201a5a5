-- etl.record_cutover_check: keep the result of one `harness cutover verify` beside the process
-- table, so the sign-off of a cutover has a record: who ran it, when, whether everything
-- matched, and the whole report (tables compared, the keys that differ, the key indicators on
-- both sides). Returns the check's id.
CREATE OR REPLACE FUNCTION etl.record_cutover_check(p_passed boolean, p_report jsonb)
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    INSERT INTO etl.cutover_check (passed, report) VALUES (p_passed, p_report)
    RETURNING check_id
$function$;

REVOKE ALL ON FUNCTION etl.record_cutover_check(boolean, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.record_cutover_check(boolean, jsonb)
    TO pgferry_worker, pgferry_owner;
