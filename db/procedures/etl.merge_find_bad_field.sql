-- etl.merge_find_bad_field: the first column of one fallback row (pg_temp.pgferry_merge_rows)
-- whose value cannot be cast to the target's type, or NULL. Only called for a failing row.
CREATE OR REPLACE FUNCTION etl.merge_find_bad_field(p_row bigint, p_columns text[], p_values text[])
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_columns), 0) LOOP
        BEGIN
            EXECUTE format('SELECT %s FROM pg_temp.pgferry_merge_rows AS s WHERE s.pgferry_row = $1',
                           p_values[i])
                USING p_row;
        EXCEPTION WHEN OTHERS THEN
            RETURN p_columns[i];
        END;
    END LOOP;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION etl.merge_find_bad_field(bigint, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.merge_find_bad_field(bigint, text[], text[]) TO pgferry_worker, pgferry_owner;
