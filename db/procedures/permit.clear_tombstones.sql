-- permit.clear_tombstones: reconcile deleted (or gave up deleting) these objects: new claims may
-- move their keys again, since an upload made from now on writes the object afresh. The
-- tombstone stays, cleared, with a fencing token drawn now (cleared_token): permit.move_batch
-- still refuses claims with a lower token, whose upload may have been verified against the old
-- object before it was deleted. Returns how many tombstones were cleared.
CREATE OR REPLACE FUNCTION permit.clear_tombstones(p_bucket text, p_keys text[])
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH cleared AS (
        UPDATE permit.object_tombstone
           SET cleared_at = clock_timestamp(), cleared_token = etl.next_lease_token()
         WHERE bucket = p_bucket AND object_key = ANY (p_keys) AND cleared_at IS NULL
        RETURNING object_key
    )
    SELECT count(*) FROM cleared
$function$;

REVOKE ALL ON FUNCTION permit.clear_tombstones(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.clear_tombstones(text, text[]) TO pgferry_worker;
