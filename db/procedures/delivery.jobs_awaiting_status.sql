-- delivery.jobs_awaiting_status: the DO numbers whose delivery status the dispatcher reads back
-- next: jobs DeTrack has whose delivery is not finished (completed, completed_partial or
-- failed), least recently checked first, at most p_limit. None while the shipments pipeline is
-- paused: a pause stops every DeTrack call, status searches included.
CREATE OR REPLACE FUNCTION delivery.jobs_awaiting_status(p_limit integer)
RETURNS SETOF text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT DISTINCT ON (due.remote_do_number) due.remote_do_number
      FROM (SELECT j.remote_do_number
              FROM delivery.job AS j
             WHERE j.remote = 'created' AND j.desired = 'present'
               AND coalesce(j.delivery_status, '')
                   NOT IN ('completed', 'completed_partial', 'failed')
             ORDER BY j.status_checked_at NULLS FIRST
             LIMIT p_limit) AS due
     WHERE NOT EXISTS (SELECT FROM etl.pipeline AS p
                        WHERE p.name = 'shipments' AND p.paused_at IS NOT NULL)
$function$;

REVOKE ALL ON FUNCTION delivery.jobs_awaiting_status(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.jobs_awaiting_status(integer) TO pgferry_worker;
