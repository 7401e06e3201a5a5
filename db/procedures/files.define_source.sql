-- files.define_source: declare (or change) a source of the file importer (seed 004). Where its
-- files come from is not stored: the harness reads PGFERRY_FILES_<NAME>_URL from its
-- environment (ftp://, sftp://, file:///, s3://), credentials included. p_pattern picks the
-- files to import by name; each file's CSV (its header naming columns of p_target_table; the
-- expected header p_header, empty to take any) is merged into p_target_table by p_keys (empty:
-- the target's primary key) with etl.merge_table. p_max_* cap what an archive may unpack to
-- (entries, bytes, unpacked/packed ratio); p_max_attempts retryable failures make a dead letter.
-- Returns the name.
CREATE OR REPLACE FUNCTION files.define_source(
    p_name               text,
    p_target_table       text,
    p_pattern            text    DEFAULT '*',
    p_keys               text[]  DEFAULT '{}',
    p_header             text[]  DEFAULT '{}',
    p_delimiter          text    DEFAULT ',',
    p_encoding           text    DEFAULT 'utf-8',
    p_min_bytes          bigint  DEFAULT 1,
    p_max_unpacked_bytes bigint  DEFAULT 21474836480,
    p_max_entries        integer DEFAULT 1000,
    p_max_ratio          integer DEFAULT 200,
    p_max_attempts       integer DEFAULT 5,
    p_raw_prefix         text    DEFAULT 'raw/')
RETURNS text
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    INSERT INTO files.source AS s (name, target_table, pattern, key_columns, header, delimiter,
                                   encoding, min_bytes, max_unpacked_bytes, max_entries,
                                   max_ratio, max_attempts, raw_prefix)
    VALUES (p_name, p_target_table, p_pattern, p_keys, p_header, p_delimiter, p_encoding,
            p_min_bytes, p_max_unpacked_bytes, p_max_entries, p_max_ratio, p_max_attempts,
            p_raw_prefix)
    ON CONFLICT (name) DO UPDATE
       SET target_table = EXCLUDED.target_table, pattern = EXCLUDED.pattern,
           key_columns = EXCLUDED.key_columns, header = EXCLUDED.header,
           delimiter = EXCLUDED.delimiter, encoding = EXCLUDED.encoding,
           min_bytes = EXCLUDED.min_bytes, max_unpacked_bytes = EXCLUDED.max_unpacked_bytes,
           max_entries = EXCLUDED.max_entries, max_ratio = EXCLUDED.max_ratio,
           max_attempts = EXCLUDED.max_attempts, raw_prefix = EXCLUDED.raw_prefix,
           changed_at = now()
    RETURNING s.name
$function$;

REVOKE ALL ON FUNCTION files.define_source(text, text, text, text[], text[], text, text, bigint,
                                           bigint, integer, integer, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.define_source(text, text, text, text[], text[], text, text,
                                              bigint, bigint, integer, integer, integer, text)
    TO pgferry_owner;
