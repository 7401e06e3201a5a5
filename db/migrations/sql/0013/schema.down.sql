-- pgferry 0013 down (runs after the routines 0013 added are dropped)
DROP TABLE etl.cutover_check;
DROP TABLE etl.cutover_indicator;
