-- etl.preview_resume_pipeline: whether etl.resume_pipeline would resume it (0 or 1), who paused
-- it, when and why, and the backlog that waits.
CREATE OR REPLACE FUNCTION etl.preview_resume_pipeline(p_pipeline text)
RETURNS TABLE (would_touch bigint, sample jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT count(*) FILTER (WHERE s.paused_at IS NOT NULL),
           coalesce(jsonb_agg(jsonb_build_object(
               'pipeline', s.name, 'paused_at', s.paused_at, 'paused_by', s.paused_by,
               'pause_reason', s.pause_reason, 'backlog', s.backlog)), '[]')
      FROM etl.pipeline_status AS s
     WHERE s.name = p_pipeline
$function$;

REVOKE ALL ON FUNCTION etl.preview_resume_pipeline(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.preview_resume_pipeline(text) TO pgferry_viewer, pgferry_owner;
