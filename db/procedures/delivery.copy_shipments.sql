-- delivery.copy_shipments: bring the delivery copy (delivery.shipment) of the given ERP shipments
-- up to date, as the ERP holds them now: qualifying shipments are inserted or updated when a
-- copied value really changed (delivery.upsert_copies, which logs and skips bad rows); a copy
-- whose shipment stopped qualifying, or was deleted, is soft-deleted (deleted_at), which its job
-- turns into a cancel. Each changed copy fires delivery.shipment_to_job, which maps it to a
-- DeTrack job. Called by delivery.sync_erp_changes. Returns the copies written.
CREATE OR REPLACE FUNCTION delivery.copy_shipments(p_shipment_numbers bigint[])
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_codes     text[];
    v_partial   boolean;
    v_written   bigint;
    v_cancelled bigint;
BEGIN
    IF coalesce(cardinality(p_shipment_numbers), 0) = 0 THEN
        RETURN 0;
    END IF;
    v_written := delivery.upsert_copies(p_shipment_numbers);

    -- copies whose shipment stopped qualifying (a cleared ship-via code too) or is gone
    SELECT ship_via_codes, require_partial INTO v_codes, v_partial FROM delivery.settings;
    UPDATE delivery.shipment AS d
       SET deleted_at = clock_timestamp(), updated_at = clock_timestamp()
     WHERE d.shipment_number = ANY (p_shipment_numbers) AND d.deleted_at IS NULL
       AND NOT EXISTS (SELECT FROM erp.shipment AS e
                        WHERE e.shipment_number = d.shipment_number
                          AND delivery.qualifies(e.ship_via, e.is_partial, v_codes, v_partial));
    GET DIAGNOSTICS v_cancelled = ROW_COUNT;
    RETURN v_written + v_cancelled;
END
$function$;

REVOKE ALL ON FUNCTION delivery.copy_shipments(bigint[]) FROM PUBLIC;
