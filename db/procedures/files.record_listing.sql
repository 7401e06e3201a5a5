-- files.record_listing: the files a listing of source p_source found, as a JSON array of
-- {"path", "size", "modified"}; the ones not known yet (by path, size and modification time:
-- a file written again is a new file) are added as pending, each journaled 'found'. Set-based;
-- returns how many were new. Concurrent listings of one source add each file once.
CREATE OR REPLACE FUNCTION files.record_listing(p_source text, p_files jsonb)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH listed AS (
        SELECT f.path, f.size, f.modified
          FROM jsonb_to_recordset(p_files) AS f (path text, size bigint, modified timestamptz)
    ), added AS (
        INSERT INTO files.file (source, path, size, modified_at)
        SELECT p_source, l.path, l.size, l.modified FROM listed AS l
        ON CONFLICT (source, path, size, modified_at) DO NOTHING
        RETURNING file_id, path, size
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, detail)
        SELECT 'files', a.file_id, 'found',
               jsonb_build_object('source', p_source, 'path', a.path, 'bytes', a.size)
          FROM added AS a
        RETURNING 1
    )
    SELECT count(*)::integer FROM journaled
$function$;

REVOKE ALL ON FUNCTION files.record_listing(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.record_listing(text, jsonb) TO pgferry_worker;
