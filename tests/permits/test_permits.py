"""The permit pipeline end to end: real PostgreSQL, real S3 server (moto) on loopback."""

from __future__ import annotations

import hashlib
import uuid

import psycopg
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.demo.samples import sample_pdf
from harness.s3 import make_client
from tests.support.permits import (
    StagedPermit,
    load_run,
    make_consumer,
    numbered,
    object_keys,
)
from tests.support.pg import connect


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"permits-{uuid.uuid4().hex[:10]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def staged_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM tps.staged_permit").fetchone()[0]


def test_a_completed_run_is_moved_uploaded_and_consumed(
    conn: psycopg.Connection, s3_endpoint: str, bucket: str
) -> None:
    permits = numbered(25)
    process_id = load_run(conn, permits)

    totals = make_consumer(conn, s3_endpoint, bucket).drain()

    assert (totals.moved, totals.duplicates, totals.dead_letters) == (25, 0, 0)
    assert totals.processes_consumed == [process_id]
    assert staged_count(conn) == 0
    rows = conn.execute(
        "SELECT p.tps_permit_number, p.revision, p.status, d.object_key, d.sha256, d.size_bytes"
        " FROM permit.permit p JOIN permit.document d USING (document_id) ORDER BY 1"
    ).fetchall()
    assert len(rows) == 25
    client = make_client(s3_endpoint)
    for (number, revision, status, key, sha256, size), permit in zip(rows, permits, strict=True):
        assert (number, revision, status) == (permit.permit_number, 0, "issued")
        assert key == f"permits/{number}/r0.pdf"
        assert sha256 == hashlib.sha256(permit.pdf).hexdigest() and size == len(permit.pdf)
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == permit.pdf
        assert client.head_object(Bucket=bucket, Key=key)["Metadata"]["sha256"] == sha256
    assert conn.execute(
        "SELECT consumed_at IS NOT NULL FROM etl.process WHERE process_id = %s", [process_id]
    ).fetchone() == (True,)


def test_runs_that_are_not_completed_are_left_alone(
    conn: psycopg.Connection, s3_endpoint: str, bucket: str
) -> None:
    load_run(conn, numbered(3), status="running")
    totals = make_consumer(conn, s3_endpoint, bucket).drain()
    assert totals.claimed == 0 and staged_count(conn) == 3
    assert object_keys(s3_endpoint, bucket) == []


def test_the_oldest_completed_run_goes_first(
    conn: psycopg.Connection, s3_endpoint: str, bucket: str
) -> None:
    first = load_run(conn, numbered(3, start=1))
    second = load_run(conn, numbered(3, start=100))
    make_consumer(conn, s3_endpoint, bucket, batch_size=1).drain()
    order = [
        row[0]
        for row in conn.execute("SELECT source_process_id FROM permit.permit ORDER BY permit_id")
    ]
    assert order == [first] * 3 + [second] * 3


def test_redelivered_permits_are_duplicates_and_add_nothing(
    conn: psycopg.Connection, s3_endpoint: str, bucket: str
) -> None:
    load_run(conn, numbered(5))
    make_consumer(conn, s3_endpoint, bucket).drain()
    before = conn.execute("SELECT permit_id, updated_at FROM permit.permit ORDER BY 1").fetchall()

    later = load_run(conn, numbered(5))
    totals = make_consumer(conn, s3_endpoint, bucket).drain()

    assert (totals.moved, totals.duplicates) == (0, 5)
    assert totals.processes_consumed == [later]
    assert (
        conn.execute("SELECT permit_id, updated_at FROM permit.permit ORDER BY 1").fetchall()
        == before
    )
    assert staged_count(conn) == 0
    assert len(object_keys(s3_endpoint, bucket)) == 5


def test_an_amendment_supersedes_the_earlier_revision(
    conn: psycopg.Connection, s3_endpoint: str, bucket: str
) -> None:
    load_run(conn, [StagedPermit("P1", 1), StagedPermit("P2", 2)])  # P2 rev 1 arrives first
    make_consumer(conn, s3_endpoint, bucket).drain()
    load_run(
        conn, [StagedPermit("P1", 2), StagedPermit("P2", 1), StagedPermit("P3", 1, service="V")]
    )
    make_consumer(conn, s3_endpoint, bucket).drain()

    statuses = conn.execute(
        "SELECT tps_permit_number, revision, status FROM permit.permit ORDER BY 1, 2"
    ).fetchall()
    assert statuses == [
        ("P1", 0, "superseded"),
        ("P1", 1, "issued"),
        ("P2", 0, "superseded"),
        ("P2", 1, "issued"),
        ("P3", 0, "voided"),
    ]


def test_bad_rows_get_clear_errors_and_good_rows_still_land(
    conn: psycopg.Connection, s3_endpoint: str, bucket: str
) -> None:
    good = numbered(3)
    cut = sample_pdf("CUT", 3000)[:-200]
    bad = [
        StagedPermit(None, 1),
        StagedPermit("BADPDF", 1, b"<html>not a pdf</html>"),
        StagedPermit("EMPTY", 1, b""),
        StagedPermit("GEN0", 0),
        StagedPermit("CUT", 1, cut),
    ]
    process_id = load_run(conn, [*good[:2], *bad, good[2]])

    totals = make_consumer(conn, s3_endpoint, bucket).drain()

    assert (totals.moved, totals.rejected) == (3, 5)
    assert conn.execute("SELECT subject FROM etl.alert WHERE kind = 'dead_letter'").fetchall() == [
        ("pgferry: 5 permit(s) dead-lettered (invalid staged data)",)
    ]
    assert totals.processes_consumed == []  # dead letters keep the run open
    errors = {
        row[0]
        for row in conn.execute(
            "SELECT message FROM etl.error_log WHERE process_id = %s", [process_id]
        )
    }
    assert errors == {
        "permit NULL generation 1 (staged row 3) rejected: permit_number: missing",
        "permit BADPDF generation 1 (staged row 4) rejected: pdf: not a PDF (starts with 0x3c68746d6c3e6e6f)",
        "permit EMPTY generation 1 (staged row 5) rejected: pdf: empty",
        "permit GEN0 generation 0 (staged row 6) rejected: permit_generation: must be 1 or more"
        " (revision = generation - 1), got 0",
        "permit CUT generation 1 (staged row 7) rejected: pdf: truncated: no %%EOF trailer in the"
        f" last 1024 of {len(cut)} bytes",
    }
    assert sorted(object_keys(s3_endpoint, bucket)) == sorted(
        f"permits/{p.permit_number}/r0.pdf" for p in good
    )


def test_the_run_command_exits_1_and_names_dead_letters(
    db_url: str, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(db_url) as conn:
        load_run(conn, [*numbered(2), StagedPermit("BADPDF", 1, b"GIF89a....")])
    env = {"DATABASE_URL": db_url, "S3_ENDPOINT_URL": s3_endpoint, "S3_BUCKET": bucket}
    result = CliRunner().invoke(app, ["run", "permits"], env=env)
    assert result.exit_code == 1, result.output
    assert "moved 2" in result.output and "rejected 1" in result.output
    assert "permit BADPDF generation 1: pdf: not a PDF" in result.output

    again = CliRunner().invoke(app, ["run", "permits"], env=env)
    assert again.exit_code == 1, again.output  # dead letters remain, whichever run made them
    assert "permit BADPDF generation 1: pdf: not a PDF" in again.output


def test_missing_configuration_exits_2_with_a_clear_message(db_url: str) -> None:
    result = CliRunner().invoke(
        app, ["run", "permits"], env={"DATABASE_URL": db_url, "S3_BUCKET": ""}
    )
    assert result.exit_code == 2
    assert "S3_BUCKET" in result.output


def test_a_second_copy_with_other_pdf_bytes_waits_for_the_first_and_is_a_duplicate(
    conn: psycopg.Connection, s3_endpoint: str, bucket: str
) -> None:
    first = StagedPermit("TWICE", 1, sample_pdf("first rendering", 3000))
    again = StagedPermit("TWICE", 1, sample_pdf("second rendering", 3100))
    load_run(conn, [first])
    load_run(conn, [again])

    totals = make_consumer(conn, s3_endpoint, bucket, batch_size=1).drain()

    assert (totals.moved, totals.duplicates, totals.dead_letters) == (1, 1, 0)
    assert staged_count(conn) == 0
