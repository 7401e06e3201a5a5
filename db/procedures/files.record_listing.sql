-- files.record_listing: the files a listing of source p_source found, as a JSON array of
-- {"path", "size", "modified"}; the ones not known yet (by path, size and modification time:
-- a file written again is a new file) are added as pending, each journaled 'found'; an older
-- version of the same path still waiting (pending or dead) is superseded: merged after the new
-- one it would put older data over newer. Set-based; returns how many were new. Concurrent
-- listings of one source add each file once.
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
        RETURNING file_id, path, size, modified_at
    ), superseded AS (
        UPDATE files.file AS o
           SET state = 'superseded'
          FROM added AS a
         WHERE o.source = p_source AND o.path = a.path AND o.modified_at < a.modified_at
           AND o.state IN ('pending', 'dead')
        RETURNING o.file_id
    ), journaled AS (
        INSERT INTO etl.journal (pipeline, item_id, step, detail)
        SELECT 'files', a.file_id, 'found',
               jsonb_build_object('source', p_source, 'path', a.path, 'bytes', a.size)
          FROM added AS a
        UNION ALL
        SELECT 'files', s.file_id, 'superseded', jsonb_build_object('reason', 'a newer version')
          FROM superseded AS s
        RETURNING step
    )
    SELECT count(*) FILTER (WHERE step = 'found')::integer FROM journaled
$function$;

REVOKE ALL ON FUNCTION files.record_listing(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.record_listing(text, jsonb) TO pgferry_worker;
