-- pgferry 0014 down (runs after the routines 0014 added are dropped and 0012's
-- etl.define_di_process is created again beside the newer signature, which goes here)
DROP FUNCTION etl.define_di_process(text, text, text, text, text, text, interval, text, text[],
                                    text, text[], text, text, text);
DELETE FROM etl.di_process WHERE kind = 'files';
ALTER TABLE etl.di_process
    DROP CONSTRAINT di_process_files_name_buckets,
    DROP CONSTRAINT di_process_kind_check,
    ADD CONSTRAINT di_process_kind_check CHECK (kind IN ('source_to_stg', 'stg_to_bl')),
    DROP COLUMN source_bucket;
