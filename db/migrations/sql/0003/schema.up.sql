-- pgferry 0003: the permit pipeline (TPS -> permit tables + S3) and the per-item journal.

-- etl.merge_table gains p_update_changed: drop the old signature so only one remains.
DROP FUNCTION etl.merge_table(regclass, regclass, text[], boolean, bigint, text[]);

CREATE TABLE etl.journal (
    journal_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline    text NOT NULL REFERENCES etl.pipeline (name),
    item_id     bigint NOT NULL,      -- permits: tps.staged_permit.staged_permit_id
    step        text NOT NULL,        -- staged, uploaded, moved, duplicate, upload_failed, dead, requeued
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    process_id  bigint,
    detail      jsonb
);
COMMENT ON TABLE etl.journal IS 'Append-only steps of every item, checked by `harness verify`';
CREATE INDEX journal_by_item ON etl.journal (pipeline, item_id, journal_id);

CREATE SCHEMA tps;
COMMENT ON SCHEMA tps IS 'Staging the upstream TPS loader fills';
CREATE SCHEMA permit;
COMMENT ON SCHEMA permit IS 'Permits moved from TPS, and their documents in S3';

-- Shaped on onRouteBC's tps.ORBC_TPS_MIGRATED_PERMITS. Data columns are nullable on purpose: a
-- bad row is accepted, then rejected by the consumer with an error naming the field, instead
-- of failing the loader's whole insert.
CREATE TABLE tps.staged_permit (
    staged_permit_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    process_id                 bigint NOT NULL REFERENCES etl.process (process_id),
    permit_number              text,          -- TPS permit number
    new_permit_number          text,          -- onRouteBC permit number
    permit_generation          smallint,      -- 1 = original issue; revision = generation - 1
    permit_type                text,
    start_date                 date,
    end_date                   date,
    issued_date                timestamptz,
    void_date                  timestamptz,
    client_hash                text,
    plate                      text,
    vin                        text,
    permit_document_name       text,
    service                    text,          -- 'V' = voided
    permit_last_modified_date  timestamptz,
    pdf                        bytea,
    staged_at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- consumer state: the loader never sets these
    state                      text NOT NULL DEFAULT 'pending'
                               CHECK (state IN ('pending', 'claimed', 'dead')),
    attempts                   integer NOT NULL DEFAULT 0,
    next_attempt_at            timestamptz NOT NULL DEFAULT now(),
    lease_owner                text,
    lease_expires_at           timestamptz,
    last_error                 text,
    dead_at                    timestamptz,
    CONSTRAINT staged_permit_claimed_has_lease
        CHECK ((state = 'claimed') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- PDFs are compressed already: store them out of line without another compression pass
ALTER TABLE tps.staged_permit ALTER COLUMN pdf SET STORAGE EXTERNAL;
CREATE INDEX staged_permit_claimable ON tps.staged_permit (process_id, staged_permit_id)
    WHERE state <> 'dead';
CREATE INDEX staged_permit_dead ON tps.staged_permit (dead_at) WHERE state = 'dead';
CREATE INDEX staged_permit_key ON tps.staged_permit (permit_number, permit_generation);

CREATE TABLE permit.document (
    document_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket        text NOT NULL,
    object_key    text NOT NULL UNIQUE,
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes    bigint NOT NULL CHECK (size_bytes > 0),
    content_type  text NOT NULL,
    file_name     text NOT NULL,
    inserted_at   timestamptz,
    updated_at    timestamptz
);

CREATE TABLE permit.permit (
    permit_id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tps_permit_number        text NOT NULL,
    revision                 smallint NOT NULL CHECK (revision >= 0),
    permit_number            text,
    permit_type              text,
    start_date               date,
    end_date                 date,
    issued_at                timestamptz,
    voided_at                timestamptz,
    client_hash              text,
    plate                    text,
    vin                      text,
    status                   text NOT NULL CHECK (status IN ('issued', 'voided', 'superseded')),
    document_id              bigint NOT NULL REFERENCES permit.document (document_id),
    source_process_id        bigint REFERENCES etl.process (process_id),
    source_staged_permit_id  bigint NOT NULL,
    inserted_at              timestamptz,
    updated_at               timestamptz,
    -- the key onRouteBC never had: a permit revision exists once
    CONSTRAINT permit_number_revision_unique UNIQUE (tps_permit_number, revision)
);
CREATE INDEX permit_document ON permit.permit (document_id);

-- Privileges: the loader inserts staged data columns only; the worker reads, and changes state
-- only through the SECURITY DEFINER routines; the owner role administers.
GRANT USAGE ON SCHEMA tps TO pgferry_loader, pgferry_worker, pgferry_owner;
GRANT USAGE ON SCHEMA permit TO pgferry_worker, pgferry_owner;
GRANT INSERT (process_id, permit_number, new_permit_number, permit_generation, permit_type,
              start_date, end_date, issued_date, void_date, client_hash, plate, vin,
              permit_document_name, service, permit_last_modified_date, pdf)
    ON tps.staged_permit TO pgferry_loader;
GRANT SELECT ON tps.staged_permit, permit.document, permit.permit, etl.journal TO pgferry_worker;
GRANT ALL ON tps.staged_permit, permit.document, permit.permit, etl.journal TO pgferry_owner;
