-- etl.merge_catalog_key: the merge key read from the catalog: the columns of the target's primary
-- key, or else of its first plain unique index, whose columns the source all has.
CREATE OR REPLACE FUNCTION etl.merge_catalog_key(p_source regclass, p_target regclass)
RETURNS text[]
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_source_columns text[];
    v_key            text[];
BEGIN
    SELECT array_agg(attname::text) INTO v_source_columns
      FROM pg_attribute WHERE attrelid = p_source AND attnum > 0 AND NOT attisdropped;
    FOR v_key IN
        SELECT ARRAY(SELECT a.attname::text
                       FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, position)
                       JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                      WHERE k.position <= i.indnkeyatts
                      ORDER BY k.position)
          FROM pg_index AS i
         WHERE i.indrelid = p_target AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
         ORDER BY i.indisprimary DESC, i.indexrelid
    LOOP
        IF v_key <@ v_source_columns THEN
            RETURN v_key;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'etl.merge_table: no key to merge % into %', p_source, p_target
        USING ERRCODE = 'invalid_column_reference',
              HINT = 'Pass p_keys, or give the target a primary key or unique constraint on columns the source has.';
END
$function$;

REVOKE ALL ON FUNCTION etl.merge_catalog_key(regclass, regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.merge_catalog_key(regclass, regclass) TO pgferry_worker, pgferry_owner;
