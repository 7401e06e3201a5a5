"""Development extracts: tables exported as gzipped CSV, sensitive columns masked in SQL.

The masking happens in the database (etl.extract_query applies etl.mask_rule), so original
values never reach this process. Rows are streamed from COPY straight into gzip: memory stays
flat whatever the table size.

The hash salt is set for the extract's transaction with set_config and a bound parameter; it
never appears in statement text (pg_stat_activity, the server log of a failed statement). File
names come from the table's schema and name as the catalog has them, with every character that
could leave the folder replaced: each file lands inside the folder it was asked for.
"""

from __future__ import annotations

import gzip
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from harness import connections
from harness.s3 import S3Location, make_client

# the names etl.extract_query resolves (table or schema.table, each part plain or quoted): the
# same guard as there, since PostgreSQL 15's to_regclass raises on a malformed name
RULE_NAME = r'^\s*("([^"]|"")+"|[^".\s]+)(\s*\.\s*("([^"]|"")+"|[^".\s]+))?\s*$'

RESOLVE_SQL = """
SELECT c.oid, n.nspname, c.relname, format('%%I.%%I', n.nspname, c.relname)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = %s::regclass
"""
MASKED_SQL = """
SELECT count(*) FROM etl.mask_rule r
  JOIN pg_catalog.pg_attribute a
    ON a.attrelid = %(table)s::oid AND a.attname = r.column_name AND a.attnum > 0
   AND NOT a.attisdropped
 WHERE r.mask <> 'keep'
   AND CASE WHEN r.table_name ~ %(pattern)s THEN pg_catalog.to_regclass(r.table_name) END
       = %(table)s::oid::regclass
"""
# the error a name gives when it names no table (or is no valid name at all)
NO_SUCH_TABLE = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.InvalidSchemaName,
    psycopg.errors.InvalidName,
    psycopg.errors.SyntaxError,
    psycopg.errors.FeatureNotSupported,  # a.b.c.d, or another database's table
    psycopg.errors.InvalidTextRepresentation,
)


class UnknownTable(LookupError):
    """A table named for an extract does not exist (or is not visible to this user)."""


@dataclass(frozen=True)
class Table:
    oid: int
    schema: str
    name: str
    qualified: str  # "stg.client", quoted where needed

    @property
    def file_name(self) -> str:
        return f"{safe_file_part(self.schema)}.{safe_file_part(self.name)}.csv.gz"


@dataclass(frozen=True)
class ExtractedTable:
    table: str
    path: Path
    rows: int
    masked_columns: int  # columns an etl.mask_rule masked (0 with --plain)


def safe_file_part(name: str) -> str:
    """A schema or table name as part of a file name: letters, digits, _ and - kept, anything
    else (/, \\, ., spaces, control characters) replaced by _, never empty."""
    return re.sub(r"[^\w-]", "_", name) or "_"


def extract_tables(
    database_url: str,
    tables: list[str],
    folder: Path,
    *,
    obfuscate: bool = True,
    salt: str = "",
    on_table: Callable[[ExtractedTable], None] | None = None,
) -> list[ExtractedTable]:
    """Write ``<schema>.<table>.csv.gz`` (with a header line) per table into ``folder``.
    Every name is resolved first: an unknown one is an UnknownTable before any file is written."""
    extracted = []
    with connections.connect(database_url) as connection:
        resolved = resolve_tables(connection, tables)
        connection.execute("SELECT set_config('pgferry.mask_salt', %s, true)", [salt])
        folder.mkdir(parents=True, exist_ok=True)
        for table, file_name in zip(resolved, _unique_file_names(resolved), strict=True):
            result = _extract_one(connection, table, _inside(folder, file_name), obfuscate)
            extracted.append(result)
            if on_table:
                on_table(result)
    return extracted


def resolve_tables(connection: psycopg.Connection, names: list[str]) -> list[Table]:
    """The tables ``names`` denote for this user (search_path applies); UnknownTable naming
    every one that denotes none."""
    tables, unknown = [], []
    for name in names:
        try:
            with connection.transaction():  # a savepoint: one bad name leaves the rest usable
                row = connection.execute(RESOLVE_SQL, [name]).fetchone()
        except NO_SUCH_TABLE:
            row = None
        if row is None:
            unknown.append(name)
        else:
            tables.append(Table(*row))
    if unknown:
        listed = ", ".join(f'"{name}"' for name in unknown)
        raise UnknownTable(
            f"no table {listed} in this database (or not visible to this user);"
            " name it as schema.table, as psql's \\dt lists it"
        )
    return tables


def extract_to_s3(
    database_url: str,
    tables: list[str],
    destination: S3Location,
    *,
    endpoint_url: str | None = None,
    obfuscate: bool = True,
    salt: str = "",
) -> list[tuple[ExtractedTable, str]]:
    """Extract into a temporary folder, then upload each file; returns (table, key) pairs."""
    client = make_client(endpoint_url)
    uploaded = []
    with tempfile.TemporaryDirectory(prefix="pgferry-extract-") as scratch:
        for table in extract_tables(
            database_url, tables, Path(scratch), obfuscate=obfuscate, salt=salt
        ):
            key = destination.key(table.path.name)
            client.upload_file(str(table.path), destination.bucket, key)
            uploaded.append((table, key))
    return uploaded


def _unique_file_names(tables: list[Table]) -> list[str]:
    """One file per table even when two names clean up alike (a/b and a_b): -2, -3 added."""
    seen: dict[str, int] = {}
    names = []
    for table in tables:
        base = table.file_name
        seen[base] = seen.get(base, 0) + 1
        count = seen[base]
        names.append(base if count == 1 else base.replace(".csv.gz", f"-{count}.csv.gz"))
    return names


def _inside(folder: Path, file_name: str) -> Path:
    path = folder / file_name
    if path.resolve().parent != folder.resolve():  # cannot happen after safe_file_part
        raise ValueError(f"refusing to write {file_name!r} outside {folder}")
    return path


def _extract_one(
    connection: psycopg.Connection, table: Table, path: Path, obfuscate: bool
) -> ExtractedTable:
    query, masked = connection.execute(
        f"SELECT etl.extract_query(%(table)s::oid::regclass, %(obfuscate)s), ({MASKED_SQL})",
        {"table": table.oid, "obfuscate": obfuscate, "pattern": RULE_NAME},
    ).fetchone()
    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(sql.SQL(query))
    with connection.cursor() as cursor, gzip.open(path, "wb") as out:
        with cursor.copy(copy_sql) as copy:
            for block in copy:
                out.write(block)
        rows = cursor.rowcount
    return ExtractedTable(table.qualified, path, rows, masked if obfuscate else 0)
