-- delivery.claim_jobs: lease up to p_limit pending jobs to a dispatcher (FOR UPDATE SKIP LOCKED,
-- with expiry, so concurrent dispatchers never send the same job) and say what to send:
--   create  the job is wanted and DeTrack does not have it
--   update  DeTrack has it and it changed since it was last sent
--   delete  it is no longer wanted and DeTrack has it (never a completed or failed delivery:
--           those are settled as 'kept' without a call)
-- The payload is the DeTrack job, with assign_to when a vehicle is known.
CREATE OR REPLACE FUNCTION delivery.claim_jobs(p_worker text, p_limit integer, p_lease interval)
RETURNS TABLE (job_id bigint, operation text, version integer, do_number text, date text,
               payload jsonb)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    -- a cancel of a delivery that already happened is not sent: DeTrack refuses it, and the
    -- delivery record must stay
    UPDATE delivery.job AS j
       SET sync_state = 'synced', synced_version = j.version,
           last_error = format('not cancelled: the delivery is already %s', j.delivery_status),
           updated_at = clock_timestamp()
     WHERE j.sync_state = 'pending' AND j.desired = 'absent' AND j.remote = 'created'
       AND j.delivery_status IN ('completed', 'completed_partial', 'failed');

    RETURN QUERY
    WITH candidate AS (
        SELECT j.job_id
          FROM delivery.job AS j
         WHERE j.sync_state = 'pending' AND j.next_attempt_at <= now()
           AND (j.lease_expires_at IS NULL OR j.lease_expires_at < now())
         ORDER BY j.job_id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE delivery.job AS j
           SET lease_owner = p_worker, lease_expires_at = now() + p_lease
          FROM candidate AS c
         WHERE j.job_id = c.job_id
        RETURNING j.*
    )
    SELECT c.job_id,
           CASE WHEN c.desired = 'present' AND c.remote <> 'created' THEN 'create'
                -- DeTrack keys a job by DO number and date: a new key is a new job, so the
                -- old one is deleted first and the new one created on the next claim
                WHEN c.desired = 'present'
                     AND (c.remote_do_number, c.remote_date) IS DISTINCT FROM
                         (c.do_number, c.delivery_date) THEN 'delete'
                WHEN c.desired = 'present' THEN 'update'
                ELSE 'delete' END,
           c.version,
           -- a create is sent under the current key; an update or delete under the key
           -- DeTrack knows the job by
           CASE WHEN c.remote = 'created' THEN c.remote_do_number ELSE c.do_number END,
           to_char(CASE WHEN c.remote = 'created' THEN c.remote_date ELSE c.delivery_date END,
                   'YYYY-MM-DD'),
           CASE WHEN c.assign_to IS NULL THEN c.payload
                ELSE c.payload || jsonb_build_object('assign_to', c.assign_to) END
      FROM claimed AS c
     ORDER BY c.job_id;
END
$function$;

REVOKE ALL ON FUNCTION delivery.claim_jobs(text, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.claim_jobs(text, integer, interval) TO pgferry_worker;
