-- delivery.record_results: what DeTrack answered for claimed jobs, in one statement.
--
-- p_results: [{"job_id", "lease_token", "version", "do_number", "date", "outcome",
--              "detrack_id", "http_status", "request", "response", "error",
--              "retry_after_seconds"}, ...]
-- where lease_token is the claim's fencing token, do_number and date are the key the call used,
-- request is what the call sent for this job, and outcome is one of
--   created / updated / deleted   the call succeeded (for created: confirmed, even when a
--                                 retried create met "is already taken" and a GET found our job
--                                 holding exactly our values)
--   adopted                       a create met "is already taken" and the job there is ours
--                                 but holds other values (an earlier create whose answer was
--                                 lost, before the ERP changed the shipment): DeTrack has it,
--                                 so the job stays pending and the next claim sends an update
--   failed                        DeTrack refused the data (4xx validation): never retried;
--                                 the full response is kept; a change from the ERP requeues it
--   retry                         transient (429, 5xx, timeout, connection): attempts + 1,
--                                 capped exponential backoff with jitter (or Retry-After); dead
--                                 after p_max_attempts
--   released                      the call was given up before it was sent (a stop, a wait
--                                 longer than the lease): no attempt counted, due again after
--                                 Retry-After
--   missing                       an update met not_found: DeTrack lost the job, create it again
--   kept                          a cancel DeTrack refused (the delivery happened): settled
-- Fencing: only jobs still held under the result's token are written (a claim that expired
-- and was taken over writes nothing); the lease is released. A job the ERP changed while it
-- was in flight stays pending for its newer version. due_since is not touched: a job that stays
-- pending has been due since then (lag counts from there, not from its last failed attempt).
-- Every call is journaled with the version it sent, its request and DeTrack's answer for the
-- job, without personal fields (delivery.without_personal); an answer over 8 kB (a whole
-- batch's error page) is journaled by its size only: the job's last_response keeps it whole.
CREATE OR REPLACE FUNCTION delivery.record_results(
    p_worker        text,
    p_results       jsonb,
    p_max_attempts  integer,
    p_backoff_base  interval,
    p_backoff_cap   interval)
RETURNS TABLE (synced bigint, failed bigint, retrying bigint, dead bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH result AS (
        SELECT r.*
          FROM jsonb_to_recordset(coalesce(p_results, '[]'::jsonb))
               AS r (job_id bigint, lease_token bigint, version integer, do_number text,
                     date date,
                     outcome text, detrack_id text,
                     http_status integer, request jsonb, response jsonb, error text,
                     retry_after_seconds double precision)
    ), locked AS (
        -- lock in shipment order, as the ERP sync's upsert does, so the two never deadlock
        SELECT j.job_id
          FROM delivery.job AS j
         WHERE j.job_id IN (SELECT r.job_id FROM result AS r)
         ORDER BY j.shipment_number
           FOR UPDATE
    ), written AS (
        UPDATE delivery.job AS j
           -- kept: DeTrack has our delivered job (perhaps under a key a lost create made)
           SET remote = CASE WHEN r.outcome IN ('created', 'adopted', 'kept') THEN 'created'
                             WHEN r.outcome = 'deleted' THEN 'deleted'
                             WHEN r.outcome = 'missing' THEN 'none' ELSE j.remote END,
               -- the key DeTrack now knows the job by is the one this call sent
               remote_do_number = CASE WHEN r.outcome IN ('created', 'adopted') THEN r.do_number
                                       ELSE j.remote_do_number END,
               remote_date = CASE WHEN r.outcome IN ('created', 'adopted') THEN r.date
                                  ELSE j.remote_date END,
               detrack_id = coalesce(r.detrack_id, j.detrack_id),
               synced_version = CASE
                   WHEN r.outcome IN ('created', 'updated', 'failed', 'kept') THEN r.version
                   WHEN r.outcome = 'deleted' AND j.desired = 'absent' THEN r.version
                   ELSE j.synced_version END,
               attempts = CASE r.outcome WHEN 'retry' THEN j.attempts + 1
                                         WHEN 'released' THEN j.attempts ELSE 0 END,
               sync_state = CASE
                   WHEN r.outcome = 'retry' AND j.attempts + 1 >= p_max_attempts THEN 'dead'
                   WHEN r.outcome IN ('retry', 'missing', 'released', 'adopted') THEN 'pending'
                   -- the ERP changed the job while the call ran: the new version goes next
                   WHEN j.version > r.version THEN 'pending'
                   WHEN r.outcome = 'failed' THEN 'failed'
                   -- the old key is gone (the DO number or date changed): create the new one
                   WHEN r.outcome = 'deleted' AND j.desired = 'present' THEN 'pending'
                   ELSE 'synced' END,
               next_attempt_at = CASE
                   WHEN r.outcome = 'released'
                   THEN now() + coalesce(r.retry_after_seconds, 0) * interval '1 second'
                   WHEN r.outcome = 'retry'
                   THEN now() + greatest(
                            coalesce(r.retry_after_seconds, 0) * interval '1 second',
                            least(p_backoff_cap, p_backoff_base * power(2, least(j.attempts, 30)))
                                * (0.5 + random() / 2))
                   ELSE now() END,
               last_status = r.http_status,
               last_response = coalesce(r.response, j.last_response),
               last_error = CASE WHEN r.outcome IN ('failed', 'retry', 'kept', 'missing',
                                                    'released')
                                 THEN r.error END,
               lease_owner = NULL,
               lease_expires_at = NULL,
               updated_at = clock_timestamp()
          FROM result AS r
         WHERE j.job_id = r.job_id AND j.lease_token = r.lease_token
           AND j.lease_expires_at IS NOT NULL
           AND j.job_id IN (SELECT l.job_id FROM locked AS l)
        RETURNING j.job_id, j.shipment_number, j.sync_state, j.assign_to, r.outcome, r.error,
                  r.http_status, r.version, r.request, r.response
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, detail)
        SELECT 'shipments', w.job_id, s.step,
               CASE WHEN s.step = 'assigned'
                    THEN jsonb_build_object('assign_to', w.assign_to)
                    ELSE jsonb_strip_nulls(jsonb_build_object(
                        'assign_to', w.assign_to, 'http_status', w.http_status, 'error', w.error,
                        'version', w.version, 'request', delivery.without_personal(w.request),
                        'response', CASE WHEN octet_length(w.response::text) <= 8192
                                         THEN delivery.without_personal(w.response)
                                         WHEN w.response IS NOT NULL
                                         THEN jsonb_build_object('omitted_bytes',
                                                                 octet_length(w.response::text))
                                    END)) END
          FROM written AS w
          CROSS JOIN LATERAL (
              SELECT CASE w.outcome WHEN 'retry' THEN
                          CASE w.sync_state WHEN 'dead' THEN 'dead' ELSE 'send_failed' END
                     -- DeTrack has the job: an earlier create whose answer was lost made it
                     WHEN 'adopted' THEN 'created'
                     ELSE w.outcome END AS step
              UNION ALL
              SELECT 'assigned' WHERE w.outcome IN ('created', 'updated') AND w.assign_to IS NOT NULL
          ) AS s
        RETURNING step
    ), logged AS (
        SELECT etl.log_error(
                   p_object_name => 'harness shipments dispatch',
                   p_sqlstate => CASE w.outcome WHEN 'failed' THEN '22023' ELSE '08000' END,
                   p_message => format('shipment %s (job %s): %s', w.shipment_number, w.job_id,
                                       w.error),
                   p_detail => format('HTTP %s; job is %s', w.http_status, w.sync_state),
                   p_table_name => 'delivery.job',
                   p_row_key => jsonb_build_object('job_id', w.job_id,
                                                   'shipment_number', w.shipment_number))
          FROM written AS w
         WHERE w.outcome IN ('failed', 'retry')
    ), alerted AS (
        SELECT etl.queue_alert(
                   'dead_letter',
                   format('pgferry: %s DeTrack job(s) failed for good', count(*)),
                   format('Jobs %s were refused by DeTrack or ran out of attempts. See '
                          '`harness status` and delivery.job.last_response.',
                          string_agg(w.job_id::text, ', ')),
                   'shipments')
          FROM written AS w
         WHERE w.sync_state IN ('failed', 'dead')
        HAVING count(*) > 0
    )
    SELECT count(*) FILTER (WHERE w.sync_state IN ('synced', 'pending')
                              AND w.outcome NOT IN ('retry', 'released')),
           count(*) FILTER (WHERE w.sync_state = 'failed'),
           count(*) FILTER (WHERE w.outcome = 'retry' AND w.sync_state = 'pending'),
           count(*) FILTER (WHERE w.sync_state = 'dead')
      FROM written AS w,
           (SELECT count(*) FROM journaled) AS j,
           (SELECT count(*) FROM logged) AS l,
           (SELECT count(*) FROM alerted) AS a;
END
$function$;

REVOKE ALL ON FUNCTION delivery.record_results(text, jsonb, integer, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.record_results(text, jsonb, integer, interval, interval)
    TO pgferry_worker;
