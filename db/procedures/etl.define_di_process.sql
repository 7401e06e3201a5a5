-- etl.define_di_process: declare (or change) one data-integration process of the migration hub
-- (seed 001): the etl.pipeline row its runs belong to (one running at a time, windows from the
-- last succeeded run, covered again after a failure) and its etl.di_process metadata, in one
-- call. Source to STG: p_source names the connection (PGFERRY_SOURCE_<NAME>_URL in the worker's
-- environment, never stored), p_source_table the table there (schema.table) or p_source_query a
-- SELECT; p_cdc_column the source's change timestamp (NULL: every run reloads the whole table
-- and marks rows gone from it as deleted), p_window_overlap how far each window reaches back
-- (seed 001: seven days, daily); p_deleted_column the source's soft-delete timestamp, if any.
-- p_target_table the STG table, p_keys its key (empty: its primary key). Files processes
-- (etl.define_file_process) also name p_source_bucket. Returns the name.
CREATE OR REPLACE FUNCTION etl.define_di_process(
    p_name            text,
    p_target_table    text,
    p_source          text DEFAULT NULL,
    p_source_table    text DEFAULT NULL,
    p_source_query    text DEFAULT NULL,
    p_cdc_column      text DEFAULT NULL,
    p_window_overlap  interval DEFAULT interval '0',
    p_deleted_column  text DEFAULT NULL,
    p_keys            text[] DEFAULT '{}',
    p_group           text DEFAULT 'default',
    p_depends_on      text[] DEFAULT '{}',
    p_kind            text DEFAULT 'source_to_stg',
    p_description     text DEFAULT '',
    p_source_bucket   text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    INSERT INTO etl.pipeline AS p (name, description, window_overlap, full_reload)
    VALUES (p_name, p_description, p_window_overlap, p_cdc_column IS NULL)
    ON CONFLICT (name) DO UPDATE
       SET description = excluded.description, window_overlap = excluded.window_overlap,
           full_reload = excluded.full_reload;
    INSERT INTO etl.di_process AS d (name, kind, source, source_table, source_query, cdc_column,
                                     deleted_column, target_table, key_columns, process_group,
                                     depends_on, source_bucket)
    VALUES (p_name, p_kind, p_source, p_source_table, p_source_query, p_cdc_column,
            p_deleted_column, p_target_table, p_keys, p_group, p_depends_on, p_source_bucket)
    ON CONFLICT (name) DO UPDATE
       SET kind = excluded.kind, source = excluded.source, source_table = excluded.source_table,
           source_query = excluded.source_query, cdc_column = excluded.cdc_column,
           deleted_column = excluded.deleted_column, target_table = excluded.target_table,
           key_columns = excluded.key_columns, process_group = excluded.process_group,
           depends_on = excluded.depends_on, source_bucket = excluded.source_bucket;
    RETURN p_name;
END
$function$;

REVOKE ALL ON FUNCTION etl.define_di_process(text, text, text, text, text, text, interval, text,
                                             text[], text, text[], text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.define_di_process(text, text, text, text, text, text, interval,
                                                text, text[], text, text[], text, text, text)
    TO pgferry_owner;
