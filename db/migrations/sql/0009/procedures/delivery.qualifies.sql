-- delivery.qualifies: whether an ERP shipment is a DeTrack delivery under the given settings
-- (delivery.settings.ship_via_codes and require_partial): its ship-via code is one of the codes
-- and, when partial shipments are required, it is flagged partial. NULL (a NULL code) counts as
-- no. The one definition the ERP triggers, the copy and the cancel share.
--
-- A plain SQL expression with no SET clause, so that the planner inlines it into the set-based
-- statements that use it: a function call per ERP row would cost the ERP's bulk statements.
CREATE OR REPLACE FUNCTION delivery.qualifies(p_ship_via text, p_is_partial boolean,
                                              p_codes text[], p_require_partial boolean)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $function$
    SELECT p_ship_via OPERATOR(pg_catalog.=) ANY (p_codes)
           AND (NOT p_require_partial OR p_is_partial)
$function$;

REVOKE ALL ON FUNCTION delivery.qualifies(text, boolean, text[], boolean) FROM PUBLIC;
-- the SECURITY DEFINER triggers and copy run as pgferry_owner; without EXECUTE the planner
-- would not inline it either
GRANT EXECUTE ON FUNCTION delivery.qualifies(text, boolean, text[], boolean) TO pgferry_owner;
