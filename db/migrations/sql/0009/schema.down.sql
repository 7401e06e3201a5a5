-- pgferry 0009 down (runs after the routines of 0008 are restored, etl.redact_secrets(jsonb)
-- among them).

DROP FUNCTION etl.redact_secrets(jsonb, integer);
-- grants the files of 0009 added and the 0008 copies, which only revoke from PUBLIC, keep
REVOKE EXECUTE ON FUNCTION
    delivery.qualifies(text, boolean, text[], boolean),
    delivery.job_upsert_sql(text),
    delivery.record_erp_change(text, bigint[])
    FROM pgferry_owner;

REVOKE SELECT ON public.alembic_version FROM pgferry_worker, pgferry_owner;

-- == the worker reads whole tables again ==========================================================
-- Revoked from both roles and granted again in the order 0003-0008 granted them, so that the
-- privileges read back exactly as before (their order shows in pg_dump).
REVOKE ALL ON tps.staged_permit, permit.document, permit.permit, permit.object_tombstone,
              erp.shipment, erp.package, delivery.settings, delivery.assignment_rule,
              delivery.shipment, delivery.job, delivery.erp_change, delivery.dtrack_shipping
    FROM pgferry_worker, pgferry_owner;
GRANT SELECT ON tps.staged_permit, permit.document, permit.permit, permit.object_tombstone,
                erp.shipment, erp.package, delivery.settings, delivery.assignment_rule,
                delivery.shipment, delivery.job, delivery.erp_change, delivery.dtrack_shipping
    TO pgferry_worker;
GRANT ALL ON tps.staged_permit, permit.document, permit.permit, permit.object_tombstone,
             erp.shipment, erp.package, delivery.settings, delivery.assignment_rule,
             delivery.shipment, delivery.job, delivery.erp_change, delivery.dtrack_shipping
    TO pgferry_owner;

-- == routines go back to the schema owner =========================================================
-- Changing the owner merges the new owner's explicit grant into its owner rights: routines whose
-- 0008 file granted EXECUTE to pgferry_owner get that grant back.
DO $owner$
DECLARE
    v_routine record;
BEGIN
    FOR v_routine IN
        SELECT p.oid::regprocedure AS routine, pg_get_userbyid(n.nspowner) AS schema_owner
          FROM pg_proc AS p
          JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('etl', 'tps', 'permit', 'erp', 'delivery')
           AND p.proowner = 'pgferry_owner'::regrole
         ORDER BY 1
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', v_routine.routine, v_routine.schema_owner);
    END LOOP;
END
$owner$;
GRANT EXECUTE ON FUNCTION
    etl.start_process(text),
    etl.get_time_range(bigint),
    etl.end_process(bigint, text, bigint, text),
    etl.log_error(text, text, text, text, text, text, text, jsonb, jsonb, bigint),
    etl.queue_alert(text, text, text, text, bigint),
    etl.verify_journal(),
    delivery.sync_erp_changes(integer),
    delivery.upsert_jobs(bigint[])
    TO pgferry_owner;

DO $temporary$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM pgferry_owner', current_database());
END
$temporary$;
