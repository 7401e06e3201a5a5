"""The permit pipeline against a real object store (SeaweedFS): outages, checksums, signatures.

moto accepts any checksum and restarts empty; SeaweedFS verifies the SHA-256 the harness sends,
checks SigV4 signatures and keeps its data across a crash, so these paths are tested here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from botocore.awsrequest import AWSPreparedRequest

from harness.config import PermitSettings
from harness.permits.consumer import PermitConsumer, RunTotals
from harness.permits.store import PermitStore
from harness.permits.upload import PermitUploader
from harness.s3 import make_client
from tests.support.permits import FAST_SETTINGS, assert_each_permit_moved_once, load_run, numbered
from tests.support.pg import connect
from tests.support.seaweedfs import SeaweedS3

BUCKET = "permits"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[SeaweedS3]:
    with SeaweedS3() as seaweed:
        for name, value in seaweed.env().items():
            monkeypatch.setenv(name, value)
        make_client(seaweed.endpoint_url).create_bucket(Bucket=BUCKET)
        yield seaweed


def consumer(
    conn: psycopg.Connection,
    seaweed: SeaweedS3,
    on_batch: Callable[[RunTotals], None] | None = None,
    **overrides: object,
) -> PermitConsumer:
    settings = PermitSettings(**{**FAST_SETTINGS, **overrides})
    uploader = PermitUploader(make_client(seaweed.endpoint_url), BUCKET, "permits/")
    return PermitConsumer(PermitStore(conn), uploader, settings, "w", threading.Event(), on_batch)


def test_the_store_dies_mid_run_and_comes_back_nothing_is_lost(
    db_url: str, store: SeaweedS3
) -> None:
    permits = numbered(40)

    def crash_store_after_first_batch(totals: RunTotals) -> None:
        if store.running and totals.moved:
            store.stop(graceful=False)  # kill -9 the object store

    with connect(db_url) as conn:
        load_run(conn, permits)
        during = consumer(conn, store, crash_store_after_first_batch, max_attempts=3).drain()

        assert 0 < during.moved < 40
        assert during.moved + during.dead == 40  # every permit moved or parked, none lost
        dead = conn.execute(
            "SELECT attempts, last_error FROM tps.staged_permit WHERE state = 'dead'"
        ).fetchall()
        assert len(dead) == during.dead
        assert {attempts for attempts, _ in dead} == {3}  # only after the configured attempts
        assert all("Could not connect to the endpoint URL" in error for _, error in dead)

        store.restart()
        requeued = PermitStore(conn).requeue_dead()
        assert len(requeued) == during.dead
        after = consumer(conn, store).drain()
        assert after.moved == during.dead
        assert_each_permit_moved_once(conn, store.endpoint_url, BUCKET, permits)


def test_the_store_rejects_a_body_that_does_not_match_its_sha256(
    db_url: str, store: SeaweedS3
) -> None:
    """A body damaged on the way is refused by the store (BadDigest) and sent again."""
    permits = numbered(3)
    with connect(db_url) as conn:
        load_run(conn, permits)
        damaging = consumer(conn, store, retry_base_seconds=3600, retry_cap_seconds=3600)
        client = damaging.uploader.client

        def damage_body(request: AWSPreparedRequest, **kwargs: object) -> None:
            body = bytearray(request.body.getvalue())  # botocore hands the body as a BytesIO
            body[-10] ^= 0xFF
            request.body = bytes(body)

        client.meta.events.register("before-send.s3.PutObject", damage_body)
        first = damaging.drain()
        assert (first.moved, first.upload_failures) == (0, 3)
        errors = [r[0] for r in conn.execute("SELECT last_error FROM tps.staged_permit")]
        assert all("BadDigest" in error for error in errors)
        assert make_client(store.endpoint_url).list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0

        client.meta.events.unregister("before-send.s3.PutObject", damage_body)
        conn.execute("UPDATE tps.staged_permit SET next_attempt_at = now()")  # the hour passed
        second = damaging.drain()
        assert second.moved == 3
        assert_each_permit_moved_once(conn, store.endpoint_url, BUCKET, permits)


def test_a_wrong_secret_is_refused_retried_and_dead_lettered(
    db_url: str, store: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with connect(db_url) as conn:
        load_run(conn, numbered(2))
        totals = consumer(conn, store, max_attempts=2).drain()
        assert (totals.moved, totals.dead, totals.upload_failures) == (0, 2, 4)
        errors = [r[0] for r in conn.execute("SELECT last_error FROM tps.staged_permit")]
        assert len(errors) == 2 and all("SignatureDoesNotMatch" in e for e in errors)
        secret_logged = conn.execute(
            "SELECT count(*) FROM etl.error_log WHERE message LIKE '%not-the-secret%'"
            " OR detail LIKE '%not-the-secret%'"
        ).fetchone()
        assert secret_logged == (0,)
