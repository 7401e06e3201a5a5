-- permit.tombstone_lifetime: how long a tombstone of `harness permits reconcile --delete` may
-- stay uncleared before it is taken for the leftover of a run that died (permit.
-- expire_tombstones). A run stops deleting well within it (harness/permits/reconcile.py
-- DELETE_WITHIN, half of it), so no object is deleted after its tombstone expired.
CREATE OR REPLACE FUNCTION permit.tombstone_lifetime()
RETURNS interval
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT interval '10 minutes'
$function$;

REVOKE ALL ON FUNCTION permit.tombstone_lifetime() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.tombstone_lifetime() TO pgferry_worker, pgferry_owner;
