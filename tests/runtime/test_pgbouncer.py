"""Both pipelines through a real PgBouncer in transaction pooling mode, the worker poll-only
(PGFERRY_LISTEN=off): every permit moved, DeTrack holding the ERP's shipments, nothing that
transaction pooling breaks (session advisory locks, session settings, server-side prepared
statements reused across transactions) in the way."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from harness.demo.detrack_fake import DetrackFake
from harness.runtime.wakeup import PollBackoff, run_until_stopped
from harness.s3 import make_client
from tests.cli.support import closed_port
from tests.runtime.test_exit_codes import shipment_env
from tests.runtime.test_worker import wait_for
from tests.support.permits import (
    load_run,
    numbered,
    run_harness,
    running_harness,
    stop_harness,
    worker_env,
)
from tests.support.pgbouncer import pgbouncer
from tests.support.shipments import assert_detrack_matches_erp, insert_shipments, shipment

PERMITS, SHIPMENTS = 120, 30


@pytest.fixture
def bouncer(db_url: str) -> Iterator[str]:
    with pgbouncer(db_url) as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"bouncer-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def environment(bouncer: str, s3_endpoint: str, bucket: str, fake: DetrackFake) -> dict[str, str]:
    return {
        **worker_env(bouncer, s3_endpoint, bucket, batch_size=7),
        **shipment_env(bouncer, fake.base_url),
        "SHIPMENTS_CLAIM_SIZE": "4",
        "PGFERRY_LISTEN": "off",
    }


def moved(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0]


def test_a_one_off_run_through_pgbouncer_moves_everything(
    conn: psycopg.Connection,
    bouncer: str,
    s3_endpoint: str,
    bucket: str,
    fake: DetrackFake,
) -> None:
    load_run(conn, numbered(PERMITS))
    insert_shipments(conn, [shipment() for _ in range(SHIPMENTS)])

    result = run_harness(environment(bouncer, s3_endpoint, bucket, fake), "run")

    assert result.returncode == 0, result.stderr
    assert moved(conn) == PERMITS
    assert_detrack_matches_erp(conn, fake)


def test_a_poll_only_worker_through_pgbouncer_takes_work_that_arrives(
    conn: psycopg.Connection,
    bouncer: str,
    s3_endpoint: str,
    bucket: str,
    fake: DetrackFake,
) -> None:
    env = environment(bouncer, s3_endpoint, bucket, fake)
    with running_harness(env, "run", "--loop") as worker:
        wait_for(lambda: conn.execute("SELECT count(*) FROM etl.worker").fetchone()[0], 30)
        load_run(conn, numbered(PERMITS))
        insert_shipments(conn, [shipment() for _ in range(SHIPMENTS)])
        wait_for(lambda: moved(conn) == PERMITS and len(fake.jobs()) == SHIPMENTS, 60)
        _, err = stop_harness(worker)
    assert worker.returncode == 0, err
    assert_detrack_matches_erp(conn, fake)


def test_poll_only_holds_no_listen_connection() -> None:
    """With no channels the wait is a poll: nothing connects (here, to a port where nothing
    listens, a LISTEN connection would retry until stopped and the cycles would never run)."""
    stop, cycles = threading.Event(), []

    def cycle() -> bool:
        cycles.append(1)
        if len(cycles) == 3:
            stop.set()
        return False

    waiting = threading.Thread(
        target=run_until_stopped,
        args=(f"postgresql://postgres@127.0.0.1:{closed_port()}/x", (), stop, cycle),
        kwargs={"backoff": PollBackoff(0.01, 0.01)},
    )
    waiting.start()
    waiting.join(timeout=30)
    alive = waiting.is_alive()
    stop.set()
    waiting.join()
    assert not alive and len(cycles) == 3


def test_a_listen_setting_that_is_neither_on_nor_off_is_a_configuration_fault(
    db_url: str,
) -> None:
    result = run_harness({"DATABASE_URL": db_url, "PGFERRY_LISTEN": "sometimes"}, "run")
    assert result.returncode == 2
    assert "PGFERRY_LISTEN is 'sometimes'; use on" in result.stderr
