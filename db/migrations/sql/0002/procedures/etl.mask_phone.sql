-- etl.mask_phone: '985 123 4512' -> '985***12' (first three and last two digits kept).
-- Numbers with fewer than six digits become '***'.
CREATE OR REPLACE FUNCTION etl.mask_phone(p_value text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE
        WHEN p_value IS NULL THEN NULL
        WHEN length(regexp_replace(p_value, '\D', '', 'g')) < 6 THEN '***'
        ELSE left(regexp_replace(p_value, '\D', '', 'g'), 3) || '***'
             || right(regexp_replace(p_value, '\D', '', 'g'), 2)
    END
$function$;

REVOKE ALL ON FUNCTION etl.mask_phone(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.mask_phone(text) TO pgferry_worker, pgferry_owner;
