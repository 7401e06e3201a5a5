-- etl.extend_leases: the heartbeat of a worker's claims. Every row of p_pipeline held under one
-- of p_tokens whose lease has not expired gets p_lease more; a lease that already expired is
-- never revived (another worker may have taken the rows, or may be about to).
--
-- Returns, per token that still carries rows, how many of them still hold a live lease and how
-- long the shortest lease of them all has left (negative once one expired): the worker's
-- deadline for that claim is the moment it sent this call plus that interval (conservative: the
-- database read its clock later than the worker sent), and the claim is lost as soon as fewer
-- rows are held than were claimed (one was taken over, or expired). A token not returned holds
-- nothing any more: the worker must send nothing more under it.
--
-- Rows locked by another transaction (a sync bumping a job's version, the worker's own
-- record) are skipped rather than waited for, so a heartbeat never deadlocks with them; they
-- keep the lease they had and count in the shortest lease left.
CREATE OR REPLACE FUNCTION etl.extend_leases(p_pipeline text, p_tokens bigint[], p_lease interval)
RETURNS TABLE (lease_token bigint, held bigint, remaining interval)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
BEGIN
    IF p_lease IS NULL OR p_lease <= interval '0' THEN
        RAISE EXCEPTION 'etl.extend_leases: the lease must be a positive interval, not %', p_lease
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_pipeline = 'shipments' THEN
        UPDATE delivery.job AS j
           SET lease_expires_at = now() + p_lease
         WHERE j.job_id IN (SELECT h.job_id FROM delivery.job AS h
                             WHERE h.lease_token = ANY (p_tokens) AND h.lease_expires_at > now()
                             ORDER BY h.job_id
                               FOR UPDATE SKIP LOCKED);
        RETURN QUERY
            SELECT j.lease_token, count(*) FILTER (WHERE j.lease_expires_at > now()),
                   min(j.lease_expires_at) - now()
              FROM delivery.job AS j
             WHERE j.lease_token = ANY (p_tokens) AND j.lease_expires_at IS NOT NULL
             GROUP BY j.lease_token;
    ELSIF p_pipeline = 'permits' THEN
        UPDATE tps.staged_permit AS s
           SET lease_expires_at = now() + p_lease
         WHERE s.staged_permit_id IN (
                   SELECT h.staged_permit_id FROM tps.staged_permit AS h
                    WHERE h.state = 'claimed' AND h.lease_token = ANY (p_tokens)
                      AND h.lease_expires_at > now()
                    ORDER BY h.staged_permit_id
                      FOR UPDATE SKIP LOCKED);
        RETURN QUERY
            SELECT s.lease_token, count(*) FILTER (WHERE s.lease_expires_at > now()),
                   min(s.lease_expires_at) - now()
              FROM tps.staged_permit AS s
             WHERE s.state = 'claimed' AND s.lease_token = ANY (p_tokens)
             GROUP BY s.lease_token;
    ELSIF p_pipeline = 'files' THEN
        UPDATE files.file AS f
           SET lease_expires_at = now() + p_lease
         WHERE f.file_id IN (
                   SELECT h.file_id FROM files.file AS h
                    WHERE h.state = 'claimed' AND h.lease_token = ANY (p_tokens)
                      AND h.lease_expires_at > now()
                    ORDER BY h.file_id
                      FOR UPDATE SKIP LOCKED);
        RETURN QUERY
            SELECT f.lease_token, count(*) FILTER (WHERE f.lease_expires_at > now()),
                   min(f.lease_expires_at) - now()
              FROM files.file AS f
             WHERE f.state = 'claimed' AND f.lease_token = ANY (p_tokens)
             GROUP BY f.lease_token;
    ELSE
        RAISE EXCEPTION 'etl.extend_leases: no leases for pipeline %', p_pipeline
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Leases exist for the pipelines permits, shipments and files.';
    END IF;
END
$function$;

REVOKE ALL ON FUNCTION etl.extend_leases(text, bigint[], interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.extend_leases(text, bigint[], interval) TO pgferry_worker;
