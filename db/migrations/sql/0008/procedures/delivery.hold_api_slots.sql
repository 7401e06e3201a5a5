-- delivery.hold_api_slots: DeTrack answered 429 with Retry-After: no dispatcher anywhere sends
-- for p_seconds. Every slot of the window is stamped so that it leaves the window only then
-- (never brought forward: an earlier, longer hold stands).
CREATE OR REPLACE FUNCTION delivery.hold_api_slots(p_limit integer, p_window interval,
                                                   p_seconds double precision)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    UPDATE delivery.api_slot AS s
       SET used_at = greatest(s.used_at,
                              clock_timestamp() + p_seconds * interval '1 second' - p_window)
     WHERE s.slot <= p_limit
$function$;

REVOKE ALL ON FUNCTION delivery.hold_api_slots(integer, interval, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.hold_api_slots(integer, interval, double precision)
    TO pgferry_worker;
