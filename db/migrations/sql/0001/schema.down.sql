-- pgferry 0001 down: remove everything of ours in this database.
-- The cluster-wide roles pgferry_owner/_loader/_worker are kept on purpose: other databases on
-- the server may use them. Drop them by hand once no database needs them.
DROP SCHEMA etl CASCADE;
