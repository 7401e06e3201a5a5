-- delivery.upsert_jobs: map the given delivery-copy shipments to jobs (delivery.job_upsert_sql)
-- and NOTIFY delivery_job_pending when a job became pending (etl.notify: never fails the
-- COMMIT). Used when packages change, and by the trigger when its set-based statement failed.
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
    -- $2: the shipment numbers; $3: one of them, in the one-by-one fallback
    c_keyed constant text := '(SELECT s.* FROM delivery.shipment AS s'
                             ' WHERE s.shipment_number IN (SELECT unnest($2::bigint[])))';
    c_one   constant text := '(SELECT s.* FROM delivery.shipment AS s'
                             ' WHERE s.shipment_number = $3)';
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
        EXECUTE delivery.job_upsert_sql(c_keyed) INTO v_pending
            USING v_has_rules, p_shipment_numbers;
    EXCEPTION WHEN OTHERS THEN
        v_pending := 0;
        FOREACH v_number IN ARRAY p_shipment_numbers LOOP
            BEGIN
                EXECUTE delivery.job_upsert_sql(c_one) INTO v_count
                    USING v_has_rules, p_shipment_numbers, v_number;
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
        PERFORM etl.notify('delivery_job_pending', v_pending::text);
    END IF;
    RETURN v_pending;
END
$function$;

-- Internal to the sync and the trigger (both run as pgferry_owner): the worker, which 0004 to
-- 0008 let call it, maps shipments only through delivery.sync_erp_changes.
REVOKE ALL ON FUNCTION delivery.upsert_jobs(bigint[]) FROM PUBLIC, pgferry_worker;
GRANT EXECUTE ON FUNCTION delivery.upsert_jobs(bigint[]) TO pgferry_owner;
