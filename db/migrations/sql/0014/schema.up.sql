-- pgferry 0014 up: files CDC in the migration hub (seed 001): a DI process of kind 'files'
-- copies the objects a source table names (its key column, in the window of its CDC column)
-- from a source bucket to the target bucket (target_table holds 's3://bucket/prefix').
ALTER TABLE etl.di_process
    ADD COLUMN source_bucket text CHECK (source_bucket ~ '^s3://[^/]+(/.*)?$'),
    DROP CONSTRAINT di_process_kind_check,
    ADD CONSTRAINT di_process_kind_check
        CHECK (kind IN ('source_to_stg', 'stg_to_bl', 'files')),
    ADD CONSTRAINT di_process_files_name_buckets
        CHECK (kind <> 'files'
               OR (source IS NOT NULL AND source_table IS NOT NULL AND cdc_column IS NOT NULL
                   AND source_bucket IS NOT NULL AND target_table ~ '^s3://[^/]+(/.*)?$'));
COMMENT ON COLUMN etl.di_process.source_bucket IS
    'files: the bucket (s3://bucket/prefix) the source table''s keys name';

-- etl.define_di_process takes p_source_bucket now: the old signature goes (the procedure files
-- of this revision create the new one)
DROP FUNCTION etl.define_di_process(text, text, text, text, text, text, interval, text, text[],
                                    text, text[], text, text);
