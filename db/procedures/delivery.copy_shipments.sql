-- delivery.copy_shipments: bring the delivery copy (delivery.shipment) of the given ERP shipments
-- up to date, as the ERP holds them now: qualifying shipments are inserted or updated, only when
-- a copied value really changed (IS DISTINCT FROM); a copy whose shipment stopped qualifying, or
-- was deleted, is soft-deleted (deleted_at), which its job turns into a cancel. Each changed copy
-- fires delivery.shipment_to_job, which maps it to a DeTrack job. Returns the copies written.
--
-- Called by delivery.sync_erp_changes with the shipments ERP statements touched. One
-- INSERT ... ON CONFLICT for the whole set; if it fails, the shipments are copied one by one and
-- each bad one (NULL address, an over-long field, ...) is written to etl.error_log naming the
-- shipment and the field; the rest go through, and the bad one waits for the ERP to fix it.
CREATE OR REPLACE FUNCTION delivery.copy_shipments(p_shipment_numbers bigint[])
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    -- $1 codes, $2 require_partial, $3 the shipment numbers; %1$s an extra filter on n
    -- ($4: one shipment number, in the one-by-one fallback)
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
          FROM erp.shipment AS n
          JOIN unnest($3::bigint[]) AS k (shipment_number) USING (shipment_number)
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
    v_written   bigint := 0;
    v_count     bigint;
    v_row       record;
    v_field     text;
    v_state     text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    IF coalesce(cardinality(p_shipment_numbers), 0) = 0 THEN
        RETURN 0;
    END IF;
    SELECT ship_via_codes, require_partial INTO v_codes, v_partial FROM delivery.settings;
    BEGIN
        EXECUTE format(c_copy, '') USING v_codes, v_partial, p_shipment_numbers;
        GET DIAGNOSTICS v_written = ROW_COUNT;
    EXCEPTION WHEN OTHERS THEN
        FOR v_row IN
            SELECT n.shipment_number, to_jsonb(n) AS payload
              FROM erp.shipment AS n
             WHERE n.shipment_number = ANY (p_shipment_numbers)
               AND n.ship_via = ANY (v_codes) AND (NOT v_partial OR n.is_partial)
             ORDER BY n.shipment_number
        LOOP
            BEGIN
                EXECUTE format(c_copy, 'AND n.shipment_number = $4')
                    USING v_codes, v_partial, p_shipment_numbers, v_row.shipment_number;
                GET DIAGNOSTICS v_count = ROW_COUNT;
                v_written := v_written + v_count;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                    v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
                    v_hint = PG_EXCEPTION_HINT, v_context = PG_EXCEPTION_CONTEXT,
                    v_field = COLUMN_NAME;
                v_field := coalesce(nullif(v_field, ''),
                                    etl.find_overlong_field('delivery.shipment', v_row.payload));
                PERFORM etl.log_error(
                    p_object_name => 'delivery.copy_shipments', p_sqlstate => v_state,
                    p_message => format('shipment %s not copied: %s',
                                        v_row.shipment_number, v_message),
                    p_detail => concat_ws('; ', nullif(v_detail, ''), 'field: ' || v_field),
                    p_hint => v_hint, p_context => v_context, p_table_name => 'erp.shipment',
                    p_row_key => jsonb_build_object('shipment_number', v_row.shipment_number),
                    p_row_payload => v_row.payload);
            END;
        END LOOP;
    END;

    -- copies whose shipment stopped qualifying (a cleared ship-via code too) or is gone
    UPDATE delivery.shipment AS d
       SET deleted_at = clock_timestamp(), updated_at = clock_timestamp()
     WHERE d.shipment_number = ANY (p_shipment_numbers) AND d.deleted_at IS NULL
       AND NOT EXISTS (SELECT FROM erp.shipment AS e
                        WHERE e.shipment_number = d.shipment_number
                          AND e.ship_via = ANY (v_codes) AND (NOT v_partial OR e.is_partial));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_written + v_count;
END
$function$;

REVOKE ALL ON FUNCTION delivery.copy_shipments(bigint[]) FROM PUBLIC;
