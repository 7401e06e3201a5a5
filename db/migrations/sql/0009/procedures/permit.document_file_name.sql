-- permit.document_file_name: the file name a permit's PDF is published under: the staged
-- document name, else the onRouteBC permit number, else the TPS permit number, with '.pdf'
-- added only when the name does not already end in it (any case: 'X.PDF' stays 'X.PDF', never
-- 'X.PDF.pdf'). The one rule permit.claim_batch (what the worker uploads) and permit.move_batch
-- (what permit.document records) share, so the two can never disagree.
CREATE OR REPLACE FUNCTION permit.document_file_name(p_document_name text,
                                                     p_new_permit_number text,
                                                     p_permit_number text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT n.name || CASE WHEN n.name ~* '\.pdf$' THEN '' ELSE '.pdf' END
      FROM (SELECT coalesce(nullif(p_document_name, ''), p_new_permit_number, p_permit_number)
                   AS name) AS n
$function$;

-- Internal to the SECURITY DEFINER claim and move, which run as pgferry_owner.
REVOKE ALL ON FUNCTION permit.document_file_name(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION permit.document_file_name(text, text, text) TO pgferry_owner;
