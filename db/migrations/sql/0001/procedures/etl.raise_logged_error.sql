-- etl.raise_logged_error: re-raise an error that etl.log_error recorded, with its original
-- SQLSTATE, message, detail and hint, plus a hint naming the log row.
--
-- The log-and-raise pattern for a procedure that must fail its caller and keep the log row:
--
--     BEGIN
--         ... work ...
--     EXCEPTION WHEN OTHERS THEN
--         GET STACKED DIAGNOSTICS ...;
--         v_error_id := etl.log_error(...);      -- the work is already rolled back here
--     END;
--     IF v_error_id IS NOT NULL THEN
--         COMMIT;                                -- keeps the log row (outside the handler)
--         CALL etl.raise_logged_error(v_error_id);
--     END IF;
--
-- COMMIT inside a procedure needs a non-atomic call: CALL at top level, in autocommit. Inside an
-- explicit transaction block PostgreSQL refuses it (SQLSTATE 2D000); such a caller must log in
-- its own transaction instead.
CREATE OR REPLACE PROCEDURE etl.raise_logged_error(p_error_id bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $procedure$
DECLARE
    v_error etl.error_log;
    v_hint  text;
BEGIN
    SELECT * INTO v_error FROM etl.error_log WHERE error_id = p_error_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'etl.raise_logged_error: no etl.error_log row with error_id %', p_error_id
            USING ERRCODE = 'no_data_found';
    END IF;
    v_hint := concat_ws(' ', v_error.hint, format('Logged as etl.error_log error_id %s.', v_error.error_id));
    IF v_error.detail IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = v_error.sqlstate, MESSAGE = v_error.message, HINT = v_hint;
    END IF;
    RAISE EXCEPTION USING ERRCODE = v_error.sqlstate, MESSAGE = v_error.message,
                          DETAIL = v_error.detail, HINT = v_hint;
END
$procedure$;

REVOKE ALL ON PROCEDURE etl.raise_logged_error(bigint) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE etl.raise_logged_error(bigint) TO pgferry_worker, pgferry_owner;
