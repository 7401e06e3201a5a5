-- pgferry 0001: the etl schema — pipelines, processes, process errors, error log, alert outbox, roles.
-- Tables live here (hand-written, frozen); routines come from db/procedures via frozen copies.

-- Roles are cluster-wide: create them only when missing, never drop them on downgrade
-- (another database on the same server may use them). All three are NOLOGIN groups; the DBA
-- grants them to login users.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgferry_owner') THEN
        CREATE ROLE pgferry_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgferry_loader') THEN
        CREATE ROLE pgferry_loader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgferry_worker') THEN
        CREATE ROLE pgferry_worker NOLOGIN;
    END IF;
END
$roles$;

CREATE SCHEMA etl;
COMMENT ON SCHEMA etl IS 'pgferry: process control, error log and alert outbox shared by every pipeline';

CREATE TABLE etl.pipeline (
    name                     text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    description              text NOT NULL DEFAULT '',
    -- a running process older than this is hung: the next start abandons it
    hung_after               interval NOT NULL DEFAULT interval '4 hours' CHECK (hung_after > interval '0'),
    -- this many refused starts in a row queue one alert
    refusal_alert_threshold  integer NOT NULL DEFAULT 3 CHECK (refusal_alert_threshold > 0),
    consecutive_refusals     integer NOT NULL DEFAULT 0 CHECK (consecutive_refusals >= 0),
    -- where the very first window starts
    window_origin            timestamptz NOT NULL DEFAULT timestamptz '1970-01-01 00:00:00+00'
);
COMMENT ON TABLE etl.pipeline IS 'One row per pipeline; settings for hung detection and refusal alerts';

CREATE TABLE etl.process (
    process_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline      text NOT NULL REFERENCES etl.pipeline (name),
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    window_from   timestamptz NOT NULL,
    window_to     timestamptz NOT NULL,
    rows_loaded   bigint CHECK (rows_loaded >= 0),
    message       text,
    -- when the downstream consumer finished this run (the seed's ORBC_COMPLETE)
    consumed_at   timestamptz,
    CONSTRAINT process_window_ordered CHECK (window_from <= window_to),
    CONSTRAINT process_ended_iff_not_running CHECK ((status = 'running') = (ended_at IS NULL)),
    CONSTRAINT process_consumed_only_succeeded CHECK (consumed_at IS NULL OR status = 'succeeded')
);
COMMENT ON TABLE etl.process IS 'One row per upstream run. Window is half-open: [window_from, window_to)';
-- The database, not a check-then-insert, guarantees one running process per pipeline.
CREATE UNIQUE INDEX process_one_running_per_pipeline ON etl.process (pipeline) WHERE status = 'running';
CREATE INDEX process_last_success ON etl.process (pipeline, window_to DESC) WHERE status = 'succeeded';
CREATE INDEX process_waiting_for_consumer ON etl.process (pipeline, ended_at)
    WHERE status = 'succeeded' AND consumed_at IS NULL;

CREATE TABLE etl.process_error (
    process_error_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline             text NOT NULL REFERENCES etl.pipeline (name),
    kind                 text NOT NULL CHECK (kind IN ('refused', 'abandoned')),
    -- the process that was running (refused) or that was abandoned
    process_id           bigint REFERENCES etl.process (process_id),
    occurred_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    message              text NOT NULL
);
COMMENT ON TABLE etl.process_error IS 'Refused starts and abandoned hung runs (the seed''s ETL_PROCESS_ERROR)';
CREATE INDEX process_error_by_pipeline ON etl.process_error (pipeline, occurred_at);

CREATE TABLE etl.error_log (
    error_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    logged_by     text NOT NULL DEFAULT session_user,
    object_name   text NOT NULL,
    table_name    text,
    row_key       jsonb,
    row_payload   jsonb,
    sqlstate      text NOT NULL,
    message       text NOT NULL,
    detail        text,
    hint          text,
    context       text,
    process_id    bigint REFERENCES etl.process (process_id)
);
COMMENT ON TABLE etl.error_log IS 'TRY/CATCH log written by etl.log_error from every trigger and procedure';
CREATE INDEX error_log_by_time ON etl.error_log (logged_at);
CREATE INDEX error_log_by_process ON etl.error_log (process_id) WHERE process_id IS NOT NULL;

CREATE TABLE etl.alert (
    alert_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    pipeline      text REFERENCES etl.pipeline (name),
    kind          text NOT NULL,
    subject       text NOT NULL,
    body          text NOT NULL,
    process_id    bigint REFERENCES etl.process (process_id),
    sent_at       timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
COMMENT ON TABLE etl.alert IS 'Outbox of alerts; the harness mails unsent rows and stamps sent_at';
CREATE INDEX alert_unsent ON etl.alert (created_at) WHERE sent_at IS NULL;

INSERT INTO etl.pipeline (name, description) VALUES
    ('permits', 'TPS permits and their PDFs into the target tables and S3'),
    ('shipments', 'ERP shipments into DeTrack delivery jobs');

-- Least privilege: nobody but the schema owner touches these tables directly.
-- The loader and the worker go through SECURITY DEFINER routines (granted per routine).
REVOKE ALL ON ALL TABLES IN SCHEMA etl FROM PUBLIC;
GRANT USAGE ON SCHEMA etl TO pgferry_loader, pgferry_worker, pgferry_owner;
GRANT SELECT ON ALL TABLES IN SCHEMA etl TO pgferry_worker;
GRANT UPDATE (consumed_at) ON etl.process TO pgferry_worker;
GRANT UPDATE (sent_at, attempts, last_error) ON etl.alert TO pgferry_worker;
GRANT ALL ON ALL TABLES IN SCHEMA etl TO pgferry_owner;
