"""The migration hub of seed 001: data-integration (DI) processes described as metadata
(etl.di_process), each run an etl.process of its own pipeline: a source table's window read
with COPY, written as gzipped CSV to the object-storage layer, loaded and merged into its STG
table with etl.merge_table."""
