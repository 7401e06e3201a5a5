-- pgferry 0008 down (runs after the routines of 0007 are restored).

DROP VIEW etl.backlog;

-- triggers 0008 added on tables of an earlier revision: restoring 0007's trigger files
-- re-creates only the triggers they name
DROP TRIGGER shipment_to_delivery_truncate ON erp.shipment;
DROP TRIGGER package_to_job_truncate ON erp.package;

-- == operations ==============================================================================
ALTER TABLE etl.alert DROP COLUMN claimed_until;

-- == permits =================================================================================
DROP FUNCTION permit.claim_batch(text, integer, interval, bigint, integer);
DROP FUNCTION permit.move_batch(jsonb, interval);
DROP FUNCTION permit.record_failures(jsonb, integer, interval, interval, interval);
DROP TABLE permit.object_tombstone;
DROP INDEX tps.staged_permit_lease_token;
ALTER TABLE tps.staged_permit DROP COLUMN lease_token, DROP COLUMN expired_claims;

-- == shipments ===============================================================================
DROP FUNCTION delivery.claim_jobs(text, integer, interval, bigint);
DROP TABLE delivery.api_slot;
DROP INDEX delivery.job_lease_token;
DROP INDEX delivery.job_remote_key;
CREATE INDEX job_remote_key ON delivery.job (remote_do_number, remote_date) WHERE remote = 'created';
UPDATE delivery.job SET remote = 'none' WHERE remote = 'unknown';
ALTER TABLE delivery.job DROP CONSTRAINT job_remote_check;
ALTER TABLE delivery.job ADD CONSTRAINT job_remote_check
    CHECK (remote IN ('none', 'created', 'deleted'));
ALTER TABLE delivery.job DROP COLUMN lease_token, DROP COLUMN due_since;

-- == shared: fencing tokens ==================================================================
DROP SEQUENCE etl.lease_token;
