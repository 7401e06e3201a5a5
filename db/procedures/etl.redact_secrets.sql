-- etl.redact_secrets: replace the value of every key that looks like a secret with '[redacted]'.
-- Used by etl.log_error so that a logged row key or payload never stores a secret.
--
-- Keys are matched case-insensitively, camelCase split into words ('apiKey' is 'api_key'):
--   anywhere in the key: passw (password, passwd), pwd, passphrase, secret, token, credential,
--                        authorization/authorisation, cookie, bearer, api key, private key,
--                        session id ('x-api-key', 'client_secret', 'Set-Cookie', 'sessionId')
--   as a whole word:     auth, oauth ('x-auth', 'basic_auth'; not 'author' or 'authored_by')
-- Only keys decide: a value that looks like a secret under a harmless key is kept, since
-- guessing from values would mangle ordinary data and still miss secrets.
--
-- Depth-bounded, not unbounded recursion: each level is a nested SQL function call, and a
-- payload nested a few thousand deep would exhaust the stack (SQLSTATE 54001) and make
-- etl.log_error raise. Below p_depth_left levels a whole object or array is replaced by a
-- marker instead: it is never stored unchecked. Rows are nested a few levels; etl.log_error
-- passes 100, which takes about 150 kB of stack, well within the 2 MB default of
-- max_stack_depth. No default for the bound: while a downgrade restores the one-argument
-- version of 0001 both exist, and a default would make its recursive call ambiguous.
CREATE OR REPLACE FUNCTION etl.redact_secrets(p_value jsonb, p_depth_left integer)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE
        WHEN p_value IS NULL OR jsonb_typeof(p_value) NOT IN ('object', 'array') THEN p_value
        WHEN p_depth_left IS NULL OR p_depth_left < 1
        THEN to_jsonb('[redacted: nested too deep to check]'::text)
        WHEN jsonb_typeof(p_value) = 'object' THEN (
            SELECT coalesce(jsonb_object_agg(
                       e.key,
                       CASE WHEN lower(regexp_replace(e.key, '([[:lower:][:digit:]])([[:upper:]])',
                                                      '\1_\2', 'g'))
                                 ~ ('(passw|pwd|passphrase|secret|token|credential'
                                    '|authori[sz]ation|cookie|bearer'
                                    '|api[^[:alnum:]]*key|private[^[:alnum:]]*key'
                                    '|session[^[:alnum:]]*id'
                                    '|(^|[^[:alnum:]])o?auth([^[:alnum:]]|$))')
                            THEN to_jsonb('[redacted]'::text)
                            ELSE etl.redact_secrets(e.value, p_depth_left - 1)
                       END), '{}'::jsonb)
              FROM jsonb_each(p_value) AS e)
        ELSE (
            SELECT coalesce(jsonb_agg(etl.redact_secrets(a.value, p_depth_left - 1)
                                      ORDER BY a.ordinality), '[]'::jsonb)
              FROM jsonb_array_elements(p_value) WITH ORDINALITY AS a)
    END
$function$;

-- Internal to etl.log_error (which runs as its owner, pgferry_owner): neither the loader nor the
-- worker calls it.
REVOKE ALL ON FUNCTION etl.redact_secrets(jsonb, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.redact_secrets(jsonb, integer) TO pgferry_owner;
