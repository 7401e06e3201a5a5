-- delivery.settings_to_resync: a change of which shipments qualify (ship-via codes, the partial
-- flag) re-evaluates every shipment it can affect: those whose ship-via code is in the old or
-- the new list, and every live copy. They are queued like an ERP change (delivery.erp_change);
-- the sync copies the shipments that now qualify and cancels the jobs of those that no longer do.
-- Settings change rarely; while one commits, ERP writes wait (SHARE lock on erp.shipment).
CREATE OR REPLACE FUNCTION delivery.settings_to_resync()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_numbers bigint[];
BEGIN
    IF (NEW.ship_via_codes, NEW.require_partial)
       IS NOT DISTINCT FROM (OLD.ship_via_codes, OLD.require_partial) THEN
        RETURN NULL;
    END IF;
    -- wait for ERP transactions in flight: they chose their shipments by the old settings,
    -- and their rows must be visible to the scan below (the ERP waits while this commits)
    LOCK TABLE erp.shipment IN SHARE MODE;
    SELECT array_agg(a.shipment_number) INTO v_numbers
      FROM (SELECT e.shipment_number FROM erp.shipment AS e
             WHERE e.ship_via = ANY (OLD.ship_via_codes || NEW.ship_via_codes)
            UNION
            SELECT d.shipment_number FROM delivery.shipment AS d WHERE d.deleted_at IS NULL) AS a;
    PERFORM delivery.record_erp_change('delivery.settings', v_numbers);
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION delivery.settings_to_resync() FROM PUBLIC;

CREATE OR REPLACE TRIGGER settings_to_resync
    AFTER UPDATE ON delivery.settings
    FOR EACH ROW EXECUTE FUNCTION delivery.settings_to_resync();
