-- delivery.record_statuses: delivery statuses read from DeTrack for the DO numbers polled
-- (p_polled) — p_statuses: [{"do_number", "date", "status"}, ...]. Every polled job is stamped
-- status_checked_at, changed or not, so the next poll takes the next ones. Only real changes
-- are written; the delivery.job_to_erp trigger carries them to the ERP shipment; a completed
-- delivery is journaled as 'delivered'. Returns how many jobs changed.
--
-- The ERP shipments concerned are locked first, in key order: the ERP's own updates lock a
-- shipment before its job, and taking the locks in the same order cannot deadlock with them.
-- Then the jobs, in shipment order, as delivery.record_results and the ERP sync lock them.
CREATE OR REPLACE FUNCTION delivery.record_statuses(p_statuses jsonb, p_polled text[])
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_changed bigint;
BEGIN
    PERFORM 1
       FROM erp.shipment AS e
       JOIN delivery.job AS j ON j.shipment_number = e.shipment_number
      WHERE j.remote = 'created' AND j.remote_do_number = ANY (p_polled)
      ORDER BY e.shipment_number
        FOR UPDATE OF e;
    PERFORM 1
       FROM delivery.job AS j
      WHERE j.remote = 'created' AND j.remote_do_number = ANY (p_polled)
      ORDER BY j.shipment_number
        FOR UPDATE;

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
    SELECT count(*) INTO v_changed FROM changed, (SELECT count(*) FROM journaled) AS j;

    UPDATE delivery.job AS j
       SET status_checked_at = clock_timestamp()
     WHERE j.remote = 'created' AND j.remote_do_number = ANY (p_polled)
       AND j.status_checked_at IS DISTINCT FROM clock_timestamp();
    RETURN v_changed;
END
$function$;

REVOKE ALL ON FUNCTION delivery.record_statuses(jsonb, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.record_statuses(jsonb, text[]) TO pgferry_worker;
