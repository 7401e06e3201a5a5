-- pgferry 0016 up: the file importer (seed 004), the third pipeline 'files': its sources, its
-- files with their leases and last completed step; the steps themselves go to etl.journal.
CREATE SCHEMA files;
COMMENT ON SCHEMA files IS 'The file importer: files from FTP, SFTP, a folder or S3 into target tables';
GRANT USAGE ON SCHEMA files TO pgferry_worker, pgferry_owner;

INSERT INTO etl.pipeline (name, description)
VALUES ('files', 'Files from FTP, SFTP, a folder or S3, validated, kept raw in S3, merged into targets')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE files.source (
    name                text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    target_table        text NOT NULL
                        CHECK (target_table ~ '^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$'),
    pattern             text NOT NULL DEFAULT '*' CHECK (pattern <> ''),
    key_columns         text[] NOT NULL DEFAULT '{}',
    header              text[] NOT NULL DEFAULT '{}',
    delimiter           text NOT NULL DEFAULT ',' CHECK (length(delimiter) = 1),
    encoding            text NOT NULL DEFAULT 'utf-8',
    min_bytes           bigint NOT NULL DEFAULT 1 CHECK (min_bytes >= 0),
    max_unpacked_bytes  bigint NOT NULL DEFAULT 21474836480 CHECK (max_unpacked_bytes > 0),
    max_entries         integer NOT NULL DEFAULT 1000 CHECK (max_entries > 0),
    max_ratio           integer NOT NULL DEFAULT 200 CHECK (max_ratio > 0),
    max_attempts        integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    raw_prefix          text NOT NULL DEFAULT 'raw/',
    defined_at          timestamptz NOT NULL DEFAULT now(),
    changed_at          timestamptz
);
COMMENT ON TABLE files.source IS
    'Sources of the file importer; where files come from is PGFERRY_FILES_<NAME>_URL, never stored';

CREATE TABLE files.file (
    file_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source            text NOT NULL REFERENCES files.source (name),
    path              text NOT NULL,
    size              bigint NOT NULL CHECK (size >= 0),
    modified_at       timestamptz NOT NULL,
    found_at          timestamptz NOT NULL DEFAULT now(),
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'claimed', 'imported', 'duplicate', 'dead')),
    -- the last step completed: the next claim goes on after it
    step              text CHECK (step IN ('downloaded', 'unpacked', 'validated', 'stored',
                                           'loaded', 'merged')),
    sha256            text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    raw_key           text,
    rows_merged       bigint,
    imported_at       timestamptz,
    duplicate_of      bigint REFERENCES files.file (file_id),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    lease_worker      text,
    lease_token       bigint,
    lease_expires_at  timestamptz,
    error_class       text,
    error             text,
    UNIQUE (source, path, size, modified_at),
    CHECK ((state = 'claimed') = (lease_token IS NOT NULL)),
    CHECK (state <> 'imported' OR (step = 'merged' AND raw_key IS NOT NULL))
);
COMMENT ON TABLE files.file IS
    'Every file a source listed: its state, last completed step and lease (the steps: etl.journal)';
CREATE INDEX file_to_claim ON files.file (next_attempt_at, file_id)
    WHERE state IN ('pending', 'claimed');
-- content is imported once per source: a second file of the same bytes is a duplicate
CREATE UNIQUE INDEX file_content_imported_once ON files.file (source, sha256)
    WHERE state = 'imported';

GRANT SELECT ON files.source, files.file TO pgferry_worker;
GRANT ALL ON files.source, files.file TO pgferry_owner;

-- the files in `harness status` and the console: waiting files and dead letters
CREATE OR REPLACE VIEW etl.backlog (pipeline, waiting, waiting_since) AS
SELECT 'permits', count(*), min(s.staged_at)
  FROM tps.staged_permit AS s JOIN etl.process AS p USING (process_id)
 WHERE p.status = 'succeeded' AND p.consumed_at IS NULL AND s.state <> 'dead'
UNION ALL
SELECT 'shipments', j.waiting + c.waiting, least(j.since, c.since)
  FROM (SELECT count(*) AS waiting, min(due_since) AS since
          FROM delivery.job WHERE sync_state = 'pending') AS j,
       (SELECT coalesce(sum(shipment_count - taken), 0) AS waiting, min(queued_at) AS since
          FROM delivery.erp_change) AS c
UNION ALL
SELECT 'files', count(*), min(f.found_at)
  FROM files.file AS f
 WHERE f.state IN ('pending', 'claimed');

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
            WHEN 'files' THEN (SELECT count(*) FROM files.file WHERE state = 'dead')
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
