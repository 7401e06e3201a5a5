-- pgferry 0011 down (runs after the routines and the trigger 0011 added are dropped)
DROP TABLE etl.error_cause;
