-- delivery.waiting_work: what a shipment run would find to do now, for a scheduler that starts
-- runs when there is work (the Airflow asset watcher, harness.airflow.triggers): shipments whose
-- ERP changes wait to be copied into jobs (delivery.sync_erp_changes), plus jobs pending, due and
-- not leased (the first test of delivery.claim_jobs; a create that waits there for another job
-- to leave its key is counted too, and is claimed by the same run once that job has left).
-- waiting: how many; since: the oldest of them; mark: a text that changes when work joins them
-- (a new ERP change, a changed job, a job whose retry time has come or whose lease expired);
-- work committed out of order may leave it unchanged, and the caller repeats itself anyway. No row while the
-- pipeline is paused (etl.pause_pipeline). Columns the worker may not read are read here.
CREATE OR REPLACE FUNCTION delivery.waiting_work()
RETURNS TABLE (waiting bigint, since timestamptz, mark text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT c.waiting + j.due, least(c.oldest, j.oldest), concat_ws('/', c.newest, j.newest)
      FROM (SELECT coalesce(sum(e.shipment_count - e.taken), 0) AS waiting,
                   min(e.queued_at) AS oldest, max(e.change_id) AS newest
              FROM delivery.erp_change AS e) AS c,
           (SELECT count(*) AS due, min(d.next_attempt_at) AS oldest,
                   max(greatest(d.updated_at, d.next_attempt_at, d.lease_expires_at)) AS newest
              FROM delivery.job AS d
             WHERE d.sync_state = 'pending' AND d.next_attempt_at <= now()
               AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())) AS j
     WHERE NOT EXISTS (SELECT FROM etl.pipeline AS p
                        WHERE p.name = 'shipments' AND p.paused_at IS NOT NULL)
$function$;

REVOKE ALL ON FUNCTION delivery.waiting_work() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.waiting_work() TO pgferry_worker;
