-- pgferry 0002 down.
DROP TABLE etl.mask_rule;
ALTER TABLE etl.pipeline DROP COLUMN window_overlap, DROP COLUMN full_reload;
