-- delivery.without_personal: a DeTrack request or response without the personal fields of the
-- shipment (name, attention, address, postal code, city, country, phone, e-mail, instructions),
-- at the top level, in its "data" object (an update, a single job), and in each job of its
-- "data" list or of a list at the top (a bulk answer). What the journal keeps of every call and what a viewer sees in a
-- shipment's lineage: enough to tell what was sent and what came back, nothing about the person.
CREATE OR REPLACE FUNCTION delivery.without_personal(p_body jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH personal (keys) AS (
        VALUES (ARRAY['address', 'postal_code', 'city', 'country', 'company_name',
                      'deliver_to_collect_from', 'phone_number', 'notify_email', 'instructions',
                      'address_1', 'address_2', 'address_3', 'email', 'phone', 'name'])
    )
    SELECT CASE jsonb_typeof(p_body -> 'data')
               WHEN 'object' THEN (p_body - p.keys)
                                  || jsonb_build_object('data', (p_body -> 'data') - p.keys)
               WHEN 'array' THEN (p_body - p.keys) || jsonb_build_object('data', (
                   SELECT coalesce(jsonb_agg(CASE jsonb_typeof(d.job) WHEN 'object'
                                                  THEN d.job - p.keys ELSE d.job END
                                             ORDER BY d.n), '[]')
                     FROM jsonb_array_elements(p_body -> 'data') WITH ORDINALITY AS d (job, n)))
               ELSE CASE jsonb_typeof(p_body)
                        WHEN 'object' THEN p_body - p.keys
                        -- a list at the top: no personal field in any object of it
                        WHEN 'array' THEN (
                            SELECT coalesce(jsonb_agg(CASE jsonb_typeof(d.job) WHEN 'object'
                                                           THEN d.job - p.keys ELSE d.job END
                                                      ORDER BY d.n), '[]')
                              FROM jsonb_array_elements(p_body) WITH ORDINALITY AS d (job, n))
                        ELSE p_body END
           END
      FROM personal AS p
$function$;

REVOKE ALL ON FUNCTION delivery.without_personal(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delivery.without_personal(jsonb) TO pgferry_owner;
