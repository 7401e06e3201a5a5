-- delivery.shipment_to_job: the second trigger of the chain (the seed's MapToDtrack_Shipping):
-- every statement that changes the delivery copy maps the changed shipments to DeTrack-ready
-- jobs through delivery.upsert_jobs (set-based, change-only, log-and-continue).
CREATE OR REPLACE FUNCTION delivery.shipment_to_job()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM delivery.upsert_jobs(ARRAY(SELECT n.shipment_number FROM changed_rows AS n));
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
