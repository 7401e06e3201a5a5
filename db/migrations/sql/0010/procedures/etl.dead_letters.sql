-- etl.dead_letters: the dead letters of one pipeline with their last error, oldest id first,
-- filtered and keyset-paged (ids after p_after, at most p_limit; NULL: all). Permits: staged rows
-- in state 'dead'; shipments: jobs that are 'failed' (DeTrack refused them) or 'dead' (out of
-- attempts), the rows `harness status` counts. The console lists them with it, and the preview
-- and the action of etl.requeue_dead_letters select through it, so all three agree.
-- p_error_contains matches the last error case-insensitively; p_since keeps letters dead since.
CREATE OR REPLACE FUNCTION etl.dead_letters(p_pipeline text, p_ids bigint[] DEFAULT NULL,
                                            p_error_contains text DEFAULT NULL,
                                            p_since timestamptz DEFAULT NULL,
                                            p_after bigint DEFAULT NULL,
                                            p_limit integer DEFAULT NULL)
RETURNS TABLE (item_id bigint, item_key text, state text, attempts integer, last_error text,
               dead_at timestamptz, process_id bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- a plan for the filters given: `p_x IS NULL OR ...` folds away and LIMIT is known, so a
-- page reads an index instead of the whole table (a generic plan cannot)
SET plan_cache_mode = force_custom_plan
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT d.*
          FROM (SELECT s.staged_permit_id, format('permit %s generation %s', s.permit_number,
                                                   s.permit_generation),
                       s.state, s.attempts, s.last_error, s.dead_at, s.process_id
                  FROM tps.staged_permit AS s
                 WHERE p_pipeline = 'permits' AND s.state = 'dead'
                UNION ALL
                SELECT j.job_id, format('shipment %s DO %s', j.shipment_number, j.do_number),
                       j.sync_state, j.attempts, j.last_error, j.updated_at, NULL::bigint
                  FROM delivery.job AS j
                 WHERE p_pipeline = 'shipments' AND j.sync_state IN ('failed', 'dead')) AS d
         WHERE (p_ids IS NULL OR d.staged_permit_id = ANY (p_ids))
           AND (p_error_contains IS NULL
                OR strpos(lower(d.last_error), lower(p_error_contains)) > 0)
           AND (p_since IS NULL OR d.dead_at >= p_since)
           AND (p_after IS NULL OR d.staged_permit_id > p_after)
         ORDER BY d.staged_permit_id
         LIMIT p_limit;
END
$function$;

REVOKE ALL ON FUNCTION etl.dead_letters(text, bigint[], text, timestamptz, bigint, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.dead_letters(text, bigint[], text, timestamptz, bigint, integer)
    TO pgferry_viewer, pgferry_owner;
