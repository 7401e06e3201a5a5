-- delivery.job_upsert_sql: the one statement that maps delivery-copy shipments to DeTrack-ready
-- jobs (delivery.job), for a source relation with delivery.shipment's columns: the trigger's
-- transition table (only visible to statements the trigger function runs itself) or a keyed
-- selection of delivery.shipment. $1 says whether any assignment rule exists (false skips the
-- rule lookup per row). The statement returns how many jobs became pending.
--
-- Only real changes count: a job whose payload, desired state or vehicle did not change is not
-- touched. A changed job gets a new version and is pending, so the dispatcher sends a create,
-- an update or, for a shipment that stopped qualifying or was deleted, a delete.
CREATE OR REPLACE FUNCTION delivery.job_upsert_sql(p_source text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT format($sql$
        WITH items AS (
            SELECT p.shipment_number,
                   jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                       'sku', p.sku, 'description', p.description, 'quantity', p.quantity))
                       ORDER BY p.package_id) AS items
              FROM erp.package AS p JOIN %1$s AS w ON w.shipment_number = p.shipment_number
             GROUP BY p.shipment_number
        ), mapped AS (
            SELECT s.shipment_number, s.job_number AS do_number,
                   s.scheduled_ship_date AS delivery_date,
                   s.ship_postal_code AS postal_code, s.ship_zone AS zone,
                   -- every field, nulls included: DeTrack's update merges what it is sent,
                   -- so a value the ERP cleared must go as null or DeTrack keeps the old one
                   jsonb_build_object(
                       'do_number', s.job_number,
                       'date', to_char(s.scheduled_ship_date, 'YYYY-MM-DD'),
                       'type', 'Delivery',
                       'address', concat_ws(', ', s.ship_address_1, s.ship_address_2,
                                            s.ship_address_3, s.ship_city, s.ship_country),
                       'address_1', s.ship_address_1,
                       'address_2', s.ship_address_2,
                       'address_3', s.ship_address_3,
                       'postal_code', s.ship_postal_code,
                       'city', s.ship_city,
                       'country', s.ship_country,
                       'zone', s.ship_zone,
                       'company_name', s.ship_name,
                       'deliver_to_collect_from', coalesce(s.ship_attention, s.ship_name),
                       'phone_number', s.ship_phone,
                       'notify_email', s.ship_email,
                       'instructions', s.ship_instructions,
                       'tracking_number', s.shipment_number::text,
                       -- no package left: an empty list, so DeTrack's merge drops the old ones
                       'items', coalesce(i.items, '[]'::jsonb)) AS payload,
                   v.vehicle AS rule_vehicle,
                   CASE WHEN s.deleted_at IS NULL THEN 'present' ELSE 'absent' END AS desired
              FROM %1$s AS s
              LEFT JOIN items AS i ON i.shipment_number = s.shipment_number
              -- $1: whether any rule exists; false skips the per-row rule lookup entirely
              LEFT JOIN LATERAL (SELECT r.vehicle
                                   FROM delivery.vehicle_for(s.ship_postal_code, s.ship_zone) AS r
                                  WHERE $1) AS v ON true
        ), upserted AS (
            INSERT INTO delivery.job AS j
                   (shipment_number, do_number, delivery_date, postal_code, zone, payload,
                    assign_to, desired, sync_state, due_since)
            SELECT m.shipment_number, m.do_number, m.delivery_date, m.postal_code, m.zone,
                   m.payload, m.rule_vehicle, m.desired,
                   CASE m.desired WHEN 'present' THEN 'pending' ELSE 'synced' END,
                   CASE m.desired WHEN 'present' THEN clock_timestamp() END
              FROM mapped AS m
             -- jobs are locked in shipment order, as delivery.record_results does: no deadlock
             ORDER BY m.shipment_number
            ON CONFLICT (shipment_number) DO UPDATE
               SET do_number = excluded.do_number,
                   delivery_date = excluded.delivery_date,
                   postal_code = excluded.postal_code,
                   zone = excluded.zone,
                   payload = excluded.payload,
                   assign_to = coalesce(excluded.assign_to, j.assign_to),
                   desired = excluded.desired,
                   version = j.version + 1,
                   -- a cancel of a job DeTrack never had (nor may have) needs no call
                   sync_state = CASE WHEN excluded.desired = 'absent'
                                          AND j.remote NOT IN ('created', 'unknown')
                                     THEN 'synced' ELSE 'pending' END,
                   -- due since it first fell out of step with DeTrack (lag counts from there)
                   due_since = CASE WHEN j.sync_state = 'pending' THEN j.due_since
                                    ELSE clock_timestamp() END,
                   -- a job waiting out a failure keeps its count and its backoff: an
                   -- often-edited shipment still dead-letters, and edits do not hammer DeTrack
                   -- during an outage; a refused or dead job starts afresh with the new data
                   attempts = CASE WHEN j.sync_state = 'pending' THEN j.attempts ELSE 0 END,
                   next_attempt_at = CASE WHEN j.sync_state = 'pending'
                                          THEN greatest(j.next_attempt_at, now())
                                          ELSE now() END,
                   updated_at = clock_timestamp()
             WHERE ROW(j.do_number, j.delivery_date, j.payload, j.desired, j.assign_to)
                   IS DISTINCT FROM
                   ROW(excluded.do_number, excluded.delivery_date, excluded.payload,
                       excluded.desired, coalesce(excluded.assign_to, j.assign_to))
            RETURNING j.sync_state
        )
        SELECT count(*) FILTER (WHERE sync_state = 'pending') FROM upserted
    $sql$, p_source)
$function$;

REVOKE ALL ON FUNCTION delivery.job_upsert_sql(text) FROM PUBLIC;
-- called by delivery.upsert_jobs and delivery.shipment_to_job, which run as pgferry_owner
GRANT EXECUTE ON FUNCTION delivery.job_upsert_sql(text) TO pgferry_owner;
