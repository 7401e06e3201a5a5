"""Permit claims under fencing tokens and heartbeats, and claims that race: real PostgreSQL,
real S3 (moto) on loopback, real threads and connections.

A worker that lost its lease must send nothing more and record nothing; a slow worker must keep
its lease; two claims at the same moment must not both take a copy of one permit, and a copy
that loses the race for its key anyway is never a dead letter; a worker waiting for another
worker's lease must wait, not spin.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import psycopg
import pytest

from harness.demo.samples import sample_pdf
from harness.permits.store import ClaimedPermit, Failure, PermitStore
from harness.permits.upload import PermitUploader
from harness.s3 import make_client
from tests.support.permits import (
    UNREACHABLE_DATABASE,
    Gate,
    StagedPermit,
    assert_each_permit_moved_once,
    in_thread,
    load_run,
    make_consumer,
    numbered,
    recorded_puts,
    result_of,
    start_recording,
    stop_after_claims,
    waits_for_lock,
)
from tests.support.pg import connect

HOUR = timedelta(hours=1)


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"permits-{uuid.uuid4().hex[:10]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def wait_past(conn: psycopg.Connection, moment: datetime) -> None:
    """Let the database's clock pass ``moment``: a slow upload takes this long (a duration
    under test, not a synchronisation)."""
    conn.execute(
        "SELECT pg_sleep(greatest(0, extract(epoch FROM %s - clock_timestamp())) + 0.2)", [moment]
    )


def test_a_worker_that_lost_its_lease_neither_uploads_nor_moves(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """Worker A is cut off from the database (its heartbeat cannot connect) while its uploads
    are held up; its lease runs out and B takes the permits over. When A's threads go on, the
    lease guard stops every PUT: each object is written once, by B."""
    permits = numbered(5)
    with connect(db_url) as conn_a, connect(db_url) as conn_b:
        load_run(conn_b, permits)
        a = make_consumer(
            conn_a, s3_endpoint, bucket, "a", connect=UNREACHABLE_DATABASE, lease_seconds=1
        )
        held = Gate(a.uploader.client, "before-parameter-build.s3.PutObject")
        start_recording(s3_endpoint)
        thread, outcome = in_thread(lambda: a.drain(wait_for_leases=False))
        assert held.entered.wait(30)

        b = make_consumer(conn_b, s3_endpoint, bucket, "b")
        taken_over = b.drain()  # waits for A's lease to expire, then claims under a new token
        held.released.set()
        late = result_of(thread, outcome)
        a.close()
        b.close()

        assert taken_over.moved == 5
        assert (late.moved, late.lease_lost) == (0, 5)
        puts = recorded_puts(s3_endpoint, bucket)
        assert len(puts) == 5 and set(puts.values()) == {1}, puts
        assert_each_permit_moved_once(conn_b, s3_endpoint, bucket, permits)


def test_a_late_move_under_a_lost_claim_writes_nothing_even_under_the_same_name(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """A's PUTs are on the wire when its lease runs out; B (the same worker name: a restarted
    pod under a fixed PGFERRY_WORKER_ID) claims the permits and is uploading them when A's
    answers come back. A's move must not take B's rows: only the token tells the claims
    apart. Then B moves them, once."""
    permits = numbered(5)
    with connect(db_url) as conn_a, connect(db_url) as conn_b:
        load_run(conn_b, permits)
        a = make_consumer(
            conn_a, s3_endpoint, bucket, "w", connect=UNREACHABLE_DATABASE, lease_seconds=1
        )
        a_sending = Gate(a.uploader.client, "before-send.s3.PutObject")
        b = make_consumer(conn_b, s3_endpoint, bucket, "w")
        b_sending = Gate(b.uploader.client, "before-send.s3.PutObject")

        a_thread, a_outcome = in_thread(lambda: a.drain(wait_for_leases=False))
        assert a_sending.entered.wait(30)
        b_thread, b_outcome = in_thread(b.drain)  # waits for A's lease, then claims
        assert b_sending.entered.wait(30)
        a_sending.released.set()
        late = result_of(a_thread, a_outcome)
        b_sending.released.set()
        taken_over = result_of(b_thread, b_outcome)
        a.close()
        b.close()

        assert (late.moved, late.lease_lost) == (0, 5)
        assert taken_over.moved == 5
        assert_each_permit_moved_once(conn_b, s3_endpoint, bucket, permits)
        tokens = conn_b.execute(
            "SELECT count(DISTINCT detail ->> 'lease_token') FROM etl.journal"
            " WHERE step = 'uploaded'"
        ).fetchone()
        assert tokens == (1,)  # every move under B's claim


def test_a_late_failure_under_a_lost_claim_is_not_recorded(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """As above, but A's uploads fail (its bucket is missing): the failures, arriving while B
    holds the rows, must not put B's rows back in the queue or count attempts."""
    permits = numbered(3)
    with connect(db_url) as conn_a, connect(db_url) as conn_b:
        load_run(conn_b, permits)
        a = make_consumer(
            conn_a,
            s3_endpoint,
            f"{bucket}-gone",
            "w",
            connect=UNREACHABLE_DATABASE,
            lease_seconds=1,
        )
        a_sending = Gate(a.uploader.client, "before-send.s3.PutObject")
        b = make_consumer(conn_b, s3_endpoint, bucket, "w")
        b_sending = Gate(b.uploader.client, "before-send.s3.PutObject")

        a_thread, a_outcome = in_thread(lambda: a.drain(wait_for_leases=False))
        assert a_sending.entered.wait(30)
        b_thread, b_outcome = in_thread(b.drain)
        assert b_sending.entered.wait(30)
        a_sending.released.set()
        late = result_of(a_thread, a_outcome)
        b_sending.released.set()
        taken_over = result_of(b_thread, b_outcome)
        a.close()
        b.close()

        assert (late.upload_failures, late.dead) == (0, 0)
        assert (taken_over.moved, taken_over.lease_lost) == (3, 0)
        failures = conn_b.execute(
            "SELECT count(*) FROM etl.journal WHERE step IN ('upload_failed', 'dead')"
        ).fetchone()
        assert failures == (0,)
        assert_each_permit_moved_once(conn_b, s3_endpoint, bucket, permits)


def test_a_heartbeat_keeps_a_slow_batch_leased_past_its_first_expiry(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The lease (2 s) is shorter than the upload: the heartbeat extends it, nobody takes the
    permits over, and they move once."""
    permits = numbered(5)
    with connect(db_url) as conn_a, connect(db_url) as conn_b:
        load_run(conn_b, permits)
        a = make_consumer(conn_a, s3_endpoint, bucket, "slow", lease_seconds=2)
        on_the_wire = Gate(a.uploader.client, "before-send.s3.PutObject")
        start_recording(s3_endpoint)
        thread, outcome = in_thread(lambda: a.drain(wait_for_leases=False))
        assert on_the_wire.entered.wait(30)
        (first_expiry,) = conn_b.execute(
            "SELECT max(lease_expires_at) FROM tps.staged_permit"
        ).fetchone()

        wait_past(conn_b, first_expiry)
        b = make_consumer(conn_b, s3_endpoint, bucket, "b")
        meanwhile = b.drain(wait_for_leases=False)
        (extended,) = conn_b.execute(
            "SELECT min(lease_expires_at) FROM tps.staged_permit"
        ).fetchone()
        on_the_wire.released.set()
        slow = result_of(thread, outcome)
        a.close()
        b.close()

        assert meanwhile.claimed == 0 and extended > first_expiry
        assert (slow.moved, slow.lease_lost) == (5, 0)
        puts = recorded_puts(s3_endpoint, bucket)
        assert len(puts) == 5 and set(puts.values()) == {1}, puts
        assert_each_permit_moved_once(conn_b, s3_endpoint, bucket, permits)


def test_a_worker_whose_connection_drops_mid_batch_lets_its_leases_lapse(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """A's store connection is terminated while the PUTs of both its batches are on the wire
    (its heartbeat has its own connection and lives on, as in a `--loop` worker that reconnects
    and carries on). The drain fails; its heartbeat must stop extending both claims, so that B
    takes the permits once their 2 s leases lapse, and moves each once."""
    permits = numbered(2)
    with connect(db_url) as conn_a, connect(db_url) as conn_b:
        load_run(conn_b, permits)
        a = make_consumer(conn_a, s3_endpoint, bucket, "a", batch_size=1, lease_seconds=2)
        on_the_wire = Gate(a.uploader.client, "before-send.s3.PutObject")
        thread, outcome = in_thread(lambda: a.drain(wait_for_leases=False))
        for _ in permits:  # both batches claimed, each PUT on its way
            assert on_the_wire.arrivals.acquire(timeout=30)
        conn_b.execute("SELECT pg_terminate_backend(%s)", [conn_a.info.backend_pid])
        on_the_wire.released.set()
        with pytest.raises(psycopg.OperationalError):
            result_of(thread, outcome)

        stop = threading.Event()
        b = make_consumer(conn_b, s3_endpoint, bucket, "b", stop=stop)
        b_thread, b_outcome = in_thread(b.drain)  # waits for A's leases, then claims
        b_thread.join(20)  # ten leases: a lease A still extends would never lapse
        stop.set()
        taken_over = result_of(b_thread, b_outcome)
        a.close()
        b.close()

        assert taken_over.moved == 2
        assert_each_permit_moved_once(conn_b, s3_endpoint, bucket, permits)


def two_copies(conn: psycopg.Connection) -> tuple[StagedPermit, StagedPermit]:
    """The same permit in two runs, rendered twice (other PDF bytes)."""
    first = StagedPermit("TWICE", 1, sample_pdf("first rendering", 3000))
    again = StagedPermit("TWICE", 1, sample_pdf("second rendering", 3100))
    load_run(conn, [first])
    load_run(conn, [again])
    return first, again


def copies_in_flight(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM tps.staged_permit WHERE permit_number = 'TWICE'"
        " AND state = 'claimed' AND lease_expires_at > now()"
    ).fetchone()[0]


def test_two_claims_at_the_same_moment_take_one_copy_of_a_permit(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The first claim's transaction is held open while the second claim runs: without
    serialised claims the second cannot see the first's lease and takes the other copy."""
    with connect(db_url) as conn, connect(db_url) as first, connect(db_url) as second:
        original, _ = two_copies(conn)
        with first.transaction():
            claim = PermitStore(first).claim("one", 1, HOUR, 5)
            thread, outcome = in_thread(lambda: PermitStore(second).claim("two", 10, HOUR, 5))
            blocked = waits_for_lock(conn, second.info.backend_pid, thread)
        rival = result_of(thread, outcome)

        assert blocked, "the second claim did not wait for the first"
        assert [p.outcome for p in claim.permits] == ["upload"] and rival.permits == []
        assert copies_in_flight(conn) == 1

        # the first worker finishes its copy; the other copy is then a duplicate, not a dead letter
        uploader = PermitUploader(make_client(s3_endpoint), bucket, "permits/")
        uploads = [uploader.upload(p) for p in claim.to_upload]
        PermitStore(first).move(claim.token, uploads, timedelta(0))
        consumer = make_consumer(conn, s3_endpoint, bucket)
        rest = consumer.drain()
        consumer.close()
        assert (rest.duplicates, rest.dead_letters) == (1, 0)
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [original])


def test_a_copy_that_meets_the_other_copys_object_waits_and_is_never_a_dead_letter(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The first copy's PUT reached the store but its answer was lost (recorded as a retryable
    failure, backing off): the second copy finds the first one's object at the key, with
    another checksum. It waits for the first copy instead of becoming a dead letter."""
    with connect(db_url) as conn:
        original, _ = two_copies(conn)
        store = PermitStore(conn)
        claim = store.claim("one", 1, HOUR, 5)
        uploader = PermitUploader(make_client(s3_endpoint), bucket, "permits/")
        uploader.upload(claim.permits[0])
        lost = Failure(claim.permits[0].staged_permit_id, "read timeout", retryable=True)
        store.record_failures(claim.token, [lost], 5, HOUR, HOUR, HOUR)

        consumer = make_consumer(conn, s3_endpoint, bucket)
        meanwhile = consumer.drain()
        assert (meanwhile.moved, meanwhile.dead_letters, meanwhile.claim_calls) == (0, 0, 2)
        waiting = conn.execute(
            "SELECT s.attempts, s.next_attempt_at >= o.next_attempt_at, s.last_error"
            "  FROM tps.staged_permit s JOIN tps.staged_permit o"
            "    ON o.staged_permit_id = %s AND s.staged_permit_id <> o.staged_permit_id",
            [claim.permits[0].staged_permit_id],
        ).fetchone()
        assert waiting[:2] == (0, True) and "another copy of this permit is staged" in waiting[2]

        conn.execute("UPDATE tps.staged_permit SET next_attempt_at = now()")  # the hour passed
        after = consumer.drain()
        consumer.close()
        assert (after.moved, after.duplicates, after.dead_letters) == (1, 1, 0)
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [original])
        assert conn.execute("SELECT count(*) FROM etl.alert").fetchone() == (0,)


def test_a_worker_waits_for_another_workers_copy_instead_of_spinning(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """Another worker holds one copy of a permit (lease 2 s, then it dies); this worker's other
    copy cannot be claimed until that lease expires. It waits for the expiry (polling at most
    once a second), claims a handful of times, and finishes the permit."""
    with connect(db_url) as conn:
        original, _ = two_copies(conn)
        held = PermitStore(conn).claim("crashed", 1, timedelta(seconds=2), 5)
        assert [p.outcome for p in held.permits] == ["upload"]

        consumer = make_consumer(conn, s3_endpoint, bucket)
        in_loop = consumer.drain(wait_for_leases=False)  # `--loop`: back to NOTIFY and polling
        waited = consumer.drain()  # `harness run`: waits for the lease
        consumer.close()

        assert in_loop.claim_calls == 1
        assert waited.claim_calls <= 10, waited.claim_calls  # a poll a second, not 1,000 calls
        assert (waited.moved, waited.duplicates, waited.dead_letters) == (1, 1, 0)
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [original])


def test_two_copies_meeting_a_stale_object_are_dead_letters_not_an_endless_wait(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The key holds a stale object that neither copy's PDF explains: waiting for the other copy
    cannot help (each would wait for the other for good). Both are dead letters that say why."""
    key = "permits/TWICE/r0.pdf"
    stale = "0" * 64
    make_client(s3_endpoint).put_object(
        Bucket=bucket, Key=key, Body=b"%PDF-1.4 stale %%EOF", Metadata={"sha256": stale}
    )
    with connect(db_url) as conn:
        two_copies(conn)
        stop = threading.Event()
        consumer = make_consumer(
            conn, s3_endpoint, bucket, stop=stop, on_batch=stop_after_claims(stop, 20)
        )
        totals = consumer.drain()
        consumer.close()

        assert (totals.moved, totals.dead, totals.claim_calls < 20) == (0, 2, True)
        errors = [r[0] for r in conn.execute("SELECT last_error FROM tps.staged_permit")]
        assert len(errors) == 2
        for error in errors:
            assert error.startswith(f"s3://{bucket}/{key} already exists with sha256 {stale}")
            assert "another copy" not in error


def test_a_copy_waiting_for_its_twin_waits_a_while_even_with_no_retry_delay(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The later copy's PUT landed but was never recorded; the earlier copy is claimed first
    (the later one deferred), meets the later one's object and waits for it. With no retry
    delay its wait must still last the floor: else it is due again at once, claimed first
    again, and the two take turns for good. With it, the later copy goes, moves, and the
    earlier one is a duplicate."""
    with connect(db_url) as conn:
        _, again = two_copies(conn)
        PermitUploader(make_client(s3_endpoint), bucket, "permits/").upload(
            ClaimedPermit(0, "TWICE", 0, "TWICE.pdf", again.pdf, "upload", None)
        )
        stop = threading.Event()
        consumer = make_consumer(
            conn, s3_endpoint, bucket, stop=stop, on_batch=stop_after_claims(stop, 20)
        )
        meanwhile = consumer.drain()
        waiting = conn.execute(
            "SELECT attempts, next_attempt_at - now() FROM tps.staged_permit"
        ).fetchall()
        assert (meanwhile.moved, meanwhile.dead_letters, meanwhile.claim_calls < 20) == (1, 0, True)
        assert waiting[0][0] == 0 and waiting[0][1] > timedelta(seconds=4)  # the 5 s floor

        conn.execute("UPDATE tps.staged_permit SET next_attempt_at = now()")  # the wait passed
        after = consumer.drain()
        consumer.close()
        assert (after.moved, after.duplicates, after.dead_letters) == (0, 1, 0)
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [again])
