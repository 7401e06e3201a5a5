-- tps.journal_staged_permit: journal a 'staged' step for every permit the loader inserts.
-- Statement-level with a transition table: one INSERT per loader statement, not one per row.
-- Log-and-continue: the loader's insert must never fail because of the journal, so an error is
-- written to etl.error_log and the insert goes on.
CREATE OR REPLACE FUNCTION tps.journal_staged_permit()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_state text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    BEGIN
        INSERT INTO etl.journal (pipeline, item_id, step, at, process_id)
        SELECT 'permits', n.staged_permit_id, 'staged', n.staged_at, n.process_id
          FROM staged_rows AS n;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        PERFORM etl.log_error(p_object_name => 'tps.journal_staged_permit', p_sqlstate => v_state,
                              p_message => v_message, p_detail => v_detail, p_hint => v_hint,
                              p_context => v_context, p_table_name => 'tps.staged_permit');
    END;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION tps.journal_staged_permit() FROM PUBLIC;

CREATE OR REPLACE TRIGGER journal_staged_permit
    AFTER INSERT ON tps.staged_permit
    REFERENCING NEW TABLE AS staged_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tps.journal_staged_permit();
