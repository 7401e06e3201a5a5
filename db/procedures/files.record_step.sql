-- files.record_step: file p_file_id completed step p_step under the lease p_lease_token; one
-- append-only journal row (pipeline 'files') with p_detail (bytes, sha256, rows, raw key ...)
-- and the attempt. Returns:
--   'recorded'  the step is the file's last completed one now; 'merged' imports the file;
--   'duplicate' the step is 'downloaded' and the same content (SHA-256) of the same source was
--               imported already: the file is done without importing it twice;
--   'fenced'    the file no longer carries the token (another worker took it over): nothing is
--               written, the caller stops working on it.
-- Steps go in order: downloaded, unpacked, validated, stored, loaded, merged. Before 'stored' a
-- file may be downloaded again (its worker's local copy is gone); any other step out of order
-- is refused (a bug, not a data fault).
CREATE OR REPLACE FUNCTION files.record_step(p_file_id bigint, p_lease_token bigint,
                                             p_step text, p_detail jsonb DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    c_steps constant text[] := ARRAY['downloaded', 'unpacked', 'validated', 'stored', 'loaded',
                                     'merged'];
    v_file  files.file;
    v_done  integer;
    v_next  integer := array_position(c_steps, p_step);
    v_twin  bigint;
BEGIN
    v_file := files.held_file(p_file_id, p_lease_token);
    IF v_file.file_id IS NULL THEN
        RETURN 'fenced';
    END IF;
    v_done := coalesce(array_position(c_steps, v_file.step), 0);
    IF v_next IS NULL OR NOT (v_next = v_done + 1 OR (v_next = 1 AND v_done < 4)) THEN
        RAISE EXCEPTION 'files.record_step: % cannot follow % for file %', p_step,
                        coalesce(v_file.step, 'nothing'), p_file_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO etl.journal (pipeline, item_id, step, detail)
    VALUES ('files', p_file_id, p_step,
            coalesce(p_detail, '{}') || jsonb_build_object('attempt', v_file.attempts,
                                                           'worker', v_file.lease_worker));
    IF p_step = 'downloaded' THEN
        SELECT o.file_id INTO v_twin
          FROM files.file AS o
         WHERE o.source = v_file.source AND o.sha256 = p_detail ->> 'sha256'
           AND o.state = 'imported'
         LIMIT 1;
        IF v_twin IS NOT NULL THEN
            UPDATE files.file
               SET state = 'duplicate', step = p_step, sha256 = p_detail ->> 'sha256',
                   duplicate_of = v_twin, lease_worker = NULL, lease_token = NULL,
                   lease_expires_at = NULL, error_class = NULL, error = NULL
             WHERE file_id = p_file_id;
            INSERT INTO etl.journal (pipeline, item_id, step, detail)
            VALUES ('files', p_file_id, 'duplicate', jsonb_build_object('of', v_twin));
            RETURN 'duplicate';
        END IF;
    END IF;
    UPDATE files.file
       SET step = p_step,
           sha256 = coalesce(p_detail ->> 'sha256', sha256),
           raw_key = CASE WHEN p_step = 'stored' THEN p_detail ->> 'raw_key' ELSE raw_key END,
           rows_merged = CASE WHEN p_step = 'merged' THEN (p_detail ->> 'rows')::bigint
                              ELSE rows_merged END,
           state = CASE WHEN p_step = 'merged' THEN 'imported' ELSE state END,
           imported_at = CASE WHEN p_step = 'merged' THEN now() END,
           lease_worker = CASE WHEN p_step = 'merged' THEN NULL ELSE lease_worker END,
           lease_token = CASE WHEN p_step = 'merged' THEN NULL ELSE lease_token END,
           lease_expires_at = CASE WHEN p_step = 'merged' THEN NULL ELSE lease_expires_at END,
           error_class = CASE WHEN p_step = 'merged' THEN NULL ELSE error_class END,
           error = CASE WHEN p_step = 'merged' THEN NULL ELSE error END
     WHERE file_id = p_file_id;
    RETURN 'recorded';
END
$function$;

REVOKE ALL ON FUNCTION files.record_step(bigint, bigint, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.record_step(bigint, bigint, text, jsonb) TO pgferry_worker;
