-- permit.record_failures: the uploads of a batch that failed. Each row the worker still holds
-- gets attempts + 1 and, below p_max_attempts and when retryable, goes back to pending with a
-- capped exponential backoff with jitter (base * 2^(attempts-1), at most p_backoff_cap, times
-- 0.5..1.0); otherwise it becomes a dead letter, an operator can list and requeue
-- (permit.requeue_dead), and an alert is queued. Every failure is written to etl.error_log.
--
-- p_failures: [{"staged_permit_id", "error", "retryable"}, ...]
CREATE OR REPLACE FUNCTION permit.record_failures(
    p_worker        text,
    p_failures      jsonb,
    p_max_attempts  integer,
    p_backoff_base  interval,
    p_backoff_cap   interval)
RETURNS TABLE (retrying bigint, dead bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH failure AS (
        SELECT f.staged_permit_id, f.error, coalesce(f.retryable, true) AS retryable
          FROM jsonb_to_recordset(coalesce(p_failures, '[]'::jsonb))
               AS f (staged_permit_id bigint, error text, retryable boolean)
    ), updated AS (
        UPDATE tps.staged_permit AS s
           SET attempts = s.attempts + 1,
               state = CASE WHEN f.retryable AND s.attempts + 1 < p_max_attempts
                            THEN 'pending' ELSE 'dead' END,
               dead_at = CASE WHEN f.retryable AND s.attempts + 1 < p_max_attempts
                              THEN NULL ELSE clock_timestamp() END,
               next_attempt_at = now() + least(p_backoff_cap,
                                               p_backoff_base * power(2, least(s.attempts, 30)))
                                         * (0.5 + random() / 2),
               lease_owner = NULL,
               lease_expires_at = NULL,
               last_error = f.error
          FROM failure AS f
         WHERE s.staged_permit_id = f.staged_permit_id
           AND s.state = 'claimed' AND s.lease_owner = p_worker
        RETURNING s.staged_permit_id, s.process_id, s.permit_number, s.permit_generation,
                  s.state, s.attempts, s.next_attempt_at, f.error, f.retryable
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
          FROM logged AS l
        RETURNING step
    )
    SELECT count(*) FILTER (WHERE j.step = 'upload_failed'),
           count(*) FILTER (WHERE j.step = 'dead')
      FROM journaled AS j, (SELECT count(*) FROM alerted) AS alert_queued;
END
$function$;

REVOKE ALL ON FUNCTION permit.record_failures(text, jsonb, integer, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.record_failures(text, jsonb, integer, interval, interval)
    TO pgferry_worker;
