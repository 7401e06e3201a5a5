-- erp.package_to_job: a change to the ERP's packages changes the items of their shipments'
-- jobs. Like erp.shipment_to_delivery, the ERP's statement only records the shipment numbers
-- (delivery.erp_change, one row per statement); delivery.sync_erp_changes re-maps those
-- shipments, and only jobs whose items really changed become pending. TRUNCATE (no transition
-- table) records every shipment whose job carries items.
--
-- Log-and-continue: the ERP's statement must never fail because of pgferry.
CREATE OR REPLACE FUNCTION erp.package_to_job()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_numbers bigint[];
    v_state   text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    BEGIN
        IF TG_OP = 'INSERT' THEN
            SELECT array_agg(DISTINCT n.shipment_number) INTO v_numbers FROM new_rows AS n;
        ELSIF TG_OP = 'DELETE' THEN
            SELECT array_agg(DISTINCT o.shipment_number) INTO v_numbers FROM old_rows AS o;
        ELSIF TG_OP = 'TRUNCATE' THEN
            -- no transition table: every shipment whose job carries items; the re-map finds
            -- no packages and the job is sent again without them
            SELECT array_agg(j.shipment_number) INTO v_numbers
              FROM delivery.job AS j
             WHERE j.payload -> 'items' -> 0 IS NOT NULL;
        ELSE
            -- packages whose mapped values (items: sku, description, quantity) or shipment
            -- changed; both shipments of a moved package
            SELECT array_agg(DISTINCT s.shipment_number) INTO v_numbers
              FROM new_rows AS n
              FULL JOIN old_rows AS o ON o.package_id = n.package_id
              CROSS JOIN LATERAL unnest(ARRAY[n.shipment_number, o.shipment_number])
                   AS s (shipment_number)
             WHERE s.shipment_number IS NOT NULL
               AND (n.package_id IS NULL OR o.package_id IS NULL
                    OR ROW(n.shipment_number, n.sku, n.description, n.quantity)
                       IS DISTINCT FROM ROW(o.shipment_number, o.sku, o.description, o.quantity));
        END IF;
        PERFORM delivery.record_erp_change('erp.package', v_numbers);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        PERFORM etl.log_error(p_object_name => 'erp.package_to_job', p_sqlstate => v_state,
                              p_message => 'ERP change not recorded: ' || v_message,
                              p_detail => v_detail, p_hint => v_hint, p_context => v_context,
                              p_table_name => 'erp.package');
    END;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION erp.package_to_job() FROM PUBLIC;

CREATE OR REPLACE TRIGGER package_to_job_insert
    AFTER INSERT ON erp.package
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION erp.package_to_job();
CREATE OR REPLACE TRIGGER package_to_job_update
    AFTER UPDATE ON erp.package
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION erp.package_to_job();
CREATE OR REPLACE TRIGGER package_to_job_delete
    AFTER DELETE ON erp.package
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION erp.package_to_job();
CREATE OR REPLACE TRIGGER package_to_job_truncate
    AFTER TRUNCATE ON erp.package
    FOR EACH STATEMENT EXECUTE FUNCTION erp.package_to_job();
