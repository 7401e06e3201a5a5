-- etl.find_overlong_field: the first column of p_table whose value in p_row (a row as jsonb) is
-- longer than the column's declared length (varchar(n), char(n)), or NULL. Used to name the
-- field when a statement fails with 22001 (string_data_right_truncation), whose message does
-- not say which column.
CREATE OR REPLACE FUNCTION etl.find_overlong_field(p_table regclass, p_row jsonb)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT a.attname::text
      FROM pg_attribute AS a
     WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
       AND a.atttypid IN ('varchar'::regtype, 'bpchar'::regtype) AND a.atttypmod > 4
       AND length(p_row ->> a.attname::text) > a.atttypmod - 4
     ORDER BY a.attnum
     LIMIT 1
$function$;

REVOKE ALL ON FUNCTION etl.find_overlong_field(regclass, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.find_overlong_field(regclass, jsonb) TO pgferry_worker, pgferry_owner;
