-- delivery.vehicle_for: the vehicle the assignment rules give a delivery in this zone and
-- postcode, or NULL. Lowest priority number wins; among equals, the longest postcode prefix.
-- Postcodes compare without spaces and case ('V8W 1A1' matches prefix 'v8w').
CREATE OR REPLACE FUNCTION delivery.vehicle_for(p_postal_code text, p_zone text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT r.vehicle
      FROM delivery.assignment_rule AS r
     WHERE (r.zone IS NULL OR r.zone = p_zone)
       AND (r.postcode_prefix IS NULL
            OR upper(replace(p_postal_code, ' ', ''))
               LIKE upper(replace(r.postcode_prefix, ' ', '')) || '%')
     ORDER BY r.priority, length(r.postcode_prefix) DESC NULLS LAST, r.rule_id
     LIMIT 1
$function$;

REVOKE ALL ON FUNCTION delivery.vehicle_for(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.vehicle_for(text, text) TO pgferry_worker, pgferry_owner;
