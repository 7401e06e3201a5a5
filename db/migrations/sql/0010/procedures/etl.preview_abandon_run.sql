-- etl.preview_abandon_run: whether etl.abandon_run would abandon this run now (0 or 1: it is
-- running and older than its pipeline's hung_after) and the run.
CREATE OR REPLACE FUNCTION etl.preview_abandon_run(p_process_id bigint)
RETURNS TABLE (would_touch bigint, sample jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT count(*),
           coalesce(jsonb_agg(jsonb_build_object(
               'process_id', p.process_id, 'pipeline', p.pipeline, 'started_at', p.started_at,
               'hung_after', l.hung_after, 'window_from', p.window_from,
               'window_to', p.window_to)), '[]')
      FROM etl.process AS p JOIN etl.pipeline AS l ON l.name = p.pipeline
     WHERE p.process_id = p_process_id AND p.status = 'running'
       AND p.started_at < now() - l.hung_after
$function$;

REVOKE ALL ON FUNCTION etl.preview_abandon_run(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.preview_abandon_run(bigint) TO pgferry_viewer, pgferry_owner;
