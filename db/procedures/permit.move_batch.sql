-- permit.move_batch: after their PDFs are in S3, move a batch of claimed permits into
-- permit.document and permit.permit and delete their staged rows, in one transaction.
--
-- p_uploads: [{"staged_permit_id", "lease_token", "bucket", "object_key", "sha256",
--              "size_bytes", "uploaded_at"}, ...] for the uploads that succeeded; lease_token is
--              the fencing token of the claim the upload was made under.
--
-- * Only rows that still carry the upload's token are moved; a row whose lease expired and was
--   claimed again (by another worker, or by this one in a later batch) is left to that claim
--   (counted as lease_lost; its upload is idempotent). The worker name cannot fence: a restarted
--   worker may come back under the same name.
-- * Both inserts go through the standard merge (etl.merge_table) in insert-only mode: a permit
--   or document that already exists is never rewritten.
-- * A permit whose (number, revision) another copy moved first is a duplicate: its staged row is
--   deleted. A row the merge rejects (logged in etl.error_log by the merge) goes to the
--   dead-letter state; its document row is removed so no document lacks its permit.
-- * Earlier revisions of a permit that now has a later one are marked superseded.
-- * A key that `harness permits reconcile --delete` is deleting (permit.tombstone_orphans) is
--   not recorded: the upload may have found the object that is being deleted (412, equal
--   checksum), so a document recorded now could point at nothing. Such rows go back to pending
--   with an attempt counted (so the run's outcome shows them waiting) and are uploaded again
--   after p_retry_after, and not before the tombstone can expire (permit.tombstone_lifetime;
--   a claim expires it) while it is uncleared: one refusal per tombstone, whatever the retry
--   delay, not a claim-upload-refuse loop. Counted as retrying. The shared lock per key makes a
--   move and the decision to delete that key take turns: whichever commits first, the other
--   sees it.
CREATE OR REPLACE FUNCTION permit.move_batch(p_uploads jsonb, p_retry_after interval)
RETURNS TABLE (moved bigint, duplicates bigint, failed bigint, lease_lost bigint,
               retrying bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
DECLARE
    v_requested bigint := jsonb_array_length(coalesce(p_uploads, '[]'::jsonb));
    v_held      bigint;
    v_retrying  bigint;
BEGIN
    CREATE TEMP TABLE pgferry_move ON COMMIT DROP AS
    SELECT s.*, u.bucket, u.object_key, u.sha256, u.size_bytes, u.uploaded_at
      FROM tps.staged_permit AS s
      JOIN jsonb_to_recordset(coalesce(p_uploads, '[]'::jsonb))
           AS u (staged_permit_id bigint, bucket text, object_key text, sha256 text,
                 size_bytes bigint, uploaded_at timestamptz)
        ON u.staged_permit_id = s.staged_permit_id
     WHERE false;
    -- lock the rows still held under the upload's claim, so no other claim can take them
    -- mid-move (a row re-claimed meanwhile fails the token test when it is re-read)
    WITH held AS (
        SELECT s.staged_permit_id
          FROM tps.staged_permit AS s
          JOIN jsonb_to_recordset(p_uploads) AS u (staged_permit_id bigint, lease_token bigint)
            ON u.staged_permit_id = s.staged_permit_id AND u.lease_token = s.lease_token
         WHERE s.state = 'claimed'
           FOR UPDATE OF s
    )
    INSERT INTO pgferry_move
    SELECT s.*, u.bucket, u.object_key, u.sha256, u.size_bytes, u.uploaded_at
      FROM tps.staged_permit AS s
      JOIN held AS h ON h.staged_permit_id = s.staged_permit_id
      JOIN jsonb_to_recordset(p_uploads)
           AS u (staged_permit_id bigint, bucket text, object_key text, sha256 text,
                 size_bytes bigint, uploaded_at timestamptz)
        ON u.staged_permit_id = s.staged_permit_id;
    GET DIAGNOSTICS v_held = ROW_COUNT;

    -- keys being deleted: wait for a deletion being decided (in key order: no deadlock between
    -- moves), then hand back the rows whose upload may have met the doomed object. A tombstone
    -- that reconcile cleared after deleting the object still refuses claims made before the
    -- clearing (a token below cleared_token): their upload may have met the old object.
    PERFORM pg_advisory_xact_lock_shared(hashtext('permit.object_key'), hashtext(k.object_key))
       FROM (SELECT DISTINCT m.object_key FROM pgferry_move AS m ORDER BY 1) AS k;
    WITH refused AS (
        DELETE FROM pgferry_move AS m
         USING permit.object_tombstone AS t
         WHERE t.bucket = m.bucket AND t.object_key = m.object_key
           AND (t.cleared_token IS NULL OR m.lease_token < t.cleared_token)
        RETURNING m.staged_permit_id, m.process_id, m.bucket, m.object_key,
                  CASE WHEN t.cleared_at IS NULL
                       THEN t.created_at + permit.tombstone_lifetime() END AS expires_at
    ), released AS (
        UPDATE tps.staged_permit AS s
           SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL,
               attempts = s.attempts + 1,
               next_attempt_at = greatest(now() + coalesce(p_retry_after, interval '0'),
                                          r.expires_at),
               last_error = format('s3://%s/%s was being deleted by `harness permits reconcile '
                                   '--delete` as this permit moved: it is uploaded again',
                                   r.bucket, r.object_key)
          FROM refused AS r
         WHERE s.staged_permit_id = r.staged_permit_id
        RETURNING s.staged_permit_id, s.process_id, s.last_error, s.attempts
    )
    INSERT INTO etl.journal (pipeline, item_id, step, process_id, detail)
    SELECT 'permits', r.staged_permit_id, 'upload_failed', r.process_id,
           jsonb_build_object('error', r.last_error, 'retryable', true, 'attempt', r.attempts)
      FROM released AS r;
    GET DIAGNOSTICS v_retrying = ROW_COUNT;

    INSERT INTO etl.journal (pipeline, item_id, step, at, process_id, detail)
    -- journal times come from the database clock, so that verify compares like with like; the
    -- worker's own upload time is kept in the detail
    SELECT 'permits', m.staged_permit_id, 'uploaded', clock_timestamp(), m.process_id,
           jsonb_build_object('object_key', m.object_key, 'sha256', m.sha256,
                              'uploaded_at', m.uploaded_at, 'lease_token', m.lease_token)
      FROM pgferry_move AS m;

    CREATE TEMP TABLE pgferry_move_documents ON COMMIT DROP AS
    SELECT DISTINCT ON (m.object_key)
           m.bucket, m.object_key, m.sha256, m.size_bytes,
           'application/pdf'::text AS content_type,
           permit.document_file_name(m.permit_document_name, m.new_permit_number,
                                     m.permit_number) AS file_name
      FROM pgferry_move AS m
     ORDER BY m.object_key, m.staged_permit_id;
    PERFORM etl.merge_table('pg_temp.pgferry_move_documents', 'permit.document',
                            p_keys => ARRAY['object_key'], p_update_changed => false);

    CREATE TEMP TABLE pgferry_move_permits ON COMMIT DROP AS
    SELECT m.permit_number AS tps_permit_number,
           (m.permit_generation - 1)::smallint AS revision,
           m.new_permit_number AS permit_number,
           m.permit_type, m.start_date, m.end_date,
           m.issued_date AS issued_at,
           m.void_date AS voided_at,
           m.client_hash, m.plate, m.vin,
           CASE WHEN m.service = 'V' OR m.void_date IS NOT NULL THEN 'voided'
                WHEN EXISTS (SELECT FROM permit.permit AS t
                              WHERE t.tps_permit_number = m.permit_number
                                AND t.revision > m.permit_generation - 1)
                  OR EXISTS (SELECT FROM pgferry_move AS o
                              WHERE o.permit_number = m.permit_number
                                AND o.permit_generation > m.permit_generation)
                THEN 'superseded'
                ELSE 'issued'
           END AS status,
           d.document_id,
           m.process_id AS source_process_id,
           m.staged_permit_id AS source_staged_permit_id
      FROM pgferry_move AS m
      JOIN permit.document AS d ON d.object_key = m.object_key;
    PERFORM etl.merge_table('pg_temp.pgferry_move_permits', 'permit.permit',
                            p_keys => ARRAY['tps_permit_number', 'revision'],
                            p_update_changed => false);

    UPDATE permit.permit AS t
       SET status = 'superseded', updated_at = clock_timestamp()
      FROM (SELECT tps_permit_number, max(revision) AS revision
              FROM pgferry_move_permits GROUP BY tps_permit_number) AS latest
     WHERE t.tps_permit_number = latest.tps_permit_number
       AND t.revision < latest.revision AND t.status = 'issued';

    -- outcome of every held row: moved (its own permit row), duplicate, or failed
    CREATE TEMP TABLE pgferry_move_outcome ON COMMIT DROP AS
    SELECT m.staged_permit_id, m.process_id, m.permit_number, m.permit_generation, m.object_key,
           CASE WHEN t.source_staged_permit_id = m.staged_permit_id THEN 'moved'
                WHEN t.permit_id IS NOT NULL THEN 'duplicate'
                ELSE 'dead'
           END AS outcome,
           t.permit_id
      FROM pgferry_move AS m
      LEFT JOIN permit.permit AS t
        ON t.tps_permit_number = m.permit_number AND t.revision = m.permit_generation - 1;

    DELETE FROM tps.staged_permit AS s
     USING pgferry_move_outcome AS o
     WHERE s.staged_permit_id = o.staged_permit_id AND o.outcome IN ('moved', 'duplicate');

    UPDATE tps.staged_permit AS s
       SET state = 'dead', dead_at = clock_timestamp(), lease_owner = NULL, lease_expires_at = NULL,
           lease_token = NULL,
           last_error = coalesce(
               (SELECT e.message || coalesce(' (' || e.detail || ')', '')
                  FROM etl.error_log AS e
                 WHERE e.object_name = 'etl.merge_table' AND e.table_name = 'permit.permit'
                   AND e.row_key = jsonb_build_object('tps_permit_number', o.permit_number,
                                                      'revision', o.permit_generation - 1)
                 ORDER BY e.error_id DESC LIMIT 1),
               'rejected by permit.permit')
      FROM pgferry_move_outcome AS o
     WHERE s.staged_permit_id = o.staged_permit_id AND o.outcome = 'dead';

    PERFORM permit.alert_dead_letters(
        ARRAY(SELECT o.staged_permit_id FROM pgferry_move_outcome AS o WHERE o.outcome = 'dead'),
        'refused by permit.permit');

    DELETE FROM permit.document AS d
     USING pgferry_move_outcome AS o
     WHERE d.object_key = o.object_key AND o.outcome = 'dead'
       AND NOT EXISTS (SELECT FROM permit.permit AS t WHERE t.document_id = d.document_id);

    INSERT INTO etl.journal (pipeline, item_id, step, process_id, detail)
    SELECT 'permits', o.staged_permit_id, o.outcome, o.process_id,
           CASE o.outcome
               WHEN 'dead' THEN jsonb_build_object('retryable', false)
               ELSE jsonb_build_object('permit_id', o.permit_id)
           END
      FROM pgferry_move_outcome AS o;

    RETURN QUERY
        SELECT count(*) FILTER (WHERE o.outcome = 'moved'),
               count(*) FILTER (WHERE o.outcome = 'duplicate'),
               count(*) FILTER (WHERE o.outcome = 'dead'),
               v_requested - v_held,
               v_retrying
          FROM pgferry_move_outcome AS o;
    DROP TABLE pgferry_move, pgferry_move_documents, pgferry_move_permits, pgferry_move_outcome;
END
$function$;

REVOKE ALL ON FUNCTION permit.move_batch(jsonb, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.move_batch(jsonb, interval) TO pgferry_worker;
