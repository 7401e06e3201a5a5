-- delivery.shipment_to_job: the second trigger of the chain (the seed's MapToDtrack_Shipping):
-- every statement that changes the delivery copy maps the changed shipments to DeTrack-ready
-- jobs in one statement (delivery.job_upsert_sql), reading the transition table directly, and
-- wakes the dispatcher (etl.notify: a full notification queue never fails the COMMIT).
-- Log-and-continue: if that statement fails, delivery.upsert_jobs maps the same shipments one
-- by one and logs each that fails.
CREATE OR REPLACE FUNCTION delivery.shipment_to_job()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_pending bigint;
BEGIN
    -- statement triggers fire for statements that changed nothing (an ON CONFLICT that updated
    -- no row): do nothing then, which also ends the chain job -> erp -> copy -> job at once
    IF NOT EXISTS (SELECT FROM changed_rows) THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE delivery.job_upsert_sql('changed_rows') INTO v_pending
            USING EXISTS (SELECT FROM delivery.assignment_rule);
        IF v_pending > 0 THEN
            PERFORM etl.notify('delivery_job_pending', v_pending::text);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        PERFORM delivery.upsert_jobs(ARRAY(SELECT n.shipment_number FROM changed_rows AS n));
    END;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION delivery.shipment_to_job() FROM PUBLIC;

CREATE OR REPLACE TRIGGER shipment_to_job_insert
    AFTER INSERT ON delivery.shipment
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery.shipment_to_job();
CREATE OR REPLACE TRIGGER shipment_to_job_update
    AFTER UPDATE ON delivery.shipment
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery.shipment_to_job();
