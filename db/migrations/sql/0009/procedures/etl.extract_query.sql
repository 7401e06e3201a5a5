-- etl.extract_query: the SELECT that exports a table for development, with every column that has
-- a rule in etl.mask_rule masked ('phone', 'hash', 'email', 'null'; 'keep' or no rule: as is).
-- With p_obfuscate false the rules are ignored (a plain extract). Identifiers are quoted, so the
-- text is safe to run as it is.
--
-- The hash salt is never part of the text (it would show in pg_stat_activity and in the server
-- log of a failed statement): the query reads it with current_setting('pgferry.mask_salt'),
-- which the caller sets beforehand with a bound parameter, e.g.
--   SELECT set_config('pgferry.mask_salt', $1, true)   -- $1 sent apart from the statement
-- Unset, the salt is '' (unsalted hashes). p_salt is refused when given: it is kept only so that
-- the signature stays, and a caller still passing the salt learns how to pass it instead.
--
-- A rule's table_name is resolved with to_regclass under the caller's search_path (no SET
-- clause here on purpose), so 'client' and 'stg.client' both match the table they name for
-- the caller; every other name in the body is schema-qualified. Only names of the form table or
-- schema.table (each part plain or double-quoted) are resolved: PostgreSQL 15's to_regclass
-- raises on a malformed name, and one bad rule must not break every extract. A rule whose
-- name is malformed or names no table matches nothing.
CREATE OR REPLACE FUNCTION etl.extract_query(
    p_table      regclass,
    p_obfuscate  boolean DEFAULT true,
    p_salt       text    DEFAULT '')
RETURNS text
LANGUAGE plpgsql
STABLE
AS $function$
DECLARE
    c_salt  CONSTANT text := 'coalesce(pg_catalog.current_setting(''pgferry.mask_salt'', true), '''')';
    c_name  CONSTANT text := '^\s*("([^"]|"")+"|[^".\s]+)(\s*\.\s*("([^"]|"")+"|[^".\s]+))?\s*$';
BEGIN
    IF coalesce(p_salt, '') <> '' THEN
        RAISE EXCEPTION 'etl.extract_query no longer takes the salt as an argument'
              USING ERRCODE = '22023',
                    HINT = 'SELECT set_config(''pgferry.mask_salt'', $1, true) with the salt as a'
                           ' bound parameter, then call etl.extract_query(table, obfuscate).';
    END IF;
    RETURN (
        SELECT pg_catalog.format('SELECT %s FROM %s',
                      string_agg(
                          CASE WHEN NOT p_obfuscate THEN format('%I', a.attname)
                               ELSE CASE r.mask
                                   WHEN 'phone' THEN format('etl.mask_phone(%I::text) AS %1$I', a.attname)
                                   WHEN 'hash'  THEN format('etl.mask_hash(%I::text, %s) AS %1$I', a.attname, c_salt)
                                   WHEN 'email' THEN format('etl.mask_email(%I::text, %s) AS %1$I', a.attname, c_salt)
                                   WHEN 'null'  THEN format('NULL AS %I', a.attname)
                                   ELSE format('%I', a.attname)
                               END
                          END,
                          ', ' ORDER BY a.attnum),
                      p_table)
          FROM pg_catalog.pg_attribute AS a
          LEFT JOIN etl.mask_rule AS r
            ON r.column_name = a.attname
           AND CASE WHEN r.table_name ~ c_name THEN pg_catalog.to_regclass(r.table_name) END = p_table
         WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped);
END
$function$;

REVOKE ALL ON FUNCTION etl.extract_query(regclass, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.extract_query(regclass, boolean, text) TO pgferry_worker, pgferry_owner;
