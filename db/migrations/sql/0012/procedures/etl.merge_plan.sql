-- etl.merge_plan: the SQL fragments etl.merge_table assembles, read from the catalog, with every
-- identifier quoted by format('%I'). Source values are cast to the target column's type when the
-- types differ (a character type without its length: see source_value). Raises 42703 for a
-- source or key column the target cannot take.
CREATE OR REPLACE FUNCTION etl.merge_plan(
    p_source   regclass,
    p_target   regclass,
    p_keys     text[],
    p_exclude  text[])
RETURNS TABLE (
    set_list            text,     -- "c = s.c, " per non-key column (may be empty)
    target_list         text,     -- all merged target columns
    source_list         text,     -- their source values, same order
    key_match           text,     -- t.k = s.k AND ...
    changed             text,     -- ROW(t...) IS DISTINCT FROM ROW(s...), or false
    source_key_list     text,     -- s.k, ... (source types), to find duplicate keys
    source_keys_unique  boolean,  -- a unique index on the source guarantees unique keys
    columns             text[],   -- merged column names ...
    source_values       text[])   -- ... and their source value expressions
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_missing text;
BEGIN
    IF coalesce(cardinality(p_keys), 0) = 0 THEN
        RAISE EXCEPTION 'etl.merge_table: the key must name at least one column'
            USING ERRCODE = 'invalid_column_reference';
    END IF;
    SELECT s.attname INTO v_missing
      FROM pg_attribute AS s
     WHERE s.attrelid = p_source AND s.attnum > 0 AND NOT s.attisdropped
       AND s.attname <> ALL (p_exclude)
       AND NOT EXISTS (SELECT FROM pg_attribute AS t
                        WHERE t.attrelid = p_target AND t.attname = s.attname
                          AND t.attnum > 0 AND NOT t.attisdropped)
     ORDER BY s.attnum
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'etl.merge_table: source column % of % has no column in target %',
                        quote_ident(v_missing), p_source, p_target
            USING ERRCODE = 'undefined_column',
                  HINT = 'Add the column to the target, or name it in p_skip_columns.';
    END IF;
    SELECT k INTO v_missing
      FROM unnest(p_keys) AS k
     WHERE k = ANY (p_exclude)
        OR NOT EXISTS (SELECT FROM pg_attribute AS s
                        WHERE s.attrelid = p_source AND s.attname = k
                          AND s.attnum > 0 AND NOT s.attisdropped)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'etl.merge_table: key column % is not a merged column of source %',
                        quote_ident(v_missing), p_source
            USING ERRCODE = 'undefined_column';
    END IF;

    RETURN QUERY
    WITH merged AS (
        SELECT s.attnum,
               s.attname::text AS name,
               s.attname = ANY (p_keys) AS is_key,
               CASE WHEN s.atttypid = t.atttypid AND s.atttypmod = t.atttypmod
                    THEN format('s.%I', s.attname)
                    -- an explicit cast to varchar(n), char(n) or bit(n) cuts a longer value
                    -- without a word; cast to the type without its length, and the write into
                    -- the column refuses the value (22001), which the merge logs as a bad row
                    WHEN t.atttypid IN ('varchar'::regtype, 'bpchar'::regtype)
                    THEN format('s.%I::pg_catalog.%s', s.attname,
                                CASE t.atttypid WHEN 'varchar'::regtype THEN 'varchar'
                                                ELSE 'bpchar' END)
                    WHEN t.atttypid IN ('bit'::regtype, 'varbit'::regtype)
                    THEN format('s.%I::pg_catalog.varbit', s.attname)
                    ELSE format('s.%I::%s', s.attname, format_type(t.atttypid, t.atttypmod))
               END AS source_value,
               -- types without an equality operator (json, xml, ...) are compared as text
               EXISTS (SELECT FROM pg_operator AS o
                        WHERE o.oprname = '=' AND o.oprleft = t.atttypid
                          AND o.oprright = t.atttypid) AS comparable
          FROM pg_attribute AS s
          JOIN pg_attribute AS t
            ON t.attrelid = p_target AND t.attname = s.attname AND t.attnum > 0 AND NOT t.attisdropped
         WHERE s.attrelid = p_source AND s.attnum > 0 AND NOT s.attisdropped
           AND s.attname <> ALL (p_exclude)
    )
    SELECT coalesce(string_agg(format('%I = %s, ', m.name, m.source_value), '' ORDER BY m.attnum)
                        FILTER (WHERE NOT m.is_key), ''),
           string_agg(format('%I', m.name), ', ' ORDER BY m.attnum),
           string_agg(m.source_value, ', ' ORDER BY m.attnum),
           string_agg(format('t.%I = %s', m.name, m.source_value), ' AND ' ORDER BY m.attnum)
               FILTER (WHERE m.is_key),
           coalesce(format('ROW(%s) IS DISTINCT FROM ROW(%s)',
                           string_agg(CASE WHEN m.comparable THEN format('t.%I', m.name)
                                           ELSE format('t.%I::text', m.name) END,
                                      ', ' ORDER BY m.attnum) FILTER (WHERE NOT m.is_key),
                           string_agg(CASE WHEN m.comparable THEN m.source_value
                                           ELSE format('(%s)::text', m.source_value) END,
                                      ', ' ORDER BY m.attnum) FILTER (WHERE NOT m.is_key)),
                    'false'),
           string_agg(format('s.%I', m.name), ', ' ORDER BY m.attnum) FILTER (WHERE m.is_key),
           EXISTS (SELECT FROM pg_index AS i
                    WHERE i.indrelid = p_source AND i.indisunique AND i.indpred IS NULL
                      AND i.indexprs IS NULL
                      AND ARRAY(SELECT a.attname::text
                                  FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, position)
                                  JOIN pg_attribute AS a
                                    ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                 WHERE k.position <= i.indnkeyatts) <@ p_keys),
           array_agg(m.name ORDER BY m.attnum),
           array_agg(m.source_value ORDER BY m.attnum)
      FROM merged AS m;
END
$function$;

REVOKE ALL ON FUNCTION etl.merge_plan(regclass, regclass, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.merge_plan(regclass, regclass, text[], text[]) TO pgferry_worker, pgferry_owner;
