-- etl.queue_lag_alerts: queue a 'lag' alert for each pipeline whose oldest waiting item is
-- older than p_threshold, at most one per pipeline per p_quiet period (so a long lag is
-- reported, not repeated every cycle). Returns the pipelines alerted.
CREATE OR REPLACE FUNCTION etl.queue_lag_alerts(p_threshold interval,
                                                p_quiet interval DEFAULT interval '1 hour')
RETURNS SETOF text
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH oldest AS (
        -- what waits and since when it is due (etl.backlog, the same numbers as status shows)
        SELECT b.pipeline, b.waiting_since, b.waiting FROM etl.backlog AS b WHERE b.waiting > 0
    ), lagging AS (
        SELECT o.* FROM oldest AS o
         WHERE o.waiting_since < now() - p_threshold
           AND NOT EXISTS (SELECT FROM etl.alert AS a
                            WHERE a.pipeline = o.pipeline AND a.kind = 'lag'
                              AND a.created_at > now() - p_quiet)
    )
    SELECT l.pipeline
      FROM lagging AS l,
           LATERAL etl.queue_alert(
               'lag',
               format('pgferry: %s is behind (oldest item waiting %s)', l.pipeline,
                      date_trunc('second', now() - l.waiting_since)),
               format('%s item(s) of pipeline %s are waiting; the oldest since %s, longer than '
                      'the %s threshold. Check that `harness run` is running and see '
                      '`harness status`.', l.waiting, l.pipeline, l.waiting_since, p_threshold),
               l.pipeline) AS queued
$function$;

REVOKE ALL ON FUNCTION etl.queue_lag_alerts(interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.queue_lag_alerts(interval, interval) TO pgferry_worker;
