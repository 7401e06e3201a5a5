"""Reconcile S3 with the permit tables: objects no document row or staged permit accounts for
(orphans), documents whose object is missing, and objects whose size differs from the row.

Deleting orphans races with re-delivered permits: between reconcile's snapshot and its DELETE, a
permit whose object is the orphan may be staged, uploaded (412: the object exists with the same
checksum) and moved, recording a document for an object about to go. So the database decides,
per key and under a lock the move also takes, which orphans may still be deleted, and tombstones
them; moves refuse tombstoned keys and upload again afterwards (permit.tombstone_orphans,
permit.move_batch, permit.clear_tombstones). A tombstone this run fails to clear (it was killed)
expires after permit.tombstone_lifetime(), so the run deletes nothing after DELETE_WITHIN."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from harness.permits.store import ClaimedPermit
from harness.permits.upload import PermitUploader

# half of permit.tombstone_lifetime() (10 minutes): a delete still in flight at this deadline
# ends long before the tombstones expire and moves of the key are allowed again
DELETE_WITHIN = timedelta(minutes=5)


@dataclass
class Reconciliation:
    objects: int = 0
    documents: int = 0
    orphans: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.missing or self.size_mismatch)


def reconcile(
    connection: psycopg.Connection,
    client: Any,
    uploader: PermitUploader,
    *,
    delete: bool = False,
    min_age: timedelta = timedelta(hours=1),
) -> Reconciliation:
    """List the objects first, then read staged rows and documents in one snapshot: a move
    deletes the staged row and adds the document atomically, so an object being moved is in
    one of the two, never in neither. Only orphans older than ``min_age`` are deleted."""
    objects = _objects(client, uploader.bucket, uploader.prefix)
    with connection.transaction():
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        in_flight = {
            uploader.object_key(
                ClaimedPermit(0, number, generation - 1, None, None, "upload", None)
            )
            for number, generation in connection.execute(
                "SELECT permit_number, permit_generation FROM tps.staged_permit"
                " WHERE permit_number IS NOT NULL AND permit_generation >= 1"
            )
        }
        documents = dict(
            connection.execute(
                "SELECT object_key, size_bytes FROM permit.document WHERE bucket = %s",
                [uploader.bucket],
            ).fetchall()
        )
    result = Reconciliation(objects=len(objects), documents=len(documents))
    result.orphans = sorted(set(objects) - set(documents) - in_flight)
    result.missing = sorted(set(documents) - set(objects))
    result.size_mismatch = sorted(
        key for key, size in documents.items() if key in objects and objects[key][0] != size
    )
    if delete:
        cutoff = datetime.now(UTC) - min_age
        old = [key for key in result.orphans if objects[key][1] <= cutoff]
        deadline = time.monotonic() + DELETE_WITHIN.total_seconds()  # before the tombstones
        doomed = _tombstone(connection, uploader, old)
        result.orphans = [key for key in result.orphans if key in doomed or key not in old]
        result.deleted = _delete(connection, client, uploader.bucket, doomed, deadline)
    return result


def _tombstone(
    connection: psycopg.Connection, uploader: PermitUploader, keys: list[str]
) -> list[str]:
    """The keys the database, checking again now, agrees are orphans: tombstoned for deletion."""
    if not keys:
        return []
    orphans = []
    for key in keys:
        number, generation = uploader.permit_of(key) or (None, None)
        orphans.append(
            {"object_key": key, "permit_number": number, "permit_generation": generation}
        )
    rows = connection.execute(
        "SELECT * FROM permit.tombstone_orphans(%s, %s)", [uploader.bucket, Jsonb(orphans)]
    ).fetchall()
    return sorted(row[0] for row in rows)


def _delete(
    connection: psycopg.Connection, client: Any, bucket: str, keys: list[str], deadline: float
) -> list[str]:
    """Delete the tombstoned objects until ``deadline`` (monotonic), then clear their tombstones
    (also when a delete fails: the object then stays, which a move may use again). Objects left
    at the deadline stay orphans for the next run."""
    deleted: list[str] = []
    try:
        for key in keys:
            if time.monotonic() >= deadline:
                break
            client.delete_object(Bucket=bucket, Key=key)
            deleted.append(key)
    finally:
        if keys:
            connection.execute("SELECT permit.clear_tombstones(%s, %s)", [bucket, keys])
    return deleted


def _objects(client: Any, bucket: str, prefix: str) -> dict[str, tuple[int, datetime]]:
    """Key -> (size, last modified)."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["Size"], item["LastModified"])
    return found
