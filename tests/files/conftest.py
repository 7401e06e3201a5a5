"""The file importer's site: a folder source, a bucket for raw copies in the test S3, the
target table, and the environment a `harness` subprocess needs to use them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.s3 import make_client
from tests.files.test_importer import HEADER, TARGET
from tests.support.pg import connect


@dataclass
class Site:
    url: str
    env: dict[str, str]
    folder: Path
    client: object
    bucket: str

    def target(self) -> list[tuple]:
        with connect(self.url) as conn:
            return conn.execute(
                "SELECT pid::text AS id, address, assessed::text FROM app.property ORDER BY pid"
            ).fetchall()

    def expire_leases(self) -> None:
        """What time does for a dead worker's claims (instead of waiting out the lease)."""
        with connect(self.url) as conn:
            conn.execute(
                "UPDATE files.file SET lease_expires_at = now() - interval '1 second'"
                " WHERE state = 'claimed'"
            )


@pytest.fixture
def site(db_url: str, s3_endpoint: str, s3_credentials: None, tmp_path: Path) -> Iterator[Site]:
    folder = tmp_path / "incoming"
    folder.mkdir()
    client = make_client(s3_endpoint)
    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": db_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FILES_BUCKET": bucket,
        "FILES_ENDPOINT_URL": s3_endpoint,
        "FILES_SCRATCH": str(tmp_path),
        "PGFERRY_FILES_COUNTY_URL": folder.as_uri(),
    }
    client.create_bucket(Bucket=bucket)
    with connect(db_url) as conn:
        conn.execute(TARGET)
        conn.execute(
            "SELECT files.define_source('county', 'app.property', p_pattern => '*.csv*',"
            " p_header => %s)",
            [HEADER],
        )
    yield Site(db_url, env, folder, client, bucket)
