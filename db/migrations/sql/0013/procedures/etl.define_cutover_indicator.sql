-- etl.define_cutover_indicator: declare (or change) one key indicator `harness cutover verify`
-- compares (seed 001: "certain key indicators match each other on source and target"): a query
-- on the source connection p_source (PGFERRY_SOURCE_<NAME>_URL) and one on the target, each
-- returning the same rows when the migration is right (sums, counts per category; ordered, or
-- compared as sets). Returns the name.
CREATE OR REPLACE FUNCTION etl.define_cutover_indicator(p_name text, p_source text,
                                                        p_source_query text,
                                                        p_target_query text)
RETURNS text
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    INSERT INTO etl.cutover_indicator AS i (name, source, source_query, target_query)
    VALUES (p_name, p_source, p_source_query, p_target_query)
    ON CONFLICT (name) DO UPDATE
       SET source = excluded.source, source_query = excluded.source_query,
           target_query = excluded.target_query
    RETURNING i.name
$function$;

REVOKE ALL ON FUNCTION etl.define_cutover_indicator(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.define_cutover_indicator(text, text, text, text) TO pgferry_owner;
