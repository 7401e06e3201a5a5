-- etl.abandon_run: end a hung run now instead of at the pipeline's next start, as
-- etl.start_process would: only a 'running' run older than its pipeline's hung_after, which
-- becomes 'abandoned' with an 'abandoned' process error. The next run covers its window again;
-- its staged rows are stranded and purged (permit.purge_stranded). A younger run is refused (0):
-- the loader may still be working on it. Journaled with who and why; returns 1 or 0.
CREATE OR REPLACE FUNCTION etl.abandon_run(p_process_id bigint, p_reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_action_id bigint := etl.begin_operator_action(
        'abandon_run', (SELECT pipeline FROM etl.process WHERE process_id = p_process_id),
        jsonb_build_object('process_id', p_process_id), p_reason);
    v_affected  integer;
BEGIN
    WITH abandoned AS (
        UPDATE etl.process AS p
           SET status = 'abandoned', ended_at = clock_timestamp(),
               message = format('abandoned by %s: %s', session_user, p_reason)
          FROM etl.pipeline AS l
         WHERE p.process_id = p_process_id AND p.status = 'running' AND l.name = p.pipeline
           AND p.started_at < now() - l.hung_after
        RETURNING p.process_id, p.pipeline, p.started_at
    ), logged AS (
        INSERT INTO etl.process_error (pipeline, kind, process_id, message)
        SELECT a.pipeline, 'abandoned', a.process_id,
               format('process %s started %s was abandoned as hung by %s (%s); its window will '
                      'be covered again', a.process_id, a.started_at, session_user, p_reason)
          FROM abandoned AS a
        RETURNING 1
    )
    SELECT count(*) INTO v_affected FROM logged;
    UPDATE etl.operator_action SET affected = v_affected WHERE action_id = v_action_id;
    RETURN v_affected;
END
$function$;

REVOKE ALL ON FUNCTION etl.abandon_run(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.abandon_run(bigint, text) TO pgferry_operator, pgferry_owner;
