-- etl.redact_secrets: replace the value of every key that looks like a secret (password, token,
-- api key, credential, secret) with '[redacted]', at any depth. Used by etl.log_error so that a
-- logged row payload never stores a secret.
CREATE OR REPLACE FUNCTION etl.redact_secrets(p_value jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE jsonb_typeof(p_value)
        WHEN 'object' THEN (
            SELECT coalesce(jsonb_object_agg(
                       e.key,
                       CASE WHEN e.key ~* '(passw|secret|token|api[_-]?key|credential|authorization)'
                            THEN to_jsonb('[redacted]'::text)
                            ELSE etl.redact_secrets(e.value)
                       END), '{}'::jsonb)
              FROM jsonb_each(p_value) AS e)
        WHEN 'array' THEN (
            SELECT coalesce(jsonb_agg(etl.redact_secrets(a.value) ORDER BY a.ordinality), '[]'::jsonb)
              FROM jsonb_array_elements(p_value) WITH ORDINALITY AS a)
        ELSE p_value
    END
$function$;

REVOKE ALL ON FUNCTION etl.redact_secrets(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.redact_secrets(jsonb) TO pgferry_loader, pgferry_worker, pgferry_owner;
