-- etl.notify: pg_notify for wake-ups that may be skipped, called by every trigger and loader
-- routine that wakes the workers (ERP changes, pending jobs, ended runs).
--
-- Why not pg_notify directly: a notification is queued at COMMIT, and when the server's
-- notification queue is full (a listener that stopped reading while holding a transaction
-- open) that COMMIT fails, outside any exception block of the trigger: the ERP's or the
-- loader's transaction would be lost because of pgferry. So the notification is only sent
-- while the queue is less than p_max_usage full (default half). A skipped wake-up only delays:
-- the workers also poll (at most 300 s). A skip is written to the server log (RAISE LOG: not
-- sent to the ERP's session), so an operator can find and end the stuck listener. Returns
-- whether the notification was sent.
--
-- Not SECURITY DEFINER: it needs nothing beyond pg_notify and pg_notification_queue_usage,
-- which every role may call; it runs with the rights of its (SECURITY DEFINER) callers.
CREATE OR REPLACE FUNCTION etl.notify(p_channel text, p_payload text,
                                      p_max_usage double precision DEFAULT 0.5)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF pg_notification_queue_usage() >= p_max_usage THEN
        RAISE LOG 'etl.notify: NOTIFY % skipped, the notification queue is % %% full',
                  p_channel, round((pg_notification_queue_usage() * 100)::numeric, 1)
            USING HINT = 'A session that LISTENs and keeps a transaction open stops the queue '
                         'from draining; find it in pg_stat_activity.';
        RETURN false;
    END IF;
    PERFORM pg_notify(p_channel, p_payload);
    RETURN true;
END
$function$;

REVOKE ALL ON FUNCTION etl.notify(text, text, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.notify(text, text, double precision) TO pgferry_owner;
