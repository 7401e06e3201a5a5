-- etl.error_field: the column a logged error names, where its message or detail names one:
-- etl.merge_table's 'field: <column>' in the detail, permit.claim_batch's
-- 'rejected: <field>: ...' in the message. NULL when neither does. The one definition that
-- etl.failures filters by, etl.failure_causes groups by and etl.count_error_causes counts by.
-- Immutable and invoker-rights, every call schema-qualified: it reads nothing.
CREATE OR REPLACE FUNCTION etl.error_field(p_message text, p_detail text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $function$
    SELECT coalesce(
               nullif(pg_catalog.substring(pg_catalog.split_part(p_detail, 'field: ', 2),
                                                      '^[A-Za-z0-9_]+'), ''),
               CASE WHEN pg_catalog.split_part(pg_catalog.split_part(p_message, 'rejected: ', 2), ':', 1)
                         OPERATOR(pg_catalog.~) '^[A-Za-z0-9_]+$'
                    THEN pg_catalog.split_part(pg_catalog.split_part(p_message, 'rejected: ', 2), ':', 1)
               END)
$function$;

REVOKE ALL ON FUNCTION etl.error_field(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.error_field(text, text) TO pgferry_owner;
