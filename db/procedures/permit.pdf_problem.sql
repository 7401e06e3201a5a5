-- permit.pdf_problem: why a staged PDF cannot be published, or NULL when it looks like a whole
-- PDF: it must start with the %PDF- header and end with an %%EOF trailer (in its last 1 KiB).
CREATE OR REPLACE FUNCTION permit.pdf_problem(p_pdf bytea)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE
        WHEN p_pdf IS NULL OR length(p_pdf) = 0 THEN 'empty'
        WHEN substring(p_pdf FROM 1 FOR 5) <> '\x255044462d'::bytea
        THEN format('not a PDF (starts with 0x%s)', encode(substring(p_pdf FROM 1 FOR 8), 'hex'))
        WHEN position('\x2525454f46'::bytea IN substring(p_pdf FROM greatest(1, length(p_pdf) - 1023))) = 0
        THEN format('truncated: no %%%%EOF trailer in the last 1024 of %s bytes', length(p_pdf))
    END
$function$;

REVOKE ALL ON FUNCTION permit.pdf_problem(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.pdf_problem(bytea) TO pgferry_worker, pgferry_owner;
