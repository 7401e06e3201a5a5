-- pgferry 0009: least privilege that holds. SECURITY DEFINER routines run as the NOLOGIN role
-- pgferry_owner instead of whoever ran the migrations (usually a superuser), the worker reads only
-- the columns it uses outside etl, and etl.redact_secrets is depth-bounded and internal.

-- == the owner role ============================================================================
-- A SECURITY DEFINER routine runs with its owner's rights: the owner must be a role nobody logs in
-- as and whose rights are bounded. 0001 creates pgferry_owner NOLOGIN; a role of that name made
-- by hand with more is refused rather than silently changed (roles are cluster-wide).
DO $owner_role$
DECLARE
    v_role pg_roles;
BEGIN
    SELECT * INTO v_role FROM pg_roles WHERE rolname = 'pgferry_owner';
    IF v_role.rolcanlogin OR v_role.rolsuper OR v_role.rolbypassrls THEN
        RAISE EXCEPTION 'role pgferry_owner can log in, is a superuser or bypasses row security'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The SECURITY DEFINER routines of pgferry run as pgferry_owner: '
                         'ALTER ROLE pgferry_owner NOLOGIN NOSUPERUSER NOBYPASSRLS, then upgrade again.';
    END IF;
END
$owner_role$;

-- What the SECURITY DEFINER routines need beyond the table privileges pgferry_owner holds since
-- the revision that made each table (ALL on every table of etl, tps, permit, erp and delivery,
-- SELECT on the view etl.backlog, ALL on the sequence etl.lease_token, USAGE on the schemas):
-- permit.claim_batch and permit.move_batch create temporary tables. PUBLIC usually has TEMPORARY,
-- but a hardened database may have revoked it.
DO $temporary$
BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO pgferry_owner', current_database());
END
$temporary$;
-- The routines a SECURITY DEFINER routine calls that it does not own (SECURITY INVOKER helpers)
-- grant EXECUTE to pgferry_owner in their own files (delivery.qualifies, delivery.job_upsert_sql,
-- delivery.record_erp_change were callable by their owner only).

-- Every SECURITY DEFINER routine of ours now belongs to pgferry_owner. The deploy step repeats
-- this after every revision from 0009 on (harness/deploy/versions.py), so a routine a later
-- revision creates ends up owned by pgferry_owner too. SECURITY INVOKER routines stay with the
-- schema owner: owning one that others (a superuser too) run with their own rights would let a
-- member of pgferry_owner run code as them.
DO $owner$
DECLARE
    v_routine regprocedure;
BEGIN
    FOR v_routine IN
        SELECT p.oid::regprocedure
          FROM pg_proc AS p
          JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('etl', 'tps', 'permit', 'erp', 'delivery')
           AND p.prosecdef AND p.proowner <> 'pgferry_owner'::regrole
         ORDER BY 1
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO pgferry_owner', v_routine);
    END LOOP;
END
$owner$;

-- == the worker reads only the columns it uses ===================================================
-- Outside etl the harness reads a few state columns (permit and shipment backlog, dead letters,
-- statuses to poll, reconcile); everything else it reaches only through SECURITY DEFINER
-- routines, which need no grant of the worker's. Names, addresses, phone numbers, e-mail, the
-- DeTrack payload and answers, plates, VINs, client hashes and PDFs are refused. A table-level
-- REVOKE also removes column grants.
REVOKE SELECT ON ALL TABLES IN SCHEMA tps, permit, erp, delivery FROM pgferry_worker;
GRANT SELECT (staged_permit_id, process_id, permit_number, permit_generation, state, attempts,
              next_attempt_at, lease_expires_at, staged_at, dead_at, last_error)
    ON tps.staged_permit TO pgferry_worker;
GRANT SELECT (bucket, object_key, size_bytes) ON permit.document TO pgferry_worker;
GRANT SELECT (job_id, shipment_number, remote, remote_do_number, desired, sync_state,
              delivery_status, status_checked_at, next_attempt_at, last_status, last_error)
    ON delivery.job TO pgferry_worker;
GRANT SELECT (shipment_count, taken) ON delivery.erp_change TO pgferry_worker;

-- `harness` refuses a database that is not at its revision: the worker (and operators) read the
-- revision Alembic keeps. Alembic creates the table before the first revision runs.
GRANT SELECT ON public.alembic_version TO pgferry_worker, pgferry_owner;

-- == etl.redact_secrets gains a depth bound ======================================================
-- The new signature (jsonb, integer) comes from its file; drop the old one so only one remains.
-- etl.log_error calls it by name at run time, so nothing depends on the old signature.
DROP FUNCTION etl.redact_secrets(jsonb);
