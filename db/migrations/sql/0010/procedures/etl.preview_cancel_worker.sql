-- etl.preview_cancel_worker: whether etl.cancel_worker would ask this worker to stop (0 or 1: it
-- is registered and not stopped) and the worker with what it holds.
CREATE OR REPLACE FUNCTION etl.preview_cancel_worker(p_worker_id text)
RETURNS TABLE (would_touch bigint, sample jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT count(*), coalesce(jsonb_agg(to_jsonb(w)), '[]')
      FROM etl.worker_status AS w
     WHERE w.worker_id = p_worker_id AND w.stopped_at IS NULL
$function$;

REVOKE ALL ON FUNCTION etl.preview_cancel_worker(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.preview_cancel_worker(text) TO pgferry_viewer, pgferry_owner;
