-- delivery.job_to_erp: delivery statuses read back from DeTrack flow to the ERP shipment (the
-- seed's UpdateShipmentOnDelivery): delivery_status always, shipped and delivered_at once the
-- job is completed. Only rows whose status really changed are written. Log-and-continue: a
-- failure here is logged and never undoes the status recorded on the job.
CREATE OR REPLACE FUNCTION delivery.job_to_erp()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_state text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    IF NOT EXISTS (SELECT FROM new_rows) THEN  -- a statement that changed no job
        RETURN NULL;
    END IF;
    BEGIN
        UPDATE erp.shipment AS e
           SET delivery_status = n.delivery_status,
               shipped = e.shipped OR n.delivery_status IN ('completed', 'completed_partial'),
               delivered_at = CASE WHEN n.delivery_status IN ('completed', 'completed_partial')
                                   THEN coalesce(e.delivered_at, n.delivered_at, clock_timestamp())
                                   ELSE e.delivered_at END
          FROM new_rows AS n
          JOIN old_rows AS o ON o.job_id = n.job_id
         WHERE e.shipment_number = n.shipment_number
           AND n.delivery_status IS DISTINCT FROM o.delivery_status
           AND e.delivery_status IS DISTINCT FROM n.delivery_status;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        PERFORM etl.log_error(p_object_name => 'delivery.job_to_erp', p_sqlstate => v_state,
                              p_message => v_message, p_detail => v_detail, p_hint => v_hint,
                              p_context => v_context, p_table_name => 'erp.shipment');
    END;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION delivery.job_to_erp() FROM PUBLIC;

CREATE OR REPLACE TRIGGER job_to_erp
    AFTER UPDATE ON delivery.job
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery.job_to_erp();
