-- files.held_file: file p_file_id, its row locked until the transaction ends, when it is
-- claimed under the lease p_lease_token; NULL otherwise (another worker took it over, or it is
-- done), and nothing is locked then. The fence of every function that writes what a worker did
-- with a file: files.record_step, files.record_failure, files.begin_load.
CREATE OR REPLACE FUNCTION files.held_file(p_file_id bigint, p_lease_token bigint)
RETURNS files.file
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT f.*
      FROM files.file AS f
     WHERE f.file_id = p_file_id AND f.state = 'claimed' AND f.lease_token = p_lease_token
       FOR UPDATE
$function$;

REVOKE ALL ON FUNCTION files.held_file(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION files.held_file(bigint, bigint) TO pgferry_owner;
