-- delivery.vehicle_for: the vehicle the assignment rules give a delivery in this zone and
-- postcode (one row, or none). Lowest priority number wins; among equals, the longest postcode
-- prefix. Postcodes compare without spaces and case ('V8W 1A1' matches prefix 'v8w').
--
-- A plain SQL table function with no SET clause, so that the planner inlines it where it is
-- used as LEFT JOIN LATERAL delivery.vehicle_for(...) ON true: a function call per row would
-- cost more than the rest of the job mapping. Every name in it is schema-qualified.
CREATE OR REPLACE FUNCTION delivery.vehicle_for(p_postal_code text, p_zone text)
RETURNS TABLE (vehicle text)
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $function$
    SELECT r.vehicle
      FROM delivery.assignment_rule AS r
     WHERE (r.zone IS NULL OR r.zone = p_zone)
       AND (r.postcode_prefix IS NULL
            OR pg_catalog.upper(pg_catalog.replace(p_postal_code, ' ', ''))
               LIKE pg_catalog.upper(pg_catalog.replace(r.postcode_prefix, ' ', '')) || '%')
     ORDER BY r.priority, pg_catalog.length(r.postcode_prefix) DESC NULLS LAST, r.rule_id
     LIMIT 1
$function$;

REVOKE ALL ON FUNCTION delivery.vehicle_for(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.vehicle_for(text, text) TO pgferry_worker, pgferry_owner;
