-- etl.resign_lead: worker p_holder stops doing duty p_role (a worker shutting down cleanly): the
-- next worker that asks (etl.take_lead) leads at once instead of after the lease's TTL. A
-- holder that is not the leader any more changes nothing. Returns whether it was the leader.
CREATE OR REPLACE FUNCTION etl.resign_lead(p_role text, p_holder text)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH resigned AS (
        DELETE FROM etl.leader WHERE role = p_role AND holder = p_holder RETURNING 1
    )
    SELECT EXISTS (SELECT FROM resigned)
$function$;

REVOKE ALL ON FUNCTION etl.resign_lead(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.resign_lead(text, text) TO pgferry_worker;
