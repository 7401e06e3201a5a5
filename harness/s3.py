"""S3 clients for any S3-compatible store. Credentials come from the environment (AWS_* variables,
read by boto3 itself) and are never logged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config


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
