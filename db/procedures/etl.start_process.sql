-- etl.start_process: open a run of a pipeline and return its process id, or NULL when refused.
--
-- * At most one running process per pipeline: the partial unique index
--   process_one_running_per_pipeline decides, so concurrent starts cannot both win.
-- * A refused start writes an etl.process_error row; the refusal_alert_threshold-th refusal in a
--   row queues one alert (the counter resets on the next successful start).
-- * A running process older than the pipeline's hung_after is abandoned first (logged and
--   alerted), so a crashed loader never blocks the pipeline for good.
-- * The new window runs from the end of the last *succeeded* window to now(), so the windows of
--   failed and abandoned runs are covered again. CDC settings of the pipeline: window_overlap
--   starts it that much earlier (harmless when the merge writes only real changes);
--   full_reload starts every window at window_origin (small tables reloaded whole).
CREATE OR REPLACE FUNCTION etl.start_process(p_pipeline text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_pipeline    etl.pipeline;
    v_abandoned   etl.process;
    v_running     etl.process;
    v_process_id  bigint;
    v_refusals    integer;
BEGIN
    IF p_pipeline IS NULL THEN
        RAISE EXCEPTION 'etl.start_process: pipeline must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO v_pipeline FROM etl.pipeline WHERE name = p_pipeline;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'etl.start_process: unknown pipeline "%"', p_pipeline
            USING ERRCODE = 'no_data_found',
                  HINT = 'The registered pipelines are the rows of etl.pipeline.';
    END IF;

    FOR v_abandoned IN
        UPDATE etl.process
           SET status = 'abandoned',
               ended_at = clock_timestamp(),
               message = format('abandoned: still running after %s (hung_after)', v_pipeline.hung_after)
         WHERE pipeline = p_pipeline
           AND status = 'running'
           AND started_at < now() - v_pipeline.hung_after
        RETURNING *
    LOOP
        INSERT INTO etl.process_error (pipeline, kind, process_id, message)
        VALUES (p_pipeline, 'abandoned', v_abandoned.process_id,
                format('process %s started %s was abandoned as hung; its window will be covered again',
                       v_abandoned.process_id, v_abandoned.started_at));
        PERFORM etl.queue_alert(
            'process_abandoned',
            format('pgferry: %s process %s abandoned as hung', p_pipeline, v_abandoned.process_id),
            format('Process %s of pipeline %s started at %s and was still running after %s. '
                   'It is now abandoned and the next run covers its window again. '
                   'Check the upstream loader for a crash or a stuck job.',
                   v_abandoned.process_id, p_pipeline, v_abandoned.started_at, v_pipeline.hung_after),
            p_pipeline, v_abandoned.process_id);
    END LOOP;

    INSERT INTO etl.process (pipeline, window_from, window_to)
    SELECT p_pipeline, w.window_from, greatest(w.window_from, now())
      FROM (SELECT CASE WHEN v_pipeline.full_reload THEN v_pipeline.window_origin
                        -- greatest() ignores the NULL of a pipeline that never succeeded
                        ELSE greatest(v_pipeline.window_origin,
                                      max(p.window_to) - v_pipeline.window_overlap)
                   END AS window_from
              FROM etl.process AS p
             WHERE p.pipeline = p_pipeline AND p.status = 'succeeded') AS w
        ON CONFLICT (pipeline) WHERE status = 'running' DO NOTHING
    RETURNING process_id INTO v_process_id;

    IF v_process_id IS NOT NULL THEN
        UPDATE etl.pipeline SET consecutive_refusals = 0
         WHERE name = p_pipeline AND consecutive_refusals > 0;
        RETURN v_process_id;
    END IF;

    SELECT * INTO v_running FROM etl.process WHERE pipeline = p_pipeline AND status = 'running';
    UPDATE etl.pipeline SET consecutive_refusals = consecutive_refusals + 1
     WHERE name = p_pipeline
    RETURNING consecutive_refusals INTO v_refusals;
    INSERT INTO etl.process_error (pipeline, kind, process_id, message)
    VALUES (p_pipeline, 'refused', v_running.process_id,
            format('start refused: process %s has been running since %s (refusal %s in a row)',
                   v_running.process_id, v_running.started_at, v_refusals));
    IF v_refusals = v_pipeline.refusal_alert_threshold THEN
        PERFORM etl.queue_alert(
            'start_refused',
            format('pgferry: %s refused %s starts in a row', p_pipeline, v_refusals),
            format('Pipeline %s refused %s consecutive starts because process %s (started %s) is '
                   'still running. If that run is stuck, end it with etl.end_process(%s, ''failed''); '
                   'otherwise it is abandoned automatically after %s.',
                   p_pipeline, v_refusals, v_running.process_id, v_running.started_at,
                   v_running.process_id, v_pipeline.hung_after),
            p_pipeline, v_running.process_id);
    END IF;
    RAISE WARNING 'etl.start_process: pipeline "%" already has running process % (started %); start refused',
        p_pipeline, v_running.process_id, v_running.started_at;
    RETURN NULL;
END
$function$;

REVOKE ALL ON FUNCTION etl.start_process(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.start_process(text) TO pgferry_loader, pgferry_worker, pgferry_owner;
