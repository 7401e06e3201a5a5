-- etl.merge_table: the standard, metadata-driven merge of a staging table (or view) into a
-- target table by key. Set-based: one UPDATE of the rows whose values really changed and one
-- INSERT of the new rows per call; optionally one UPDATE that marks rows missing from a full load
-- as deleted. Returns the counts.
--
-- * Columns come from the catalog: every source column except p_skip_columns and the tracking
--   columns is merged into the target column of the same name (cast to the target's type).
--   A source column the target lacks is an error (42703).
-- * Keys: p_keys, or else the target's primary key / first unique constraint whose columns the
--   source has (42P10 when there is none).
-- * Tracking: the target must have inserted_at and updated_at (and deleted_at for
--   p_mark_deletes) timestamptz columns; this call stamps them with one timestamp. A
--   soft-deleted row that reappears is revived (deleted_at cleared) and counts as updated.
-- * Only real changes count: (target columns) IS DISTINCT FROM (source columns), so NULL to NULL
--   is no change and 'A' to 'a' or 'a' to 'a ' is.
-- * p_update_changed false makes it insert-only (append-only targets such as issued permits): a
--   row whose key already exists is left as it is and counted unchanged.
-- * Error handling, log-and-continue: when the set-based statements fail, they are rolled back
--   and the source is merged in halves, each half set-based in its own subtransaction, a half
--   that fails halved again down to single rows: with k bad rows among n, about 2k log2(n)
--   statements instead of one per row (one bad row in a million: about 40, not a million).
--   Each failing row (bad value, constraint violation, duplicate key in the source) is written
--   to etl.error_log with its key, payload and the failing field, and counted as failed. The
--   good rows still land.
-- * SECURITY INVOKER on purpose: the caller needs privileges on source and target.
CREATE OR REPLACE FUNCTION etl.merge_table(
    p_source        regclass,
    p_target        regclass,
    p_keys          text[]  DEFAULT NULL,
    p_mark_deletes  boolean DEFAULT false,
    p_process_id    bigint  DEFAULT NULL,
    p_skip_columns  text[]  DEFAULT '{}',
    p_update_changed boolean DEFAULT true)
RETURNS TABLE (inserted bigint, updated bigint, unchanged bigint, deleted bigint, failed bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    -- %1$s target, %2$s SET list, %3$s revive SET, %4$s source, %5$s key match, %6$s changed,
    -- %7$s revive condition, %8$s row filter; $1 the stamp, $2 and $3 the fallback's row range
    c_update constant text := 'UPDATE %1$s AS t SET %2$s updated_at = $1%3$s FROM %4$s AS s'
                              ' WHERE %5$s AND (%6$s%7$s)%8$s';
    -- %1$s target, %2$s target columns, %3$s source values, %4$s source, %5$s key match,
    -- %6$s row filter
    c_insert constant text := 'INSERT INTO %1$s AS t (%2$s, inserted_at, updated_at)'
                              ' SELECT %3$s, $1, $1 FROM %4$s AS s'
                              ' WHERE NOT EXISTS (SELECT FROM %1$s AS t WHERE %5$s)%6$s';
    c_rows   constant text := 'pg_temp.pgferry_merge_rows';
    -- rows $2..$3 of the fallback's numbering whose key is unique in the source
    c_range  constant text := ' AND s.pgferry_row BETWEEN $2 AND $3 AND s.pgferry_key_rows = 1';
    v_stamp       timestamptz := clock_timestamp();
    v_keys        text[];
    v_plan        record;
    v_revive_set  text := '';
    v_revive_if   text := '';
    v_total       bigint;
    v_count       bigint;
    v_has_dupes   boolean;
    v_row         record;
    v_ranges      int8range[];
    v_range       int8range;
    v_middle      bigint;
    v_updated     bigint;
    v_key         jsonb;
    v_state       text;
    v_message     text;
    v_detail      text;
    v_hint        text;
    v_context     text;
    v_column      text;
BEGIN
    IF p_source IS NULL OR p_target IS NULL THEN
        RAISE EXCEPTION 'etl.merge_table: source and target must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOR v_column IN
        SELECT c FROM unnest(ARRAY['inserted_at', 'updated_at']
                             || CASE WHEN p_mark_deletes THEN ARRAY['deleted_at'] END) AS c
         WHERE NOT EXISTS (SELECT FROM pg_attribute
                            WHERE attrelid = p_target AND attname = c AND attnum > 0
                              AND NOT attisdropped)
    LOOP
        RAISE EXCEPTION 'etl.merge_table: target % has no tracking column %', p_target, v_column
            USING ERRCODE = 'undefined_column',
                  HINT = 'The target needs inserted_at and updated_at timestamptz columns, '
                         'and deleted_at to mark deletes.';
    END LOOP;
    IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = p_target AND attname = 'deleted_at'
                                          AND attnum > 0 AND NOT attisdropped) THEN
        v_revive_set := ', deleted_at = NULL';
        v_revive_if := ' OR t.deleted_at IS NOT NULL';
    END IF;

    v_keys := coalesce(p_keys, etl.merge_catalog_key(p_source, p_target));
    SELECT * INTO v_plan
      FROM etl.merge_plan(p_source, p_target, v_keys,
                          p_skip_columns || ARRAY['inserted_at', 'updated_at', 'deleted_at']);
    inserted := 0; updated := 0; deleted := 0; failed := 0;
    EXECUTE format('SELECT count(*) FROM %s', p_source) INTO v_total;

    BEGIN
        IF NOT v_plan.source_keys_unique THEN
            EXECUTE format('SELECT EXISTS (SELECT FROM %s AS s GROUP BY %s HAVING count(*) > 1)',
                           p_source, v_plan.source_key_list) INTO v_has_dupes;
            IF v_has_dupes THEN
                RAISE EXCEPTION 'duplicate keys in the source' USING ERRCODE = 'cardinality_violation';
            END IF;
        END IF;
        IF p_update_changed THEN
            EXECUTE format(c_update, p_target, v_plan.set_list, v_revive_set, p_source,
                           v_plan.key_match, v_plan.changed, v_revive_if, '') USING v_stamp;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            updated := v_count;
        END IF;
        EXECUTE format(c_insert, p_target, v_plan.target_list, v_plan.source_list, p_source,
                       v_plan.key_match, '') USING v_stamp;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        inserted := v_count;
    EXCEPTION WHEN OTHERS THEN
        -- Everything since BEGIN is rolled back: merge in halves to isolate the bad rows.
        updated := 0; inserted := 0;
        IF to_regclass('pg_temp.pgferry_merge_rows') IS NOT NULL THEN
            DROP TABLE pg_temp.pgferry_merge_rows;
        END IF;
        EXECUTE format('CREATE TEMP TABLE pgferry_merge_rows ON COMMIT DROP AS'
                       ' SELECT row_number() OVER () AS pgferry_row,'
                       ' count(*) OVER (PARTITION BY %s) AS pgferry_key_rows, s.* FROM %s AS s',
                       v_plan.source_key_list, p_source);
        CREATE INDEX ON pg_temp.pgferry_merge_rows (pgferry_row);
        ANALYZE pg_temp.pgferry_merge_rows;
        -- every row of a key the source holds more than once is refused: none can be merged
        FOR v_row IN
            SELECT r.pgferry_row, r.pgferry_key_rows,
                   to_jsonb(r) - 'pgferry_row' - 'pgferry_key_rows' AS payload
              FROM pg_temp.pgferry_merge_rows AS r
             WHERE r.pgferry_key_rows > 1
             ORDER BY r.pgferry_row
        LOOP
            v_key := (SELECT jsonb_object_agg(k, v_row.payload -> k) FROM unnest(v_keys) AS k);
            PERFORM etl.log_error(
                p_object_name => 'etl.merge_table',
                p_sqlstate    => '21000',
                p_message     => format('etl.merge_table: %s rows of the source have key %s;'
                                        ' none merged', v_row.pgferry_key_rows, v_key),
                p_table_name  => p_target::text,
                p_row_key     => v_key,
                p_row_payload => v_row.payload,
                p_process_id  => p_process_id);
            failed := failed + 1;
        END LOOP;
        -- a stack of row ranges still to merge, the first one first
        v_ranges := CASE WHEN v_total > 0 THEN ARRAY[int8range(1, v_total, '[]')] ELSE '{}' END;
        WHILE cardinality(v_ranges) > 0 LOOP
            v_range := v_ranges[cardinality(v_ranges)];
            v_ranges := v_ranges[1:cardinality(v_ranges) - 1];
            BEGIN
                v_updated := 0;
                IF p_update_changed THEN
                    EXECUTE format(c_update, p_target, v_plan.set_list, v_revive_set, c_rows,
                                   v_plan.key_match, v_plan.changed, v_revive_if, c_range)
                        USING v_stamp, lower(v_range), upper(v_range) - 1;
                    GET DIAGNOSTICS v_updated = ROW_COUNT;
                END IF;
                EXECUTE format(c_insert, p_target, v_plan.target_list, v_plan.source_list, c_rows,
                               v_plan.key_match, c_range)
                    USING v_stamp, lower(v_range), upper(v_range) - 1;
                GET DIAGNOSTICS v_count = ROW_COUNT;
                -- counted only once both statements held: a variable is not rolled back
                updated := updated + v_updated;
                inserted := inserted + v_count;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
                    v_context = PG_EXCEPTION_CONTEXT, v_column = COLUMN_NAME;
                IF upper(v_range) - lower(v_range) > 1 THEN
                    -- halve: the lower half goes on top, so rows are tried in source order
                    v_middle := (lower(v_range) + upper(v_range)) / 2;
                    v_ranges := v_ranges || int8range(v_middle, upper(v_range))
                                         || int8range(lower(v_range), v_middle);
                ELSE
                    SELECT r.pgferry_row,
                           to_jsonb(r) - 'pgferry_row' - 'pgferry_key_rows' AS payload
                      INTO v_row
                      FROM pg_temp.pgferry_merge_rows AS r
                     WHERE r.pgferry_row = lower(v_range);
                    v_key := (SELECT jsonb_object_agg(k, v_row.payload -> k)
                                FROM unnest(v_keys) AS k);
                    v_column := coalesce(nullif(v_column, ''),
                                         etl.merge_find_bad_field(v_row.pgferry_row,
                                                                  v_plan.columns,
                                                                  v_plan.source_values),
                                         -- too long for a varchar(n)/char(n): the write refused it
                                         CASE WHEN v_state = '22001'
                                              THEN etl.find_overlong_field(p_target, v_row.payload)
                                         END);
                    PERFORM etl.log_error(
                        p_object_name => 'etl.merge_table',
                        p_sqlstate    => v_state,
                        p_message     => v_message,
                        p_detail      => concat_ws('; ', nullif(v_detail, ''),
                                                   'field: ' || v_column),
                        p_hint        => v_hint,
                        p_context     => v_context,
                        p_table_name  => p_target::text,
                        p_row_key     => v_key,
                        p_row_payload => v_row.payload,
                        p_process_id  => p_process_id);
                    failed := failed + 1;
                END IF;
            END;
        END LOOP;
        DROP TABLE pg_temp.pgferry_merge_rows;
    END;

    IF p_mark_deletes THEN
        EXECUTE format('UPDATE %s AS t SET deleted_at = $1, updated_at = $1'
                       ' WHERE t.deleted_at IS NULL AND NOT EXISTS (SELECT FROM %s AS s WHERE %s)',
                       p_target, p_source, v_plan.key_match)
            USING v_stamp;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        deleted := v_count;
    END IF;
    unchanged := v_total - inserted - updated - failed;
    RETURN NEXT;
END
$function$;

REVOKE ALL ON FUNCTION etl.merge_table(regclass, regclass, text[], boolean, bigint, text[], boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.merge_table(regclass, regclass, text[], boolean, bigint, text[], boolean)
    TO pgferry_worker, pgferry_owner;
