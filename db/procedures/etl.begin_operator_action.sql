-- etl.begin_operator_action: journal an operator action before it acts, in its transaction, and
-- return the row's id (the action stamps how many items it touched at the end). Written first so
-- that an action without a reason (the table's CHECK operator_action_needs_a_reason) or for an
-- unknown pipeline fails before it changes anything. The actor is session_user: the login, not
-- pgferry_owner that the calling SECURITY DEFINER routine runs as.
-- Internal: only the action routines (owned by pgferry_owner) call it.
CREATE OR REPLACE FUNCTION etl.begin_operator_action(p_action text, p_pipeline text,
                                                     p_target jsonb, p_reason text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_action_id bigint;
BEGIN
    IF p_pipeline IS NOT NULL AND NOT EXISTS (SELECT FROM etl.pipeline WHERE name = p_pipeline) THEN
        RAISE EXCEPTION '%: unknown pipeline "%"', p_action, p_pipeline
            USING ERRCODE = 'no_data_found',
                  HINT = 'The registered pipelines are the rows of etl.pipeline.';
    END IF;
    INSERT INTO etl.operator_action (action, pipeline, target, reason)
    VALUES (p_action, p_pipeline, coalesce(p_target, '{}'), p_reason)
    RETURNING action_id INTO v_action_id;
    RETURN v_action_id;
END
$function$;

REVOKE ALL ON FUNCTION etl.begin_operator_action(text, text, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.begin_operator_action(text, text, jsonb, text) TO pgferry_owner;
