-- pgferry 0004 down. The routines of 0004 were dropped first (no earlier version exists).
DROP SCHEMA delivery CASCADE;
DROP SCHEMA erp CASCADE;
