-- delivery.upsert_jobs: map delivery-copy shipments (by shipment number) to DeTrack-ready jobs
-- in delivery.job, set-based. Only real changes count: a job whose payload, desired state or
-- vehicle did not change is not touched. A changed job gets a new version and is pending, so
-- the dispatcher sends a create, an update or (for a shipment that stopped qualifying or was
-- deleted) a delete. Items come from the ERP's packages. Sends NOTIFY delivery_job_pending
-- when a job became pending.
--
-- Log-and-continue: called from triggers on tables the ERP writes. If the set-based statement
-- fails, jobs are mapped one shipment at a time and each failing one is written to
-- etl.error_log; the others still become jobs.
CREATE OR REPLACE FUNCTION delivery.upsert_jobs(p_shipment_numbers bigint[])
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    -- %1$s: extra filter on the shipment number ($1: all of them, $3: one of them)
    c_upsert constant text := $sql$
        WITH wanted AS (SELECT DISTINCT k FROM unnest($1::bigint[]) AS k %1$s),
        items AS (
            SELECT p.shipment_number,
                   jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                       'sku', p.sku, 'description', p.description, 'quantity', p.quantity))
                       ORDER BY p.package_id) AS items
              FROM erp.package AS p JOIN wanted AS w ON w.k = p.shipment_number
             GROUP BY p.shipment_number
        ), mapped AS (
            SELECT s.shipment_number, s.job_number AS do_number,
                   s.scheduled_ship_date AS delivery_date,
                   s.ship_postal_code AS postal_code, s.ship_zone AS zone,
                   jsonb_strip_nulls(jsonb_build_object(
                       'do_number', s.job_number,
                       'date', to_char(s.scheduled_ship_date, 'YYYY-MM-DD'),
                       'type', 'Delivery',
                       'address', concat_ws(', ', s.ship_address_1, s.ship_address_2,
                                            s.ship_address_3, s.ship_city, s.ship_country),
                       'address_1', s.ship_address_1,
                       'address_2', s.ship_address_2,
                       'address_3', s.ship_address_3,
                       'postal_code', s.ship_postal_code,
                       'city', s.ship_city,
                       'country', s.ship_country,
                       'zone', s.ship_zone,
                       'company_name', s.ship_name,
                       'deliver_to_collect_from', coalesce(s.ship_attention, s.ship_name),
                       'phone_number', s.ship_phone,
                       'notify_email', s.ship_email,
                       'instructions', s.ship_instructions,
                       'tracking_number', s.shipment_number::text,
                       'items', i.items)) AS payload,
                   v.vehicle AS rule_vehicle,
                   CASE WHEN s.deleted_at IS NULL THEN 'present' ELSE 'absent' END AS desired
              FROM delivery.shipment AS s
              JOIN wanted AS w ON w.k = s.shipment_number
              LEFT JOIN items AS i ON i.shipment_number = s.shipment_number
              -- $2: whether any rule exists; false skips the per-row rule lookup entirely
              LEFT JOIN LATERAL (SELECT r.vehicle
                                   FROM delivery.vehicle_for(s.ship_postal_code, s.ship_zone) AS r
                                  WHERE $2) AS v ON true
        ), upserted AS (
            INSERT INTO delivery.job AS j
                   (shipment_number, do_number, delivery_date, postal_code, zone, payload,
                    assign_to, desired, sync_state)
            SELECT m.shipment_number, m.do_number, m.delivery_date, m.postal_code, m.zone,
                   m.payload, m.rule_vehicle, m.desired,
                   CASE m.desired WHEN 'present' THEN 'pending' ELSE 'synced' END
              FROM mapped AS m
            ON CONFLICT (shipment_number) DO UPDATE
               SET do_number = excluded.do_number,
                   delivery_date = excluded.delivery_date,
                   postal_code = excluded.postal_code,
                   zone = excluded.zone,
                   payload = excluded.payload,
                   assign_to = coalesce(excluded.assign_to, j.assign_to),
                   desired = excluded.desired,
                   version = j.version + 1,
                   sync_state = CASE WHEN excluded.desired = 'absent' AND j.remote <> 'created'
                                     THEN 'synced' ELSE 'pending' END,
                   attempts = 0,
                   next_attempt_at = now(),
                   updated_at = clock_timestamp()
             WHERE ROW(j.do_number, j.delivery_date, j.payload, j.desired, j.assign_to)
                   IS DISTINCT FROM
                   ROW(excluded.do_number, excluded.delivery_date, excluded.payload,
                       excluded.desired, coalesce(excluded.assign_to, j.assign_to))
            RETURNING j.sync_state
        )
        SELECT count(*) FILTER (WHERE sync_state = 'pending') FROM upserted
    $sql$;
    v_has_rules boolean := EXISTS (SELECT FROM delivery.assignment_rule);
    v_pending   bigint := 0;
    v_count     bigint;
    v_number    bigint;
    v_state     text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    IF coalesce(cardinality(p_shipment_numbers), 0) = 0 THEN
        RETURN 0;
    END IF;
    BEGIN
        EXECUTE format(c_upsert, '') INTO v_pending USING p_shipment_numbers, v_has_rules;
    EXCEPTION WHEN OTHERS THEN
        v_pending := 0;
        FOREACH v_number IN ARRAY p_shipment_numbers LOOP
            BEGIN
                EXECUTE format(c_upsert, 'WHERE k = $3') INTO v_count
                    USING p_shipment_numbers, v_has_rules, v_number;
                v_pending := v_pending + v_count;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
                    v_context = PG_EXCEPTION_CONTEXT;
                PERFORM etl.log_error(
                    p_object_name => 'delivery.upsert_jobs', p_sqlstate => v_state,
                    p_message => v_message, p_detail => v_detail, p_hint => v_hint,
                    p_context => v_context, p_table_name => 'delivery.job',
                    p_row_key => jsonb_build_object('shipment_number', v_number));
            END;
        END LOOP;
    END;
    IF v_pending > 0 THEN
        PERFORM pg_notify('delivery_job_pending', v_pending::text);
    END IF;
    RETURN v_pending;
END
$function$;

REVOKE ALL ON FUNCTION delivery.upsert_jobs(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.upsert_jobs(bigint[]) TO pgferry_worker, pgferry_owner;
