-- delivery.apply_assignment_rules: jobs still without a vehicle get one when a rule now
-- matches; they become pending, so the dispatcher sends the assignment as an update.
-- Finished deliveries are left alone. Returns how many jobs were assigned.
CREATE OR REPLACE FUNCTION delivery.apply_assignment_rules()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_assigned bigint;
BEGIN
    UPDATE delivery.job AS j
       SET assign_to = m.vehicle, version = j.version + 1, sync_state = 'pending',
           -- a job already waiting out a failure keeps its count, backoff and lag
           due_since = CASE WHEN j.sync_state = 'pending' THEN j.due_since
                            ELSE clock_timestamp() END,
           attempts = CASE WHEN j.sync_state = 'pending' THEN j.attempts ELSE 0 END,
           next_attempt_at = CASE WHEN j.sync_state = 'pending'
                                  THEN greatest(j.next_attempt_at, now()) ELSE now() END,
           updated_at = clock_timestamp()
      FROM (SELECT u.job_id, v.vehicle
              FROM delivery.job AS u
              JOIN LATERAL delivery.vehicle_for(u.postal_code, u.zone) AS v ON true
             WHERE u.assign_to IS NULL AND u.desired = 'present'
               AND u.sync_state IN ('pending', 'synced')
               AND coalesce(u.delivery_status, '') NOT IN ('completed', 'completed_partial', 'failed')
             ORDER BY u.shipment_number
               -- a job another transaction holds is assigned by the next run, never waited for
               FOR UPDATE OF u SKIP LOCKED
           ) AS m
     WHERE j.job_id = m.job_id AND m.vehicle IS NOT NULL;
    GET DIAGNOSTICS v_assigned = ROW_COUNT;
    IF v_assigned > 0 THEN
        PERFORM etl.notify('delivery_job_pending', v_assigned::text);
    END IF;
    RETURN v_assigned;
END
$function$;

REVOKE ALL ON FUNCTION delivery.apply_assignment_rules() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.apply_assignment_rules() TO pgferry_worker;
