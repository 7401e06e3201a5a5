-- pgferry 0007 down: the triggers of 0006 copy inside the ERP's statement again. Changes still
-- waiting would be lost with the table: refuse, and say how to drain them first.
DO $$
DECLARE
    v_waiting bigint := (SELECT coalesce(sum(shipment_count - taken), 0)
                          FROM delivery.erp_change);
BEGIN
    IF v_waiting > 0 THEN
        RAISE EXCEPTION '% ERP shipment change(s) are still waiting to be copied', v_waiting
            USING ERRCODE = '55000',
                  HINT = 'Run `harness run shipments` (or SELECT delivery.sync_erp_changes() '
                         'until it returns 0) on revision 0007, then downgrade.';
    END IF;
END
$$;
DROP VIEW delivery.dtrack_shipping;
DROP TABLE delivery.erp_change;
