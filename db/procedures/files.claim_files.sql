-- files.claim_files: lease up to p_limit files to worker p_worker under the fencing token
-- p_lease_token (etl.next_lease_token) for p_lease, and return them with the step each one last
-- completed: the worker goes on after it. Pending files whose retry time has come, and files
-- whose lease expired (their worker died), oldest first; FOR UPDATE SKIP LOCKED, so concurrent
-- workers never get the same file. A taken-over lease makes the old worker's results worthless:
-- files.record_step and files.record_failure write only under the token the file carries.
-- A file whose lease expired as often as its source's max_attempts (the worker died on it each
-- time, or each took longer than its lease) is not claimed again: it is a dead letter, alerted,
-- so that one file cannot crash workers forever. While the pipeline is paused
-- (etl.pipeline.paused_at) nothing is claimed.
CREATE OR REPLACE FUNCTION files.claim_files(p_worker text, p_limit integer, p_lease interval,
                                             p_lease_token bigint)
RETURNS TABLE (file_id bigint, source text, path text, size bigint, modified_at timestamptz,
               step text, sha256 text, raw_key text, attempt integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
#variable_conflict use_column
DECLARE
    v_spent files.file;
BEGIN
    IF p_worker IS NULL OR p_limit IS NULL OR p_limit < 1 OR p_lease IS NULL
       OR p_lease <= interval '0' OR p_lease_token IS NULL THEN
        RAISE EXCEPTION 'files.claim_files: a worker, a positive limit, a positive lease and a '
                        'token are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM etl.pipeline WHERE name = 'files' AND paused_at IS NOT NULL) THEN
        RETURN;
    END IF;
    FOR v_spent IN
        SELECT f.*
          FROM files.file AS f
          JOIN files.source AS s ON s.name = f.source
         WHERE f.state = 'claimed' AND f.lease_expires_at < now() AND f.attempts >= s.max_attempts
           FOR UPDATE OF f SKIP LOCKED
    LOOP
        PERFORM files.bury(
            v_spent, 'lease_expired',
            format('its lease expired %s times: a worker died on it, or took longer than its'
                   ' lease, each time', v_spent.attempts),
            format('Its lease expired %s times (last step done: %s). Raise FILES_LEASE_SECONDS'
                   ' if files take that long.', v_spent.attempts, coalesce(v_spent.step, 'none')));
    END LOOP;
    RETURN QUERY
    WITH candidate AS (
        SELECT f.file_id
          FROM files.file AS f
         WHERE (f.state = 'pending' AND f.next_attempt_at <= now())
            OR (f.state = 'claimed' AND f.lease_expires_at < now())
         ORDER BY f.next_attempt_at, f.file_id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    )
    UPDATE files.file AS f
       SET state = 'claimed', lease_worker = p_worker, lease_token = p_lease_token,
           lease_expires_at = now() + p_lease, attempts = f.attempts + 1
      FROM candidate AS c
     WHERE f.file_id = c.file_id
    RETURNING f.file_id, f.source, f.path, f.size, f.modified_at, f.step, f.sha256, f.raw_key,
              f.attempts;
END
$function$;

REVOKE ALL ON FUNCTION files.claim_files(text, integer, interval, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.claim_files(text, integer, interval, bigint) TO pgferry_worker;
