-- pgferry 0006: delivery.record_statuses takes the polled DO numbers (to stamp every polled
-- job, changed or not): drop the old signature so only the new one remains.
DROP FUNCTION delivery.record_statuses(jsonb);
