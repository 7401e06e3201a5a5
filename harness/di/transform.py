"""STG -> BL: one SELECT per BL table, kept by the project as a versioned file
(``<transforms>/<schema>.<table>.sql``, default the checkout's db/transforms), merged into the
BL table with etl.merge_table in one transaction.

The window of the run is in the settings pgferry.window_from and pgferry.window_to for an
incremental transform to read (current_setting('pgferry.window_from')::timestamptz); a process
without a CDC column reloads the whole table and marks BL rows its SELECT no longer gives as
deleted. The file is run as a subquery, so it can only be one SELECT: a second statement in it
is a syntax error, never a second statement run."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import sql

from harness.di.extract import Window
from harness.di.load import Merged, Target, merge_into

ROWS = sql.Identifier("pg_temp", "pgferry_bl_rows")


class MissingTransform(FileNotFoundError):
    """The SELECT of a BL table is not where the project keeps its transforms."""


def transform_path(folder: Path, target_table: str) -> Path:
    name = re.sub(r"[^\w.-]", "_", target_table)
    return folder / f"{name}.sql"


def read_transform(folder: Path, target_table: str) -> str:
    path = transform_path(folder, target_table)
    if not path.is_file():
        raise MissingTransform(
            f"no transform for {target_table}: write its SELECT in {path}"
            " (or point DI_TRANSFORMS at the folder that holds it)"
        )
    return path.read_text().strip().rstrip(";").strip()


def merge_transform(
    connection: psycopg.Connection,
    select: str,
    target: Target,
    window: Window,
    full_reload: bool,
    process_id: int,
) -> Merged:
    with connection.transaction():
        connection.execute("SET LOCAL TimeZone = 'UTC'")
        connection.execute(
            "SELECT set_config('pgferry.window_from', %s, true),"
            " set_config('pgferry.window_to', %s, true)",
            [window.start.isoformat(), window.end.isoformat()],
        )
        connection.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} AS SELECT * FROM ({}) AS pgferry_transform").format(
                ROWS, sql.SQL(select)
            )
        )
        merged = merge_into(connection, "pg_temp.pgferry_bl_rows", target, full_reload, process_id)
        connection.execute(sql.SQL("DROP TABLE {}").format(ROWS))
    return merged
