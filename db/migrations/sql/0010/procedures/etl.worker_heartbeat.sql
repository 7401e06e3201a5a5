-- etl.worker_heartbeat: a running worker says it is alive (every 10 s, harness.runtime.worker),
-- what it runs and what it holds now, and learns whether an operator asked it to stop
-- (etl.cancel_worker). The answer is the fallback for a worker that missed the cancel NOTIFY (its
-- LISTEN connection was down, or the notification queue was full).
--
-- Holds are counted here, from the leases themselves, so the console shows what a worker really
-- holds rather than what it believes. A worker id seen again from another process (a restart
-- under PGFERRY_WORKER_ID, or a stopped worker's id reused) starts afresh: an old stop request
-- must not stop the new process.
CREATE OR REPLACE FUNCTION etl.worker_heartbeat(p_worker_id text, p_host text, p_pid integer,
                                                p_pipelines text[])
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    INSERT INTO etl.worker AS w (worker_id, host, pid, pipelines, holds)
    VALUES (p_worker_id, p_host, p_pid, p_pipelines,
            jsonb_build_object(
                'permits', (SELECT count(*) FROM tps.staged_permit AS s
                             WHERE s.state = 'claimed' AND s.lease_owner = p_worker_id),
                'shipments', (SELECT count(*) FROM delivery.job AS j
                               WHERE j.lease_expires_at IS NOT NULL
                                 AND j.lease_owner = p_worker_id)))
    ON CONFLICT (worker_id) DO UPDATE
       SET host = excluded.host, pid = excluded.pid, pipelines = excluded.pipelines,
           heartbeat_at = clock_timestamp(), holds = excluded.holds,
           started_at = CASE WHEN w.stopped_at IS NOT NULL OR (w.host, w.pid) <> (excluded.host, excluded.pid)
                             THEN clock_timestamp() ELSE w.started_at END,
           stop_requested_at = CASE WHEN w.stopped_at IS NOT NULL
                                         OR (w.host, w.pid) <> (excluded.host, excluded.pid)
                                    THEN NULL ELSE w.stop_requested_at END,
           stopped_at = NULL
    RETURNING w.stop_requested_at IS NOT NULL
$function$;

REVOKE ALL ON FUNCTION etl.worker_heartbeat(text, text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.worker_heartbeat(text, text, integer, text[])
    TO pgferry_worker, pgferry_owner;
