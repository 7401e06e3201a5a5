-- pgferry 0016 down (runs after the routines 0016 added are dropped). The files pipeline's
-- journal rows go with it: a downgrade past the importer forgets its files, by choice of
-- whoever runs it, so the append-only guard steps aside for this one statement.
ALTER TABLE etl.journal DISABLE TRIGGER journal_append_only;
DELETE FROM etl.journal WHERE pipeline = 'files';
ALTER TABLE etl.journal ENABLE TRIGGER journal_append_only;
DELETE FROM etl.alert WHERE pipeline = 'files';
DELETE FROM etl.process WHERE pipeline = 'files';
-- the views as 0008 and 0010 left them, without files
CREATE OR REPLACE VIEW etl.backlog (pipeline, waiting, waiting_since) AS
SELECT 'permits', count(*), min(s.staged_at)
  FROM tps.staged_permit AS s JOIN etl.process AS p USING (process_id)
 WHERE p.status = 'succeeded' AND p.consumed_at IS NULL AND s.state <> 'dead'
UNION ALL
SELECT 'shipments', j.waiting + c.waiting, least(j.since, c.since)
  FROM (SELECT count(*) AS waiting, min(due_since) AS since
          FROM delivery.job WHERE sync_state = 'pending') AS j,
       (SELECT coalesce(sum(shipment_count - taken), 0) AS waiting, min(queued_at) AS since
          FROM delivery.erp_change) AS c;
CREATE OR REPLACE VIEW etl.pipeline_status AS
SELECT p.name,
       (SELECT r.process_id FROM etl.process AS r
         WHERE r.pipeline = p.name AND r.status = 'running') AS running_process,
       l.process_id AS last_process, l.status AS last_status, l.started_at AS last_started_at,
       l.ended_at AS last_ended_at, l.rows_loaded AS last_rows_loaded,
       (SELECT count(*) FROM etl.process AS f WHERE f.pipeline = p.name AND f.status = 'failed'
           AND f.started_at > now() - interval '24 hours') AS failed_runs_24h,
       (SELECT count(*) FROM etl.process_error AS e WHERE e.pipeline = p.name
           AND e.occurred_at > now() - interval '24 hours') AS process_errors_24h,
       (SELECT count(*) FROM etl.process AS w WHERE w.pipeline = p.name AND w.status = 'succeeded'
           AND w.consumed_at IS NULL) AS runs_waiting,
       coalesce(b.waiting, 0) AS backlog,
       extract(epoch FROM now() - b.waiting_since)::double precision AS lag_seconds,
       CASE p.name
            WHEN 'permits' THEN (SELECT count(*) FROM tps.staged_permit WHERE state = 'dead')
            WHEN 'shipments' THEN (SELECT count(*) FROM delivery.job
                                    WHERE sync_state IN ('failed', 'dead'))
            ELSE 0 END AS dead_letters,
       -- staged permits no consumer will take, until permit.purge_stranded removes them: rows of
       -- failed or abandoned runs, and rows staged into a finished run before 0008 refused that
       CASE p.name WHEN 'permits' THEN
           (SELECT count(*) FROM tps.staged_permit AS s JOIN etl.process AS q USING (process_id)
             WHERE NOT (q.pipeline = 'permits'
                        AND (q.status = 'running'
                             OR (q.status = 'succeeded' AND q.consumed_at IS NULL))))
            ELSE 0 END AS stranded,
       p.paused_at, p.paused_by, p.pause_reason,
       (SELECT count(*) FROM etl.alert AS a WHERE a.pipeline = p.name AND a.sent_at IS NULL)
           AS alerts_queued,
       (SELECT count(*) FROM etl.alert AS a WHERE a.pipeline = p.name AND a.sent_at IS NOT NULL)
           AS alerts_sent,
       (SELECT count(*) FROM etl.worker AS k
         WHERE p.name = ANY (k.pipelines) AND k.stopped_at IS NULL
           AND k.heartbeat_at > now() - interval '30 seconds') AS workers_alive
  FROM etl.pipeline AS p
  LEFT JOIN LATERAL (SELECT * FROM etl.process AS x WHERE x.pipeline = p.name
                      ORDER BY x.started_at DESC LIMIT 1) AS l ON true
  LEFT JOIN etl.backlog AS b ON b.pipeline = p.name;
DROP TABLE files.file;
DROP TABLE files.source;
DROP SCHEMA files;
DELETE FROM etl.pipeline WHERE name = 'files';
