-- delivery.record_statuses: delivery statuses read from DeTrack for jobs it has
-- (p_statuses: [{"do_number", "date", "status"}, ...]). Only real changes are written; the
-- delivery.job_to_erp trigger carries them to the ERP shipment. A completed delivery is
-- journaled as 'delivered'. Returns how many jobs changed.
CREATE OR REPLACE FUNCTION delivery.record_statuses(p_statuses jsonb)
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH status AS (
        SELECT s.do_number, s.date::date AS date, s.status
          FROM jsonb_to_recordset(coalesce(p_statuses, '[]'::jsonb))
               AS s (do_number text, date text, status text)
    ), changed AS (
        UPDATE delivery.job AS j
           SET delivery_status = s.status,
               delivered_at = CASE WHEN s.status IN ('completed', 'completed_partial')
                                   THEN coalesce(j.delivered_at, clock_timestamp())
                                   ELSE j.delivered_at END,
               status_checked_at = clock_timestamp(),
               updated_at = clock_timestamp()
          FROM status AS s
         WHERE j.remote = 'created' AND j.remote_do_number = s.do_number
           AND j.remote_date = s.date AND j.delivery_status IS DISTINCT FROM s.status
        RETURNING j.job_id, j.delivery_status
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, detail)
        SELECT 'shipments', c.job_id,
               CASE WHEN c.delivery_status IN ('completed', 'completed_partial')
                    THEN 'delivered' ELSE 'status' END,
               jsonb_build_object('status', c.delivery_status)
          FROM changed AS c
        RETURNING 1
    )
    SELECT count(*) FROM changed, (SELECT count(*) FROM journaled) AS j
$function$;

REVOKE ALL ON FUNCTION delivery.record_statuses(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.record_statuses(jsonb) TO pgferry_worker;
