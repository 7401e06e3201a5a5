"""S3 clients for any S3-compatible store. Credentials come from the environment (AWS_* variables,
read by boto3 itself) and are never logged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# the object metadata key holding the SHA-256 pgferry computed of what it wrote
SHA256_METADATA = "sha256"
MISSING_CODES = ("404", "NoSuchKey", "NotFound")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket/some/prefix`` -> S3Location('bucket', 'some/prefix')."""
        if not url.startswith("s3://") or len(url) <= len("s3://"):
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(bucket, prefix.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name


def make_client(endpoint_url: str | None = None, region: str = "us-east-1") -> Any:
    """A boto3 S3 client (boto3 generates its class at run time, hence Any).

    Checksums are computed only where the store requires them: botocore 1.36+ adds CRC32
    trailers by default, which several S3-compatible stores reject; pgferry sends its own
    SHA-256 where integrity matters.
    """
    config = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": "path"},
    )
    # a session of its own: credentials are read from the environment now, not cached from
    # the first client this process made
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def missing(error: ClientError) -> bool:
    """The store answered that the object (or bucket key) does not exist."""
    return error.response.get("Error", {}).get("Code") in MISSING_CODES


def held(client: Any, bucket: str, key: str) -> tuple[int, str | None] | None:
    """(size, the SHA-256 kept in its metadata) of the object at ``key``; None when there is
    none. Any other refusal of the store is raised."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if missing(error):
            return None
        raise
    return head["ContentLength"], head.get("Metadata", {}).get(SHA256_METADATA)


class ObjectMismatch(RuntimeError):
    """The store does not hold the file that was uploaded (or given back)."""


def upload_verified(
    client: Any,
    bucket: str,
    key: str,
    path: Path,
    sha256: str,
    **extra_args: str,
) -> None:
    """Upload ``path`` (multipart when large, by boto3's transfer manager) with its SHA-256 in
    the object's metadata, then check that the store holds exactly that: its size and the
    SHA-256 it keeps. Uploading the same file to the same key again writes the same object."""
    size = path.stat().st_size
    client.upload_file(
        str(path), bucket, key, ExtraArgs={"Metadata": {SHA256_METADATA: sha256}, **extra_args}
    )
    stored = held(client, bucket, key)
    if stored != (size, sha256):
        holds = "no object" if stored is None else f"{stored[0]} bytes with SHA-256 {stored[1]}"
        raise ObjectMismatch(
            f"s3://{bucket}/{key} holds {holds}, not the {size} bytes with SHA-256 {sha256}"
            " uploaded"
        )
