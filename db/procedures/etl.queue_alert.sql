-- etl.queue_alert: put one alert in the outbox (etl.alert); the harness mails it once.
CREATE OR REPLACE FUNCTION etl.queue_alert(
    p_kind        text,
    p_subject     text,
    p_body        text,
    p_pipeline    text   DEFAULT NULL,
    p_process_id  bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    INSERT INTO etl.alert (kind, subject, body, pipeline, process_id)
    VALUES (p_kind, p_subject, p_body, p_pipeline, p_process_id)
    RETURNING alert_id
$function$;

REVOKE ALL ON FUNCTION etl.queue_alert(text, text, text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.queue_alert(text, text, text, text, bigint) TO pgferry_worker, pgferry_owner;
