-- pgferry 0012 down (runs after the routines 0012 added are dropped). The etl.pipeline rows of
-- the DI processes stay, with their runs.
DROP TABLE etl.di_process;
