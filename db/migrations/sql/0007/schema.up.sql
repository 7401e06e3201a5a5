-- pgferry 0007: the ERP's triggers record which shipments a statement touched, the worker copies
-- and maps them (delivery.sync_erp_changes). One row per ERP statement: the numbers as an array
-- (stored uncompressed: compressing a million numbers costs the ERP more than it saves). A sync
-- takes a large row in slices and only moves `taken` on, so the array is written once.
CREATE TABLE delivery.erp_change (
    change_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_table      text NOT NULL
                      CHECK (source_table IN ('erp.shipment', 'erp.package', 'delivery.settings')),
    shipment_numbers  bigint[] NOT NULL,
    shipment_count    integer NOT NULL CHECK (shipment_count > 0),
    taken             integer NOT NULL DEFAULT 0 CHECK (taken >= 0 AND taken < shipment_count),
    queued_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE delivery.erp_change ALTER COLUMN shipment_numbers SET STORAGE EXTERNAL;
COMMENT ON TABLE delivery.erp_change IS
    'ERP statements whose shipments wait to be copied and mapped (delivery.sync_erp_changes)';

GRANT SELECT ON delivery.erp_change TO pgferry_worker;
GRANT ALL ON delivery.erp_change TO pgferry_owner;

-- The seed and SPEC call the API-ready jobs table dtrack_shipping: the name, for readers of both.
CREATE VIEW delivery.dtrack_shipping AS SELECT * FROM delivery.job;
COMMENT ON VIEW delivery.dtrack_shipping IS
    'The seed''s name for delivery.job: DeTrack-ready jobs with their sync and delivery status';
GRANT SELECT ON delivery.dtrack_shipping TO pgferry_worker;
GRANT ALL ON delivery.dtrack_shipping TO pgferry_owner;
