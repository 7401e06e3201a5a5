"""One exit-code table for every `harness run` form (harness.runtime.outcome): 0 all due work handled,
1 dead letters or refused jobs exist (whichever run made them), 2 configuration, 3 a destination
or the database unreachable while work waits. Each row, through the real command. The summary
and what explains the code are results, on stdout; faults and logs are on stderr."""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta

import psycopg
import pytest

from harness.demo.detrack_fake import DetrackFake, Fault
from harness.s3 import make_client
from tests.support.permits import StagedPermit, load_run, numbered, run_harness, worker_env
from tests.support.shipments import API_KEY, insert_shipments, shipment


def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"exit-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def shipment_env(db_url: str, base_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "DETRACK_BASE_URL": base_url,
        "DETRACK_API_KEY": API_KEY,
        "DETRACK_MAX_RETRIES": "1",
        "DETRACK_RETRY_BASE_SECONDS": "0.01",
        "DETRACK_TIMEOUT_SECONDS": "2",
    }


@pytest.mark.parametrize("form", [["run"], ["run", "permits"]])
def test_dead_letters_of_an_earlier_run_still_exit_1_and_are_listed(
    conn: psycopg.Connection, db_url: str, s3_endpoint: str, bucket: str, form: list[str]
) -> None:
    load_run(conn, [*numbered(2), StagedPermit("BAD", 1, b"")])
    env = {**worker_env(db_url, s3_endpoint, bucket), "PGFERRY_PIPELINES": "permits"}
    first = run_harness(env, *form)
    assert first.returncode == 1, first.stderr
    again = run_harness(env, *form)  # nothing new to do; the dead letter is still there
    assert again.returncode == 1, again.stderr
    assert "permit BAD generation 1" in again.stdout


def test_everything_handled_exits_0(
    conn: psycopg.Connection, db_url: str, s3_endpoint: str, bucket: str, fake: DetrackFake
) -> None:
    load_run(conn, numbered(2))
    insert_shipments(conn, [shipment()])
    env = {**worker_env(db_url, s3_endpoint, bucket), **shipment_env(db_url, fake.base_url)}
    result = run_harness(env, "run")
    assert result.returncode == 0, result.stderr


def test_detrack_unreachable_exits_3_and_says_so(conn: psycopg.Connection, db_url: str) -> None:
    insert_shipments(conn, [shipment() for _ in range(3)])
    env = shipment_env(db_url, f"http://127.0.0.1:{closed_port()}/api/v2")
    result = run_harness(env, "run", "shipments")
    assert result.returncode == 3, result.stderr
    assert "synced 0" in result.stdout
    assert "DeTrack calls failed; 3 job(s) wait for a retry" in result.stdout


def test_s3_unreachable_exits_3_and_says_so(conn: psycopg.Connection, db_url: str) -> None:
    load_run(conn, numbered(3))
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = worker_env(
        db_url, endpoint, "nowhere", max_attempts=5, retry_base_seconds=3600, retry_cap_seconds=3600
    )
    result = run_harness(env, "run", "permits")
    assert result.returncode == 3, result.stderr
    assert "uploads failed or were refused; 3 permit(s) wait for a retry" in result.stdout


def test_database_unreachable_exits_3_without_a_traceback(fake: DetrackFake) -> None:
    env = shipment_env(f"postgresql://pgferry@127.0.0.1:{closed_port()}/pgferry", fake.base_url)
    result = run_harness(env, "run", "shipments")
    assert result.returncode == 3, result.stderr
    assert "database unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_configuration_exits_2(db_url: str) -> None:
    result = run_harness({"DATABASE_URL": db_url, "PGFERRY_PIPELINES": "shipments"}, "run")
    assert result.returncode == 2
    assert "DETRACK_API_KEY" in result.stderr


def test_jobs_given_back_for_a_long_retry_after_exit_3_and_wait_that_long(
    conn: psycopg.Connection, db_url: str, fake: DetrackFake
) -> None:
    insert_shipments(conn, [shipment() for _ in range(3)])
    fake.inject(Fault(status=503, retry_after="600"), times=5, path_prefix="/dn/jobs")
    result = run_harness(shipment_env(db_url, fake.base_url), "run", "shipments")
    assert result.returncode == 3, result.stderr
    assert "given back 3" in result.stdout
    assert "3 job(s) wait for a retry" in result.stdout
    waits = conn.execute(
        "SELECT min(next_attempt_at - now()), max(attempts) FROM delivery.job"
    ).fetchone()
    assert waits[0] > timedelta(seconds=590)  # the server's Retry-After, not our cap
    assert waits[1] == 0
