-- etl.mask_hash: a stable 9-character hash ('a0145d67c'): the same value and salt always give
-- the same result, so joins and distributions survive masking. Keep the salt secret: without it
-- a dictionary of likely values cannot be hashed to match.
CREATE OR REPLACE FUNCTION etl.mask_hash(p_value text, p_salt text DEFAULT '')
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT left(encode(sha256(convert_to(coalesce(p_salt, '') || p_value, 'UTF8')), 'hex'), 9)
$function$;

REVOKE ALL ON FUNCTION etl.mask_hash(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.mask_hash(text, text) TO pgferry_worker, pgferry_owner;
