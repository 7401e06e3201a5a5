-- etl.take_lead: worker p_holder asks to be the one that does duty p_role ('housekeeping') for
-- the next p_ttl. It is when no one else is, or the one that was let its lease expire (died,
-- hung, lost its link): a lease row with a TTL, so that of ten workers one does the duty, and
-- another takes over within p_ttl of its end. Returns the leader's fencing token when
-- p_holder leads now (the same token while it renews in time, a new one, always larger, when
-- it takes over), NULL when another does. Transaction-level only: works behind PgBouncer in
-- transaction pooling mode.
CREATE OR REPLACE FUNCTION etl.take_lead(p_role text, p_holder text, p_ttl interval)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_token bigint;
BEGIN
    IF p_role IS NULL OR p_holder IS NULL OR p_ttl IS NULL OR p_ttl <= interval '0' THEN
        RAISE EXCEPTION 'etl.take_lead: a role, a holder and a positive ttl are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO etl.leader AS l (role, holder, token, since, expires_at)
    VALUES (p_role, p_holder, nextval('etl.lease_token'), clock_timestamp(),
            clock_timestamp() + p_ttl)
    ON CONFLICT (role) DO UPDATE
       SET holder = excluded.holder,
           -- a renewal in time keeps its token; a takeover (or a lapsed lease taken back)
           -- gets the new one
           token = CASE WHEN l.holder = excluded.holder AND l.expires_at >= clock_timestamp()
                        THEN l.token ELSE excluded.token END,
           since = CASE WHEN l.holder = excluded.holder AND l.expires_at >= clock_timestamp()
                        THEN l.since ELSE excluded.since END,
           expires_at = excluded.expires_at
     WHERE l.holder = excluded.holder OR l.expires_at < clock_timestamp()
    RETURNING l.token INTO v_token;
    RETURN v_token;
END
$function$;

REVOKE ALL ON FUNCTION etl.take_lead(text, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.take_lead(text, text, interval) TO pgferry_worker;
