-- pgferry 0012 up: the data-integration (DI) processes of the migration hub (seed 001).

-- One row per DI process, beside the etl.pipeline row of the same name that holds its CDC window
-- settings (window_overlap, full_reload) and owns its runs (etl.process). Declared and changed
-- by the schema owner with etl.define_di_process; read by the worker.
CREATE TABLE etl.di_process (
    name            text PRIMARY KEY REFERENCES etl.pipeline (name),
    -- source_to_stg: a source table's window through the layer into STG; stg_to_bl: the
    -- project's SELECT (db/transforms/<schema>.<table>.sql) over STG merged into a BL table
    kind            text NOT NULL DEFAULT 'source_to_stg'
                    CHECK (kind IN ('source_to_stg', 'stg_to_bl')),
    -- the source connection's name: the worker reads PGFERRY_SOURCE_<NAME>_URL; never stored
    source          text CHECK (source ~ '^[a-z][a-z0-9_]{0,62}$'),
    source_table    text CHECK (source_table ~ '^[^.]+(\.[^.]+)?$'),  -- schema.table
    source_query    text,                                              -- or a SELECT
    cdc_column      text,       -- NULL: every run reads the whole table (a full reload)
    deleted_column  text,       -- the source's soft-delete timestamp, if it has one
    target_table    text NOT NULL,                              -- the STG (or BL) table
    key_columns     text[] NOT NULL DEFAULT '{}',                      -- empty: its primary key
    process_group   text NOT NULL DEFAULT 'default',
    depends_on      text[] NOT NULL DEFAULT '{}',
    CONSTRAINT di_process_reads_a_source
        CHECK (kind <> 'source_to_stg'
               OR (source IS NOT NULL AND (source_table IS NULL) <> (source_query IS NULL))),
    CONSTRAINT di_process_transforms_read_no_source
        CHECK (kind <> 'stg_to_bl'
               OR (source IS NULL AND source_table IS NULL AND source_query IS NULL)),
    CONSTRAINT di_process_not_its_own_dependency CHECK (NOT name = ANY (depends_on))
);
COMMENT ON TABLE etl.di_process IS
    'Data-integration processes of the migration hub: source, CDC column, STG target, key, group, dependencies';

REVOKE ALL ON etl.di_process FROM PUBLIC;
GRANT ALL ON etl.di_process TO pgferry_owner;
GRANT SELECT ON etl.di_process TO pgferry_worker;
