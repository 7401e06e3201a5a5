-- etl.shipment_lineage: where one shipment went, found by its shipment number or its DO number,
-- as one JSON document per shipment found (an array): the ERP row, its copy in
-- delivery.shipment, the DeTrack job with the request it sends now and the last answer DeTrack
-- gave, every journal step of the job (each DeTrack call with what it sent and what came back,
-- as delivery.record_results journals it), and the delivery status written back.
-- What a viewer may see: requests and answers without the personal fields
-- (delivery.without_personal), and no personal column of the ERP row or the copy.
CREATE OR REPLACE FUNCTION etl.shipment_lineage(p_number text)
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH found AS (
        SELECT j.shipment_number FROM delivery.job AS j WHERE j.do_number = p_number
        UNION
        SELECT s.shipment_number FROM erp.shipment AS s
         WHERE p_number ~ '^[0-9]{1,18}$' AND s.shipment_number = p_number::bigint
        UNION
        SELECT j.shipment_number FROM delivery.job AS j
         WHERE p_number ~ '^[0-9]{1,18}$' AND j.shipment_number = p_number::bigint
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
        'shipment_number', f.shipment_number,
        'erp', (SELECT jsonb_build_object(
                           'job_number', e.job_number, 'ship_via', e.ship_via,
                           'is_partial', e.is_partial, 'ship_zone', e.ship_zone,
                           'scheduled_ship_date', e.scheduled_ship_date, 'shipped', e.shipped,
                           'delivery_status', e.delivery_status, 'delivered_at', e.delivered_at,
                           'last_modified', e.last_modified)
                  FROM erp.shipment AS e WHERE e.shipment_number = f.shipment_number),
        'copy', (SELECT jsonb_build_object(
                            'job_number', c.job_number, 'scheduled_ship_date', c.scheduled_ship_date,
                            'ship_zone', c.ship_zone, 'inserted_at', c.inserted_at,
                            'updated_at', c.updated_at, 'deleted_at', c.deleted_at)
                   FROM delivery.shipment AS c WHERE c.shipment_number = f.shipment_number),
        'job', (SELECT jsonb_build_object(
                           'job_id', j.job_id, 'do_number', j.do_number,
                           'delivery_date', j.delivery_date, 'assign_to', j.assign_to,
                           'desired', j.desired, 'remote', j.remote,
                           'remote_do_number', j.remote_do_number, 'remote_date', j.remote_date,
                           'detrack_id', j.detrack_id, 'version', j.version,
                           'synced_version', j.synced_version, 'sync_state', j.sync_state,
                           'attempts', j.attempts, 'next_attempt_at', j.next_attempt_at,
                           'last_status', j.last_status, 'last_error', j.last_error,
                           'delivery_status', j.delivery_status, 'delivered_at', j.delivered_at,
                           'status_checked_at', j.status_checked_at,
                           'inserted_at', j.inserted_at, 'updated_at', j.updated_at,
                           'request', delivery.without_personal(j.payload),
                           'last_response', delivery.without_personal(j.last_response),
                           'journal', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                                  'journal_id', x.journal_id, 'step', x.step,
                                                  'at', x.at, 'detail', x.detail)
                                              ORDER BY x.journal_id), '[]')
                                         FROM etl.journal AS x
                                        WHERE x.pipeline = 'shipments' AND x.item_id = j.job_id))
                  FROM delivery.job AS j
                 WHERE j.shipment_number = f.shipment_number))
        ORDER BY f.shipment_number), '[]')
      FROM found AS f
$function$;

REVOKE ALL ON FUNCTION etl.shipment_lineage(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION etl.shipment_lineage(text) TO pgferry_viewer, pgferry_owner;
