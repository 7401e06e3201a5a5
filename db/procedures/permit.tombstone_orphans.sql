-- permit.tombstone_orphans: the database side of `harness permits reconcile --delete`. Before
-- it deletes objects it found orphaned, reconcile asks here which of them it may delete: for
-- each key (in key order, under an exclusive advisory lock on the key that permit.move_batch
-- takes shared), the key is re-checked now, not in reconcile's earlier snapshot: no document
-- records it and no staged permit maps to it (p_orphans names the permit each key belongs to).
-- The keys that pass get a tombstone in permit.object_tombstone and are returned; from then on
-- permit.move_batch refuses them, so a re-delivered permit whose upload was just verified against
-- the object (412, equal checksum) is uploaded again instead of being recorded with an object
-- that is about to vanish. permit.clear_tombstones ends the tombstones once the objects are gone.
--
-- Also cleans up after reconcile runs that died midway: a tombstone left uncleared longer than
-- permit.tombstone_lifetime() is cleared (permit.expire_tombstones: the run that made it is
-- gone; claims expire them too), and cleared ones older than a day, when no claim from before
-- their clearing can still be moving, are removed.
--
-- p_orphans: [{"object_key", "permit_number", "permit_generation"}, ...]
CREATE OR REPLACE FUNCTION permit.tombstone_orphans(p_bucket text, p_orphans jsonb)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    IF p_bucket IS NULL THEN
        RAISE EXCEPTION 'permit.tombstone_orphans: the bucket must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM permit.expire_tombstones(etl.next_lease_token());
    DELETE FROM permit.object_tombstone WHERE cleared_at < now() - interval '1 day';

    PERFORM pg_advisory_xact_lock(hashtext('permit.object_key'), hashtext(k.object_key))
       FROM (SELECT DISTINCT o.object_key
               FROM jsonb_to_recordset(coalesce(p_orphans, '[]'::jsonb)) AS o (object_key text)
              ORDER BY 1) AS k;
    -- a statement after the locks: it sees every move committed before them
    RETURN QUERY
    INSERT INTO permit.object_tombstone AS t (bucket, object_key)
    SELECT DISTINCT p_bucket, o.object_key
      FROM jsonb_to_recordset(coalesce(p_orphans, '[]'::jsonb))
           AS o (object_key text, permit_number text, permit_generation smallint)
     WHERE NOT EXISTS (SELECT FROM permit.document AS d
                        WHERE d.bucket = p_bucket AND d.object_key = o.object_key)
       AND NOT EXISTS (SELECT FROM tps.staged_permit AS s
                        WHERE s.permit_number = o.permit_number
                          AND s.permit_generation = o.permit_generation)
        ON CONFLICT (bucket, object_key) DO UPDATE
       SET created_at = clock_timestamp(), cleared_at = NULL, cleared_token = NULL
    RETURNING t.object_key;
END
$function$;

REVOKE ALL ON FUNCTION permit.tombstone_orphans(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.tombstone_orphans(text, jsonb) TO pgferry_worker;
