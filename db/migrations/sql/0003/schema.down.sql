-- pgferry 0003 down. The objects were put back to their 0002 state first, so the old
-- etl.merge_table signature exists again; drop the new one.
DROP FUNCTION etl.merge_table(regclass, regclass, text[], boolean, bigint, text[], boolean);
DROP SCHEMA permit CASCADE;
DROP SCHEMA tps CASCADE;
DROP TABLE etl.journal;
