-- permit.expire_tombstones: clear the tombstones `harness permits reconcile --delete` left
-- uncleared for longer than permit.tombstone_lifetime(): the run that made them died (a run
-- stops deleting well before that), so nothing deletes their objects any more, and left alone
-- they would refuse their keys' moves for good. Cleared with p_cleared_token, as
-- permit.clear_tombstones does: permit.move_batch still refuses claims with a lower token (their
-- upload may have met the object before the dead run deleted it). A claim passes its own token,
-- so what it uploads next may move. Tombstones another transaction is changing are skipped, not
-- waited for (it is reconcile, deciding about them). Returns how many were cleared.
CREATE OR REPLACE FUNCTION permit.expire_tombstones(p_cleared_token bigint)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_cleared bigint;
BEGIN
    UPDATE permit.object_tombstone AS t
       SET cleared_at = clock_timestamp(), cleared_token = p_cleared_token
     WHERE (t.bucket, t.object_key) IN (
               SELECT s.bucket, s.object_key
                 FROM permit.object_tombstone AS s
                WHERE s.cleared_at IS NULL
                  AND s.created_at < now() - permit.tombstone_lifetime()
                  FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_cleared = ROW_COUNT;
    RETURN v_cleared;
END
$function$;

-- Internal to permit.claim_batch and permit.tombstone_orphans (both run as pgferry_owner): the
-- worker, which 0008 let call it, expires tombstones only through them.
REVOKE ALL ON FUNCTION permit.expire_tombstones(bigint) FROM PUBLIC, pgferry_worker;
