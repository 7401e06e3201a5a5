-- etl.count_error_causes: keeps etl.error_cause, the count of etl.error_log rows per UTC day and
-- cause (object, SQLSTATE, field), so that etl.failure_causes reads a few hundred counts instead
-- of regrouping the whole error log on every view.
--
-- Each statement that writes the error log appends one row per day and cause it touched: a
-- plain INSERT with no key, so concurrent writers never wait on each other's counts and two
-- transactions logging the same causes in opposite orders cannot deadlock. The rows commit or
-- roll back with the errors they count. etl.compact_error_causes folds them into one row per
-- key later. A delete appends negative counts; a TRUNCATE empties the counts too.
-- No TRY/CATCH here, unlike the other triggers: a failure could not be logged to the table
-- being written, and an error row without its count would leave the counts wrong for good.
CREATE OR REPLACE FUNCTION etl.count_error_causes()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE etl.error_cause;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO etl.error_cause (day, object_name, sqlstate, field, errors, first_at,
                                     last_at, last_error_id)
        SELECT (n.logged_at AT TIME ZONE 'UTC')::date, n.object_name, n.sqlstate,
               coalesce(etl.error_field(n.message, n.detail), ''), count(*), min(n.logged_at),
               max(n.logged_at), max(n.error_id)
          FROM new_rows AS n
         GROUP BY 1, 2, 3, 4;
    ELSE
        INSERT INTO etl.error_cause (day, object_name, sqlstate, field, errors)
        SELECT (o.logged_at AT TIME ZONE 'UTC')::date, o.object_name, o.sqlstate,
               coalesce(etl.error_field(o.message, o.detail), ''), -count(*)
          FROM old_rows AS o
         GROUP BY 1, 2, 3, 4;
    END IF;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION etl.count_error_causes() FROM PUBLIC;

CREATE OR REPLACE TRIGGER count_error_causes_inserted
    AFTER INSERT ON etl.error_log
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION etl.count_error_causes();

CREATE OR REPLACE TRIGGER count_error_causes_deleted
    AFTER DELETE ON etl.error_log
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION etl.count_error_causes();

CREATE OR REPLACE TRIGGER count_error_causes_truncated
    AFTER TRUNCATE ON etl.error_log
    FOR EACH STATEMENT EXECUTE FUNCTION etl.count_error_causes();
