-- etl.extract_query: the SELECT that exports a table for development, with every column that has
-- a rule in etl.mask_rule masked ('phone', 'hash', 'email', 'null'; 'keep' or no rule: as is).
-- With p_obfuscate false the rules are ignored (a plain extract). Identifiers are quoted and the
-- salt is passed as a literal, so the text is safe to run as it is.
--
-- A rule's table_name is resolved with to_regclass under the caller's search_path (no SET
-- clause here on purpose), so 'client' and 'stg.client' both match the table they name for
-- the caller; every other name in the body is schema-qualified.
CREATE OR REPLACE FUNCTION etl.extract_query(
    p_table      regclass,
    p_obfuscate  boolean DEFAULT true,
    p_salt       text    DEFAULT '')
RETURNS text
LANGUAGE sql
STABLE
AS $function$
    SELECT pg_catalog.format('SELECT %s FROM %s',
                  string_agg(
                      CASE WHEN NOT p_obfuscate THEN format('%I', a.attname)
                           ELSE CASE r.mask
                               WHEN 'phone' THEN format('etl.mask_phone(%I::text) AS %1$I', a.attname)
                               WHEN 'hash'  THEN format('etl.mask_hash(%I::text, %L) AS %1$I', a.attname, p_salt)
                               WHEN 'email' THEN format('etl.mask_email(%I::text, %L) AS %1$I', a.attname, p_salt)
                               WHEN 'null'  THEN format('NULL AS %I', a.attname)
                               ELSE format('%I', a.attname)
                           END
                      END,
                      ', ' ORDER BY a.attnum),
                  p_table)
      FROM pg_attribute AS a
      LEFT JOIN etl.mask_rule AS r
        ON pg_catalog.to_regclass(r.table_name) = p_table AND r.column_name = a.attname
     WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
$function$;

REVOKE ALL ON FUNCTION etl.extract_query(regclass, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.extract_query(regclass, boolean, text) TO pgferry_worker, pgferry_owner;
