"""No DeTrack job is ever created twice, whatever fails: 429 storms, 5xx, timeouts after the
server acted, dropped connections, concurrent dispatchers, a crash between send and commit."""

from __future__ import annotations

import threading
from dataclasses import replace

import psycopg
import pytest

from harness.demo.detrack_fake import HTML_500, DetrackFake, Fault
from harness.runtime.wakeup import PollBackoff
from harness.shipments.limiter import SlidingWindowLimiter
from tests.support.permits import run_harness
from tests.support.pg import connect
from tests.support.shipments import (
    API_KEY,
    FAST_DISPATCH,
    insert_shipments,
    job_row,
    make_dispatcher,
    shipment,
)

DATE = "2026-11-23"
SHORT_LEASE = replace(FAST_DISPATCH, lease_seconds=5.0)


def assert_created_once(fake: DetrackFake, conn: psycopg.Connection, rows: list[dict]) -> None:
    for row in rows:
        assert fake.create_count(row["job_number"], DATE) == 1
        job = job_row(conn, row["shipment_number"])
        assert (job["remote"], job["sync_state"]) == ("created", "synced")
        assert job["detrack_id"] == fake.job(row["job_number"], DATE)["id"]
    assert len(fake.jobs()) == len(rows)


FAULTS = {
    "429 storm, Retry-After honoured": Fault(
        status=429, retry_after="0", body='{"message":"Too Many Requests"}'
    ),
    "503 with an HTML body": Fault(status=503, body=HTML_500, content_type="text/html"),
    "timeout after the server created them": Fault(status=201, handle_first=True, delay=1.0),
    "500 after the server created them": Fault(status=500, handle_first=True),
    "connection dropped after the server acted": Fault(handle_first=True, drop_connection=True),
    "connection dropped before the server acted": Fault(drop_connection=True),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_a_failed_bulk_create_is_retried_without_duplicates(
    conn: psycopg.Connection, fake: DetrackFake, fault: Fault
) -> None:
    rows = [shipment() for _ in range(5)]
    insert_shipments(conn, rows)
    fake.inject(fault, times=3, path_prefix="/dn/jobs/bulk")

    # after a timeout or a dropped connection each retry waits out the lease's margin (a
    # request may still land): a 5 s lease keeps that at 0.5 s
    totals = make_dispatcher(conn, fake, settings=SHORT_LEASE, timeout=0.3).drain()

    assert (totals.synced, totals.failed, totals.retrying) == (5, 0, 0)
    assert_created_once(fake, conn, rows)
    bulk_posts = [r for r in fake.requests() if r.path.endswith("/dn/jobs/bulk")]
    assert len(bulk_posts) == 4  # three faults, then the answer


def test_when_retries_run_out_the_jobs_wait_for_a_later_attempt(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    rows = [shipment() for _ in range(2)]
    insert_shipments(conn, rows)
    fake.inject(Fault(status=502), times=5, path_prefix="/dn/jobs/bulk")

    patient = replace(FAST_DISPATCH, retry_base_seconds=3600, retry_cap_seconds=3600)
    first = make_dispatcher(conn, fake, settings=patient, max_retries=2).drain()
    assert (first.synced, first.retrying) == (0, 2)
    job = job_row(conn, rows[0]["shipment_number"])
    assert (job["sync_state"], job["attempts"], job["last_status"]) == ("pending", 1, 502)
    assert (
        job["next_attempt_at"] > conn.execute("SELECT now() + interval '29 minutes'").fetchone()[0]
    )

    conn.execute("UPDATE delivery.job SET next_attempt_at = now()")  # the half hour passed
    second = make_dispatcher(conn, fake, max_retries=2).drain()  # 2 faults left, then success
    assert second.synced == 2
    assert_created_once(fake, conn, rows)


def test_concurrent_dispatchers_create_each_job_once(db_url: str, fake: DetrackFake) -> None:
    with connect(db_url) as conn:
        rows = [shipment() for _ in range(600)]
        insert_shipments(conn, rows)
    barrier = threading.Barrier(3)

    def dispatch(name: str) -> None:
        with connect(db_url) as own:
            barrier.wait()
            make_dispatcher(own, fake, worker=name).drain()

    threads = [threading.Thread(target=dispatch, args=(f"d{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with connect(db_url) as conn:
        assert_created_once(fake, conn, rows)
    # each job was sent once: DeTrack's key uniqueness alone would also give one create per
    # job, with a second send answered "is already taken"; only the claims prevent the send
    bulk = [r for r in fake.requests() if r.path.endswith("/dn/jobs/bulk")]
    assert sum(len(r.body["data"]) for r in bulk) == len(rows)
    assert not [r for r in fake.requests() if "/dn/jobs/show" in r.path]


def test_a_crash_between_send_and_commit_does_not_create_twice(
    db_url: str, fake: DetrackFake
) -> None:
    rows = [shipment() for _ in range(20)]
    with connect(db_url) as conn:
        insert_shipments(conn, rows)
    env = {
        "DATABASE_URL": db_url,
        "DETRACK_BASE_URL": fake.base_url,
        "DETRACK_API_KEY": API_KEY,
        "SHIPMENTS_LEASE_SECONDS": "2",
        "DETRACK_TIMEOUT_SECONDS": "0.5",
        "DETRACK_RETRY_BASE_SECONDS": "0.01",
    }
    crashed = run_harness(
        {**env, "PGFERRY_FAILPOINTS": "before_record_results=1"}, "run", "shipments"
    )
    assert crashed.returncode == -9
    assert len(fake.jobs()) == 20  # DeTrack has them; our database does not know yet

    with connect(db_url) as conn:
        # the lease of the crashed dispatcher must lapse before another may take the jobs
        conn.execute("UPDATE delivery.job SET lease_expires_at = now() - interval '1 second'")
    restarted = run_harness(env, "run", "shipments")
    assert restarted.returncode == 0, restarted.stderr
    with connect(db_url) as conn:
        assert_created_once(fake, conn, rows)


def test_the_fallback_poll_backs_off_1_2_4_to_300_and_resets_on_work() -> None:
    backoff = PollBackoff()
    delays = [backoff.next_delay() for _ in range(11)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_the_limiter_allows_a_full_window_then_waits_for_the_oldest_slot() -> None:
    now = [100.0]
    limiter = SlidingWindowLimiter(60, clock=lambda: now[0], margin=0)
    for _ in range(60):
        assert limiter.try_acquire() == 0
        now[0] += 0.5  # 60 requests in 30 s
    # the 61st waits until the first leaves the 60 s window
    assert limiter.try_acquire() == pytest.approx(30.0)


def test_the_limiter_keeps_a_margin_for_requests_still_in_flight() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(2, clock=lambda: now[0])
    assert limiter.try_acquire() == limiter.try_acquire() == 0
    assert limiter.try_acquire() == pytest.approx(61.2)  # 60 s plus 2 %
