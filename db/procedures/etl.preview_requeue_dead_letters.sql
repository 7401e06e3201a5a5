-- etl.preview_requeue_dead_letters: what etl.requeue_dead_letters with the same arguments would
-- requeue now: how many, and the first 10 with their last error. Selected by etl.dead_letters,
-- as the action selects them; the action re-selects and reports what it actually requeued.
CREATE OR REPLACE FUNCTION etl.preview_requeue_dead_letters(p_pipeline text,
                                                            p_ids bigint[] DEFAULT NULL,
                                                            p_error_contains text DEFAULT NULL,
                                                            p_since timestamptz DEFAULT NULL)
RETURNS TABLE (would_touch bigint, sample jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT count(*),
           coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.item_id) FILTER (WHERE d.n <= 10), '[]')
      FROM (SELECT l.*, row_number() OVER (ORDER BY l.item_id) AS n
              FROM etl.dead_letters(p_pipeline, p_ids, p_error_contains, p_since) AS l) AS d
$function$;

REVOKE ALL ON FUNCTION etl.preview_requeue_dead_letters(text, bigint[], text, timestamptz)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.preview_requeue_dead_letters(text, bigint[], text, timestamptz)
    TO pgferry_viewer, pgferry_owner;
