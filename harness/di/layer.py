"""The object-storage layer (seed 001's "OCI layer"): each window's file under a deterministic
key, its SHA-256 stored with it. The same window of the same process always has the same key, so
a run repeated after a failure replaces its own object rather than adding another."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from harness.di.extract import Extracted, Window
from harness.s3 import SHA256_METADATA, held


class LayerMismatch(RuntimeError):
    """The object the layer holds is not the file that was uploaded."""


def object_key(prefix: str, process: str, window: Window) -> str:
    """``<prefix><process>/<start>--<end>.csv.gz``, the bounds in UTC to the microsecond."""
    return f"{prefix}{process}/{_utc(window.start)}--{_utc(window.end)}.csv.gz"


def store(client: Any, bucket: str, key: str, extracted: Extracted) -> None:
    """Upload the file (multipart when large, by boto3's transfer manager) with its SHA-256,
    then check that the layer holds exactly that: its size and the SHA-256 it keeps."""
    client.upload_file(
        str(extracted.path),
        bucket,
        key,
        ExtraArgs={
            "Metadata": {SHA256_METADATA: extracted.sha256},
            "ContentType": "text/csv",
            "ContentEncoding": "gzip",
        },
    )
    stored = held(client, bucket, key)
    if stored != (extracted.size, extracted.sha256):
        holds = "no object" if stored is None else f"{stored[0]} bytes with SHA-256 {stored[1]}"
        raise LayerMismatch(
            f"s3://{bucket}/{key} holds {holds},"
            f" not the {extracted.size} bytes with SHA-256 {extracted.sha256} uploaded"
        )


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
