-- etl.preview_pause_pipeline: whether etl.pause_pipeline would pause it (0 or 1) and what is in
-- flight: its backlog and the live workers running it (their rounds in flight finish).
CREATE OR REPLACE FUNCTION etl.preview_pause_pipeline(p_pipeline text)
RETURNS TABLE (would_touch bigint, sample jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT count(*) FILTER (WHERE s.paused_at IS NULL),
           coalesce(jsonb_agg(jsonb_build_object(
               'pipeline', s.name, 'paused_at', s.paused_at, 'backlog', s.backlog,
               'workers_alive', s.workers_alive)), '[]')
      FROM etl.pipeline_status AS s
     WHERE s.name = p_pipeline
$function$;

REVOKE ALL ON FUNCTION etl.preview_pause_pipeline(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.preview_pause_pipeline(text) TO pgferry_viewer, pgferry_owner;
