-- etl.run_journal: the journal entries of one run in order, keyset-paged on journal_id (pass the
-- last journal_id of a page as p_after).
CREATE OR REPLACE FUNCTION etl.run_journal(p_process_id bigint, p_after bigint DEFAULT NULL,
                                           p_limit integer DEFAULT 100)
RETURNS TABLE (journal_id bigint, pipeline text, item_id bigint, step text, at timestamptz,
               detail jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT j.journal_id, j.pipeline, j.item_id, j.step, j.at, j.detail
      FROM etl.journal AS j
     WHERE j.process_id = p_process_id AND (p_after IS NULL OR j.journal_id > p_after)
     ORDER BY j.journal_id
     LIMIT p_limit
$function$;

REVOKE ALL ON FUNCTION etl.run_journal(bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.run_journal(bigint, bigint, integer) TO pgferry_viewer, pgferry_owner;
