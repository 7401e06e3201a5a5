-- etl.run_detail: one run with its reconciliation, from the journal (what happened to each item
-- of the run) and the staging table (what is still there). Permits: staged -> moved, duplicates
-- (already moved by an earlier run), rejected (invalid data: dead at once), dead (out of attempts
-- or claims), requeued, still staged (pending or claimed), and the errors logged for the run.
-- Shipments have no per-run items (the ERP writes continuously), so their counts are zero.
CREATE OR REPLACE FUNCTION etl.run_detail(p_process_id bigint)
RETURNS TABLE (process_id bigint, pipeline text, status text, started_at timestamptz,
               ended_at timestamptz, window_from timestamptz, window_to timestamptz,
               rows_loaded bigint, message text, consumed_at timestamptz, staged bigint,
               moved bigint, duplicates bigint, rejected bigint, dead bigint, requeued bigint,
               still_staged bigint, still_dead bigint, errors_logged bigint)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT p.process_id, p.pipeline, p.status, p.started_at, p.ended_at, p.window_from,
           p.window_to, p.rows_loaded, p.message, p.consumed_at,
           j.staged, j.moved, j.duplicates, j.rejected, j.dead, j.requeued,
           s.still_staged, s.still_dead,
           (SELECT count(*) FROM etl.error_log AS e WHERE e.process_id = p.process_id)
      FROM etl.process AS p
     CROSS JOIN LATERAL (
           SELECT count(DISTINCT x.item_id) FILTER (WHERE x.step = 'staged') AS staged,
                  count(DISTINCT x.item_id) FILTER (WHERE x.step = 'moved') AS moved,
                  count(DISTINCT x.item_id) FILTER (WHERE x.step = 'duplicate') AS duplicates,
                  count(*) FILTER (WHERE x.step = 'dead' AND x.detail ->> 'retryable' = 'false'
                                   AND NOT x.detail ? 'expired_claims') AS rejected,
                  count(*) FILTER (WHERE x.step = 'dead' AND (x.detail ->> 'retryable' IS DISTINCT FROM 'false'
                                                              OR x.detail ? 'expired_claims')) AS dead,
                  count(*) FILTER (WHERE x.step = 'requeued') AS requeued
             FROM etl.journal AS x
            WHERE x.process_id = p.process_id) AS j
     CROSS JOIN LATERAL (
           SELECT count(*) FILTER (WHERE t.state <> 'dead') AS still_staged,
                  count(*) FILTER (WHERE t.state = 'dead') AS still_dead
             FROM tps.staged_permit AS t
            WHERE t.process_id = p.process_id) AS s
     WHERE p.process_id = p_process_id
$function$;

REVOKE ALL ON FUNCTION etl.run_detail(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.run_detail(bigint) TO pgferry_viewer, pgferry_owner;
