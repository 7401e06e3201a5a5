-- files.begin_load: called in the transaction that loads and merges file p_file_id (after its
-- 'stored' step, before the merge; the rows may be COPYed already): holds the file's content
-- (source and SHA-256) until that transaction ends, so two files of the same content are never
-- merged at once, then answers:
--   'load'      go on: etl.merge_table, files.record_step 'loaded' and 'merged';
--   'duplicate' the same content of the same source was imported meanwhile (by another file
--               that a concurrent worker merged first): the file is marked a duplicate of it
--               here; the caller commits this without the rows (it rolls the rows back and
--               calls again in a transaction of its own);
--   'superseded' a newer version of the same path was listed: this one is not merged (it would
--               put older data over newer), and is marked superseded here; committed the same
--               way;
--   'fenced'    the file no longer carries the token: the caller rolls back.
-- The file's row stays locked until the transaction ends, so no claim can take the file over
-- while it is being merged (files.claim_files skips locked rows). Transaction-level locks only:
-- with PgBouncer in transaction mode they still hold.
CREATE OR REPLACE FUNCTION files.begin_load(p_file_id bigint, p_lease_token bigint)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_file files.file;
    v_twin bigint;
BEGIN
    SELECT * INTO v_file FROM files.file WHERE file_id = p_file_id;
    IF NOT FOUND OR v_file.state <> 'claimed' OR v_file.lease_token IS DISTINCT FROM p_lease_token
    THEN
        RETURN 'fenced';
    END IF;
    -- the content first (it may wait for another worker's whole merge), then the row, and the
    -- token checked again: the lease may have gone to another worker meanwhile
    PERFORM pg_advisory_xact_lock(hashtextextended(v_file.source || '/' || v_file.sha256, 0));
    v_file := files.held_file(p_file_id, p_lease_token);
    IF v_file.file_id IS NULL THEN
        RETURN 'fenced';
    END IF;
    IF EXISTS (SELECT FROM files.file AS n
                WHERE n.source = v_file.source AND n.path = v_file.path
                  AND n.modified_at > v_file.modified_at) THEN
        UPDATE files.file
           SET state = 'superseded', lease_worker = NULL, lease_token = NULL,
               lease_expires_at = NULL
         WHERE file_id = p_file_id;
        INSERT INTO etl.journal (pipeline, item_id, step, detail)
        VALUES ('files', p_file_id, 'superseded', jsonb_build_object('reason', 'a newer version'));
        RETURN 'superseded';
    END IF;
    SELECT o.file_id INTO v_twin
      FROM files.file AS o
     WHERE o.source = v_file.source AND o.sha256 = v_file.sha256 AND o.state = 'imported'
     LIMIT 1;
    IF v_twin IS NULL THEN
        RETURN 'load';
    END IF;
    UPDATE files.file
       SET state = 'duplicate', duplicate_of = v_twin, lease_worker = NULL, lease_token = NULL,
           lease_expires_at = NULL, error_class = NULL, error = NULL
     WHERE file_id = p_file_id;
    INSERT INTO etl.journal (pipeline, item_id, step, detail)
    VALUES ('files', p_file_id, 'duplicate', jsonb_build_object('of', v_twin));
    RETURN 'duplicate';
END
$function$;

REVOKE ALL ON FUNCTION files.begin_load(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.begin_load(bigint, bigint) TO pgferry_worker;
