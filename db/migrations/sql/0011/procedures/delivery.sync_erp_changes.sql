-- delivery.sync_erp_changes: the worker's half of the chain. Takes the oldest ERP changes the
-- triggers recorded (delivery.erp_change), at most p_limit shipment numbers, and in the same
-- transaction copies those shipments (delivery.copy_shipments, whose trigger maps them to jobs)
-- and re-maps the shipments whose packages changed (delivery.upsert_jobs). A change larger than
-- p_limit is taken in slices, so a million-row ERP import becomes short transactions (the
-- change row's `taken` moves on; its array is never rewritten).
-- Returns how many shipment numbers it took: 0 when nothing is waiting, when another session is
-- syncing (one at a time: concurrent syncs would only queue on each other's locks), or while the
-- shipments pipeline is paused (the changes wait in delivery.erp_change until it resumes).
--
-- Nothing lost, nothing twice: a change row is deleted by the transaction that applies it, and
-- the copy reads the ERP as it is now, so taking a change again (after a crash) or a later
-- change of the same shipment is harmless: only real differences are written.
CREATE OR REPLACE FUNCTION delivery.sync_erp_changes(p_limit integer DEFAULT 50000)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_first     record;
    v_taken     bigint[];
    v_shipments bigint[];
    v_packages  bigint[];
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'p_limit must be a positive number of shipments, not %', p_limit
            USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM etl.pipeline WHERE name = 'shipments' AND paused_at IS NOT NULL) THEN
        RETURN 0;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('delivery.sync_erp_changes')) THEN
        RETURN 0;
    END IF;
    SELECT c.change_id, c.source_table, c.shipment_count - c.taken AS waiting INTO v_first
      FROM delivery.erp_change AS c ORDER BY c.change_id LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;

    IF v_first.waiting > p_limit THEN
        -- a large statement: take its next slice; only `taken` moves, the array stays as written
        UPDATE delivery.erp_change AS c
           SET taken = c.taken + p_limit
         WHERE c.change_id = v_first.change_id
        RETURNING c.shipment_numbers[c.taken - p_limit + 1 : c.taken] INTO v_taken;
        SELECT array_agg(DISTINCT k) INTO v_taken FROM unnest(v_taken) AS k;
        IF v_first.source_table = 'erp.package' THEN
            v_packages := v_taken;
        ELSE
            v_shipments := v_taken;
        END IF;
    ELSE
        -- the oldest whole changes that fit in p_limit, from the first one on (a change with a
        -- lower id that committed since that lookup waits for the next call)
        WITH queued AS (
            SELECT c.change_id,
                   sum(c.shipment_count - c.taken) OVER (ORDER BY c.change_id) AS running
              FROM (SELECT change_id, shipment_count, taken FROM delivery.erp_change
                     WHERE change_id >= v_first.change_id
                     ORDER BY change_id LIMIT p_limit) AS c
        ), taken AS (
            DELETE FROM delivery.erp_change AS c
             USING queued AS q
             WHERE c.change_id = q.change_id AND q.running <= p_limit
            RETURNING c.source_table, c.shipment_numbers[c.taken + 1:] AS numbers
        )
        SELECT array_agg(DISTINCT k) FILTER (WHERE t.source_table <> 'erp.package'),
               array_agg(DISTINCT k) FILTER (WHERE t.source_table = 'erp.package')
          INTO v_shipments, v_packages
          FROM taken AS t, unnest(t.numbers) AS k;
    END IF;

    PERFORM delivery.copy_shipments(v_shipments);
    PERFORM delivery.upsert_jobs(v_packages);
    RETURN coalesce(cardinality(v_shipments), 0) + coalesce(cardinality(v_packages), 0);
END
$function$;

REVOKE ALL ON FUNCTION delivery.sync_erp_changes(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.sync_erp_changes(integer) TO pgferry_worker, pgferry_owner;
