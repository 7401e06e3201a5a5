-- pgferry 0019: one leader for a duty of the whole deployment (housekeeping: lag alerts, the
-- scheduled requeue of dead letters, alert mail), so that ten workers do not each do it.

CREATE TABLE etl.leader (
    role        text PRIMARY KEY,
    holder      text NOT NULL,
    token       bigint NOT NULL,
    since       timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
COMMENT ON TABLE etl.leader IS
    'Which worker does a duty of the whole deployment (role), under which fencing token, until'
    ' when: a lease row with a TTL, taken and renewed by etl.take_lead, given up by'
    ' etl.resign_lead.';

GRANT ALL ON etl.leader TO pgferry_owner;
GRANT SELECT ON etl.leader TO pgferry_worker;
