-- etl.mask_email: 'alice@gmail.com' -> 'a21@g***.com': the first letter of the local part, two
-- characters of its stable hash, the first letter of the domain and the top-level domain. A value
-- without '@' is hashed whole. PL/pgSQL rather than SQL so that etl.mask_hash is looked up when
-- called, not when this function is created (files deploy in name order).
CREATE OR REPLACE FUNCTION etl.mask_email(p_value text, p_salt text DEFAULT '')
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    RETURN CASE
        WHEN p_value IS NULL THEN NULL
        WHEN position('@' IN p_value) = 0 THEN etl.mask_hash(p_value, p_salt)
        ELSE left(split_part(p_value, '@', 1), 1)
             || left(etl.mask_hash(split_part(p_value, '@', 1), p_salt), 2)
             || '@' || left(split_part(p_value, '@', 2), 1) || '***'
             || coalesce(substring(split_part(p_value, '@', 2) FROM '\.[^.]*$'), '')
    END;
END
$function$;

REVOKE ALL ON FUNCTION etl.mask_email(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.mask_email(text, text) TO pgferry_worker, pgferry_owner;
