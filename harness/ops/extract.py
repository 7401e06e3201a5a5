"""Development extracts: tables exported as gzipped CSV, sensitive columns masked in SQL.

The masking happens in the database (etl.extract_query applies etl.mask_rule), so original
values never reach this process. Rows are streamed from COPY straight into gzip: memory stays
flat whatever the table size.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from harness.s3 import S3Location, make_client


@dataclass(frozen=True)
class ExtractedTable:
    table: str
    path: Path
    rows: int
    masked_columns: int  # columns an etl.mask_rule masked (0 with --plain)


def extract_tables(
    database_url: str,
    tables: list[str],
    folder: Path,
    *,
    obfuscate: bool = True,
    salt: str = "",
    on_table: Callable[[ExtractedTable], None] | None = None,
) -> list[ExtractedTable]:
    """Write ``<table>.csv.gz`` (with a header line) per table into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    extracted = []
    with psycopg.connect(database_url) as connection:
        for table in tables:
            result = _extract_one(connection, table, folder, obfuscate, salt)
            extracted.append(result)
            if on_table:
                on_table(result)
    return extracted


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


def _extract_one(
    connection: psycopg.Connection, table: str, folder: Path, obfuscate: bool, salt: str
) -> ExtractedTable:
    query, name, masked = connection.execute(
        "SELECT etl.extract_query(%s::regclass, %s, %s), %s::regclass::text,"
        " (SELECT count(*) FROM etl.mask_rule"
        "   WHERE to_regclass(table_name) = %s::regclass AND mask <> 'keep')",
        [table, obfuscate, salt, table, table],
    ).fetchone()
    file_name = name.replace('"', "") + ".csv.gz"
    path = folder / file_name
    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(sql.SQL(query))
    with connection.cursor() as cursor, gzip.open(path, "wb") as out:
        with cursor.copy(copy_sql) as copy:
            for block in copy:
                out.write(block)
        rows = cursor.rowcount
    return ExtractedTable(name, path, rows, masked if obfuscate else 0)
