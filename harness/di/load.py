"""A window's rows -> the STG table, in one transaction of the target database: the CSV copied
straight into the STG table on a first load (harness.di.first_load); else into a temporary
table of the STG's column types or, when a row does not fit them, of text columns (a value the
STG column's type refuses then cannot fail the COPY: etl.merge_table casts, and logs each row
it cannot merge with its key and field while the rest lands), the source's soft deletes
applied, then merged with etl.merge_table (stamps, real changes only; a full reload marks rows
gone from the source as deleted)."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from harness.config import first_line
from harness.di.extract import DELETED_ALIAS, Extracted, Window, extract_window
from harness.di.first_load import NotEmpty, may_load_straight, stamped_by_default
from harness.di.metadata import DiProcess

log = logging.getLogger(__name__)

TRACKING = ("inserted_at", "updated_at", "deleted_at")
READ_BLOCK = 1 << 20

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
    """The table a DI process or a file source loads into does not exist, or has no key."""


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
    return resolve_table(
        connection, process.target_table, process.key_columns, f"DI process {process.name}"
    )


def resolve_table(
    connection: psycopg.Connection, table: str, keys: list[str] | None, owner: str
) -> Target:
    """The table ``owner`` (a DI process, a file source) loads into, and its key: the declared
    ``keys``, else the table's primary key. BadTarget names what is missing."""
    oid = connection.execute("SELECT to_regclass(%s)::oid", [table]).fetchone()[0]
    if oid is None:
        raise BadTarget(
            f"{owner}: no table {table!r} in the target database; create it (its columns"
            " name the columns to load)"
        )
    columns = connection.execute(COLUMNS_SQL, [oid, list(TRACKING)]).fetchall()
    keys = keys or connection.execute(PRIMARY_KEY_SQL, [oid]).fetchone()[0]
    if not keys:
        raise BadTarget(f"{owner}: {table} has no primary key; declare its key columns (p_keys)")
    name = connection.execute("SELECT %s::oid::regclass::text", [oid]).fetchone()[0]
    return Target(oid, name, columns, list(keys))


@dataclass(frozen=True)
class Loaded:
    extracted: Extracted
    # the rows went straight into the empty STG table (harness.di.first_load): nothing to merge
    straight: bool


Write = Callable[[bytes], None]
Feed = Callable[[Write], None]  # hands the window's CSV to a write, a block at a time
Attempt = Callable[[psycopg.Connection, DiProcess, Target, Feed], bool]


class SourceReadFailed(RuntimeError):
    """The window's read failed (the source, or a connection lost while the rows streamed): the
    run's failure, told apart from a row the target refused, which is a reason to try the next
    way in. The target reports a refused row when its COPY ends, not while the rows stream (it
    reads and drops the rest), so the source is always read to its end: the file is whole for
    the next way."""


def copy_window_in(
    connection: psycopg.Connection,
    source: psycopg.Connection,
    process: DiProcess,
    target: Target,
    window: Window,
    path: Path,
) -> Loaded:
    """Read the window from ``source`` into the gzipped file ``path`` and, in the same pass,
    into the target (inside the caller's transaction): straight into the STG table on a first
    load (harness.di.first_load), else into pg_temp.pgferry_di_rows with the STG table's column
    types and a unique key (the merge then neither casts nor looks for duplicate keys). An
    attempt the rows do not fit is rolled back and the next reads the file; the last, a table
    of text columns, takes every row, for the merge to cast and log each row that does not fit.
    One thread: the source, gzip and the target's COPY take turns a megabyte at a
    time, and the two database servers work in parallel."""
    extracted: list[Extracted] = []

    def live(write: Write) -> None:
        try:
            extracted.append(
                extract_window(source, process, target.column_names, window, path, tee=write)
            )
        except psycopg.Error as error:
            raise SourceReadFailed(first_line(error)) from error

    def from_file(write: Write) -> None:
        with gzip.open(path, "rb") as rows:
            while block := rows.read(READ_BLOCK):
                write(block)

    attempts: list[Attempt] = [_copy_typed, _copy_text]
    soft_deletes = bool(process.deleted_column)
    if may_load_straight(connection, target.name, target.oid, target.keys, soft_deletes):
        attempts.insert(0, _copy_straight)
    # the source is read once: an attempt refused before it read anything leaves it to the next
    fitted = next(
        attempt
        for attempt in attempts
        if attempt(connection, process, target, from_file if extracted else live)
    )
    straight = fitted is _copy_straight
    if not straight:
        connection.execute(sql.SQL("ANALYZE {}").format(ROWS))
    return Loaded(extracted[0], straight)


def merge_rows(
    connection: psycopg.Connection,
    process: DiProcess,
    target: Target,
    process_id: int,
    loaded: Loaded,
) -> Merged:
    """Merge pg_temp.pgferry_di_rows into the STG table (in the caller's transaction); after a
    first load straight into STG, the counts of that load."""
    if loaded.straight:
        return Merged(loaded.extracted.rows, 0, 0, 0, 0)
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


def _copy_straight(
    connection: psycopg.Connection, process: DiProcess, target: Target, feed: Feed
) -> bool:
    """COPY into the empty STG table itself (harness.di.first_load)."""
    copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER)")
    try:
        with (
            connection.transaction(),  # a savepoint: a refusal undoes the attempt, defaults too
            stamped_by_default(connection, target.name, target.oid),
        ):
            _copy_in(connection, copy.format(target.name, _copy_columns(process, target)), feed)
    except (psycopg.Error, NotEmpty) as no:
        # a refused row, this role not allowed to ALTER the table, a lock conflict: the
        # savepoint undid it all; only a lost connection is the run's failure
        return _refused(connection, process, "straight into the STG table", no)
    return True


def _copy_typed(
    connection: psycopg.Connection, process: DiProcess, target: Target, feed: Feed
) -> bool:
    """COPY into a table of the STG's types with a unique key."""
    try:
        with connection.transaction():  # a savepoint: a refused row undoes only this attempt
            _create_rows_table(connection, process, target, typed=True)
            _copy_in(connection, _copy_sql(process, target), feed)
            keys = sql.SQL(", ").join(sql.Identifier(k) for k in target.keys)
            connection.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(ROWS, keys))
    except psycopg.Error as no:
        return _refused(connection, process, "into a table of the STG's types", no)
    return True


def _copy_text(
    connection: psycopg.Connection, process: DiProcess, target: Target, feed: Feed
) -> bool:
    """COPY into a table of text columns: every row fits."""
    _create_rows_table(connection, process, target, typed=False)
    _copy_in(connection, _copy_sql(process, target), feed)
    return True


def _copy_in(connection: psycopg.Connection, copy: sql.Composable, feed: Feed) -> None:
    with connection.cursor() as cursor, cursor.copy(copy) as stream:
        feed(stream.write)


def _refused(
    connection: psycopg.Connection, process: DiProcess, way: str, refusal: Exception
) -> bool:
    """Log a way in the rows did not take (its savepoint undid it) and say so; a lost target
    connection is raised: no other way can work."""
    if connection.broken:
        raise refusal
    log.info(
        "DI rows not loaded this way; trying the next",
        extra={"di_process": process.name, "way": way, "reason": first_line(refusal)},
    )
    return False


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
    return sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER)").format(
        ROWS, _copy_columns(process, target)
    )


def _copy_columns(process: DiProcess, target: Target) -> sql.Composable:
    """The file's columns: the STG's the source fills, and the source's soft-delete column."""
    names = target.column_names + ([DELETED_ALIAS] if process.deleted_column else [])
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


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
