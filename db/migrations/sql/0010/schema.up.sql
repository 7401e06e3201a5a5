-- pgferry 0010: the operators' console. Two roles for people (viewer, operator), a registry of
-- running workers with heartbeats, a pause that the claims honour, a journal of every operator
-- action with who and why, and the views the console and `harness status` both read.

-- == roles for people ============================================================================
-- The console logs users in with their own PostgreSQL login and runs every page as that login, so
-- what a user may do is what these roles grant. Cluster-wide, created only when missing, never
-- dropped (like 0001's roles). pgferry_viewer reads the console's views and functions and nothing
-- else; pgferry_operator may also execute the action functions.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgferry_viewer') THEN
        CREATE ROLE pgferry_viewer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgferry_operator') THEN
        CREATE ROLE pgferry_operator NOLOGIN;
    END IF;
END
$roles$;
GRANT pgferry_viewer TO pgferry_operator;

-- == pause =======================================================================================
-- A paused pipeline claims nothing (permit.claim_batch, delivery.claim_jobs): every worker obeys at
-- its next claim without a restart, and rounds in flight finish.
ALTER TABLE etl.pipeline
    ADD COLUMN paused_at    timestamptz,
    ADD COLUMN paused_by    text,
    ADD COLUMN pause_reason text,
    ADD CONSTRAINT pipeline_pause_complete
        CHECK ((paused_at IS NULL) = (paused_by IS NULL) AND (paused_at IS NULL) = (pause_reason IS NULL));

-- == the worker registry =========================================================================
CREATE TABLE etl.worker (
    worker_id          text PRIMARY KEY,
    host               text NOT NULL,
    pid                integer NOT NULL,
    pipelines          text[] NOT NULL,
    started_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the leases it holds at its last heartbeat: {"permits": n, "shipments": n}
    holds              jsonb NOT NULL DEFAULT '{}',
    stop_requested_at  timestamptz,
    stopped_at         timestamptz
);
COMMENT ON TABLE etl.worker IS
    'Running harness workers: etl.worker_heartbeat every 10 s, etl.worker_stopped at exit';

-- == the operators' journal ======================================================================
CREATE TABLE etl.operator_action (
    action_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the login, not the role a SECURITY DEFINER routine runs as
    actor      text NOT NULL DEFAULT session_user,
    action     text NOT NULL,
    pipeline   text REFERENCES etl.pipeline (name),
    target     jsonb NOT NULL DEFAULT '{}',
    -- every action says why: the row is written first, so a missing reason refuses the action
    reason     text NOT NULL CONSTRAINT operator_action_needs_a_reason CHECK (btrim(reason) <> ''),
    affected   integer
);
COMMENT ON TABLE etl.operator_action IS
    'Every operator action (console or CLI): who, when, what, why, and how many items it touched';
CREATE INDEX operator_action_by_time ON etl.operator_action (at);

-- == indexes the console reads by =================================================================
-- throughput per minute over 24 hours reads only the index
CREATE INDEX journal_by_time ON etl.journal (at) INCLUDE (pipeline, step);
-- a run's journal and its reconciliation
CREATE INDEX journal_by_process ON etl.journal (process_id, journal_id) WHERE process_id IS NOT NULL;
-- runs of one pipeline, newest first (keyset on process_id), and its last run
CREATE INDEX process_by_pipeline ON etl.process (pipeline, process_id);
CREATE INDEX process_by_start ON etl.process (pipeline, started_at);
-- failures by cause, keyset on error_id
CREATE INDEX error_log_by_cause ON etl.error_log (object_name, sqlstate, error_id);
-- dead letters of the shipments pipeline (failed and dead jobs) without reading every job
CREATE INDEX job_dead_letters ON delivery.job (job_id) WHERE sync_state IN ('failed', 'dead');
-- lineage of a shipment by its DO number
CREATE INDEX job_do_number ON delivery.job (do_number);

-- == what status and the console read ============================================================
-- One row per pipeline: the same numbers `harness status`, the daily report and the console show.
-- A view (owned by the schema owner) reads the tables for its readers, who need no table grant.
CREATE VIEW etl.pipeline_status AS
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
COMMENT ON VIEW etl.pipeline_status IS
    'Per pipeline: runs, backlog, lag, dead letters, pause, alerts, live workers (harness status, console)';

-- Alerts of every pipeline and of none (etl.alert.pipeline may be NULL): `harness status` prints
-- them under its table, and a viewer reads them here without reading the alerts themselves.
CREATE VIEW etl.alert_totals (unsent, total) AS
SELECT count(*) FILTER (WHERE sent_at IS NULL), count(*) FROM etl.alert;
COMMENT ON VIEW etl.alert_totals IS 'Alerts queued and not yet sent, and all alerts';

-- A worker is alive while it heartbeats: every 10 s (harness.runtime.worker.HEARTBEAT_SECONDS),
-- so three missed beats (30 s) mean it died or lost the database.
CREATE VIEW etl.worker_status AS
SELECT w.worker_id, w.host, w.pid, w.pipelines, w.started_at, w.heartbeat_at, w.holds,
       w.stop_requested_at, w.stopped_at,
       w.stopped_at IS NULL AND w.heartbeat_at > now() - interval '30 seconds' AS alive
  FROM etl.worker AS w;
COMMENT ON VIEW etl.worker_status IS 'Workers, alive while their heartbeat is under 30 s old';

-- == grants ======================================================================================
GRANT ALL ON etl.worker, etl.operator_action TO pgferry_owner;
GRANT SELECT ON etl.pipeline_status, etl.worker_status, etl.alert_totals TO pgferry_owner;
-- the worker reads every etl table and view (it heartbeats through etl.worker_heartbeat)
GRANT SELECT ON etl.worker, etl.operator_action, etl.pipeline_status, etl.worker_status,
                etl.alert_totals
    TO pgferry_worker;
-- people: the three views and, through SECURITY DEFINER functions granted per function, the rest;
-- no table of any schema directly (names, addresses, PDFs, DeTrack payloads stay out of reach)
GRANT USAGE ON SCHEMA etl TO pgferry_viewer;
GRANT SELECT ON etl.pipeline_status, etl.worker_status, etl.alert_totals TO pgferry_viewer;
-- the revision check every harness command (and the console) makes before it reads
GRANT SELECT ON public.alembic_version TO pgferry_viewer;
