-- etl.permit_lineage: where one TPS permit number went, as one JSON document: its staged rows
-- (still in staging: pending, claimed or dead), the permit rows it became with their document
-- (S3 bucket, key, SHA-256, size), and every journal step of those items in order. What a viewer
-- may see: no plate, VIN, client hash, PDF or document name.
CREATE OR REPLACE FUNCTION etl.permit_lineage(p_permit_number text)
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH staged AS (
        SELECT s.staged_permit_id, s.process_id, s.permit_generation, s.state, s.attempts,
               s.staged_at, s.next_attempt_at, s.dead_at, s.last_error
          FROM tps.staged_permit AS s
         WHERE s.permit_number = p_permit_number
    ), target AS (
        SELECT t.permit_id, t.revision, t.permit_number, t.permit_type, t.status, t.start_date,
               t.end_date, t.issued_at, t.voided_at, t.source_process_id,
               t.source_staged_permit_id, t.inserted_at, t.updated_at,
               jsonb_build_object('bucket', d.bucket, 'object_key', d.object_key,
                                  'sha256', d.sha256, 'size_bytes', d.size_bytes,
                                  'content_type', d.content_type) AS document
          FROM permit.permit AS t
          JOIN permit.document AS d ON d.document_id = t.document_id
         WHERE t.tps_permit_number = p_permit_number
    ), items AS (
        SELECT staged_permit_id AS item_id FROM staged
        UNION
        SELECT source_staged_permit_id FROM target
    )
    SELECT jsonb_build_object(
        'permit_number', p_permit_number,
        'staged', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.staged_permit_id), '[]')
                     FROM staged AS s),
        'permits', (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.revision), '[]')
                      FROM target AS t),
        'journal', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                               'journal_id', j.journal_id, 'item_id', j.item_id, 'step', j.step,
                               'at', j.at, 'process_id', j.process_id, 'detail', j.detail)
                           ORDER BY j.journal_id), '[]')
                      FROM etl.journal AS j JOIN items AS i ON i.item_id = j.item_id
                     WHERE j.pipeline = 'permits'))
$function$;

REVOKE ALL ON FUNCTION etl.permit_lineage(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.permit_lineage(text) TO pgferry_viewer, pgferry_owner;
