-- permit.record_failures: the uploads of a batch that failed. Each row still held under the
-- failure's claim (its fencing token) gets attempts + 1 and, below p_max_attempts and when
-- retryable, goes back to pending with a capped exponential backoff with jitter
-- (base * 2^(attempts-1), at most p_backoff_cap, times 0.5..1.0); otherwise it becomes a dead
-- letter, an operator can list and requeue (permit.requeue_dead), and an alert is queued. Every
-- failure is written to etl.error_log. A failure under a token the row no longer carries (the
-- lease expired and another claim took the row) is ignored: the row is that claim's now.
--
-- A conflict (the key holds an object with another checksum) is not this copy's fault when
-- another copy of the same permit got there first. Once that copy is in permit.permit, this one
-- is a duplicate (deleted and journaled, as the claim would). While a copy that explains the
-- stored object (its PDF's SHA-256 is the stored object's, stored_sha256) is still staged (its
-- answer lost, backing off; or claimed), this one waits for it without an attempt counted:
-- pending until that copy's next attempt or lease expiry, and at least p_wait_floor (however
-- short the backoff: the two must not take turns in a busy loop), after which it is a
-- duplicate, or, if that copy died, a conflict like any other. A conflict no copy explains (a
-- stale object) is a dead letter: waiting for a copy that cannot fix the key would never end.
--
-- p_failures: [{"staged_permit_id", "lease_token", "error", "retryable", "conflict",
--               "stored_sha256"}, ...]
-- Returns retrying (waiting copies included), dead, and duplicates.
CREATE OR REPLACE FUNCTION permit.record_failures(
    p_failures      jsonb,
    p_max_attempts  integer,
    p_backoff_base  interval,
    p_backoff_cap   interval,
    p_wait_floor    interval)
RETURNS TABLE (retrying bigint, dead bigint, duplicates bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH failure AS (
        SELECT f.staged_permit_id, f.lease_token, f.error,
               coalesce(f.retryable, true) AS retryable,
               coalesce(f.conflict, false)
                   AND EXISTS (SELECT FROM permit.permit AS t
                                WHERE t.tps_permit_number = s.permit_number
                                  AND t.revision = s.permit_generation - 1) AS duplicate,
               CASE WHEN f.conflict
                    THEN (SELECT max(greatest(o.next_attempt_at, o.lease_expires_at))
                            FROM tps.staged_permit AS o
                           WHERE o.permit_number = s.permit_number
                             AND o.permit_generation = s.permit_generation
                             AND o.staged_permit_id <> s.staged_permit_id
                             AND o.state <> 'dead'
                             AND encode(sha256(o.pdf), 'hex') = f.stored_sha256)
               END AS other_copy_due
          FROM jsonb_to_recordset(coalesce(p_failures, '[]'::jsonb))
               AS f (staged_permit_id bigint, lease_token bigint, error text, retryable boolean,
                     conflict boolean, stored_sha256 text)
          JOIN tps.staged_permit AS s ON s.staged_permit_id = f.staged_permit_id
    ), judged AS (
        SELECT f.*, NOT f.duplicate AND f.other_copy_due IS NOT NULL AS waits
          FROM failure AS f
    ), duplicate AS (
        DELETE FROM tps.staged_permit AS s
         USING judged AS f
         WHERE s.staged_permit_id = f.staged_permit_id AND f.duplicate
           AND s.state = 'claimed' AND s.lease_token = f.lease_token
        RETURNING s.staged_permit_id, s.process_id
    ), duplicate_journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, process_id, detail)
        SELECT 'permits', d.staged_permit_id, 'duplicate', d.process_id,
               jsonb_build_object('reason', 'another copy of the permit moved first')
          FROM duplicate AS d
        RETURNING item_id
    ), updated AS (
        UPDATE tps.staged_permit AS s
           SET attempts = s.attempts + CASE WHEN f.waits THEN 0 ELSE 1 END,
               state = CASE WHEN f.waits OR (f.retryable AND s.attempts + 1 < p_max_attempts)
                            THEN 'pending' ELSE 'dead' END,
               dead_at = CASE WHEN f.waits OR (f.retryable AND s.attempts + 1 < p_max_attempts)
                              THEN NULL ELSE clock_timestamp() END,
               next_attempt_at = greatest(
                   now() + least(p_backoff_cap, p_backoff_base * power(2, least(s.attempts, 30)))
                           * (0.5 + random() / 2),
                   f.other_copy_due,
                   CASE WHEN f.waits THEN now() + p_wait_floor END),
               lease_owner = NULL,
               lease_expires_at = NULL,
               lease_token = NULL,
               last_error = f.error
                   || CASE WHEN f.waits THEN '; another copy of this permit is staged: waiting'
                                             ' for it (a duplicate once it moves)'
                           ELSE '' END
          FROM judged AS f
         WHERE s.staged_permit_id = f.staged_permit_id AND NOT f.duplicate
           AND s.state = 'claimed' AND s.lease_token = f.lease_token
        RETURNING s.staged_permit_id, s.process_id, s.permit_number, s.permit_generation,
                  s.state, s.attempts, s.next_attempt_at, s.last_error AS error,
                  f.retryable OR f.waits AS retryable, f.waits
    ), logged AS (
        SELECT u.*,
               etl.log_error(
                   p_object_name => 'harness permits upload',
                   p_sqlstate    => CASE WHEN u.retryable THEN '58030' ELSE '22023' END,
                   p_message     => format('permit %s generation %s (staged row %s): %s',
                                           u.permit_number, u.permit_generation,
                                           u.staged_permit_id, u.error),
                   p_detail      => format('attempt %s of %s; %s', u.attempts, p_max_attempts,
                                           CASE u.state WHEN 'dead' THEN 'dead letter'
                                                ELSE 'next attempt at ' || u.next_attempt_at END),
                   p_table_name  => 'tps.staged_permit',
                   p_row_key     => jsonb_build_object('staged_permit_id', u.staged_permit_id),
                   p_process_id  => u.process_id) AS error_id
          FROM updated AS u
    ), alerted AS (
        SELECT permit.alert_dead_letters(
                   array_agg(l.staged_permit_id) FILTER (WHERE l.state = 'dead'),
                   'upload attempts exhausted')
          FROM logged AS l
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, process_id, detail)
        SELECT 'permits', l.staged_permit_id,
               CASE l.state WHEN 'dead' THEN 'dead' ELSE 'upload_failed' END,
               l.process_id,
               jsonb_build_object('error', l.error, 'attempt', l.attempts,
                                  'retryable', l.retryable, 'error_id', l.error_id)
               || CASE WHEN l.waits THEN '{"waiting_for_copy": true}'::jsonb ELSE '{}' END
          FROM logged AS l
        RETURNING step
    )
    SELECT count(*) FILTER (WHERE j.step = 'upload_failed'),
           count(*) FILTER (WHERE j.step = 'dead'),
           (SELECT count(*) FROM duplicate_journaled)
      FROM journaled AS j, (SELECT count(*) FROM alerted) AS alert_queued;
END
$function$;

REVOKE ALL ON FUNCTION permit.record_failures(jsonb, integer, interval, interval, interval)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.record_failures(jsonb, integer, interval, interval, interval)
    TO pgferry_worker;
