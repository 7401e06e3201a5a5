-- erp.shipment_to_delivery: the first link of the chain (the seed's CopyShipmentToDTrack). Every
-- ERP statement that touches qualifying shipments records their numbers in delivery.erp_change
-- (one row per statement) and wakes the worker; delivery.sync_erp_changes then copies them into
-- delivery.shipment with the change-only merge, and delivery.shipment_to_job maps them to jobs.
--
-- Why the copy is not done here: it writes a row per shipment, and the mapping another, inside
-- the ERP's own statement: 3-7x the time of the ERP's bulk insert (SPEC target: 1.2x). Recording
-- the keys costs one aggregate over the transition table. The change row commits or rolls back
-- with the ERP's statement, so no change is lost; the copy reads the ERP row as it is at sync
-- time, so a burst of updates to one shipment becomes one copy.
--
-- A shipment counts when it qualifies (ship-via code in delivery.settings.ship_via_codes and,
-- with require_partial, flagged partial) before or after the statement: one that stops
-- qualifying, or is deleted, is cancelled by the sync. An update counts only when a value the
-- copy uses, the qualification or the number changed: the status write-back
-- (delivery.job_to_erp) never comes back round.
--
-- TRUNCATE has no transition table and would otherwise go unseen (copies and jobs kept, DeTrack
-- never told): it records every shipment with a live copy or a waiting change, and the sync
-- turns each one missing from the ERP into a cancel. A reload in one transaction (TRUNCATE, then
-- INSERT) cancels nothing: the change-only copy finds the same values again.
--
-- Log-and-continue: the ERP's statement must never fail because of pgferry.
CREATE OR REPLACE FUNCTION erp.shipment_to_delivery()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_codes     text[];
    v_partial   boolean;
    v_numbers   bigint[];
    v_state     text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    BEGIN
        SELECT ship_via_codes, require_partial INTO v_codes, v_partial FROM delivery.settings;
        IF TG_OP = 'INSERT' THEN
            SELECT array_agg(n.shipment_number) INTO v_numbers
              FROM new_rows AS n
             WHERE delivery.qualifies(n.ship_via, n.is_partial, v_codes, v_partial);
        ELSIF TG_OP = 'DELETE' THEN
            SELECT array_agg(o.shipment_number) INTO v_numbers
              FROM old_rows AS o
             WHERE delivery.qualifies(o.ship_via, o.is_partial, v_codes, v_partial);
        ELSIF TG_OP = 'TRUNCATE' THEN
            -- no transition table: every shipment pgferry knows of, the live copies and the
            -- changes still waiting (creates not yet synced); the sync finds none of them in
            -- the ERP, cancels the jobs and creates nothing
            SELECT array_agg(k.shipment_number) INTO v_numbers
              FROM (SELECT d.shipment_number FROM delivery.shipment AS d
                     WHERE d.deleted_at IS NULL
                    UNION
                    SELECT unnest(c.shipment_numbers) FROM delivery.erp_change AS c) AS k;
        ELSE
            -- joined on the number: a renumbered shipment is a delete plus an insert
            SELECT array_agg(coalesce(n.shipment_number, o.shipment_number)) INTO v_numbers
              FROM new_rows AS n
              FULL JOIN old_rows AS o ON o.shipment_number = n.shipment_number
             WHERE (delivery.qualifies(n.ship_via, n.is_partial, v_codes, v_partial)
                    OR delivery.qualifies(o.ship_via, o.is_partial, v_codes, v_partial))
               AND (n.shipment_number IS NULL OR o.shipment_number IS NULL
                    -- the columns delivery.copy_shipments copies, and the qualification
                    OR ROW(n.job_number, n.scheduled_ship_date, n.ship_name, n.ship_attention,
                           n.ship_address_1, n.ship_address_2, n.ship_address_3, n.ship_city,
                           n.ship_postal_code, n.ship_country, n.ship_zone, n.ship_phone,
                           n.ship_email, n.ship_instructions, n.ship_via, n.is_partial)
                       IS DISTINCT FROM
                       ROW(o.job_number, o.scheduled_ship_date, o.ship_name, o.ship_attention,
                           o.ship_address_1, o.ship_address_2, o.ship_address_3, o.ship_city,
                           o.ship_postal_code, o.ship_country, o.ship_zone, o.ship_phone,
                           o.ship_email, o.ship_instructions, o.ship_via, o.is_partial));
        END IF;
        PERFORM delivery.record_erp_change('erp.shipment', v_numbers);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        PERFORM etl.log_error(p_object_name => 'erp.shipment_to_delivery', p_sqlstate => v_state,
                              p_message => 'ERP change not recorded: ' || v_message,
                              p_detail => v_detail, p_hint => v_hint, p_context => v_context,
                              p_table_name => 'erp.shipment');
    END;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION erp.shipment_to_delivery() FROM PUBLIC;

CREATE OR REPLACE TRIGGER shipment_to_delivery_insert
    AFTER INSERT ON erp.shipment
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION erp.shipment_to_delivery();
CREATE OR REPLACE TRIGGER shipment_to_delivery_update
    AFTER UPDATE ON erp.shipment
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION erp.shipment_to_delivery();
CREATE OR REPLACE TRIGGER shipment_to_delivery_delete
    AFTER DELETE ON erp.shipment
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION erp.shipment_to_delivery();
CREATE OR REPLACE TRIGGER shipment_to_delivery_truncate
    AFTER TRUNCATE ON erp.shipment
    FOR EACH STATEMENT EXECUTE FUNCTION erp.shipment_to_delivery();
