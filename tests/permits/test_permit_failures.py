"""What happens to the data when things break: kill -9 at every step, concurrent workers,
expired leases, conflicting objects, the object store going away."""

from __future__ import annotations

import signal
import uuid
from datetime import timedelta

import psycopg
import pytest

from harness.permits.store import PermitStore
from harness.s3 import make_client
from tests.support.permits import (
    assert_each_permit_moved_once,
    load_run,
    make_consumer,
    numbered,
    recorded_puts,
    run_harness,
    start_harness,
    start_recording,
    worker_env,
)
from tests.support.pg import connect

CRASH_POINTS = [
    "after_claim=1",
    "after_claim=3",
    "after_upload=1",
    "after_upload=9",  # mid-batch: some objects of the batch uploaded, none moved
    "after_upload=21",
    "before_move=1",  # all of a batch uploaded, nothing moved
    "before_move=3",
    "before_move_commit=1",  # the move ran, the transaction is open: killed before COMMIT
    "before_move_commit=2",
    "after_move=1",  # committed, before the next claim
    "after_move=3",
]


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"permits-{uuid.uuid4().hex[:10]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_kill_9_at_any_step_then_restart_loses_and_duplicates_nothing(
    db_url: str, s3_endpoint: str, bucket: str, crash_at: str
) -> None:
    permits = numbered(30)
    with connect(db_url) as conn:
        process_id = load_run(conn, permits)
    env = worker_env(db_url, s3_endpoint, bucket, lease_seconds=1)

    crashed = run_harness({**env, "PGFERRY_FAILPOINTS": crash_at}, "run", "permits")
    assert crashed.returncode == -9, crashed.stderr

    restarted = run_harness(env, "run", "permits")
    assert restarted.returncode == 0, restarted.stderr
    with connect(db_url) as conn:
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, permits)
        assert conn.execute(
            "SELECT consumed_at IS NOT NULL FROM etl.process WHERE process_id = %s", [process_id]
        ).fetchone() == (True,)
    reconcile = run_harness(env, "permits", "reconcile")
    assert reconcile.returncode == 0, reconcile.stderr
    assert "30 object(s), 30 document(s)" in reconcile.stdout


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_workers_handle_each_permit_once(
    db_url: str, s3_endpoint: str, bucket: str, workers: int
) -> None:
    permits = numbered(120)
    with connect(db_url) as conn:
        load_run(conn, permits[:60])
        load_run(conn, permits[60:])
    env = worker_env(db_url, s3_endpoint, bucket, batch_size=5)
    start_recording(s3_endpoint)

    running = [start_harness(env, "run", "permits") for _ in range(workers)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in running]

    assert all(code == 0 for code, _ in results), results
    puts = recorded_puts(s3_endpoint, bucket)
    assert len(puts) == 120 and set(puts.values()) == {1}
    with connect(db_url) as conn:
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, permits)
        claims = conn.execute(
            "SELECT count(DISTINCT detail) FROM etl.journal WHERE step = 'uploaded'"
        ).fetchone()
        assert claims == (120,)


def test_an_expired_lease_passes_the_work_on_and_the_late_move_is_refused(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    permits = numbered(5)
    with connect(db_url) as stalled_conn, connect(db_url) as conn:
        load_run(conn, permits)
        stalled = make_consumer(stalled_conn, s3_endpoint, bucket, worker="stalled")
        claim = stalled.store.claim("stalled", 10, timedelta(milliseconds=300), 5)
        late_uploads = [stalled.uploader.upload(p) for p in claim.permits]  # then it hangs

        totals = make_consumer(conn, s3_endpoint, bucket, worker="healthy").drain()
        assert totals.moved == 5

        late = stalled.store.move(claim.token, late_uploads, timedelta(0))
        assert (late.moved, late.lease_lost) == (0, 5)
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, permits)


def test_an_object_with_different_content_at_the_key_is_a_dead_letter(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    permits = numbered(3)
    make_client(s3_endpoint).put_object(
        Bucket=bucket,
        Key="permits/P00000002/r0.pdf",
        Body=b"%PDF-1.4 stale %%EOF",
        Metadata={"sha256": "0" * 64},
    )
    with connect(db_url) as conn:
        load_run(conn, permits)
        totals = make_consumer(conn, s3_endpoint, bucket).drain()
        assert (totals.moved, totals.dead) == (2, 1)
        (error,) = conn.execute("SELECT last_error FROM tps.staged_permit").fetchone()
        assert error.startswith(
            f"s3://{bucket}/permits/P00000002/r0.pdf already exists with sha256 {'0' * 64}"
        )


def test_dead_letters_are_listed_and_requeued(
    db_url: str, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    permits = numbered(4)
    with connect(db_url) as conn:
        load_run(conn, permits)
        # the bucket does not exist yet: every upload fails until it does
        missing = make_consumer(conn, s3_endpoint, f"{bucket}-later", max_attempts=2)
        first = missing.drain()
        assert (first.moved, first.dead, first.upload_failures) == (0, 4, 8)
        alerts = conn.execute("SELECT subject FROM etl.alert WHERE kind = 'dead_letter'").fetchall()
        assert alerts == [("pgferry: 4 permit(s) dead-lettered (upload attempts exhausted)",)]
        env = worker_env(db_url, s3_endpoint, f"{bucket}-later")
        listed = run_harness(env, "permits", "dead")
        assert listed.returncode == 0 and "4 dead letter(s)" in listed.stdout
        assert "NoSuchBucket" in listed.stdout

        make_client(s3_endpoint).create_bucket(Bucket=f"{bucket}-later")
        requeued = run_harness(env, "permits", "requeue", "--all")
        assert "requeued 4 permit(s)" in requeued.stdout
        second = make_consumer(conn, s3_endpoint, f"{bucket}-later").drain()
        assert second.moved == 4
        assert_each_permit_moved_once(conn, s3_endpoint, f"{bucket}-later", permits)
        steps = [
            r[0]
            for r in conn.execute(
                "SELECT step FROM etl.journal WHERE item_id = 1 ORDER BY journal_id"
            )
        ]
        assert steps == ["staged", "upload_failed", "dead", "requeued", "uploaded", "moved"]


def test_a_failing_store_is_retried_with_backoff_then_dead_lettered(db_url: str) -> None:
    """Nothing listens on the endpoint: connection errors are retryable, counted, backed off."""
    with connect(db_url) as conn:
        load_run(conn, numbered(2))
        consumer = make_consumer(
            conn,
            "http://127.0.0.1:9",
            "nowhere",
            max_attempts=3,
            retry_base_seconds=3600,
            retry_cap_seconds=7200,
        )
        totals = consumer.drain()
        assert (totals.moved, totals.upload_failures, totals.dead) == (0, 2, 0)
        rows = conn.execute(
            "SELECT state, attempts, next_attempt_at - now() FROM tps.staged_permit"
        ).fetchall()
        for state, attempts, delay in rows:
            assert (state, attempts) == ("pending", 1)
            assert timedelta(minutes=30) <= delay <= timedelta(hours=1)  # base 1 h, jitter 0.5-1
        backlog = PermitStore(conn).backlog()
        assert (backlog.claimable, backlog.retry_later) == (0, 2)
        logged = conn.execute(
            "SELECT count(*) FROM etl.error_log WHERE object_name = 'harness permits upload'"
        ).fetchone()
        assert logged == (2,)


def test_sigterm_finishes_the_batch_and_leaves_no_lease(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    permits = numbered(200)
    with connect(db_url) as conn:
        load_run(conn, permits)
        conn.execute("LISTEN etl_test_moved")
        conn.execute(
            "CREATE FUNCTION notify_moved() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN PERFORM pg_notify('etl_test_moved', ''); RETURN NULL; END$$;"
            " CREATE TRIGGER notify_moved AFTER INSERT ON permit.permit"
            " FOR EACH STATEMENT EXECUTE FUNCTION notify_moved()"
        )
        worker = start_harness(
            worker_env(db_url, s3_endpoint, bucket, batch_size=5), "run", "permits"
        )
        assert list(conn.notifies(timeout=30, stop_after=1))  # the first batch has moved
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0

        state = conn.execute(
            "SELECT count(*) FILTER (WHERE state = 'claimed'), count(*) FROM tps.staged_permit"
        ).fetchone()
        moved = conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0]
    assert state[0] == 0  # no lease left behind
    assert 0 < moved < 200 and moved + state[1] == 200  # stopped early; nothing lost


def test_reconcile_finds_and_removes_orphans_and_reports_missing_objects(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    with connect(db_url) as conn:
        load_run(conn, numbered(3))
        make_consumer(conn, s3_endpoint, bucket).drain()
    client = make_client(s3_endpoint)
    client.put_object(Bucket=bucket, Key="permits/ORPHAN/r0.pdf", Body=b"%PDF-1.4 %%EOF")
    client.delete_object(Bucket=bucket, Key="permits/P00000001/r0.pdf")
    env = worker_env(db_url, s3_endpoint, bucket)

    found = run_harness(env, "permits", "reconcile")
    assert found.returncode == 1
    assert f"orphan: s3://{bucket}/permits/ORPHAN/r0.pdf" in found.stdout
    assert f"missing: s3://{bucket}/permits/P00000001/r0.pdf" in found.stdout

    kept = run_harness(env, "permits", "reconcile", "--delete")  # younger than an hour: kept
    assert "permits/ORPHAN/r0.pdf (deleted)" not in kept.stdout
    run_harness(env, "permits", "reconcile", "--delete", "--older-than", "0")
    assert "permits/ORPHAN/r0.pdf" not in [
        o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])
    ]


def test_the_loader_stages_permits_but_cannot_set_consumer_state(db_url: str) -> None:
    with connect(db_url) as conn:
        process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
        conn.execute("SET ROLE pgferry_loader")
        conn.execute(
            "INSERT INTO tps.staged_permit (process_id, permit_number, permit_generation, pdf)"
            " VALUES (%s, 'P1', 1, '\\x25504446')",
            [process_id],
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO tps.staged_permit (process_id, permit_number, state)"
                " VALUES (%s, 'P2', 'dead')",
                [process_id],
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM permit.permit")
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT step FROM etl.journal").fetchall() == [("staged",)]
