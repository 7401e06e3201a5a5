"""Files CDC (seed 001): the objects a source table names (its key column, rows whose CDC
column falls in the run's window) copied from the source bucket to the target bucket under the
same key, each with its SHA-256.

Idempotent: an object the target already holds with the same size and SHA-256 (kept in its
metadata) is not copied again, so a file looked at by two overlapping windows is copied once; a
target object that differs (a partial or corrupt copy) is replaced. Each copy streams through a
temporary file (memory flat whatever the size), is checked against what the target then holds,
and an object the source lacks is logged in etl.error_log with its key while the others go on."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql

from harness.di.extract import Window, qualified
from harness.di.metadata import DiProcess
from harness.s3 import SHA256_METADATA, S3Location, held, missing

CHUNK = 1 << 20
COPIES_AT_ONCE = 8


@dataclass
class FileCounts:
    listed: int = 0
    copied: int = 0
    present: int = 0  # already in the target, same size and SHA-256
    failed: int = 0


@dataclass(frozen=True)
class FileFailure:
    key: str
    error: str


def keys_in_window(source: psycopg.Connection, process: DiProcess, window: Window) -> list[str]:
    column = sql.Identifier(process.key_columns[0])
    cdc = sql.Identifier(process.cdc_column or "")
    query = sql.SQL(
        "SELECT DISTINCT {key}::text FROM {table}"
        " WHERE (({cdc} >= {start} AND {cdc} < {end}) OR {cdc} IS NULL) AND {key} IS NOT NULL"
        " ORDER BY 1"
    ).format(
        key=column,
        table=qualified(process.source_table or ""),
        cdc=cdc,
        start=sql.Literal(window.read_from),
        end=sql.Literal(window.end),
    )
    with source.transaction():
        return [row[0] for row in source.execute(query)]


def copy_files(
    client: Any, process: DiProcess, keys: list[str]
) -> tuple[FileCounts, list[FileFailure]]:
    """Copy every key; the counts and the keys that failed, each with its reason."""
    source = S3Location.parse(process.source_bucket or "")
    target = S3Location.parse(process.target_table)
    counts, failures = FileCounts(listed=len(keys)), []
    with ThreadPoolExecutor(COPIES_AT_ONCE, thread_name_prefix="pgferry-files") as pool:
        for outcome in pool.map(lambda key: _copy_one(client, source, target, key), keys):
            if isinstance(outcome, FileFailure):
                counts.failed += 1
                failures.append(outcome)
            elif outcome:
                counts.copied += 1
            else:
                counts.present += 1
    return counts, failures


def _copy_one(client: Any, source: S3Location, target: S3Location, key: str) -> bool | FileFailure:
    """True when copied, False when the target held it already, a FileFailure otherwise."""
    try:
        return _copy(client, source, target, key)
    except (ClientError, BotoCoreError, OSError) as error:
        return FileFailure(key, f"{type(error).__name__}: {error}")


def _copy(client: Any, source: S3Location, target: S3Location, key: str) -> bool | FileFailure:
    source_key, target_key = source.key(key), target.key(key)
    try:
        head = client.head_object(Bucket=source.bucket, Key=source_key)
    except ClientError as error:
        return FileFailure(key, f"s3://{source.bucket}/{source_key}: {_reason(error)}")
    with tempfile.TemporaryFile(prefix="pgferry-file-") as scratch:
        digest = hashlib.sha256()
        body = client.get_object(Bucket=source.bucket, Key=source_key)["Body"]
        for chunk in _chunks(body):
            digest.update(chunk)
            scratch.write(chunk)
        size, sha256 = scratch.tell(), digest.hexdigest()
        if size != head["ContentLength"]:
            return FileFailure(key, f"read {size} of {head['ContentLength']} bytes")
        if held(client, target.bucket, target_key) == (size, sha256):
            return False
        scratch.seek(0)
        client.upload_fileobj(
            scratch, target.bucket, target_key, ExtraArgs={"Metadata": {SHA256_METADATA: sha256}}
        )
    if held(client, target.bucket, target_key) != (size, sha256):
        return FileFailure(key, "the target does not hold what was written")
    return True


def _chunks(body: Any) -> Iterator[bytes]:
    while chunk := body.read(CHUNK):
        yield chunk


def _reason(error: ClientError) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    return "no such object" if missing(error) else f"S3 error {code}"
