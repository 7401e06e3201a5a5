-- etl.log_error: the one shared TRY/CATCH logging routine. Call it from an EXCEPTION handler
-- after GET STACKED DIAGNOSTICS; it returns the new etl.error_log id.
--
-- It never raises itself (a failing logger would turn a handled error into an unhandled one):
-- an unknown process id is stored as NULL and noted in the context instead, and a key or payload
-- that cannot be redacted (etl.redact_secrets failed: it should not, it is depth-bounded) is
-- replaced by a note, never stored unredacted. The redaction's guard writes nothing, so it costs
-- no subtransaction id however many rows a set-based caller logs.
--
-- The row is written in the caller's transaction. What keeps it:
--   * log-and-continue (triggers on tables other systems write): the handler returns normally,
--     the caller's statement commits, the log row commits with it.
--   * log-and-raise (procedures that must fail their caller): COMMIT, then
--     CALL etl.raise_logged_error(error_id) — see that routine.
CREATE OR REPLACE FUNCTION etl.log_error(
    p_object_name  text,
    p_sqlstate     text,
    p_message      text,
    p_detail       text   DEFAULT NULL,
    p_hint         text   DEFAULT NULL,
    p_context      text   DEFAULT NULL,
    p_table_name   text   DEFAULT NULL,
    p_row_key      jsonb  DEFAULT NULL,
    p_row_payload  jsonb  DEFAULT NULL,
    p_process_id   bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_context  text := p_context;
    v_row_key  jsonb;
    v_payload  jsonb;
    v_error_id bigint;
BEGIN
    -- 100 levels: deeper than any row, far from the stack limit (see etl.redact_secrets)
    BEGIN
        v_row_key := etl.redact_secrets(p_row_key, 100);
    EXCEPTION WHEN OTHERS THEN
        v_row_key := jsonb_build_object('not_stored', 'redaction failed: ' || SQLERRM);
    END;
    BEGIN
        v_payload := etl.redact_secrets(p_row_payload, 100);
    EXCEPTION WHEN OTHERS THEN
        v_payload := jsonb_build_object('not_stored', 'redaction failed: ' || SQLERRM);
    END;
    IF p_process_id IS NOT NULL
       AND NOT EXISTS (SELECT FROM etl.process WHERE process_id = p_process_id) THEN
        v_context := concat_ws(E'\n', v_context,
                               format('(etl.log_error: unknown process id %s stored as NULL)', p_process_id));
        p_process_id := NULL;
    END IF;

    INSERT INTO etl.error_log (object_name, table_name, row_key, row_payload,
                               sqlstate, message, detail, hint, context, process_id)
    VALUES (coalesce(p_object_name, '(unknown object)'), p_table_name,
            v_row_key, v_payload,
            coalesce(p_sqlstate, 'XX000'), coalesce(p_message, '(no message)'),
            nullif(p_detail, ''), nullif(p_hint, ''), nullif(v_context, ''), p_process_id)
    RETURNING error_id INTO v_error_id;
    RETURN v_error_id;
END
$function$;

REVOKE ALL ON FUNCTION etl.log_error(text, text, text, text, text, text, text, jsonb, jsonb, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.log_error(text, text, text, text, text, text, text, jsonb, jsonb, bigint)
    TO pgferry_loader, pgferry_worker, pgferry_owner;
