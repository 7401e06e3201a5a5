"""DI processes as etl.di_process declares them (etl.define_di_process writes them), with the
CDC settings of their etl.pipeline row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg.rows import class_row

PROCESSES_SQL = """
SELECT d.name, d.kind, d.source, d.source_table, d.source_query, d.cdc_column,
       d.deleted_column, d.target_table, d.key_columns, d.process_group, d.depends_on,
       p.window_overlap, d.source_bucket
  FROM etl.di_process AS d
  JOIN etl.pipeline AS p USING (name)
 ORDER BY d.name
"""


class UnknownProcess(LookupError):
    """A DI process named on the command line is not declared in etl.di_process."""


@dataclass(frozen=True)
class DiProcess:
    name: str
    kind: str  # source_to_stg, stg_to_bl, files
    source: str | None  # connection name: PGFERRY_SOURCE_<NAME>_URL
    source_table: str | None  # schema.table in the source
    source_query: str | None  # or a SELECT
    cdc_column: str | None  # None: every run reloads the whole table
    deleted_column: str | None  # the source's soft-delete timestamp
    target_table: str  # the STG or BL table; for files the target bucket, s3://bucket/prefix
    key_columns: list[str]  # empty: the target's primary key
    process_group: str
    depends_on: list[str]
    window_overlap: timedelta
    source_bucket: str | None = None  # files: s3://bucket/prefix the keys are in

    @property
    def full_reload(self) -> bool:
        return self.cdc_column is None


def load_processes(connection: psycopg.Connection) -> list[DiProcess]:
    with connection.cursor(row_factory=class_row(DiProcess)) as cursor:
        return cursor.execute(PROCESSES_SQL).fetchall()


def find_process(connection: psycopg.Connection, name: str) -> DiProcess:
    for process in load_processes(connection):
        if process.name == name:
            return process
    raise UnknownProcess(
        f"no DI process {name!r}: `harness di list` shows the declared ones"
        " (etl.define_di_process declares one)"
    )
