-- etl.worker_stopped: a worker that exits cleanly says so; the console then shows it stopped
-- rather than dead (a worker that dies just stops heartbeating: not alive after 30 s).
-- Every one-off `harness run` (cron) registers a worker of its own: workers stopped or silent for
-- over 7 days are forgotten here, once per stop, so the registry stays small.
CREATE OR REPLACE FUNCTION etl.worker_stopped(p_worker_id text)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH forgotten AS (
        DELETE FROM etl.worker
         WHERE worker_id <> p_worker_id
           AND coalesce(stopped_at, heartbeat_at) < now() - interval '7 days'
    )
    UPDATE etl.worker
       SET stopped_at = clock_timestamp(), heartbeat_at = clock_timestamp(), holds = '{}'
     WHERE worker_id = p_worker_id AND stopped_at IS NULL
$function$;

REVOKE ALL ON FUNCTION etl.worker_stopped(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.worker_stopped(text) TO pgferry_worker, pgferry_owner;
