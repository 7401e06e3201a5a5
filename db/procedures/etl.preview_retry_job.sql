-- etl.preview_retry_job: whether etl.retry_job would retry this item now (0 or 1) and the item
-- with its last error.
CREATE OR REPLACE FUNCTION etl.preview_retry_job(p_pipeline text, p_item_id bigint)
RETURNS TABLE (would_touch bigint, sample jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT count(*), coalesce(jsonb_agg(to_jsonb(i)), '[]')
      FROM etl.item_to_retry(p_pipeline, p_item_id) AS i
$function$;

REVOKE ALL ON FUNCTION etl.preview_retry_job(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.preview_retry_job(text, bigint) TO pgferry_viewer, pgferry_owner;
