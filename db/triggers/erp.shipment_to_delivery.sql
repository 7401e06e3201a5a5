-- erp.shipment_to_delivery: copy qualifying ERP shipments into the delivery copy
-- (delivery.shipment), the seed's CopyShipmentToDTrack. A shipment qualifies when its ship-via
-- code is one of delivery.settings.ship_via_codes (the seed names both 1005 and 10005) and, when
-- require_partial is set, it is flagged partial.
--
-- Statement-level with transition tables: one INSERT ... ON CONFLICT per ERP statement, which
-- writes only rows whose copied values really changed (IS DISTINCT FROM). A shipment that stops
-- qualifying, or is deleted, is soft-deleted in the copy (deleted_at), which becomes a cancel.
-- This is the standard merge's change-only upsert done inline: transition tables are visible
-- only inside the trigger's own function, so etl.merge_table (which merges a relation) cannot
-- read them without copying every ERP statement into a temporary table.
--
-- Log-and-continue: the ERP's statement must never fail because of pgferry. If the set-based
-- copy fails, the shipments are copied one by one; each bad one (NULL address, an over-long
-- field, ...) is written to etl.error_log naming the shipment and the field, the rest go through.
CREATE OR REPLACE FUNCTION erp.shipment_to_delivery()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    -- %1$s: extra filter on n ($3: one shipment number); $1 codes, $2 require_partial
    c_copy constant text := $sql$
        INSERT INTO delivery.shipment AS d
               (shipment_number, job_number, scheduled_ship_date, ship_name, ship_attention,
                ship_address_1, ship_address_2, ship_address_3, ship_city, ship_postal_code,
                ship_country, ship_zone, ship_phone, ship_email, ship_instructions,
                inserted_at, updated_at)
        SELECT n.shipment_number, n.job_number, n.scheduled_ship_date, n.ship_name,
               n.ship_attention, n.ship_address_1, n.ship_address_2, n.ship_address_3,
               n.ship_city, n.ship_postal_code, n.ship_country, n.ship_zone, n.ship_phone,
               n.ship_email, n.ship_instructions, clock_timestamp(), clock_timestamp()
          FROM new_rows AS n
         WHERE n.ship_via = ANY ($1) AND (NOT $2 OR n.is_partial) %1$s
        ON CONFLICT (shipment_number) DO UPDATE
           SET job_number = excluded.job_number,
               scheduled_ship_date = excluded.scheduled_ship_date,
               ship_name = excluded.ship_name,
               ship_attention = excluded.ship_attention,
               ship_address_1 = excluded.ship_address_1,
               ship_address_2 = excluded.ship_address_2,
               ship_address_3 = excluded.ship_address_3,
               ship_city = excluded.ship_city,
               ship_postal_code = excluded.ship_postal_code,
               ship_country = excluded.ship_country,
               ship_zone = excluded.ship_zone,
               ship_phone = excluded.ship_phone,
               ship_email = excluded.ship_email,
               ship_instructions = excluded.ship_instructions,
               updated_at = clock_timestamp(),
               deleted_at = NULL
         WHERE ROW(d.job_number, d.scheduled_ship_date, d.ship_name, d.ship_attention,
                   d.ship_address_1, d.ship_address_2, d.ship_address_3, d.ship_city,
                   d.ship_postal_code, d.ship_country, d.ship_zone, d.ship_phone, d.ship_email,
                   d.ship_instructions)
               IS DISTINCT FROM
               ROW(excluded.job_number, excluded.scheduled_ship_date, excluded.ship_name,
                   excluded.ship_attention, excluded.ship_address_1, excluded.ship_address_2,
                   excluded.ship_address_3, excluded.ship_city, excluded.ship_postal_code,
                   excluded.ship_country, excluded.ship_zone, excluded.ship_phone,
                   excluded.ship_email, excluded.ship_instructions)
            OR d.deleted_at IS NOT NULL
    $sql$;
    v_codes     text[];
    v_partial   boolean;
    v_row       record;
    v_field     text;
    v_state     text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    SELECT ship_via_codes, require_partial INTO v_codes, v_partial FROM delivery.settings;
    -- a statement that changed no row (the write-back's UPDATE often matches none)
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT FROM old_rows) THEN
            RETURN NULL;
        END IF;
    ELSIF NOT EXISTS (SELECT FROM new_rows) THEN
        RETURN NULL;
    END IF;

    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        BEGIN
            EXECUTE format(c_copy, '') USING v_codes, v_partial;
        EXCEPTION WHEN OTHERS THEN
            FOR v_row IN
                EXECUTE 'SELECT n.shipment_number, to_jsonb(n) AS payload FROM new_rows AS n'
                        ' WHERE n.ship_via = ANY ($1) AND (NOT $2 OR n.is_partial)'
                        ' ORDER BY n.shipment_number'
                    USING v_codes, v_partial
            LOOP
                BEGIN
                    EXECUTE format(c_copy, 'AND n.shipment_number = $3')
                        USING v_codes, v_partial, v_row.shipment_number;
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                        v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
                        v_hint = PG_EXCEPTION_HINT, v_context = PG_EXCEPTION_CONTEXT,
                        v_field = COLUMN_NAME;
                    v_field := coalesce(nullif(v_field, ''),
                                        etl.find_overlong_field('delivery.shipment', v_row.payload));
                    PERFORM etl.log_error(
                        p_object_name => 'erp.shipment_to_delivery', p_sqlstate => v_state,
                        p_message => format('shipment %s not copied: %s',
                                            v_row.shipment_number, v_message),
                        p_detail => concat_ws('; ', nullif(v_detail, ''), 'field: ' || v_field),
                        p_hint => v_hint, p_context => v_context, p_table_name => 'erp.shipment',
                        p_row_key => jsonb_build_object('shipment_number', v_row.shipment_number),
                        p_row_payload => v_row.payload);
                END;
            END LOOP;
        END;
    END IF;

    -- shipments that stopped qualifying (a cleared ship-via code too), or were deleted, are
    -- cancelled; log-and-continue like the copy
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            UPDATE delivery.shipment AS d
               SET deleted_at = clock_timestamp(), updated_at = clock_timestamp()
              FROM new_rows AS n
             WHERE d.shipment_number = n.shipment_number AND d.deleted_at IS NULL
               AND (n.ship_via = ANY (v_codes) AND (NOT v_partial OR n.is_partial)) IS NOT TRUE;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE delivery.shipment AS d
               SET deleted_at = clock_timestamp(), updated_at = clock_timestamp()
              FROM old_rows AS o
             WHERE d.shipment_number = o.shipment_number AND d.deleted_at IS NULL;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        PERFORM etl.log_error(p_object_name => 'erp.shipment_to_delivery', p_sqlstate => v_state,
                              p_message => 'cancel not recorded: ' || v_message,
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
