-- etl.verify_journal: check the per-item journal's invariants; one row per offence, none when
-- the journal is sound.
--   permits:   'uploaded' and 'moved' only after 'staged'; 'moved' only after 'uploaded'; an
--              item moved at most once; every moved permit in permit.permit has its 'moved' step
--   shipments: 'assigned' and 'delivered' only after 'created'; a job DeTrack has carries a
--              DeTrack id; a delivered job was created
--   files:     each step only after its predecessor (found, downloaded, unpacked, validated,
--              stored, loaded, merged); a file merged at most once; every imported file has
--              the 'stored' step of its raw object (harness verify checks the object is there)
-- "After" means an earlier journal entry with a time no later than this one.
CREATE OR REPLACE FUNCTION etl.verify_journal()
RETURNS TABLE (pipeline text, item_id bigint, problem text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH rule (pipeline, step, predecessor) AS (
        VALUES ('permits', 'uploaded', 'staged'), ('permits', 'moved', 'staged'),
               ('permits', 'moved', 'uploaded'), ('shipments', 'assigned', 'created'),
               ('shipments', 'delivered', 'created'), ('files', 'downloaded', 'found'),
               ('files', 'unpacked', 'downloaded'), ('files', 'validated', 'unpacked'),
               ('files', 'stored', 'validated'), ('files', 'loaded', 'stored'),
               ('files', 'merged', 'loaded')
    )
    SELECT j.pipeline, j.item_id,
           format('%s at %s without an earlier %s', j.step, j.at, r.predecessor)
      FROM etl.journal AS j
      JOIN rule AS r ON r.pipeline = j.pipeline AND r.step = j.step
     WHERE NOT EXISTS (SELECT FROM etl.journal AS p
                        WHERE p.pipeline = j.pipeline AND p.item_id = j.item_id
                          AND p.step = r.predecessor
                          AND p.journal_id < j.journal_id AND p.at <= j.at)
    UNION ALL
    SELECT 'permits', j.item_id, format('moved %s times', count(*))
      FROM etl.journal AS j
     WHERE j.pipeline = 'permits' AND j.step = 'moved'
     GROUP BY j.item_id HAVING count(*) > 1
    UNION ALL
    SELECT 'permits', t.source_staged_permit_id,
           format('permit %s revision %s is in permit.permit without a moved step',
                  t.tps_permit_number, t.revision)
      FROM permit.permit AS t
     WHERE NOT EXISTS (SELECT FROM etl.journal AS j
                        WHERE j.pipeline = 'permits' AND j.step = 'moved'
                          AND j.item_id = t.source_staged_permit_id)
    UNION ALL
    SELECT 'files', f.file_id, 'imported without a stored raw object'
      FROM files.file AS f
     WHERE f.state = 'imported'
       AND NOT EXISTS (SELECT FROM etl.journal AS j
                        WHERE j.pipeline = 'files' AND j.item_id = f.file_id
                          AND j.step = 'stored' AND j.detail ->> 'raw_key' = f.raw_key)
    UNION ALL
    SELECT 'files', j.item_id, format('merged %s times', count(*))
      FROM etl.journal AS j
     WHERE j.pipeline = 'files' AND j.step = 'merged'
     GROUP BY j.item_id HAVING count(*) > 1
    UNION ALL
    SELECT 'shipments', d.job_id, 'DeTrack has the job but no DeTrack id is recorded'
      FROM delivery.job AS d
     WHERE d.remote = 'created' AND d.detrack_id IS NULL
    ORDER BY 1, 2, 3
$function$;

REVOKE ALL ON FUNCTION etl.verify_journal() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.verify_journal() TO pgferry_worker, pgferry_owner;
