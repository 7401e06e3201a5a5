-- etl.throughput: items finished per bucket (p_bucket, default 10 minutes) over the last
-- p_window (default 24 hours), per pipeline, and the rate as items a minute. An item is finished
-- by the journal step that ends its trip: permits 'moved' or 'duplicate', shipments 'created',
-- 'updated' or 'deleted' in DeTrack. Reads only the index journal_by_time. Empty buckets are
-- absent.
CREATE OR REPLACE FUNCTION etl.throughput(p_bucket interval DEFAULT interval '10 minutes',
                                          p_window interval DEFAULT interval '24 hours')
RETURNS TABLE (bucket_start timestamptz, pipeline text, items bigint, per_minute numeric)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT date_bin(p_bucket, j.at, timestamptz '2000-01-01 00:00:00+00') AS bucket_start,
           j.pipeline, count(*),
           round(count(*) / (extract(epoch FROM p_bucket) / 60)::numeric, 2)
      FROM etl.journal AS j
     WHERE j.at >= now() - p_window
       AND ((j.pipeline = 'permits' AND j.step IN ('moved', 'duplicate'))
            OR (j.pipeline = 'shipments' AND j.step IN ('created', 'updated', 'deleted')))
     GROUP BY 1, 2
     ORDER BY 1, 2
$function$;

REVOKE ALL ON FUNCTION etl.throughput(interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.throughput(interval, interval) TO pgferry_viewer, pgferry_owner;
