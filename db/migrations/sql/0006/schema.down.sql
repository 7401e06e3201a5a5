-- pgferry 0006 down: the 0004 record_statuses(jsonb) was put back; drop the new signature.
DROP FUNCTION delivery.record_statuses(jsonb, text[]);
