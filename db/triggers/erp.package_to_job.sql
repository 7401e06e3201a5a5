-- erp.package_to_job: a change to the ERP's packages changes the items of their shipments'
-- jobs: re-map those shipments (only jobs whose items really changed become pending).
CREATE OR REPLACE FUNCTION erp.package_to_job()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM delivery.upsert_jobs(ARRAY(SELECT DISTINCT n.shipment_number FROM new_rows AS n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM delivery.upsert_jobs(ARRAY(
            SELECT n.shipment_number FROM new_rows AS n
             UNION SELECT o.shipment_number FROM old_rows AS o));
    ELSE
        PERFORM delivery.upsert_jobs(ARRAY(SELECT DISTINCT o.shipment_number FROM old_rows AS o));
    END IF;
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
