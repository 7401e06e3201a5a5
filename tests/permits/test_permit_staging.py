"""Staged permits never strand: rows go into an open permits run only, rows of failed or
abandoned runs are shown and then purged, and a permit that crashes its worker every time
becomes a dead letter instead of being claimed without end."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from harness.demo.samples import sample_pdf
from harness.ops.status import read_status
from harness.permits.store import PermitStore
from harness.s3 import make_client
from tests.support.permits import (
    StagedPermit,
    assert_each_permit_moved_once,
    in_thread,
    load_run,
    make_consumer,
    numbered,
    result_of,
    run_harness,
    waits_for_lock,
    worker_env,
)
from tests.support.pg import connect

INSERT_ONE = (
    "INSERT INTO tps.staged_permit (process_id, permit_number, permit_generation, pdf)"
    " VALUES (%s, 'LATE', 1, '\\x25504446')"
)


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"permits-{uuid.uuid4().hex[:10]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def ended_process(conn: psycopg.Connection, kind: str) -> int:
    """A process that is not an open permits run, of each kind a loader could aim at."""
    if kind == "shipments":
        return conn.execute("SELECT etl.start_process('shipments')").fetchone()[0]
    if kind == "abandoned":
        process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
        later = load_run(conn, [], status="running", hung=process_id)
        conn.execute("SELECT etl.end_process(%s, 'failed')", [later])
        return process_id
    if kind == "consumed":
        process_id = load_run(conn, [])
        assert PermitStore(conn).finish_drained_processes() == [process_id]
        return process_id
    return load_run(conn, [], status=kind)


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("succeeded", "permits process {} already ended (succeeded at "),
        ("failed", "permits process {} already ended (failed at "),
        ("abandoned", "permits process {} already ended (abandoned at "),
        ("consumed", "and was consumed at "),
        ("shipments", "process {} is a shipments process, not a permits run"),
    ],
)
def test_rows_for_a_process_that_is_not_an_open_permits_run_are_refused(
    db_url: str, kind: str, said: str
) -> None:
    with connect(db_url) as conn:
        process_id = ended_process(conn, kind)
        conn.execute("SET ROLE pgferry_loader")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as refused:
            conn.execute(INSERT_ONE, [process_id])
        conn.execute("RESET ROLE")
        assert said.format(process_id) in refused.value.diag.message_primary
        assert "etl.start_process('permits')" in refused.value.diag.message_hint
        assert conn.execute("SELECT count(*) FROM tps.staged_permit").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM etl.journal").fetchone() == (0,)


def test_a_run_cannot_be_ended_while_rows_are_being_inserted_into_it(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The loader's insert is not committed yet when someone ends its run (a second loader
    session, an operator): the end waits for the insert, so the consumer never sees the run
    succeeded without its rows (it would mark it consumed and strand them)."""
    permits = numbered(3)
    with connect(db_url) as conn, connect(db_url) as loader, connect(db_url) as other:
        process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
        with loader.transaction():
            for permit in permits:
                loader.execute(
                    "INSERT INTO tps.staged_permit (process_id, permit_number, permit_generation,"
                    " pdf) VALUES (%s, %s, %s, %s)",
                    [process_id, permit.permit_number, permit.generation, permit.pdf],
                )
            thread, outcome = in_thread(
                lambda: other.execute("SELECT etl.end_process(%s, 'succeeded')", [process_id])
            )
            ended_first = not waits_for_lock(conn, other.info.backend_pid, thread)
            consumer = make_consumer(conn, s3_endpoint, bucket)
            meanwhile = consumer.drain()  # a worker woken by the run's end, if it came first
        result_of(thread, outcome)
        after = consumer.drain()
        consumer.close()

        assert not ended_first, "etl.end_process did not wait for the insert in progress"
        assert meanwhile.processes_consumed == [] and after.processes_consumed == [process_id]
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, permits)


def stranded(conn: psycopg.Connection) -> int:
    (permits,) = [p for p in read_status(conn).pipelines if p.name == "permits"]
    return permits.stranded


def test_rows_of_failed_and_abandoned_runs_are_shown_then_purged_after_their_age(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    with connect(db_url) as conn:
        load_run(conn, numbered(2, start=1), status="failed")
        abandoned = load_run(conn, numbered(3, start=10), status="running")
        waiting = load_run(conn, numbered(4, start=20), status="running", hung=abandoned)
        assert conn.execute(
            "SELECT status FROM etl.process WHERE process_id = %s", [abandoned]
        ).fetchone() == ("abandoned",)
        consumer = make_consumer(conn, s3_endpoint, bucket, purge_failed_after_hours=1)

        young = consumer.drain()  # the open run is left alone; the stranded rows are young
        assert (young.claimed, young.purged, stranded(conn)) == (0, 0, 5)

        conn.execute("UPDATE etl.process SET ended_at = ended_at - interval '61 minutes'")
        conn.execute("UPDATE tps.staged_permit SET staged_at = staged_at - interval '61 minutes'")
        old = consumer.drain()
        consumer.close()

        assert (old.purged, stranded(conn)) == (5, 0)
        left = conn.execute("SELECT DISTINCT process_id FROM tps.staged_permit").fetchall()
        assert left == [(waiting,)]
        purged = conn.execute(
            "SELECT detail ->> 'process_status', count(*) FROM etl.journal"
            " WHERE step = 'purged' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert purged == [("abandoned", 3), ("failed", 2)]
        assert PermitStore(conn).purge_stranded(timedelta(0)).rows == 0


def test_a_permit_that_crashes_its_worker_is_a_dead_letter_after_max_claims(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The worker is killed (kill -9) each time it holds the permit; after PERMITS_MAX_CLAIMS
    claims whose lease expired, the next claim makes it a dead letter that says why, instead of
    handing it to the next worker to crash."""
    poison = StagedPermit("POISON", 1, sample_pdf("POISON", 2000))
    with connect(db_url) as conn:
        load_run(conn, [poison])
    env = worker_env(db_url, s3_endpoint, bucket, lease_seconds=1, max_claims=2)
    crashing = {**env, "PGFERRY_FAILPOINTS": "after_claim=1"}  # short leases: quick restarts

    for _ in range(2):
        crashed = run_harness(crashing, "run", "permits")
        assert crashed.returncode == -9, crashed.stderr
    parked = run_harness(crashing, "run", "permits")  # waits for the lease, then gives up on it

    assert parked.returncode == 1, parked.stderr
    assert "POISON generation 1: claimed 2 times without finishing" in parked.stdout + parked.stderr
    with connect(db_url) as conn:
        dead = conn.execute(
            "SELECT state, expired_claims FROM tps.staged_permit WHERE permit_number = 'POISON'"
        ).fetchone()
        assert dead == ("dead", 2)
        journal = conn.execute(
            "SELECT detail ->> 'retryable', detail ->> 'expired_claims' FROM etl.journal"
            " WHERE step = 'dead'"
        ).fetchall()
        assert journal == [("false", "2")]  # waits for an operator, not the scheduled requeue
        alerts = conn.execute("SELECT subject FROM etl.alert WHERE kind = 'dead_letter'").fetchall()
        assert alerts == [
            (
                "pgferry: 1 permit(s) dead-lettered (claimed 2 times, each lease expired:"
                " the worker may crash on them)",
            )
        ]
        assert PermitStore(conn).requeue_dead() == [1]  # fixed: requeued with its count reset
    moved = run_harness(worker_env(db_url, s3_endpoint, bucket), "run", "permits")
    assert moved.returncode == 0, moved.stderr
    with connect(db_url) as conn:
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [poison])
