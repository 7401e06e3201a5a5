-- etl.journal_append_only: the journal is append-only. An UPDATE or DELETE is refused for
-- everyone (the table owner included); TRUNCATE is left to the owner for retention.
CREATE OR REPLACE FUNCTION etl.journal_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    RAISE EXCEPTION 'etl.journal is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Record a new step instead of changing an old one.';
END
$function$;

REVOKE ALL ON FUNCTION etl.journal_append_only() FROM PUBLIC;

CREATE OR REPLACE TRIGGER journal_append_only
    BEFORE UPDATE OR DELETE ON etl.journal
    FOR EACH STATEMENT EXECUTE FUNCTION etl.journal_append_only();
