-- permit.alert_dead_letters: queue one alert for the permits a step just dead-lettered (one
-- per batch, not one per permit), naming them. Does nothing for an empty list.
CREATE OR REPLACE FUNCTION permit.alert_dead_letters(p_staged_ids bigint[], p_reason text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF coalesce(cardinality(p_staged_ids), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM etl.queue_alert(
        'dead_letter',
        format('pgferry: %s permit(s) dead-lettered (%s)', cardinality(p_staged_ids), p_reason),
        format('Staged permit rows %s failed for good: %s. List them with `harness permits dead`, '
               'fix the cause, then requeue them with `harness permits requeue`.',
               array_to_string(p_staged_ids, ', '), p_reason),
        'permits');
END
$function$;

REVOKE ALL ON FUNCTION permit.alert_dead_letters(bigint[], text) FROM PUBLIC;
