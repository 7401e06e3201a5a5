-- etl.failure_causes: etl.error_log grouped by cause (object, SQLSTATE, field as etl.error_field
-- reads it) over [p_from, p_to), most frequent first, with the latest message of each: what
-- failed, not one row per failure.
--
-- Whole UTC days of the range are read from etl.error_cause, the counts the error log's trigger
-- keeps (a few rows per day and cause, whatever the log's length); only the parts of a day at
-- either end of a range that does not start or end at midnight UTC are counted from the log
-- itself, through its time index. The console's ranges are whole days. Counts follow deletes
-- from the log; first and last times and the last message are of the errors ever logged.
CREATE OR REPLACE FUNCTION etl.failure_causes(p_from timestamptz DEFAULT NULL,
                                              p_to timestamptz DEFAULT NULL)
RETURNS TABLE (object_name text, sqlstate text, field text, errors bigint,
               first_at timestamptz, last_at timestamptz, last_message text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH whole_days AS (
        -- [from_day, to_day): the days the range covers from midnight to midnight (UTC)
        SELECT CASE WHEN p_from IS NULL THEN '-infinity'::date
                    WHEN ((p_from AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC') = p_from
                    THEN (p_from AT TIME ZONE 'UTC')::date
                    ELSE (p_from AT TIME ZONE 'UTC')::date + 1 END AS from_day,
               coalesce((p_to AT TIME ZONE 'UTC')::date, 'infinity'::date) AS to_day
    ), edges AS (
        -- the log read directly: [p_from, from_day) and [to_day, p_to), empty without a bound;
        -- the second starts no earlier than from_day so a range inside one day is read once
        SELECT p_from AS lower_from,
               least(p_to, d.from_day::timestamp AT TIME ZONE 'UTC') AS lower_to,
               greatest(p_from, d.to_day::timestamp AT TIME ZONE 'UTC',
                        d.from_day::timestamp AT TIME ZONE 'UTC') AS upper_from,
               p_to AS upper_to
          FROM whole_days AS d
    ), counted AS (
        SELECT c.object_name, c.sqlstate, c.field, c.errors, c.first_at, c.last_at,
               c.last_error_id
          FROM etl.error_cause AS c, whole_days AS d
         WHERE c.day >= d.from_day AND c.day < d.to_day
        UNION ALL
        SELECT e.object_name, e.sqlstate, coalesce(etl.error_field(e.message, e.detail), ''),
               1, e.logged_at, e.logged_at, e.error_id
          FROM etl.error_log AS e, edges AS b
         WHERE (e.logged_at >= b.lower_from AND e.logged_at < b.lower_to)
            OR (e.logged_at >= b.upper_from AND e.logged_at < b.upper_to)
    ), causes AS (
        SELECT c.object_name, c.sqlstate, c.field, sum(c.errors)::bigint AS errors,
               min(c.first_at) AS first_at, max(c.last_at) AS last_at,
               max(c.last_error_id) AS last_id
          FROM counted AS c
         GROUP BY c.object_name, c.sqlstate, c.field
        HAVING sum(c.errors) > 0
    )
    -- the latest message of a cause is read once per cause, by its newest error_id
    SELECT c.object_name, c.sqlstate, nullif(c.field, ''), c.errors, c.first_at, c.last_at,
           l.message
      FROM causes AS c
      LEFT JOIN etl.error_log AS l ON l.error_id = c.last_id
     ORDER BY 4 DESC, 1, 2, 3
$function$;

REVOKE ALL ON FUNCTION etl.failure_causes(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.failure_causes(timestamptz, timestamptz)
    TO pgferry_viewer, pgferry_owner;
