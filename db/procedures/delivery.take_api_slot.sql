-- delivery.take_api_slot: the DeTrack rate limit, shared by every dispatcher on every machine.
-- At most p_limit requests in any window of p_window (DeTrack: 60 a minute; the caller passes a
-- window a little longer than the server's, for requests still in flight). Takes the oldest
-- slot that left the window and stamps it with the database's clock: returns 0, send now.
-- Otherwise takes nothing and returns the seconds until the oldest slot leaves the window.
--
-- One clock for every machine (the database's); SKIP LOCKED so concurrent callers take
-- different slots instead of queueing on one; each call is one short transaction.
CREATE OR REPLACE FUNCTION delivery.take_api_slot(p_limit integer, p_window interval)
RETURNS double precision
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_now  timestamptz := clock_timestamp();
    v_wait double precision;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_window IS NULL OR p_window <= interval '0' THEN
        RAISE EXCEPTION 'delivery.take_api_slot: a positive limit and window are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM delivery.api_slot WHERE slot = p_limit) THEN
        INSERT INTO delivery.api_slot (slot)
        SELECT generate_series(1, p_limit)
        ON CONFLICT (slot) DO NOTHING;
    END IF;
    UPDATE delivery.api_slot AS s
       SET used_at = v_now
     WHERE s.slot = (SELECT f.slot FROM delivery.api_slot AS f
                      WHERE f.slot <= p_limit AND f.used_at <= v_now - p_window
                      ORDER BY f.used_at
                      LIMIT 1
                        FOR UPDATE SKIP LOCKED);
    IF FOUND THEN
        RETURN 0;
    END IF;
    SELECT extract(epoch FROM min(s.used_at) + p_window - v_now) INTO v_wait
      FROM delivery.api_slot AS s WHERE s.slot <= p_limit;
    -- a slot another caller is taking right now looks free: try again very soon
    RETURN greatest(coalesce(v_wait, 0), 0.005);
END
$function$;

REVOKE ALL ON FUNCTION delivery.take_api_slot(integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.take_api_slot(integer, interval) TO pgferry_worker;
