"""A window's file -> the STG table, in one transaction of the target database: the CSV copied
into a temporary table of the STG's column types, or, when a row does not fit them, of text
columns (a value the STG column's type refuses then cannot fail the COPY: etl.merge_table
casts, and logs each row it cannot merge with its key and field while the rest lands), then
merged with etl.merge_table (stamps, real changes only; a full reload marks
rows gone from the source as deleted), then the source's soft deletes applied."""

from __future__ import annotations

import gzip
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from harness.config import first_line
from harness.di.extract import DELETED_ALIAS, Extracted, Window, extract_window
from harness.di.metadata import DiProcess

log = logging.getLogger(__name__)

TRACKING = ("inserted_at", "updated_at", "deleted_at")
READ_BLOCK = 1 << 20
QUEUED_BLOCKS = 8  # 1 MiB blocks between the reader and the COPY into the target

# the STG table's columns the source fills (all but the tracking stamps), with their types
COLUMNS_SQL = """
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
  FROM pg_catalog.pg_attribute AS a
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
   AND a.attname <> ALL (%s)
 ORDER BY a.attnum
"""
PRIMARY_KEY_SQL = """
SELECT array_agg(a.attname ORDER BY k.ordinality)
  FROM pg_catalog.pg_index AS i
 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, ordinality)
  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = %s AND i.indisprimary
"""
ROWS = sql.Identifier("pg_temp", "pgferry_di_rows")
DELETED = sql.Identifier("pg_temp", "pgferry_di_deleted")


class BadTarget(LookupError):
    """The STG table a DI process names does not exist, or has no key."""


@dataclass(frozen=True)
class Target:
    oid: int
    table: str  # schema.table as the catalog prints it, quoted where needed
    columns: list[tuple[str, str]]  # (name, type) the source fills
    keys: list[str]

    @property
    def name(self) -> sql.Composable:
        return sql.SQL(self.table)

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


@dataclass(frozen=True)
class Merged:
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    failed: int


def resolve_target(connection: psycopg.Connection, process: DiProcess) -> Target:
    oid = connection.execute("SELECT to_regclass(%s)::oid", [process.target_table]).fetchone()[0]
    if oid is None:
        raise BadTarget(
            f"DI process {process.name}: no STG table {process.target_table!r} in the target"
            " database; create it (its columns name the source columns to read)"
        )
    columns = connection.execute(COLUMNS_SQL, [oid, list(TRACKING)]).fetchall()
    keys = process.key_columns or connection.execute(PRIMARY_KEY_SQL, [oid]).fetchone()[0]
    if not keys:
        raise BadTarget(
            f"DI process {process.name}: {process.target_table} has no primary key;"
            " give the process its key columns (p_keys)"
        )
    name = connection.execute("SELECT %s::oid::regclass::text", [oid]).fetchone()[0]
    return Target(oid, name, columns, list(keys))


def copy_window_in(
    connection: psycopg.Connection,
    source: psycopg.Connection,
    process: DiProcess,
    target: Target,
    window: Window,
    path: Path,
) -> Extracted:
    """Read the window from ``source`` into the gzipped file ``path`` and, at the same time,
    into pg_temp.pgferry_di_rows of ``connection`` (inside the caller's transaction): with the
    STG table's column types and a unique key when every row fits them (the merge then neither
    casts nor looks for duplicate keys); else, after that attempt is rolled back, from the file
    as text, for the merge to cast row by row and log each row that does not fit."""
    blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_BLOCKS)
    outcome: dict[str, Any] = {}

    def extract() -> None:
        try:
            outcome["extracted"] = extract_window(
                source, process, target.column_names, window, path, tee=blocks.put
            )
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error
        finally:
            blocks.put(None)

    ended = threading.Event()

    def received() -> Iterator[bytes]:
        while (block := blocks.get()) is not None:
            yield block
        ended.set()

    reader = threading.Thread(target=extract, name="pgferry-di-extract")
    reader.start()
    try:
        typed = _copy_typed(connection, process, target, received())
    finally:
        if not ended.is_set():  # the COPY stopped early: let the reader finish its file
            for _ in received():
                pass
        reader.join()
    if "error" in outcome:
        raise outcome["error"]
    if not typed:
        _copy_text(connection, process, target, path)
    connection.execute(sql.SQL("ANALYZE {}").format(ROWS))
    return outcome["extracted"]


def merge_rows(
    connection: psycopg.Connection, process: DiProcess, target: Target, process_id: int
) -> Merged:
    """Merge pg_temp.pgferry_di_rows into the STG table (in the caller's transaction)."""
    if process.deleted_column:
        # before the merge: a full reload would otherwise mark these rows deleted now, and the
        # source's own time of deletion would be lost
        _set_aside_deleted(connection, target)
        _apply_soft_deletes(connection, target)
    merged = merge_into(
        connection,
        "pg_temp.pgferry_di_rows",
        target,
        process.full_reload,
        process_id,
        skip=(DELETED_ALIAS,),
    )
    connection.execute(sql.SQL("DROP TABLE {}").format(ROWS))
    if process.deleted_column:
        connection.execute(sql.SQL("DROP TABLE {}").format(DELETED))
    return merged


def _copy_typed(
    connection: psycopg.Connection, process: DiProcess, target: Target, blocks: Iterator[bytes]
) -> bool:
    """COPY the blocks into a table of the STG's types; False (nothing left of the attempt)
    when a row does not fit them."""
    try:
        with connection.transaction():  # a savepoint: a refused row undoes only this attempt
            _create_rows_table(connection, process, target, typed=True)
            with connection.cursor() as cursor, cursor.copy(_copy_sql(process, target)) as stream:
                for block in blocks:
                    stream.write(block)
            keys = sql.SQL(", ").join(sql.Identifier(k) for k in target.keys)
            connection.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(ROWS, keys))
    except (psycopg.DataError, psycopg.IntegrityError) as refused:
        log.info(
            "DI rows do not all fit the STG types; merging them as text",
            extra={"di_process": process.name, "reason": first_line(refused)},
        )
        return False
    return True


def _copy_text(
    connection: psycopg.Connection, process: DiProcess, target: Target, path: Path
) -> None:
    _create_rows_table(connection, process, target, typed=False)
    with (
        connection.cursor() as cursor,
        cursor.copy(_copy_sql(process, target)) as stream,
        gzip.open(path, "rb") as rows,
    ):
        while block := rows.read(READ_BLOCK):
            stream.write(block)


def _create_rows_table(
    connection: psycopg.Connection, process: DiProcess, target: Target, typed: bool
) -> None:
    types = {name: (kind if typed else "text") for name, kind in target.columns}
    if process.deleted_column:
        types[DELETED_ALIAS] = "text"
    connection.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(
            ROWS,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
                for name, kind in types.items()
            ),
        )
    )


def _copy_sql(process: DiProcess, target: Target) -> sql.Composable:
    columns = [sql.Identifier(name) for name in _file_columns(process, target)]
    return sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER)").format(
        ROWS, sql.SQL(", ").join(columns)
    )


def _file_columns(process: DiProcess, target: Target) -> list[str]:
    return target.column_names + ([DELETED_ALIAS] if process.deleted_column else [])


def _set_aside_deleted(connection: psycopg.Connection, target: Target) -> None:
    """Rows the source soft-deleted leave the rows to merge (a merge would revive them)."""
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in target.keys)
    alias = sql.Identifier(DELETED_ALIAS)
    connection.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} AS SELECT {}, {} FROM {} WHERE {} IS NOT NULL").format(
            DELETED, keys, alias, ROWS, alias
        )
    )
    connection.execute(sql.SQL("DELETE FROM {} WHERE {} IS NOT NULL").format(ROWS, alias))


def merge_into(
    connection: psycopg.Connection,
    rows: str,
    target: Target,
    full_reload: bool,
    process_id: int,
    skip: tuple[str, ...] = (),
) -> Merged:
    """etl.merge_table of the temporary table ``rows`` into ``target`` by its key; a full
    reload marks target rows ``rows`` lacks as deleted."""
    row = connection.execute(
        "SELECT * FROM etl.merge_table(%(rows)s::regclass, %(target)s::regclass, %(keys)s,"
        " p_mark_deletes => %(full)s, p_process_id => %(process)s, p_skip_columns => %(skip)s)",
        {
            "rows": rows,
            "target": target.oid,
            "keys": target.keys,
            "full": full_reload,
            "process": process_id,
            "skip": list(skip),
        },
    ).fetchone()
    return Merged(*row)


def _apply_soft_deletes(connection: psycopg.Connection, target: Target) -> None:
    """A row the source soft-deleted is deleted in STG from the source's time, once: a row
    already deleted keeps its stamp (a re-read window changes nothing)."""
    types = dict(target.columns)
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} = d.{}::{}").format(sql.Identifier(k), sql.Identifier(k), sql.SQL(types[k]))
        for k in target.keys
    )
    connection.execute(
        sql.SQL(
            "UPDATE {} AS t SET deleted_at = d.{}::timestamptz, updated_at = clock_timestamp()"
            " FROM {} AS d WHERE {} AND t.deleted_at IS NULL"
        ).format(target.name, sql.Identifier(DELETED_ALIAS), DELETED, match)
    )
