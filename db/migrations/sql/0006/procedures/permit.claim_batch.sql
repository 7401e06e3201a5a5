-- permit.claim_batch: lease up to p_limit staged permits to a worker and return every claimed
-- row with its outcome: 'upload' (with its PDF: the worker uploads it, then permit.move_batch),
-- 'duplicate' (deleted), 'dead' (rejected, with the error) or 'deferred' (released). Oldest completed process first; only processes that succeeded and
-- are not consumed yet. Claims are leases: FOR UPDATE SKIP LOCKED, so concurrent workers never
-- get the same row, and a lease that expires (a crashed worker) makes the row claimable again.
--
-- In the same short transaction, set-based:
--   * invalid rows (missing permit number, generation < 1, empty, non-PDF or truncated PDF) go
--     straight to the dead-letter state: retrying cannot fix them. The error names the permit,
--     the staged row and the field, and is written to etl.error_log;
--   * duplicates (the same permit number and revision is already in permit.permit: a re-run or
--     an uninteresting upstream change) are deleted from staging;
--   * a second copy of the same permit within the claim is released for a later round, where it
--     becomes a duplicate (or moves, if the first copy failed).
CREATE OR REPLACE FUNCTION permit.claim_batch(p_worker text, p_limit integer, p_lease interval)
RETURNS TABLE (staged_permit_id bigint, tps_permit_number text, revision integer,
               file_name text, pdf bytea, outcome text, error text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    IF p_worker IS NULL OR p_limit IS NULL OR p_limit < 1 OR p_lease IS NULL THEN
        RAISE EXCEPTION 'permit.claim_batch: worker, a positive limit and a lease are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    CREATE TEMP TABLE pgferry_claimed (
        staged_permit_id bigint, process_id bigint, permit_number text, permit_generation smallint,
        permit_document_name text, new_permit_number text, pdf_problem text, field_problem text,
        outcome text NOT NULL DEFAULT 'upload', error text
    ) ON COMMIT DROP;
    WITH candidate AS (
        SELECT s.staged_permit_id
          FROM tps.staged_permit AS s
          JOIN etl.process AS p ON p.process_id = s.process_id
         WHERE p.status = 'succeeded' AND p.consumed_at IS NULL
           AND s.next_attempt_at <= now()
           AND (s.state = 'pending' OR (s.state = 'claimed' AND s.lease_expires_at < now()))
           -- another copy of this permit is in flight (this worker's previous batch, or another
           -- worker's): wait for its move, after which this one is a duplicate
           AND NOT EXISTS (SELECT FROM tps.staged_permit AS o
                            WHERE o.permit_number = s.permit_number
                              AND o.permit_generation = s.permit_generation
                              AND o.staged_permit_id <> s.staged_permit_id
                              AND o.state = 'claimed' AND o.lease_expires_at >= now())
         ORDER BY p.ended_at, s.staged_permit_id
         LIMIT p_limit
           FOR UPDATE OF s SKIP LOCKED
    ), claimed AS (
        UPDATE tps.staged_permit AS s
           SET state = 'claimed', lease_owner = p_worker, lease_expires_at = now() + p_lease
          FROM candidate AS c
         WHERE s.staged_permit_id = c.staged_permit_id
        RETURNING s.staged_permit_id, s.process_id, s.permit_number, s.permit_generation,
                  s.permit_document_name, s.new_permit_number,
                  permit.pdf_problem(s.pdf),
                  CASE WHEN nullif(btrim(s.permit_number), '') IS NULL THEN 'permit_number: missing'
                       WHEN s.permit_generation IS NULL OR s.permit_generation < 1
                       THEN format('permit_generation: must be 1 or more (revision = generation - 1), got %s',
                                   coalesce(s.permit_generation::text, 'NULL'))
                  END
    )
    INSERT INTO pgferry_claimed SELECT * FROM claimed;
    UPDATE pgferry_claimed
       SET outcome = 'dead', error = coalesce(field_problem, 'pdf: ' || pdf_problem)
     WHERE field_problem IS NOT NULL OR pdf_problem IS NOT NULL;

    -- invalid rows: dead at once, with the reason logged
    WITH invalid AS (
        SELECT c.*, c.error AS problem FROM pgferry_claimed AS c WHERE c.outcome = 'dead'
    ), logged AS (
        SELECT i.staged_permit_id,
               etl.log_error(
                   p_object_name => 'permit.claim_batch',
                   p_sqlstate    => '22023',
                   p_message     => format('permit %s generation %s (staged row %s) rejected: %s',
                                           coalesce(i.permit_number, 'NULL'),
                                           coalesce(i.permit_generation::text, 'NULL'),
                                           i.staged_permit_id, i.problem),
                   p_table_name  => 'tps.staged_permit',
                   p_row_key     => jsonb_build_object('staged_permit_id', i.staged_permit_id,
                                                       'permit_number', i.permit_number,
                                                       'permit_generation', i.permit_generation),
                   p_process_id  => i.process_id) AS error_id,
               i.problem
          FROM invalid AS i
    ), dead AS (
        UPDATE tps.staged_permit AS s
           SET state = 'dead', dead_at = clock_timestamp(), lease_owner = NULL,
               lease_expires_at = NULL, last_error = l.problem
          FROM logged AS l
         WHERE s.staged_permit_id = l.staged_permit_id
        RETURNING s.staged_permit_id, s.process_id, l.problem, l.error_id
    )
    INSERT INTO etl.journal (pipeline, item_id, step, process_id, detail)
    SELECT 'permits', d.staged_permit_id, 'dead', d.process_id,
           jsonb_build_object('error', d.problem, 'error_id', d.error_id, 'retryable', false)
      FROM dead AS d;
    PERFORM permit.alert_dead_letters(
        ARRAY(SELECT c.staged_permit_id FROM pgferry_claimed AS c WHERE c.outcome = 'dead'),
        'invalid staged data');

    -- duplicates of permits already moved: drop the staged row
    WITH duplicate AS (
        DELETE FROM tps.staged_permit AS s
         USING pgferry_claimed AS c
         WHERE s.staged_permit_id = c.staged_permit_id AND c.outcome = 'upload'
           AND EXISTS (SELECT FROM permit.permit AS t
                        WHERE t.tps_permit_number = c.permit_number
                          AND t.revision = c.permit_generation - 1)
        RETURNING s.staged_permit_id, s.process_id
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, process_id)
        SELECT 'permits', d.staged_permit_id, 'duplicate', d.process_id FROM duplicate AS d
        RETURNING item_id
    )
    UPDATE pgferry_claimed AS c SET outcome = 'duplicate'
      FROM journaled AS j WHERE c.staged_permit_id = j.item_id;

    -- a second copy of the same permit in this claim waits for a later round
    WITH later_copy AS (
        SELECT c.staged_permit_id
          FROM pgferry_claimed AS c
         WHERE c.outcome = 'upload'
           AND EXISTS (SELECT FROM pgferry_claimed AS e
                        WHERE e.outcome = 'upload'
                          AND e.permit_number = c.permit_number
                          AND e.permit_generation = c.permit_generation
                          AND e.staged_permit_id < c.staged_permit_id)
    ), released AS (
        UPDATE tps.staged_permit AS s
           SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL
          FROM later_copy AS l
         WHERE s.staged_permit_id = l.staged_permit_id
        RETURNING s.staged_permit_id
    )
    UPDATE pgferry_claimed AS c SET outcome = 'deferred'
      FROM released AS r WHERE c.staged_permit_id = r.staged_permit_id;

    RETURN QUERY
        SELECT c.staged_permit_id, c.permit_number, c.permit_generation - 1,
               coalesce(nullif(c.permit_document_name, ''), c.new_permit_number, c.permit_number)
                   || '.pdf',
               s.pdf, c.outcome, c.error
          FROM pgferry_claimed AS c
          LEFT JOIN tps.staged_permit AS s
            ON s.staged_permit_id = c.staged_permit_id AND c.outcome = 'upload'
         ORDER BY c.staged_permit_id;
    DROP TABLE pgferry_claimed;
END
$function$;

REVOKE ALL ON FUNCTION permit.claim_batch(text, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.claim_batch(text, integer, interval) TO pgferry_worker;
