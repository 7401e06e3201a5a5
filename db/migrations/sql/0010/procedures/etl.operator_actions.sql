-- etl.operator_actions: the operators' journal, newest first, keyset-paged on action_id.
CREATE OR REPLACE FUNCTION etl.operator_actions(p_after bigint DEFAULT NULL,
                                                p_limit integer DEFAULT 50)
RETURNS TABLE (action_id bigint, at timestamptz, actor text, action text, pipeline text,
               target jsonb, reason text, affected integer)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT a.action_id, a.at, a.actor, a.action, a.pipeline, a.target, a.reason, a.affected
      FROM etl.operator_action AS a
     WHERE p_after IS NULL OR a.action_id < p_after
     ORDER BY a.action_id DESC
     LIMIT p_limit
$function$;

REVOKE ALL ON FUNCTION etl.operator_actions(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.operator_actions(bigint, integer) TO pgferry_viewer, pgferry_owner;
