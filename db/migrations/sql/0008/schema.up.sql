-- pgferry 0008: fencing tokens and heartbeats for every claim, one DeTrack limit shared by every
-- worker (kept here), recovery of creates whose answer was lost, lag counted from when an item
-- first became due, TRUNCATE of the ERP tables, staged rows that can no longer strand, alerts
-- claimed with a lease instead of a lock held across SMTP.

-- == shared: fencing tokens ==================================================================
-- Every claim (a batch of jobs or staged permits) gets a token from this sequence. A worker
-- sends and records only under a token the rows still carry, so a worker whose lease expired
-- and was taken over can neither write its results nor, with the heartbeat, keep sending.
CREATE SEQUENCE etl.lease_token AS bigint;
COMMENT ON SEQUENCE etl.lease_token IS 'Fencing tokens for claims (etl.next_lease_token)';
GRANT ALL ON SEQUENCE etl.lease_token TO pgferry_owner;

-- == shipments ===============================================================================
-- lease_token: the claim that holds the job. due_since: when the job first became due (pending)
-- since it was last in step with DeTrack; failed attempts do not move it, so lag is honest.
ALTER TABLE delivery.job
    ADD COLUMN lease_token bigint,
    ADD COLUMN due_since timestamptz;
UPDATE delivery.job SET due_since = inserted_at WHERE sync_state = 'pending';
-- 'unknown': a create was sent (or is about to be) under remote_do_number/remote_date and its
-- answer is not recorded; DeTrack may hold the job under that key.
ALTER TABLE delivery.job DROP CONSTRAINT job_remote_check;
ALTER TABLE delivery.job ADD CONSTRAINT job_remote_check
    CHECK (remote IN ('none', 'unknown', 'created', 'deleted'));
CREATE INDEX job_lease_token ON delivery.job (lease_token) WHERE lease_expires_at IS NOT NULL;
-- the key DeTrack may hold a job under, 'unknown' included: a create looks up whether another
-- job of ours still holds its key (delivery.claim_jobs)
DROP INDEX delivery.job_remote_key;
CREATE INDEX job_remote_key ON delivery.job (remote_do_number, remote_date)
    WHERE remote IN ('created', 'unknown');

-- The DeTrack request budget, shared by every dispatcher on every machine: one row per request
-- slot of the sliding window; a request takes the oldest slot that is out of the window
-- (delivery.take_api_slot). Rows are created on first use, as many as the limit.
CREATE TABLE delivery.api_slot (
    slot     integer PRIMARY KEY CHECK (slot > 0),
    used_at  timestamptz NOT NULL DEFAULT 'epoch'
);
COMMENT ON TABLE delivery.api_slot IS
    'DeTrack request slots of the sliding window shared by all dispatchers (delivery.take_api_slot)';
-- no grant to the worker: it takes slots only through delivery.take_api_slot
GRANT ALL ON delivery.api_slot TO pgferry_owner;

-- claim_jobs takes the claim's fencing token: the old signature goes
DROP FUNCTION delivery.claim_jobs(text, integer, interval);

-- == permits =================================================================================
-- lease_token: the claim that holds the row (permit.claim_batch); the move and the failures of a
-- batch are written only to rows still carrying it. expired_claims: how often the row was taken
-- over from an expired lease; at PERMITS_MAX_CLAIMS it is a dead letter (a permit that crashes
-- its worker must not crash every worker in turn).
ALTER TABLE tps.staged_permit
    ADD COLUMN lease_token bigint,
    ADD COLUMN expired_claims integer NOT NULL DEFAULT 0 CHECK (expired_claims >= 0);
CREATE INDEX staged_permit_lease_token ON tps.staged_permit (lease_token) WHERE state = 'claimed';

-- Objects `harness permits reconcile --delete` decided to delete (permit.tombstone_orphans): a
-- move refuses their keys, since its upload may have been verified against the doomed object.
-- Cleared (cleared_at, cleared_token from etl.lease_token) once the object is gone: claims made
-- after that upload afresh; claims made before (a lower token) are still refused.
CREATE TABLE permit.object_tombstone (
    bucket         text NOT NULL,
    object_key     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    cleared_at     timestamptz,
    cleared_token  bigint,
    PRIMARY KEY (bucket, object_key),
    CONSTRAINT object_tombstone_cleared CHECK ((cleared_at IS NULL) = (cleared_token IS NULL))
);
COMMENT ON TABLE permit.object_tombstone IS
    'Objects reconcile --delete is deleting; permit.move_batch refuses their keys';
GRANT SELECT ON permit.object_tombstone TO pgferry_worker;
GRANT ALL ON permit.object_tombstone TO pgferry_owner;

-- the claim takes a fencing token and a claim limit; the move and the failures are fenced by the
-- token of each element instead of the worker's name, and report more outcomes
DROP FUNCTION permit.claim_batch(text, integer, interval);
DROP FUNCTION permit.move_batch(text, jsonb);
DROP FUNCTION permit.record_failures(text, jsonb, integer, interval, interval);

-- == operations ==============================================================================
-- Alerts are leased (claimed_until) in a short transaction instead of locked FOR UPDATE across
-- the SMTP exchange: a slow mail server keeps no transaction open, a concurrent sender skips a
-- leased alert, and a crashed sender's alert is sent by the next one after the lease.
ALTER TABLE etl.alert ADD COLUMN claimed_until timestamptz;
GRANT UPDATE (claimed_until) ON etl.alert TO pgferry_worker;

-- == shared: the backlog (after the columns it reads) ===========================================
-- One statement of what waits, per pipeline, and since when: `harness status` and the lag
-- alerts (etl.queue_lag_alerts) read it. Shipments wait as ERP changes not yet copied and as
-- pending jobs, each since it first became due (delivery.job.due_since): a failed attempt does
-- not make a job look fresh.
CREATE VIEW etl.backlog (pipeline, waiting, waiting_since) AS
SELECT 'permits', count(*), min(s.staged_at)
  FROM tps.staged_permit AS s JOIN etl.process AS p USING (process_id)
 WHERE p.status = 'succeeded' AND p.consumed_at IS NULL AND s.state <> 'dead'
UNION ALL
SELECT 'shipments', j.waiting + c.waiting, least(j.since, c.since)
  FROM (SELECT count(*) AS waiting, min(due_since) AS since
          FROM delivery.job WHERE sync_state = 'pending') AS j,
       (SELECT coalesce(sum(shipment_count - taken), 0) AS waiting, min(queued_at) AS since
          FROM delivery.erp_change) AS c;
COMMENT ON VIEW etl.backlog IS 'Items waiting per pipeline and the oldest one''s due time';
GRANT SELECT ON etl.backlog TO pgferry_worker, pgferry_owner;

