-- permit.claim_batch: lease up to p_limit staged permits to a worker under the claim's fencing
-- token p_lease_token (etl.next_lease_token) and return every claimed row with its outcome:
-- 'upload' (with its PDF: the worker uploads it, then permit.move_batch), 'duplicate' (deleted),
-- 'dead' (rejected, with the error) or 'deferred' (released). Oldest completed process first;
-- only processes that succeeded and are not consumed yet. Claims are leases: FOR UPDATE SKIP
-- LOCKED, so concurrent workers never get the same row, and a lease that expires (a crashed
-- worker) makes the row claimable again. The token fences the worker: permit.move_batch and
-- permit.record_failures write only rows that still carry it, so the results of a claim that
-- another claim took over are worthless.
--
-- One claim at a time (a transaction-level advisory lock: claims are short, and PgBouncer in
-- transaction mode keeps working). Without it, two claims at the same moment could each take a
-- copy of the same permit: neither sees the other's uncommitted lease in its NOT EXISTS check.
-- Waiting for the lock, the second claim's statements see the first one's committed leases.
--
-- While the pipeline is paused (etl.pipeline.paused_at) it claims nothing and returns no row.
--
-- In the same short transaction, set-based:
--   * invalid rows (missing permit number, generation < 1, empty, non-PDF or truncated PDF) go
--     straight to the dead-letter state: retrying cannot fix them. The error names the permit,
--     the staged row and the field, and is written to etl.error_log;
--   * a row taken over from an expired lease counts one more expired claim (expired_claims);
--     at p_max_claims it is a dead letter that says so: the worker holding it died each time
--     (a permit that crashes the worker process itself), so claiming it again would crash the
--     next one;
--   * duplicates (the same permit number and revision is already in permit.permit: a re-run or
--     an uninteresting upstream change) are deleted from staging;
--   * a second copy of the same permit within the claim is released for a later round, where it
--     becomes a duplicate (or moves, if the first copy failed);
--   * tombstones a dead reconcile run left behind expire (permit.expire_tombstones), cleared
--     under this claim's token: what this claim uploads may move.
--
-- The temporary table holds the claimed rows between these steps (one per call, dropped at
-- commit): the steps update rows the previous ones returned, which one statement of
-- data-modifying CTEs cannot do (they all see the same snapshot).
CREATE OR REPLACE FUNCTION permit.claim_batch(p_worker text, p_limit integer, p_lease interval,
                                              p_lease_token bigint, p_max_claims integer)
RETURNS TABLE (staged_permit_id bigint, tps_permit_number text, revision integer,
               file_name text, pdf bytea, outcome text, error text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    IF p_worker IS NULL OR p_limit IS NULL OR p_limit < 1 OR p_lease IS NULL
       OR p_lease <= interval '0' OR p_lease_token IS NULL OR p_max_claims IS NULL
       OR p_max_claims < 1 THEN
        RAISE EXCEPTION 'permit.claim_batch: worker, a positive limit, a positive lease, a token '
                        'and a positive claim limit are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('permit.claim_batch'));
    -- a paused pipeline (etl.pause_pipeline) claims nothing: every worker obeys at its next claim,
    -- without a restart; batches already claimed finish. Checked after the lock, so a claim that
    -- waited for it sees a pause committed meanwhile.
    IF EXISTS (SELECT FROM etl.pipeline WHERE name = 'permits' AND paused_at IS NOT NULL) THEN
        RETURN;
    END IF;
    PERFORM permit.expire_tombstones(p_lease_token);

    CREATE TEMP TABLE pgferry_claimed (
        staged_permit_id bigint, process_id bigint, permit_number text, permit_generation smallint,
        permit_document_name text, new_permit_number text, pdf_problem text, field_problem text,
        expired_claims integer, outcome text NOT NULL DEFAULT 'upload', error text
    ) ON COMMIT DROP;
    WITH candidate AS (
        SELECT s.staged_permit_id, s.state = 'claimed' AS lease_expired
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
           SET state = 'claimed', lease_owner = p_worker, lease_expires_at = now() + p_lease,
               lease_token = p_lease_token,
               expired_claims = s.expired_claims + c.lease_expired::integer
          FROM candidate AS c
         WHERE s.staged_permit_id = c.staged_permit_id
        RETURNING s.staged_permit_id, s.process_id, s.permit_number, s.permit_generation,
                  s.permit_document_name, s.new_permit_number,
                  permit.pdf_problem(s.pdf),
                  CASE WHEN nullif(btrim(s.permit_number), '') IS NULL THEN 'permit_number: missing'
                       WHEN s.permit_generation IS NULL OR s.permit_generation < 1
                       THEN format('permit_generation: must be 1 or more (revision = generation - 1), got %s',
                                   coalesce(s.permit_generation::text, 'NULL'))
                  END,
                  s.expired_claims
    )
    INSERT INTO pgferry_claimed SELECT * FROM claimed;
    UPDATE pgferry_claimed
       SET outcome = 'dead', error = coalesce(field_problem, 'pdf: ' || pdf_problem)
     WHERE field_problem IS NOT NULL OR pdf_problem IS NOT NULL;
    UPDATE pgferry_claimed
       SET outcome = 'dead',
           error = format('claimed %s times without finishing: each time the lease expired in '
                          'the worker''s hands (a worker that crashes on this permit, or one '
                          'that cannot reach the database)', expired_claims)
     WHERE outcome = 'upload' AND expired_claims >= p_max_claims;

    -- dead at once, with the reason logged: invalid rows (data: retrying cannot help) and
    -- permits out of claims (an operator looks at them, then requeues them)
    WITH invalid AS (
        SELECT c.*, c.error AS problem, c.field_problem IS NOT NULL OR c.pdf_problem IS NOT NULL
                                            AS bad_data
          FROM pgferry_claimed AS c WHERE c.outcome = 'dead'
    ), logged AS (
        SELECT i.staged_permit_id,
               etl.log_error(
                   p_object_name => 'permit.claim_batch',
                   p_sqlstate    => CASE WHEN i.bad_data THEN '22023' ELSE '54000' END,
                   p_message     => format('permit %s generation %s (staged row %s) rejected: %s',
                                           coalesce(i.permit_number, 'NULL'),
                                           coalesce(i.permit_generation::text, 'NULL'),
                                           i.staged_permit_id, i.problem),
                   p_table_name  => 'tps.staged_permit',
                   p_row_key     => jsonb_build_object('staged_permit_id', i.staged_permit_id,
                                                       'permit_number', i.permit_number,
                                                       'permit_generation', i.permit_generation),
                   p_process_id  => i.process_id) AS error_id,
               i.problem, i.bad_data
          FROM invalid AS i
    ), dead AS (
        UPDATE tps.staged_permit AS s
           SET state = 'dead', dead_at = clock_timestamp(), lease_owner = NULL,
               lease_expires_at = NULL, lease_token = NULL, last_error = l.problem
          FROM logged AS l
         WHERE s.staged_permit_id = l.staged_permit_id
        RETURNING s.staged_permit_id, s.process_id, l.problem, l.error_id, l.bad_data,
                  s.expired_claims
    )
    INSERT INTO etl.journal (pipeline, item_id, step, process_id, detail)
    SELECT 'permits', d.staged_permit_id, 'dead', d.process_id,
           jsonb_build_object('error', d.problem, 'error_id', d.error_id, 'retryable', false)
           || CASE WHEN d.bad_data THEN '{}'::jsonb
                   ELSE jsonb_build_object('expired_claims', d.expired_claims) END
      FROM dead AS d;
    PERFORM permit.alert_dead_letters(
        ARRAY(SELECT c.staged_permit_id FROM pgferry_claimed AS c
               WHERE c.field_problem IS NOT NULL OR c.pdf_problem IS NOT NULL),
        'invalid staged data');
    PERFORM permit.alert_dead_letters(
        ARRAY(SELECT c.staged_permit_id FROM pgferry_claimed AS c
               WHERE c.outcome = 'dead' AND c.field_problem IS NULL AND c.pdf_problem IS NULL),
        format('claimed %s times, each lease expired: the worker may crash on them', p_max_claims));

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
           SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
          FROM later_copy AS l
         WHERE s.staged_permit_id = l.staged_permit_id
        RETURNING s.staged_permit_id
    )
    UPDATE pgferry_claimed AS c SET outcome = 'deferred'
      FROM released AS r WHERE c.staged_permit_id = r.staged_permit_id;

    RETURN QUERY
        SELECT c.staged_permit_id, c.permit_number, c.permit_generation - 1,
               permit.document_file_name(c.permit_document_name, c.new_permit_number,
                                         c.permit_number),
               s.pdf, c.outcome, c.error
          FROM pgferry_claimed AS c
          LEFT JOIN tps.staged_permit AS s
            ON s.staged_permit_id = c.staged_permit_id AND c.outcome = 'upload'
         ORDER BY c.staged_permit_id;
    DROP TABLE pgferry_claimed;
END
$function$;

REVOKE ALL ON FUNCTION permit.claim_batch(text, integer, interval, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.claim_batch(text, integer, interval, bigint, integer)
    TO pgferry_worker;
