-- permit.finish_drained_processes: mark succeeded permit processes consumed once none of their
-- staged permits remain (the seed's ORBC_COMPLETE). A dead letter keeps its process open until
-- it is requeued and moved, so status shows which run is incomplete. Idempotent.
CREATE OR REPLACE FUNCTION permit.finish_drained_processes()
RETURNS SETOF bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    UPDATE etl.process AS p
       SET consumed_at = clock_timestamp()
     WHERE p.pipeline = 'permits' AND p.status = 'succeeded' AND p.consumed_at IS NULL
       AND NOT EXISTS (SELECT FROM tps.staged_permit AS s WHERE s.process_id = p.process_id)
    RETURNING p.process_id
$function$;

REVOKE ALL ON FUNCTION permit.finish_drained_processes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.finish_drained_processes() TO pgferry_worker;
