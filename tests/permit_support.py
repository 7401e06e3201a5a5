"""Helpers for permit pipeline tests: play the loader, build consumers, read S3."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg

from harness.config import PermitSettings
from harness.permits.consumer import PermitConsumer
from harness.permits.store import PermitStore
from harness.permits.upload import PermitUploader
from harness.s3 import make_client
from harness.samples import sample_pdf

FAST_SETTINGS = {
    "batch_size": 10,
    "upload_concurrency": 4,
    "lease_seconds": 60,
    "max_attempts": 3,
    "retry_base_seconds": 0,
    "retry_cap_seconds": 0,
}


@dataclass
class StagedPermit:
    permit_number: str | None
    generation: int | None = 1
    pdf: bytes | None = None
    service: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        pdf = self.pdf if self.pdf is not None else sample_pdf(f"{self.permit_number}", 2000)
        return {
            "permit_number": self.permit_number,
            "permit_generation": self.generation,
            "new_permit_number": f"ORBC-{self.permit_number}",
            "permit_type": "TROS",
            "plate": "ABC123",
            "vin": "1HGBH41JXMN109186",
            "service": self.service,
            "pdf": pdf,
            **self.extra,
        }


def load_run(
    connection: psycopg.Connection, permits: list[StagedPermit], status: str = "succeeded"
) -> int:
    """Play the upstream loader: open a run, stage the permits, close it."""
    process_id = connection.execute("SELECT etl.start_process('permits')").fetchone()[0]
    assert process_id is not None, "another permits run is still running"
    for permit in permits:
        row = permit.row()
        columns = ", ".join(["process_id", *row])
        values = ", ".join(["%s"] * (len(row) + 1))
        connection.execute(
            f"INSERT INTO tps.staged_permit ({columns}) VALUES ({values})",
            [process_id, *row.values()],
        )
    if status != "running":
        connection.execute(
            "SELECT etl.end_process(%s, %s, %s)", [process_id, status, len(permits)]
        )
    return process_id


def numbered(count: int, start: int = 1, size: int = 2000) -> list[StagedPermit]:
    return [
        StagedPermit(f"P{n:08d}", 1, sample_pdf(f"P{n:08d}", size))
        for n in range(start, start + count)
    ]


def make_consumer(
    connection: psycopg.Connection,
    endpoint: str,
    bucket: str,
    worker: str = "test-worker",
    stop: threading.Event | None = None,
    **overrides: Any,
) -> PermitConsumer:
    settings = PermitSettings(**{**FAST_SETTINGS, **overrides})
    uploader = PermitUploader(make_client(endpoint), bucket, "permits/")
    return PermitConsumer(PermitStore(connection), uploader, settings, worker, stop)


def object_keys(endpoint: str, bucket: str) -> list[str]:
    client = make_client(endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
