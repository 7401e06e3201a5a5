-- etl.define_file_process: declare (or change) a files-CDC process of the migration hub (seed
-- 001: "select source paths of all files that appeared after certain timestamp; copy all these
-- files"): the rows of p_source_table (on connection p_source) whose p_cdc_column falls in the
-- run's window name, in p_key_column, objects of p_source_bucket ('s3://bucket/prefix'); each is
-- copied to p_target_bucket under the same key, checksummed (SHA-256) and idempotent: an object
-- the target already holds with the same size and SHA-256 is not copied again. The window of a
-- daily run should reach back two days (p_window_overlap), as the seed says: every file is then
-- looked at twice, and a missed day is covered by the next run. Returns the name.
CREATE OR REPLACE FUNCTION etl.define_file_process(
    p_name            text,
    p_source          text,
    p_source_table    text,
    p_key_column      text,
    p_source_bucket   text,
    p_target_bucket   text,
    p_cdc_column      text DEFAULT 'created_at',
    p_window_overlap  interval DEFAULT interval '0',
    p_group           text DEFAULT 'default',
    p_depends_on      text[] DEFAULT '{}',
    p_description     text DEFAULT '')
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    RETURN etl.define_di_process(p_name, p_target_bucket, p_source => p_source,
                                 p_source_table => p_source_table, p_cdc_column => p_cdc_column,
                                 p_window_overlap => p_window_overlap,
                                 p_keys => ARRAY[p_key_column], p_group => p_group,
                                 p_depends_on => p_depends_on, p_kind => 'files',
                                 p_description => p_description,
                                 p_source_bucket => p_source_bucket);
END
$function$;

REVOKE ALL ON FUNCTION etl.define_file_process(text, text, text, text, text, text, text, interval,
                                               text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.define_file_process(text, text, text, text, text, text, text,
                                                  interval, text, text[], text)
    TO pgferry_owner;
