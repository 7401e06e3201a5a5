"""The worker runs the pipelines side by side: a permit drain stuck on a store that does not
answer never delays a DeTrack job."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import psycopg
import pytest

from harness.demo.detrack_fake import DetrackFake
from tests.support.permits import load_run, numbered, start_harness, worker_env
from tests.support.shipments import API_KEY, insert_shipments, shipment


@pytest.fixture
def silent_store() -> Iterator[str]:
    """An S3 endpoint that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def wait_for(condition, seconds: float) -> float:
    """Seconds until ``condition`` held (it must within ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "not reached in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_stuck_permit_drain_does_not_delay_detrack_jobs(
    conn: psycopg.Connection, db_url: str, fake: DetrackFake, silent_store: str
) -> None:
    load_run(conn, numbered(5))
    env = {
        **worker_env(db_url, silent_store, "never"),
        "DETRACK_BASE_URL": fake.base_url,
        "DETRACK_API_KEY": API_KEY,
    }
    worker = start_harness(env, "run", "--loop")
    try:
        wait_for(
            lambda: conn.execute(
                "SELECT count(*) FROM tps.staged_permit WHERE state = 'claimed'"
            ).fetchone()[0],
            30,
        )  # the permit thread now waits on the silent store
        insert_shipments(conn, [shipment()])
        assert wait_for(lambda: fake.jobs(), 10) < 10
        assert conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0] == 0
    finally:
        worker.kill()
        worker.wait()
