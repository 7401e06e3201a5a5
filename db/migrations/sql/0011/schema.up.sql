-- pgferry 0011 up: the error log counted per UTC day and cause, for the console's failures page.

-- Every error logged from now on is counted by the trigger etl.count_error_causes (created after
-- this script); the errors already logged are counted here. The log is locked against writers
-- until this revision commits so that no error lands between the count and the trigger.
LOCK TABLE etl.error_log IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE etl.error_cause (
    day            date NOT NULL,       -- UTC day of logged_at
    object_name    text NOT NULL,
    sqlstate       text NOT NULL,
    field          text NOT NULL,       -- etl.error_field, '' when the error names none
    errors         bigint NOT NULL,     -- negative for rows deleted from the log
    first_at       timestamptz,
    last_at        timestamptz,
    last_error_id  bigint
);
COMMENT ON TABLE etl.error_cause IS
    'etl.error_log counted per UTC day and cause, kept by its trigger, folded by etl.compact_error_causes';
CREATE INDEX error_cause_by_day ON etl.error_cause (day);

-- the field as etl.error_field of revision 0011 reads it (the routine is created after this
-- script, so its expression is written out here once)
INSERT INTO etl.error_cause (day, object_name, sqlstate, field, errors, first_at, last_at,
                             last_error_id)
SELECT (e.logged_at AT TIME ZONE 'UTC')::date, e.object_name, e.sqlstate,
       coalesce(nullif(substring(split_part(e.detail, 'field: ', 2) FROM '^[A-Za-z0-9_]+'), ''),
                CASE WHEN split_part(split_part(e.message, 'rejected: ', 2), ':', 1)
                          ~ '^[A-Za-z0-9_]+$'
                     THEN split_part(split_part(e.message, 'rejected: ', 2), ':', 1)
                END, ''),
       count(*), min(e.logged_at), max(e.logged_at), max(e.error_id)
  FROM etl.error_log AS e
 GROUP BY 1, 2, 3, 4;

-- written only by the trigger and the compaction (both SECURITY DEFINER); read through
-- etl.failure_causes
REVOKE ALL ON etl.error_cause FROM PUBLIC;
GRANT ALL ON etl.error_cause TO pgferry_owner;
-- the worker reads every etl table
GRANT SELECT ON etl.error_cause TO pgferry_worker;
