"""Source -> a gzipped CSV file: one window of a source table read with COPY, streamed through
gzip into a file while its SHA-256 is computed, so memory stays flat whatever the window's size.

Every name in the statement is an identifier quoted by psycopg (sql.Identifier) and every value
a literal it escapes: a hostile table or column name in the metadata is a name that does not
exist, never SQL that runs. The compressed bytes do not depend on when the file was written
(gzip's timestamp is 0), so the same rows give the same object and the same SHA-256."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql

from harness.di.metadata import DiProcess

DELETED_ALIAS = "pgferry_deleted"  # the source's soft-delete column, as the file carries it
GZIP_LEVEL = 1  # the layer is a transit copy: speed over size
WRITE_BLOCK = 1 << 20


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive
    end: datetime  # exclusive
    # read from this much before ``start`` too: a source transaction that stamped a row before
    # the previous window ended but committed after that window was read is still seen
    margin: timedelta = timedelta(0)

    @property
    def read_from(self) -> datetime:
        return self.start - self.margin


@dataclass(frozen=True)
class Extracted:
    path: Path
    rows: int
    size: int  # bytes of the gzipped file
    sha256: str  # of the gzipped file, as stored in the layer


class _Hashing:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def qualified(name: str) -> sql.Composable:
    """schema.table (or table) as quoted identifiers."""
    return sql.Identifier(*name.split(".", 1))


def select_window(process: DiProcess, columns: list[str], window: Window) -> sql.Composable:
    """The SELECT of one window: the STG table's columns by name, the soft-delete column as
    pgferry_deleted, rows whose CDC column falls in [start - margin, end) or is NULL (a row
    with no change time is read every run: nothing says it is old), all rows for a full
    reload."""
    selected = [sql.Identifier(column) for column in columns]
    if process.deleted_column:
        selected.append(
            sql.SQL("{} AS {}").format(
                sql.Identifier(process.deleted_column), sql.Identifier(DELETED_ALIAS)
            )
        )
    if process.source_query:
        source = sql.SQL("({}) AS pgferry_source").format(sql.SQL(process.source_query))
    else:
        source = qualified(process.source_table or "")
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(selected), source)
    if process.cdc_column:
        column = sql.Identifier(process.cdc_column)
        query += sql.SQL(" WHERE ({} >= {} AND {} < {}) OR {} IS NULL").format(
            column, sql.Literal(window.read_from), column, sql.Literal(window.end), column
        )
    return query


def extract_window(
    source: psycopg.Connection,
    process: DiProcess,
    columns: list[str],
    window: Window,
    path: Path,
    tee: Callable[[bytes], None] | None = None,
) -> Extracted:
    """Write the window's rows to ``path`` as gzipped CSV with a header line; ``tee`` is given
    the same CSV, uncompressed, a block at a time, as it is written."""
    give = tee or (lambda block: None)
    copy = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(
        select_window(process, columns, window)
    )
    with path.open("wb") as raw:
        hashing = _Hashing(raw)
        with (
            gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as out,
            source.transaction(),
            source.cursor() as cursor,
        ):
            with cursor.copy(copy) as stream:
                # COPY hands over a row at a time: gathered into large writes, gzip is called
                # a few times a megabyte instead of once a row
                pending, size = [], 0
                for block in stream:
                    pending.append(block)
                    size += len(block)
                    if size >= WRITE_BLOCK:
                        block = b"".join(pending)
                        out.write(block)
                        give(block)
                        pending, size = [], 0
                block = b"".join(pending)
                out.write(block)
                give(block)
            rows = cursor.rowcount
    return Extracted(path, rows, hashing.size, hashing.hash.hexdigest())
