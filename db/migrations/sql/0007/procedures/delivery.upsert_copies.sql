-- delivery.upsert_copies: the change-only upsert of the delivery copies (delivery.shipment) of the
-- given ERP shipments that qualify, as the ERP holds them now: one INSERT ... ON CONFLICT that
-- writes only copies whose values really changed (IS DISTINCT FROM). Returns the copies written.
--
-- Log-and-continue: when the statement fails, the set is split in halves and each half tried
-- again, down to single shipments; a bad one (NULL address, an over-long field, ...) is written
-- to etl.error_log naming the shipment and the field, and waits for the ERP to correct it. One
-- bad row in 50,000 costs about 2 x 16 smaller statements, not a statement for every good row.
CREATE OR REPLACE FUNCTION delivery.upsert_copies(p_shipment_numbers bigint[])
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    -- $1 codes, $2 require_partial, $3 the shipment numbers. Run with EXECUTE so that it is
    -- planned for the array it gets: its size decides how the ERP rows are joined.
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
         WHERE delivery.qualifies(n.ship_via, n.is_partial, $1, $2)
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
    v_count     integer := coalesce(cardinality(p_shipment_numbers), 0);
    v_written   bigint;
    v_number    bigint;
    v_payload   jsonb;
    v_field     text;
    v_state     text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    IF v_count = 0 THEN
        RETURN 0;
    END IF;
    SELECT ship_via_codes, require_partial INTO v_codes, v_partial FROM delivery.settings;
    BEGIN
        EXECUTE c_copy USING v_codes, v_partial, p_shipment_numbers;
        GET DIAGNOSTICS v_written = ROW_COUNT;
        RETURN v_written;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT, v_field = COLUMN_NAME;
    END;
    IF v_count > 1 THEN
        RETURN delivery.upsert_copies(p_shipment_numbers[1:v_count / 2])
             + delivery.upsert_copies(p_shipment_numbers[v_count / 2 + 1:]);
    END IF;
    v_number := p_shipment_numbers[1];
    SELECT to_jsonb(e) INTO v_payload FROM erp.shipment AS e WHERE e.shipment_number = v_number;
    v_field := coalesce(nullif(v_field, ''),
                        etl.find_overlong_field('delivery.shipment', v_payload));
    PERFORM etl.log_error(
        p_object_name => 'delivery.copy_shipments', p_sqlstate => v_state,
        p_message => format('shipment %s not copied: %s', v_number, v_message),
        p_detail => concat_ws('; ', nullif(v_detail, ''), 'field: ' || v_field),
        p_hint => v_hint, p_context => v_context, p_table_name => 'erp.shipment',
        p_row_key => jsonb_build_object('shipment_number', v_number),
        p_row_payload => v_payload);
    RETURN 0;
END
$function$;

REVOKE ALL ON FUNCTION delivery.upsert_copies(bigint[]) FROM PUBLIC;
