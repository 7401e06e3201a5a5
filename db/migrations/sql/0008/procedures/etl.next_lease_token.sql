-- etl.next_lease_token: a new fencing token for a claim (delivery.claim_jobs,
-- permit.claim_batch). Tokens only grow: a later claim of the same rows always carries a larger
-- token than the one it took over from.
CREATE OR REPLACE FUNCTION etl.next_lease_token()
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT nextval('etl.lease_token')
$function$;

REVOKE ALL ON FUNCTION etl.next_lease_token() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.next_lease_token() TO pgferry_worker;
