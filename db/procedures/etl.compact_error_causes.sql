-- etl.compact_error_causes: folds the rows etl.count_error_causes appended into one row per UTC
-- day and cause, so that etl.failure_causes stays a read of a few hundred rows however many
-- errors were logged one statement at a time. Run by every worker's housekeeping (each tick);
-- safe to run anywhere, any time: the counts it deletes and the sums it inserts commit together,
-- so a reader sees either, never both or neither. One compactor at a time (the lock is taken
-- without waiting: when another holds it, the work is being done). Returns the rows folded.
CREATE OR REPLACE FUNCTION etl.compact_error_causes()
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_folded bigint;
BEGIN
    BEGIN
        -- self-exclusive, and no conflict with the INSERTs of the error log's trigger
        LOCK TABLE etl.error_cause IN SHARE UPDATE EXCLUSIVE MODE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    WITH crowded AS (
        SELECT c.day, c.object_name, c.sqlstate, c.field
          FROM etl.error_cause AS c
         GROUP BY c.day, c.object_name, c.sqlstate, c.field
        HAVING count(*) > 1
    ), folded AS (
        DELETE FROM etl.error_cause AS c
         USING crowded AS k
         WHERE (c.day, c.object_name, c.sqlstate, c.field)
             = (k.day, k.object_name, k.sqlstate, k.field)
        RETURNING c.*
    ), summed AS (
        INSERT INTO etl.error_cause (day, object_name, sqlstate, field, errors, first_at,
                                     last_at, last_error_id)
        SELECT f.day, f.object_name, f.sqlstate, f.field, sum(f.errors), min(f.first_at),
               max(f.last_at), max(f.last_error_id)
          FROM folded AS f
         GROUP BY f.day, f.object_name, f.sqlstate, f.field
        -- a cause whose errors were all deleted leaves no row
        HAVING sum(f.errors) <> 0
    )
    -- a data-modifying WITH runs to completion whether or not it is read
    SELECT count(*) INTO v_folded FROM folded;
    RETURN v_folded;
END
$function$;

REVOKE ALL ON FUNCTION etl.compact_error_causes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.compact_error_causes() TO pgferry_worker, pgferry_owner;
