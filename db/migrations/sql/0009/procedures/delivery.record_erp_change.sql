-- delivery.record_erp_change: record that the shipments p_shipment_numbers changed in
-- p_source_table (one delivery.erp_change row) and wake the worker (NOTIFY
-- delivery_erp_changed, through etl.notify: a full notification queue must never fail the ERP's
-- COMMIT), which copies and maps them (delivery.sync_erp_changes). Nothing for an empty or NULL
-- list. Called by the triggers on erp.shipment, erp.package and delivery.settings.
CREATE OR REPLACE FUNCTION delivery.record_erp_change(p_source_table text,
                                                      p_shipment_numbers bigint[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF coalesce(cardinality(p_shipment_numbers), 0) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO delivery.erp_change (source_table, shipment_numbers, shipment_count)
    VALUES (p_source_table, p_shipment_numbers, cardinality(p_shipment_numbers));
    PERFORM etl.notify('delivery_erp_changed', cardinality(p_shipment_numbers)::text);
END
$function$;

REVOKE ALL ON FUNCTION delivery.record_erp_change(text, bigint[]) FROM PUBLIC;
-- called by the SECURITY DEFINER triggers, which run as pgferry_owner
GRANT EXECUTE ON FUNCTION delivery.record_erp_change(text, bigint[]) TO pgferry_owner;
