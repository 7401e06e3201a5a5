"""DeTrack ends up holding the ERP's current data whatever the workers do: a create whose answer
was lost before the ERP changed the shipment, a worker cut off from the database while its
calls wait, a stale result arriving after a takeover, two dispatchers sharing one rate limit."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest

from harness.demo.detrack_fake import DetrackFake, Fault
from harness.ops.status import read_status
from harness.runtime.leases import LeaseKeeper
from harness.shipments.client import DetrackClient, RetryPolicy
from harness.shipments.dispatcher import ShipmentDispatcher
from harness.shipments.limiter import SharedLimiter
from harness.shipments.service import connector
from harness.shipments.store import ShipmentStore
from tests.support.pg import connect
from tests.support.shipments import (
    API_KEY,
    FAST_DISPATCH,
    assert_detrack_matches_erp,
    insert_shipments,
    job_row,
    make_client,
    make_dispatcher,
    shipment,
    sync,
)

LOST_ANSWER = Fault(status=500, handle_first=True)  # DeTrack acted, the answer never came
PATIENT = replace(FAST_DISPATCH, retry_base_seconds=3600, retry_cap_seconds=3600)


def lose_the_answer_of_the_next_create(conn: psycopg.Connection, fake: DetrackFake) -> None:
    """Send the pending creates; DeTrack makes the jobs but the answer is lost, and the jobs
    wait for their next attempt (which the test then makes due)."""
    fake.inject(LOST_ANSWER, path_prefix="/dn/jobs/bulk")
    make_dispatcher(conn, fake, max_retries=0, settings=PATIENT).drain()
    conn.execute("UPDATE delivery.job SET next_attempt_at = now()")


def until(condition, seconds: float = 10.0) -> None:
    """Wait for a condition of the outside world (a lease expiring in the database)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_create_whose_answer_was_lost_then_an_erp_change_leaves_detrack_current(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    lose_the_answer_of_the_next_create(conn, fake)  # DeTrack has it, we do not know
    assert job_row(conn, row["shipment_number"])["remote"] == "unknown"

    conn.execute(
        "UPDATE erp.shipment SET ship_address_1 = '9 New Rd' WHERE shipment_number = %s",
        [row["shipment_number"]],
    )
    make_dispatcher(conn, fake).drain()  # sync, create: "already taken", adopt, update

    assert_detrack_matches_erp(conn, fake)
    assert fake.create_count(row["job_number"], row["scheduled_ship_date"]) == 1


def test_a_new_key_after_a_lost_create_leaves_no_job_behind_under_the_old_key(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    rows = [shipment(), shipment()]
    insert_shipments(conn, rows)
    sync(conn)
    lose_the_answer_of_the_next_create(conn, fake)
    assert len(fake.jobs()) == 2  # created, unrecorded

    # one shipment moves to another day (a new DeTrack key), the other stops qualifying
    conn.execute(
        "UPDATE erp.shipment SET scheduled_ship_date = '2026-11-30' WHERE shipment_number = %s",
        [rows[0]["shipment_number"]],
    )
    conn.execute(
        "UPDATE erp.shipment SET ship_via = 'COURIER' WHERE shipment_number = %s",
        [rows[1]["shipment_number"]],
    )
    make_dispatcher(conn, fake).drain()

    assert_detrack_matches_erp(conn, fake)
    assert [job["date"] for job in fake.jobs()] == ["2026-11-30"]


def test_a_job_under_our_old_key_that_is_not_ours_is_never_deleted(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    # another system holds the DO number on that day: our create is refused as taken
    foreign = {
        "do_number": row["job_number"],
        "date": row["scheduled_ship_date"],
        "address": "elsewhere",
        "tracking_number": "OTHER-1",
    }
    make_client(fake).create_jobs([foreign])
    make_dispatcher(conn, fake).drain()
    assert job_row(conn, row["shipment_number"])["sync_state"] == "failed"

    conn.execute(
        "UPDATE erp.shipment SET scheduled_ship_date = '2026-11-30' WHERE shipment_number = %s",
        [row["shipment_number"]],
    )
    make_dispatcher(conn, fake).drain()
    assert fake.job(row["job_number"], row["scheduled_ship_date"])["tracking_number"] == "OTHER-1"
    assert fake.job(row["job_number"], "2026-11-30")["tracking_number"] == str(
        row["shipment_number"]
    )


class GatedLimiter:
    """A rate limit the test opens: the first request passes, the next waits for ``opened``."""

    max_requests = 1_000

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.opened = threading.Event()
        self._calls = 0

    def try_acquire(self) -> float:
        self._calls += 1
        if self._calls == 1 or self.opened.is_set():
            return 0.0
        self.waiting.set()
        return 0.02

    def delay_all(self, seconds: float) -> None:
        pass


def _unreachable_database() -> psycopg.Connection:
    return psycopg.connect("postgresql://pgferry@127.0.0.1:9/none", connect_timeout=1)


def test_a_worker_cut_off_from_the_database_sends_nothing_after_its_lease(
    db_url: str, fake: DetrackFake
) -> None:
    """Worker A holds an update of version 2 when it loses the database (its connection and
    its heartbeat); its next request waits (a 503, then the rate limit). A's lease runs out,
    worker B takes the job over and sends version 3. A must not send version 2 after that."""
    short = replace(FAST_DISPATCH, lease_seconds=1.0)
    with connect(db_url) as conn:
        row = shipment()
        insert_shipments(conn, [row])
        make_dispatcher(conn, fake).drain()  # created: version 1
        conn.execute(
            "UPDATE erp.shipment SET ship_city = 'Version 2' WHERE shipment_number = %s",
            [row["shipment_number"]],
        )
        sync(conn)

    gate = GatedLimiter()
    fake.inject(Fault(status=503), path_prefix="/dn/jobs")
    own = connect(db_url)
    client = DetrackClient(fake.base_url, API_KEY, gate, RetryPolicy(20, 0.01, 0.01), timeout=0.2)
    cut_off = LeaseKeeper(_unreachable_database, "shipments", short.lease_seconds)
    worker_a = ShipmentDispatcher(ShipmentStore(own), client, short, "a", cut_off)
    thread = threading.Thread(target=lambda: suppress_database_loss(worker_a.drain))
    thread.start()
    try:
        assert gate.waiting.wait(10)  # A's retry of version 2 waits for a request slot
        with connect(db_url) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [own.info.backend_pid])
            until(
                lambda: conn.execute(
                    "SELECT lease_expires_at < now() FROM delivery.job"
                ).fetchone()[0]
            )
            conn.execute(
                "UPDATE erp.shipment SET ship_city = 'Version 3' WHERE shipment_number = %s",
                [row["shipment_number"]],
            )
            make_dispatcher(conn, fake, worker="b", settings=short, timeout=0.2).drain()
    finally:
        gate.opened.set()
        thread.join(timeout=30)
        worker_a.close()
        own.close()

    with connect(db_url) as conn:
        assert_detrack_matches_erp(conn, fake)
    puts = [r for r in fake.requests() if r.method == "PUT"]
    assert [p.body["data"][0]["data"]["city"] for p in puts] == ["Version 2", "Version 3"]


def suppress_database_loss(drain) -> None:
    with contextlib.suppress(psycopg.OperationalError):
        drain()


def test_results_of_a_claim_that_was_taken_over_are_not_recorded(
    conn: psycopg.Connection,
) -> None:
    """The same worker id (a restarted pod) claims the job again after its lease expired: the
    first claim's late result carries the old token and writes nothing."""
    insert_shipments(conn, [shipment()])
    sync(conn)
    store = ShipmentStore(conn)
    first = store.claim("pod-1", 10, timedelta(seconds=60))
    conn.execute("UPDATE delivery.job SET lease_expires_at = now() - interval '1 second'")
    second = store.claim("pod-1", 10, timedelta(seconds=60))
    assert first[0].lease_token < second[0].lease_token

    def result(claimed) -> dict:
        return {
            "job_id": claimed.job_id,
            "lease_token": claimed.lease_token,
            "version": claimed.version,
            "do_number": claimed.do_number,
            "date": claimed.date,
            "outcome": "created",
            "detrack_id": "x",
            "http_status": 200,
        }

    late = store.record("pod-1", [result(first[0])], 5, timedelta(0), timedelta(0))
    assert late.synced == 0
    held = conn.execute("SELECT remote, lease_token FROM delivery.job").fetchone()
    assert held == ("unknown", second[0].lease_token)  # untouched, still the second claim's
    current = store.record("pod-1", [result(second[0])], 5, timedelta(0), timedelta(0))
    assert current.synced == 1


def test_a_retry_after_longer_than_the_lease_gives_the_job_back(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    fake.inject(Fault(status=503, retry_after="30"), path_prefix="/dn/jobs/bulk")
    short = replace(FAST_DISPATCH, lease_seconds=3.0)

    totals = make_dispatcher(conn, fake, settings=short, timeout=0.5).drain()

    assert (totals.released, totals.synced) == (1, 0)
    job = job_row(conn, row["shipment_number"])
    assert (job["sync_state"], job["attempts"], job["lease_expires_at"]) == ("pending", 0, None)
    waited = conn.execute("SELECT %s - now()", [job["next_attempt_at"]]).fetchone()[0]
    assert waited > timedelta(seconds=25)  # the job waits in the database, not in a lease


def test_two_dispatchers_share_one_rate_limit(db_url: str) -> None:
    """Two dispatchers, each configured with the full limit: together they stay under it."""
    scale = 30.0  # a DeTrack minute lasts 2 s
    window = 60.0 / scale
    limit = 5
    with DetrackFake(
        api_key=API_KEY, rate_limit_per_minute=limit, clock=lambda: time.monotonic() * scale
    ) as fake:
        with connect(db_url) as conn:
            rows = [shipment() for _ in range(24)]
            insert_shipments(conn, rows)
            sync(conn)
        settings = replace(FAST_DISPATCH, claim_size=2, concurrency=1)
        barrier = threading.Barrier(2)

        def dispatch(name: str) -> None:
            with connect(db_url) as own:
                limiter = SharedLimiter(connector(db_url), limit, window_seconds=window)
                dispatcher = make_dispatcher(
                    own, fake, worker=name, settings=settings, limiter=limiter
                )
                barrier.wait()
                dispatcher.drain()
                dispatcher.close()

        threads = [threading.Thread(target=dispatch, args=(f"d{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        throttled = [r for r in fake.requests() if r.status == 429]
        assert throttled == []
        with connect(db_url) as conn:
            assert_detrack_matches_erp(conn, fake)


def test_a_claim_never_waits_for_rows_another_claim_is_taking(db_url: str) -> None:
    """SKIP LOCKED is what keeps dispatchers from queueing behind each other: while one claim's
    transaction holds its rows, another claim takes the other rows at once."""
    with connect(db_url) as conn:
        insert_shipments(conn, [shipment() for _ in range(4)])
        sync(conn)
    with connect(db_url) as first, connect(db_url) as second:
        with first.transaction():
            held = ShipmentStore(first).claim("first", 2, timedelta(seconds=60))
            second.execute("SET lock_timeout = '2s'")
            other = ShipmentStore(second).claim("second", 4, timedelta(seconds=60))
        assert len(held) == 2
        assert {job.job_id for job in other}.isdisjoint(job.job_id for job in held)
        assert len(other) == 2


def test_lag_counts_from_when_a_job_first_became_due_not_from_its_last_attempt(
    conn: psycopg.Connection,
) -> None:
    """During a DeTrack outage every failed attempt rewrites the job; the lag must still show
    how long it has waited, and the lag alert must fire."""
    insert_shipments(conn, [shipment()])
    sync(conn)
    conn.execute("UPDATE delivery.job SET due_since = due_since - interval '5 hours'")
    outage = FakeOutage()
    make_dispatcher(conn, outage, max_retries=0, settings=PATIENT).drain()  # one failed attempt
    assert conn.execute("SELECT attempts FROM delivery.job").fetchone() == (1,)

    status = read_status(conn)
    lag = next(p.lag_seconds for p in status.pipelines if p.name == "shipments")
    assert lag > 5 * 3600
    alerted = conn.execute("SELECT * FROM etl.queue_lag_alerts(interval '1 hour')").fetchall()
    assert alerted == [("shipments",)]


class FakeOutage:
    """A DeTrack that does not answer: connections to it are refused."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.base_url = f"http://127.0.0.1:{probe.getsockname()[1]}/api/v2"


def test_a_stop_ends_a_retry_after_wait_at_once_and_counts_no_attempt(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    """SIGTERM (or `harness cancel`) during a 60 s Retry-After: the call is given back at once,
    not after the wait, and the job keeps its attempt count."""
    row = shipment()
    insert_shipments(conn, [row])
    fake.inject(Fault(status=503, retry_after="60"), path_prefix="/dn/jobs/bulk")
    stop = threading.Event()
    patient = replace(FAST_DISPATCH, lease_seconds=300)
    dispatcher = make_dispatcher(conn, fake, stop=stop, settings=patient, timeout=5)
    finished = threading.Event()
    thread = threading.Thread(target=lambda: (dispatcher.drain(), finished.set()))
    started = time.monotonic()
    thread.start()
    until(lambda: any(r.status == 503 for r in fake.requests()))
    stop.set()
    assert finished.wait(10)
    thread.join()
    dispatcher.close()
    assert time.monotonic() - started < 30
    job = job_row(conn, row["shipment_number"])
    assert (job["sync_state"], job["attempts"], job["lease_expires_at"]) == ("pending", 0, None)
    assert len([r for r in fake.requests() if r.path.endswith("/bulk")]) == 1


def test_an_erp_edit_keeps_a_failing_jobs_attempts_and_backoff(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    """An often-edited shipment during an outage still dead-letters, and its edits do not
    hammer DeTrack; a job DeTrack refused starts afresh with the new data."""
    waiting, refused = shipment(), shipment()
    insert_shipments(conn, [waiting, refused])
    sync(conn)
    conn.execute(
        "UPDATE delivery.job SET attempts = 3, next_attempt_at = now() + interval '1 hour'"
        " WHERE shipment_number = %s",
        [waiting["shipment_number"]],
    )
    conn.execute(
        "UPDATE delivery.job SET sync_state = 'failed', attempts = 0 WHERE shipment_number = %s",
        [refused["shipment_number"]],
    )
    before = job_row(conn, waiting["shipment_number"])
    conn.execute("UPDATE erp.shipment SET ship_city = 'Edited'")
    sync(conn)

    after = job_row(conn, waiting["shipment_number"])
    assert (after["attempts"], after["next_attempt_at"]) == (3, before["next_attempt_at"])
    assert after["version"] == before["version"] + 1
    assert after["due_since"] == before["due_since"]
    again = job_row(conn, refused["shipment_number"])
    assert (again["sync_state"], again["attempts"]) == ("pending", 0)
    assert again["next_attempt_at"] <= conn.execute("SELECT now()").fetchone()[0]


def test_a_value_the_erp_clears_is_cleared_in_detrack(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    make_dispatcher(conn, fake).drain()
    conn.execute("UPDATE erp.shipment SET ship_phone = NULL, ship_email = NULL")
    make_dispatcher(conn, fake).drain()

    assert_detrack_matches_erp(conn, fake)
    held = fake.job(row["job_number"], row["scheduled_ship_date"])
    assert (held["phone_number"], held["notify_email"]) == (None, None)


def test_a_renumbered_shipment_ends_with_one_current_job_in_detrack(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    """The old number's job leaves the DO number and date, the new number's job takes them:
    the create must wait for the delete, or it meets "is already taken"."""
    row = shipment()
    insert_shipments(conn, [row])
    make_dispatcher(conn, fake).drain()
    conn.execute(
        "UPDATE erp.shipment SET shipment_number = 99999 WHERE shipment_number = %s",
        [row["shipment_number"]],
    )
    one_call_at_a_time = replace(FAST_DISPATCH, concurrency=1)  # creates go before deletes
    make_dispatcher(conn, fake, settings=one_call_at_a_time).drain()

    assert_detrack_matches_erp(conn, fake)
    assert fake.job(row["job_number"], row["scheduled_ship_date"])["tracking_number"] == "99999"


def test_a_claim_with_one_row_taken_over_is_lost_whole(db_url: str) -> None:
    """A row the heartbeat had to skip (another transaction held it) expires: the claim is lost
    as a whole, though its other rows are still extended."""
    with connect(db_url) as conn, connect(db_url) as blocker:
        insert_shipments(conn, [shipment(), shipment()])
        sync(conn)
        keeper = LeaseKeeper(connector(db_url), "shipments", 1.0)
        claimed_at = keeper.now()
        claimed = ShipmentStore(conn).claim("w", 10, timedelta(seconds=1))
        token = claimed[0].lease_token
        keeper.track(token, claimed_at, len(claimed))
        with blocker.transaction():
            blocker.execute(
                "SELECT 1 FROM delivery.job WHERE job_id = %s FOR UPDATE", [claimed[0].job_id]
            )

            def the_held_row_expired() -> bool:
                keeper.renew()  # the heartbeat goes on: extends the other row, skips this one
                return conn.execute(
                    "SELECT bool_or(lease_expires_at < now()) FROM delivery.job"
                ).fetchone()[0]

            until(the_held_row_expired)
            keeper.renew()
        assert keeper.lost(token)
        keeper.close()


def test_a_drain_that_loses_the_database_leaves_its_leases_to_lapse(
    db_url: str, fake: DetrackFake
) -> None:
    """The dispatcher's connection dies while a round's calls run: the round cannot be
    recorded, its heartbeat must stop, and another dispatcher sends the job after the lease."""
    settings = replace(FAST_DISPATCH, lease_seconds=4.0)
    with connect(db_url) as conn:
        row = shipment()
        insert_shipments(conn, [row])
        sync(conn)
    fake.inject(Fault(status=201, handle_first=True, delay=0.5), path_prefix="/dn/jobs/bulk")
    own = connect(db_url)
    doomed = make_dispatcher(own, fake, settings=settings, timeout=1.0)
    thread = threading.Thread(target=lambda: suppress_database_loss(doomed.drain))
    thread.start()
    until(lambda: any(r.status is None for r in fake.requests()))  # the create is in flight
    with connect(db_url) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [own.info.backend_pid])
        thread.join(timeout=30)
        token = conn.execute("SELECT lease_token FROM delivery.job").fetchone()[0]
        assert doomed.leases.lost(token)  # no longer extended
        until(
            lambda: conn.execute("SELECT lease_expires_at < now() FROM delivery.job").fetchone()[0]
        )
        make_dispatcher(conn, fake, worker="next", settings=settings, timeout=1.0).drain()
        assert_detrack_matches_erp(conn, fake)
    doomed.close()
    own.close()
    assert fake.create_count(row["job_number"], row["scheduled_ship_date"]) == 1


# DeTrack applies the request 1 s after it arrived (a slow server, a request stuck in a proxy);
# the client gave up on it after 0.2 s. The lease's margin (1 s for a 10 s lease) is the time a
# request may still be in the network: this one lands within it.
LATE = Fault(status=200, handle_first=True, hold=1.0)
MARGIN_COVERS_LATE = replace(FAST_DISPATCH, lease_seconds=10.0)


def drain_giving_up_early(conn: psycopg.Connection, fake: DetrackFake, max_retries: int) -> None:
    make_dispatcher(
        conn, fake, settings=MARGIN_COVERS_LATE, timeout=0.2, max_retries=max_retries
    ).drain()


def every_request_answered(fake: DetrackFake) -> None:
    until(lambda: all(r.status is not None for r in fake.requests()))


def test_a_delete_detrack_applies_late_never_removes_the_job_that_took_its_key(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    """A renumbered shipment: the old number's delete times out and is retried at once, the
    retry succeeds and the new number's job is created under the same key. Had the call not
    waited for its first delete to land, that delete would remove the new job (seen in the
    random schedule on a busy machine: every job synced, one missing in DeTrack)."""
    row = shipment()
    insert_shipments(conn, [row])
    make_dispatcher(conn, fake).drain()
    conn.execute(
        "UPDATE erp.shipment SET shipment_number = 99999 WHERE shipment_number = %s",
        [row["shipment_number"]],
    )
    fake.inject(LATE, path_prefix="/dn/jobs")  # the old number's delete

    drain_giving_up_early(conn, fake, max_retries=1)
    every_request_answered(fake)

    assert_detrack_matches_erp(conn, fake)
    assert fake.job(row["job_number"], row["scheduled_ship_date"])["tracking_number"] == "99999"


@pytest.mark.parametrize("max_retries", [0, 1], ids=["retried-later", "retried-at-once"])
def test_a_create_detrack_applies_late_leaves_no_job_after_a_cancel(
    conn: psycopg.Connection, fake: DetrackFake, max_retries: int
) -> None:
    """A create the client gave up on lands late: after the job's next attempt (time passes at
    once, as a zero backoff allows), or after the call's own retry created the job. The ERP
    then cancels the shipment; no job may come back after the cancel."""
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    fake.inject(LATE, path_prefix="/dn/jobs/bulk")
    drain_giving_up_early(conn, fake, max_retries)
    conn.execute("UPDATE delivery.job SET next_attempt_at = now()")  # time passes

    conn.execute(
        "UPDATE erp.shipment SET ship_via = 'COURIER' WHERE shipment_number = %s",
        [row["shipment_number"]],
    )
    make_dispatcher(conn, fake).drain()
    every_request_answered(fake)

    assert_detrack_matches_erp(conn, fake)
    assert fake.jobs() == []


def test_an_update_detrack_applies_late_never_undoes_a_newer_one(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    make_dispatcher(conn, fake).drain()
    conn.execute(
        "UPDATE erp.shipment SET ship_city = 'Version 2' WHERE shipment_number = %s",
        [row["shipment_number"]],
    )
    fake.inject(LATE, path_prefix="/dn/jobs")
    drain_giving_up_early(conn, fake, max_retries=1)
    conn.execute(
        "UPDATE erp.shipment SET ship_city = 'Version 3' WHERE shipment_number = %s",
        [row["shipment_number"]],
    )
    make_dispatcher(conn, fake).drain()
    every_request_answered(fake)

    assert_detrack_matches_erp(conn, fake)
