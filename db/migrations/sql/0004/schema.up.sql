-- pgferry 0004: the shipment pipeline (ERP -> delivery copy -> DeTrack jobs).

CREATE SCHEMA erp;
COMMENT ON SCHEMA erp IS 'The ERP''s shipments and packages (the source; the ERP writes them)';
CREATE SCHEMA delivery;
COMMENT ON SCHEMA delivery IS 'The delivery side: settings, the shipment copy, DeTrack jobs';

-- Shaped on Enterprise32's Shipment and Package tables. Loosely typed on purpose: the ERP
-- writes what it writes; the delivery copy below enforces what DeTrack needs.
CREATE TABLE erp.shipment (
    shipment_number          bigint PRIMARY KEY,
    job_number               text,        -- becomes the DeTrack DO number
    ship_via                 text,
    is_partial               boolean NOT NULL DEFAULT false,
    ship_name                text,
    ship_attention           text,
    ship_address_1           text,
    ship_address_2           text,
    ship_address_3           text,
    ship_city                text,
    ship_postal_code         text,
    ship_country             text,
    ship_zone                text,
    ship_phone               text,
    ship_email               text,
    ship_instructions        text,
    scheduled_ship_date      date,
    scheduled_ship_quantity  integer,
    shipped                  boolean NOT NULL DEFAULT false,
    delivery_status          text,        -- written back from DeTrack
    delivered_at             timestamptz,
    last_modified            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE erp.package (
    package_id       bigint PRIMARY KEY,
    shipment_number  bigint NOT NULL,
    ship_method      text,
    sku              text,
    description      text,
    quantity         integer
);
CREATE INDEX package_by_shipment ON erp.package (shipment_number);

-- One row: which ERP shipments are DeTrack deliveries.
CREATE TABLE delivery.settings (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- the seed's code says 10005, its readme also 1005: both, editable
    ship_via_codes   text[] NOT NULL DEFAULT ARRAY['1005', '10005'],
    require_partial  boolean NOT NULL DEFAULT true
);
INSERT INTO delivery.settings DEFAULT VALUES;

CREATE TABLE delivery.assignment_rule (
    rule_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    zone             text,
    postcode_prefix  text,
    vehicle          text NOT NULL,   -- the DeTrack vehicle name, spelled as in the dashboard
    priority         integer NOT NULL DEFAULT 100,
    CONSTRAINT assignment_rule_matches_something CHECK (zone IS NOT NULL OR postcode_prefix IS NOT NULL)
);

-- The delivery copy (the seed's DTrack.dbo.Shipment): ERP column names, DeTrack's limits.
CREATE TABLE delivery.shipment (
    shipment_number      bigint PRIMARY KEY,
    job_number           varchar(50) NOT NULL,
    scheduled_ship_date  date NOT NULL,
    ship_name            varchar(100),
    ship_attention       varchar(100),
    ship_address_1       varchar(150) NOT NULL,
    ship_address_2       varchar(150),
    ship_address_3       varchar(150),
    ship_city            varchar(60),
    ship_postal_code     varchar(15),
    ship_country         varchar(60),
    ship_zone            varchar(30),
    ship_phone           varchar(30),
    ship_email           varchar(254),
    ship_instructions    varchar(500),
    inserted_at          timestamptz,
    updated_at           timestamptz,
    deleted_at           timestamptz     -- stopped qualifying or deleted in the ERP: cancel
);

-- The API-ready jobs (the seed's Dtrack_Shipping), one per shipment, with dispatch state.
CREATE TABLE delivery.job (
    job_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_number    bigint NOT NULL UNIQUE,
    do_number          text NOT NULL,
    delivery_date      date NOT NULL,
    postal_code        text,
    zone               text,
    payload            jsonb NOT NULL,    -- the DeTrack job fields
    assign_to          text,              -- vehicle name
    desired            text NOT NULL DEFAULT 'present' CHECK (desired IN ('present', 'absent')),
    remote             text NOT NULL DEFAULT 'none' CHECK (remote IN ('none', 'created', 'deleted')),
    remote_do_number   text,              -- the key DeTrack knows it by
    remote_date        date,
    detrack_id         text,
    version            integer NOT NULL DEFAULT 1,
    synced_version     integer NOT NULL DEFAULT 0,
    sync_state         text NOT NULL DEFAULT 'pending'
                       CHECK (sync_state IN ('pending', 'synced', 'failed', 'dead')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    lease_owner        text,
    lease_expires_at   timestamptz,
    last_status        integer,           -- HTTP status of the last call
    last_response      jsonb,             -- its full body (JSON, or {"raw": text})
    last_error         text,
    delivery_status    text,              -- DeTrack's status: info_recv, dispatched, completed, ...
    delivered_at       timestamptz,
    status_checked_at  timestamptz,
    inserted_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX job_pending ON delivery.job (job_id) WHERE sync_state = 'pending';
CREATE INDEX job_awaiting_status ON delivery.job (status_checked_at NULLS FIRST)
    WHERE remote = 'created';
CREATE INDEX job_remote_key ON delivery.job (remote_do_number, remote_date) WHERE remote = 'created';

-- Privileges: the ERP (as the loader role) writes its own tables; the worker reads everything
-- and changes job state only through the SECURITY DEFINER routines.
GRANT USAGE ON SCHEMA erp TO pgferry_loader, pgferry_worker, pgferry_owner;
GRANT USAGE ON SCHEMA delivery TO pgferry_worker, pgferry_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON erp.shipment, erp.package TO pgferry_loader;
GRANT SELECT ON ALL TABLES IN SCHEMA erp, delivery TO pgferry_worker;
GRANT ALL ON ALL TABLES IN SCHEMA erp, delivery TO pgferry_owner;
