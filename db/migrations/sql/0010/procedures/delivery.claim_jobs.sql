-- delivery.claim_jobs: lease up to p_limit pending jobs to a dispatcher under the claim's fencing
-- token p_lease_token (etl.next_lease_token) and say what to send. FOR UPDATE SKIP LOCKED with
-- expiry, so concurrent dispatchers never hold the same job; the token makes results of a claim
-- that was taken over worthless (delivery.record_results writes only under the current token).
--   create          the job is wanted and DeTrack does not have it (or may have it under the
--                   same key: the create meets "is already taken" and is settled by a GET)
--   update          DeTrack has it and it changed since it was last sent
--   delete          it is no longer wanted, or its key changed, and DeTrack has it (never a
--                   completed or failed delivery: those are settled as 'kept' without a call)
--   delete_if_ours  a create under the old key may have reached DeTrack (its answer was lost)
--                   and the job is unwanted or has a new key: the client looks the old key up
--                   and deletes the job only if it carries our tracking number
-- Before a create is sent, the job is marked remote = 'unknown' under the key it is sent with,
-- in this same transaction: if the answer is lost, even to kill -9, the next claim knows that
-- DeTrack may hold a job under that key, and never leaves one behind when the key changes.
-- The payload is the DeTrack job, with assign_to when a vehicle is known.
-- While the pipeline is paused (etl.pipeline.paused_at) it claims nothing and returns no row.
CREATE OR REPLACE FUNCTION delivery.claim_jobs(p_worker text, p_limit integer, p_lease interval,
                                               p_lease_token bigint)
RETURNS TABLE (job_id bigint, operation text, version integer, do_number text, date text,
               payload jsonb)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    IF p_worker IS NULL OR p_limit IS NULL OR p_limit < 1 OR p_lease IS NULL
       OR p_lease_token IS NULL THEN
        RAISE EXCEPTION 'delivery.claim_jobs: worker, a positive limit, a lease and a token are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- a paused pipeline (etl.pause_pipeline) claims and settles nothing: every dispatcher obeys
    -- at its next claim, without a restart; calls already in flight finish
    IF EXISTS (SELECT FROM etl.pipeline WHERE name = 'shipments' AND paused_at IS NOT NULL) THEN
        RETURN;
    END IF;
    -- settled without a call: a cancel of a delivery that already happened (DeTrack refuses it,
    -- and the delivery record must stay), and a cancel of a job DeTrack never had
    UPDATE delivery.job AS j
       SET sync_state = 'synced', synced_version = j.version, due_since = NULL,
           last_error = CASE WHEN j.remote = 'created'
                             THEN format('not cancelled: the delivery is already %s',
                                         j.delivery_status) END,
           updated_at = clock_timestamp()
     WHERE j.job_id IN (
               SELECT k.job_id FROM delivery.job AS k
                WHERE k.sync_state = 'pending' AND k.desired = 'absent'
                  AND (k.lease_expires_at IS NULL OR k.lease_expires_at < now())
                  AND ((k.remote = 'created'
                        AND k.delivery_status IN ('completed', 'completed_partial', 'failed'))
                       OR k.remote IN ('none', 'deleted'))
                  -- a job another transaction holds is settled by the next claim
                  FOR UPDATE SKIP LOCKED);

    RETURN QUERY
    WITH candidate AS (
        SELECT j.job_id,
               CASE WHEN j.remote = 'created'
                         AND (j.desired = 'absent'
                              -- DeTrack keys a job by DO number and date: a new key is a new
                              -- job, so the old one is deleted first and the new one created on
                              -- the next claim
                              OR (j.remote_do_number, j.remote_date)
                                 IS DISTINCT FROM (j.do_number, j.delivery_date)) THEN 'delete'
                    WHEN j.remote = 'created' THEN 'update'
                    WHEN j.remote = 'unknown'
                         AND (j.desired = 'absent'
                              OR (j.remote_do_number, j.remote_date)
                                 IS DISTINCT FROM (j.do_number, j.delivery_date))
                    THEN 'delete_if_ours'
                    ELSE 'create' END AS operation
          FROM delivery.job AS j
         WHERE j.sync_state = 'pending' AND j.next_attempt_at <= now()
           AND (j.lease_expires_at IS NULL OR j.lease_expires_at < now())
           -- a create waits while another job of ours still holds its key in DeTrack and is
           -- about to leave it (a renumbered shipment, a DO number reused after a cancel):
           -- sent together, the create would meet "already taken" before the delete lands
           AND NOT (j.remote NOT IN ('created', 'unknown') AND j.desired = 'present'
                    AND EXISTS (SELECT FROM delivery.job AS o
                                 WHERE o.remote IN ('created', 'unknown')
                                   AND o.remote_do_number = j.do_number
                                   AND o.remote_date = j.delivery_date
                                   AND o.job_id <> j.job_id
                                   AND o.sync_state = 'pending'
                                   AND (o.desired = 'absent'
                                        OR (o.do_number, o.delivery_date)
                                           IS DISTINCT FROM (o.remote_do_number, o.remote_date))))
         ORDER BY j.job_id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE delivery.job AS j
           SET lease_owner = p_worker, lease_expires_at = now() + p_lease,
               lease_token = p_lease_token,
               remote = CASE c.operation WHEN 'create' THEN 'unknown' ELSE j.remote END,
               remote_do_number = CASE c.operation WHEN 'create' THEN j.do_number
                                                   ELSE j.remote_do_number END,
               remote_date = CASE c.operation WHEN 'create' THEN j.delivery_date
                                              ELSE j.remote_date END
          FROM candidate AS c
         WHERE j.job_id = c.job_id
        RETURNING j.*, c.operation
    )
    SELECT c.job_id, c.operation, c.version,
           -- a create is sent under the current key, everything else under the key DeTrack
           -- knows (or may know) the job by; after the update above both are remote_*
           c.remote_do_number,
           to_char(c.remote_date, 'YYYY-MM-DD'),
           CASE WHEN c.assign_to IS NULL THEN c.payload
                ELSE c.payload || jsonb_build_object('assign_to', c.assign_to) END
      FROM claimed AS c
     ORDER BY c.job_id;
END
$function$;

REVOKE ALL ON FUNCTION delivery.claim_jobs(text, integer, interval, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.claim_jobs(text, integer, interval, bigint) TO pgferry_worker;
