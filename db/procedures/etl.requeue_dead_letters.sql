-- etl.requeue_dead_letters: put dead letters of one pipeline back in the queue: the given ids,
-- or (p_ids NULL) every one matching the filter (etl.dead_letters: error text, dead since).
-- The pipeline's own requeue does the work (permit.requeue_dead, delivery.requeue_dead: fresh
-- attempts, a 'requeued' journal step), so an operator's requeue is the harness's. Journaled
-- with who and why; returns how many it requeued (letters requeued meanwhile are not counted).
CREATE OR REPLACE FUNCTION etl.requeue_dead_letters(p_pipeline text, p_ids bigint[], p_reason text,
                                                    p_error_contains text DEFAULT NULL,
                                                    p_since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_action_id bigint := etl.begin_operator_action(
        'requeue_dead_letters', p_pipeline,
        jsonb_strip_nulls(jsonb_build_object('ids', p_ids, 'error_contains', p_error_contains,
                                             'since', p_since)),
        p_reason);
    v_ids       bigint[];
    v_affected  integer;
BEGIN
    -- never NULL: an empty selection must requeue nothing, not everything
    v_ids := ARRAY(SELECT d.item_id
                     FROM etl.dead_letters(p_pipeline, p_ids, p_error_contains, p_since) AS d);
    IF p_pipeline = 'permits' THEN
        SELECT count(*) INTO v_affected FROM permit.requeue_dead(v_ids);
    ELSE
        SELECT count(*) INTO v_affected FROM delivery.requeue_dead(v_ids);
    END IF;
    UPDATE etl.operator_action SET affected = v_affected WHERE action_id = v_action_id;
    RETURN v_affected;
END
$function$;

REVOKE ALL ON FUNCTION etl.requeue_dead_letters(text, bigint[], text, text, timestamptz)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.requeue_dead_letters(text, bigint[], text, text, timestamptz)
    TO pgferry_operator, pgferry_owner;
