"""The object-storage layer (seed 001's "OCI layer"): each window's file under a deterministic
key, its SHA-256 stored with it. The same window of the same process always has the same key, so
a run repeated after a failure replaces its own object rather than adding another."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from harness.di.extract import Extracted, Window
from harness.s3 import upload_verified


def object_key(prefix: str, process: str, window: Window) -> str:
    """``<prefix><process>/<start>--<end>.csv.gz``, the bounds in UTC to the microsecond."""
    return f"{prefix}{process}/{_utc(window.start)}--{_utc(window.end)}.csv.gz"


def store(client: Any, bucket: str, key: str, extracted: Extracted) -> None:
    """The window's file under ``key``, checked (harness.s3.upload_verified)."""
    upload_verified(
        client,
        bucket,
        key,
        extracted.path,
        extracted.sha256,
        ContentType="text/csv",
        ContentEncoding="gzip",
    )


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
