-- tps.require_open_permit_run: staged permits go into an open (running) `permits` run only.
-- Rows inserted into a run that already ended (succeeded, failed, abandoned; consumed or not) or
-- into another pipeline's process would never be claimed, or would land in a run the consumer
-- may already have finished: they are refused, the whole statement with them, with an error
-- naming the process and its state.
--
-- Statement-level with a transition table: one check per loader statement, whatever its size.
-- The process rows are locked FOR SHARE until the loader's transaction ends, so etl.end_process
-- (and the abandoning of a hung run by etl.start_process) waits for rows being inserted into
-- the run instead of closing it under them: a succeeded run has all its rows when it is seen.
CREATE OR REPLACE FUNCTION tps.require_open_permit_run()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_process etl.process;
BEGIN
    FOR v_process IN
        SELECT p.*
          FROM etl.process AS p
         WHERE p.process_id IN (SELECT DISTINCT n.process_id FROM staged_rows AS n)
         ORDER BY p.process_id
           FOR SHARE
    LOOP
        IF v_process.pipeline <> 'permits' THEN
            RAISE EXCEPTION 'tps.staged_permit: process % is a % process, not a permits run',
                            v_process.process_id, v_process.pipeline
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Stage permits under the id that etl.start_process(''permits'') '
                             'returned, before etl.end_process.';
        ELSIF v_process.status <> 'running' THEN
            RAISE EXCEPTION 'tps.staged_permit: permits process % already ended (% at %)%',
                            v_process.process_id, v_process.status, v_process.ended_at,
                            CASE WHEN v_process.consumed_at IS NOT NULL
                                 THEN format(' and was consumed at %s', v_process.consumed_at)
                                 ELSE '' END
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Stage rows while the run is open, between etl.start_process(''permits'') '
                             'and etl.end_process; for rows that missed it, start a new run.';
        END IF;
    END LOOP;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION tps.require_open_permit_run() FROM PUBLIC;

CREATE OR REPLACE TRIGGER require_open_permit_run
    AFTER INSERT ON tps.staged_permit
    REFERENCING NEW TABLE AS staged_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tps.require_open_permit_run();
