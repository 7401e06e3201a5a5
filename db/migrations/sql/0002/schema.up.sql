-- pgferry 0002: CDC window settings per pipeline, masking rules for development extracts.

ALTER TABLE etl.pipeline
    -- start each window this much before the last successful window ended (seed 001: capture the
    -- last 7 days daily; the merge writes only real changes, so the overlap is harmless)
    ADD COLUMN window_overlap interval NOT NULL DEFAULT interval '0'
        CHECK (window_overlap >= interval '0'),
    -- small tables: every window starts at window_origin (a full reload)
    ADD COLUMN full_reload boolean NOT NULL DEFAULT false;

CREATE TABLE etl.mask_rule (
    table_name   text NOT NULL,   -- as regclass prints it: schema-qualified unless on search_path
    column_name  text NOT NULL,
    mask         text NOT NULL CHECK (mask IN ('phone', 'hash', 'email', 'null', 'keep')),
    PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE etl.mask_rule IS 'How `harness extract --obfuscate` masks each sensitive column';

REVOKE ALL ON etl.mask_rule FROM PUBLIC;
GRANT SELECT ON etl.mask_rule TO pgferry_worker;
GRANT ALL ON etl.mask_rule TO pgferry_owner;
