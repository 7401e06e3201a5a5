-- pgferry 0019 down (runs after the routines 0019 added are dropped).

DROP TABLE etl.leader;
