-- pgferry 0010 down (runs after the routines 0010 added are dropped and the claims of 0008 are
-- restored). The roles pgferry_viewer and pgferry_operator stay: roles are cluster-wide.

REVOKE SELECT ON public.alembic_version FROM pgferry_viewer;
REVOKE USAGE ON SCHEMA etl FROM pgferry_viewer;

DROP VIEW etl.alert_totals;
DROP VIEW etl.worker_status;
DROP VIEW etl.pipeline_status;

DROP INDEX delivery.job_do_number;
DROP INDEX delivery.job_dead_letters;
DROP INDEX etl.error_log_by_cause;
DROP INDEX etl.process_by_start;
DROP INDEX etl.process_by_pipeline;
DROP INDEX etl.journal_by_process;
DROP INDEX etl.journal_by_time;

DROP TABLE etl.operator_action;
DROP TABLE etl.worker;

ALTER TABLE etl.pipeline
    DROP CONSTRAINT pipeline_pause_complete,
    DROP COLUMN pause_reason,
    DROP COLUMN paused_by,
    DROP COLUMN paused_at;
