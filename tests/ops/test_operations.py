"""Operating pgferry: alerts by mail, status, the daily report, journal verification,
scheduled retries, lag alerts, cancel, and `harness run` with both pipelines."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from typer.testing import CliRunner

from harness.cli import app
from harness.config import AlertSettings
from harness.demo.detrack_fake import DetrackFake
from harness.ops.alerts import claim_alert, send_pending_alerts
from harness.s3 import make_client
from tests.support.permits import (
    StagedPermit,
    load_run,
    make_consumer,
    numbered,
    run_harness,
    start_harness,
    worker_env,
)
from tests.support.pg import connect
from tests.support.shipments import API_KEY, insert_shipments, shipment, sync


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    async def handle_DATA(  # the name aiosmtpd calls
        self, server: object, session: object, envelope: Envelope
    ) -> str:
        self.messages.append((envelope.mail_from, envelope.content))
        return "250 OK"


class HeldInbox(Inbox):
    """A mail server that holds the first message's DATA until released: a sender stays
    mid-exchange for as long as the test needs."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(  # the name aiosmtpd calls
        self, server: object, session: object, envelope: Envelope
    ) -> str:
        if not self.holding.is_set():
            self.holding.set()
            # waits off the event loop, so other sessions are served meanwhile
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return await super().handle_DATA(server, session, envelope)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alert_settings(port: int) -> AlertSettings:
    return AlertSettings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_timeout_seconds=2,
        alert_to="ops@example.com, dba@example.com",
    )


def test_alerts_wait_out_a_mail_outage_and_are_delivered_once(conn: psycopg.Connection) -> None:
    for n in range(3):
        conn.execute("SELECT etl.queue_alert('test', %s, 'body')", [f"alert {n}"])
    port = free_port()

    down = send_pending_alerts(conn, alert_settings(port))  # nothing listens on the port yet
    assert (down.sent, down.failed) == (0, 1)
    assert conn.execute("SELECT count(*) FROM etl.alert WHERE sent_at IS NULL").fetchone() == (3,)
    assert (
        "ConnectionRefusedError"
        in conn.execute("SELECT last_error FROM etl.alert WHERE attempts = 1").fetchone()[0]
    )

    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        up = send_pending_alerts(conn, alert_settings(port))
        again = send_pending_alerts(conn, alert_settings(port))
    finally:
        server.stop()
    assert (up.sent, again.sent) == (3, 0)
    subjects = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for _, m in inbox.messages)
    assert subjects == [b"alert 0", b"alert 1", b"alert 2"]
    assert all(b"To: ops@example.com, dba@example.com" in m for _, m in inbox.messages)


def subjects_of(inbox: Inbox) -> list[bytes]:
    return sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for _, m in inbox.messages)


def test_a_sender_mid_exchange_holds_no_transaction_and_no_alert_is_sent_twice(
    db_url: str, conn: psycopg.Connection
) -> None:
    for n in range(2):
        conn.execute("SELECT etl.queue_alert('test', %s, 'body')", [f"alert {n}"])
    inbox, port = HeldInbox(), free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        with connect(db_url) as first, connect(db_url) as second, ThreadPoolExecutor(1) as pool:
            for sender in (first, second):
                sender.execute("SET ROLE pgferry_worker")  # the worker's privileges suffice
            held = pool.submit(send_pending_alerts, first, alert_settings(port))
            assert inbox.holding.wait(timeout=30)  # the first sender is mid-exchange

            state = conn.execute(
                "SELECT state FROM pg_stat_activity WHERE pid = %s", [first.info.backend_pid]
            ).fetchone()
            other = send_pending_alerts(second, alert_settings(port))
            inbox.release.set()
            first_result = held.result(timeout=30)
    finally:
        inbox.release.set()
        server.stop()
    assert state == ("idle",)  # not 'idle in transaction' while the mail server is slow
    assert (first_result.sent, other.sent) == (1, 1)  # the held alert was left alone
    assert subjects_of(inbox) == [b"alert 0", b"alert 1"]


def test_a_crashed_senders_alert_is_sent_after_its_lease(conn: psycopg.Connection) -> None:
    alert_id = conn.execute("SELECT etl.queue_alert('test', 'alert 0', 'body')").fetchone()[0]
    conn.execute("SET ROLE pgferry_worker")
    assert claim_alert(conn, timedelta(minutes=5)) is not None  # then the sender died
    inbox, port = Inbox(), free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        leased = send_pending_alerts(conn, alert_settings(port))
        conn.execute("UPDATE etl.alert SET claimed_until = clock_timestamp() - interval '1 s'")
        expired = send_pending_alerts(conn, alert_settings(port))
    finally:
        server.stop()
    assert (leased.sent, expired.sent) == (0, 1)
    assert [f"Message-ID: <pgferry-alert-{alert_id}@".encode() in m for _, m in inbox.messages] == [
        True
    ]
    assert conn.execute(
        "SELECT attempts, sent_at IS NOT NULL, claimed_until FROM etl.alert"
    ).fetchone() == (2, True, None)


def test_status_json_and_the_daily_report_give_the_known_numbers(
    db_url: str, conn: psycopg.Connection, s3_endpoint: str, s3_credentials: None
) -> None:
    bucket = f"status-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    load_run(conn, [*numbered(4), StagedPermit("BAD", 1, b"not a pdf")])
    make_consumer(conn, s3_endpoint, bucket).drain()
    failed = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
    conn.execute("SELECT etl.start_process('permits')")  # refused
    conn.execute("SELECT etl.end_process(%s, 'failed', 0, 'source down')", [failed])
    insert_shipments(conn, [shipment() for _ in range(3)])

    result = CliRunner().invoke(app, ["status", "--json"], env={"DATABASE_URL": db_url})
    assert result.exit_code == 1  # dead letters and a failed run: not healthy
    status = json.loads(result.stdout)
    files, permits, shipments = status["pipelines"]
    assert (files["name"], files["backlog"], files["dead_letters"]) == ("files", 0, 0)
    assert (permits["failed_runs_24h"], permits["process_errors_24h"]) == (1, 1)
    assert (permits["dead_letters"], permits["backlog"], permits["last_status"]) == (1, 0, "failed")
    assert (shipments["backlog"], shipments["dead_letters"]) == (3, 0)
    assert status["alerts_unsent"] == 2  # the failed run and the dead letter

    report = CliRunner().invoke(
        app, ["report", "daily", "--no-email"], env={"DATABASE_URL": db_url}
    )
    assert report.exit_code == 0
    assert "permits: 2 run(s), 1 failed; most recent: #" in report.stdout
    assert "items moved/created: 4; waiting: 0; lag: none; dead letters: 1" in report.stdout
    assert "shipments: 0 run(s), 0 failed; most recent: no run yet" in report.stdout


def test_every_daily_report_is_a_new_message(db_url: str) -> None:
    """Two reports are two messages: each with a Message-ID of its own and a Date."""
    inbox, port = Inbox(), free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    env = {
        "DATABASE_URL": db_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_STARTTLS": "false",
        "ALERT_TO": "ops@example.com",
    }
    try:
        for _ in range(2):
            result = CliRunner().invoke(app, ["report", "daily"], env=env)
            assert result.exit_code == 0, result.output
            assert "mailed to ops@example.com" in result.stderr
    finally:
        server.stop()
    messages = [BytesParser(policy=policy.default).parsebytes(m) for _, m in inbox.messages]
    assert [m["Subject"] for m in messages] == ["pgferry daily report"] * 2
    ids = [str(m["Message-ID"]).strip() for m in messages]  # folded when long
    assert len(set(ids)) == 2 and all(i.startswith("<") and i.endswith(">") for i in ids)
    assert all(parsedate_to_datetime(m["Date"]) for m in messages)


def test_verify_catches_a_corrupted_journal(
    db_url: str, conn: psycopg.Connection, s3_endpoint: str, s3_credentials: None
) -> None:
    bucket = f"verify-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    load_run(conn, numbered(3))
    make_consumer(conn, s3_endpoint, bucket).drain()
    env = {"DATABASE_URL": db_url}
    assert CliRunner().invoke(app, ["verify"], env=env).exit_code == 0

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute("DELETE FROM etl.journal WHERE step = 'uploaded'")
    conn.execute(
        "INSERT INTO etl.journal (pipeline, item_id, step, at)"
        " VALUES ('permits', 2, 'moved', now()), ('permits', 77, 'uploaded', now())"
    )

    result = CliRunner().invoke(app, ["verify"], env=env)
    assert result.exit_code == 1
    assert "permits\titem 2\tmoved 2 times" in result.stdout
    assert (
        "permits\titem 77\tuploaded at" in result.stdout
        and "without an earlier staged" in result.stdout
    )


def test_the_scheduled_retry_requeues_retryable_dead_letters_up_to_the_cap(
    conn: psycopg.Connection,
) -> None:
    load_run(conn, [*numbered(2), StagedPermit("BAD", 1, b"GIF89a")])
    consumer = make_consumer(conn, "http://127.0.0.1:9", "nowhere", max_attempts=1)
    consumer.drain()  # two upload failures (dead, retryable) and one invalid row (dead, not)
    conn.execute("UPDATE tps.staged_permit SET dead_at = now() - interval '1 hour'")

    def requeue() -> int:
        rows = conn.execute("SELECT * FROM etl.auto_requeue_dead_letters(2)").fetchall()
        return dict(rows)["permits"]

    assert requeue() == 2  # the invalid row waits for an operator
    consumer.drain()
    conn.execute("UPDATE tps.staged_permit SET dead_at = now() - interval '1 hour'")
    assert requeue() == 2
    consumer.drain()
    conn.execute("UPDATE tps.staged_permit SET dead_at = now() - interval '1 hour'")
    assert requeue() == 0  # the cap of 2 is reached; they stay listed as dead letters
    assert conn.execute(
        "SELECT count(*) FROM tps.staged_permit WHERE state = 'dead'"
    ).fetchone() == (3,)


def test_lag_alerts_are_queued_once_per_quiet_period(conn: psycopg.Connection) -> None:
    insert_shipments(conn, [shipment()])  # recorded by the trigger; no worker copies it
    conn.execute("UPDATE delivery.erp_change SET queued_at = now() - interval '2 hours'")
    first = conn.execute("SELECT * FROM etl.queue_lag_alerts('1 hour')").fetchall()
    second = conn.execute("SELECT * FROM etl.queue_lag_alerts('1 hour')").fetchall()
    assert (first, second) == ([("shipments",)], [])
    subject = conn.execute("SELECT subject FROM etl.alert WHERE kind = 'lag'").fetchone()[0]
    assert subject.startswith("pgferry: shipments is behind (oldest item waiting 02:00:0")

    sync(conn)  # copied: now a job waits to be sent
    conn.execute("UPDATE delivery.job SET due_since = now() - interval '3 hours'")
    conn.execute("UPDATE etl.alert SET created_at = now() - interval '2 hours'")
    assert conn.execute("SELECT * FROM etl.queue_lag_alerts('1 hour')").fetchall() == [
        ("shipments",)
    ]


def test_cancel_stops_a_running_consumer_cleanly(
    db_url: str, s3_endpoint: str, s3_credentials: None
) -> None:
    bucket = f"cancel-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    with connect(db_url) as conn:
        load_run(conn, numbered(200))
        conn.execute("LISTEN test_moved")
        conn.execute(
            "CREATE FUNCTION notify_moved() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN PERFORM pg_notify('test_moved', ''); RETURN NULL; END$$;"
            " CREATE TRIGGER notify_moved AFTER INSERT ON permit.permit"
            " FOR EACH STATEMENT EXECUTE FUNCTION notify_moved()"
        )
        env = worker_env(db_url, s3_endpoint, bucket, batch_size=5)
        worker = start_harness(env, "run", "permits")
        assert list(conn.notifies(timeout=30, stop_after=1))
        # the worker's next move waits on this lock, so that the cancel lands mid-drain
        # however fast the worker is (200 permits once drained before a cancel could start)
        with connect(db_url) as holder, holder.transaction():
            holder.execute("LOCK TABLE permit.permit IN EXCLUSIVE MODE")
            assert run_harness(env, "cancel").returncode == 0
        assert worker.wait(timeout=60) == 0
        leased, left = conn.execute(
            "SELECT count(*) FILTER (WHERE state = 'claimed'), count(*) FROM tps.staged_permit"
        ).fetchone()
        moved = conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0]
    assert leased == 0 and 0 < moved < 200 and moved + left == 200


def test_harness_run_drives_both_pipelines_and_mails_alerts(
    db_url: str, s3_endpoint: str, s3_credentials: None
) -> None:
    bucket = f"run-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    inbox = Inbox()
    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        with DetrackFake(api_key=API_KEY, rate_limit_per_minute=10_000) as fake:
            with connect(db_url) as conn:
                load_run(conn, [*numbered(5), StagedPermit("BAD", 1, b"")])
                insert_shipments(conn, [shipment() for _ in range(4)])
            env = {
                **worker_env(db_url, s3_endpoint, bucket),
                "DETRACK_BASE_URL": fake.base_url,
                "DETRACK_API_KEY": API_KEY,
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(port),
                "SMTP_STARTTLS": "false",
                "ALERT_TO": "ops@example.com",
            }
            result = run_harness(env, "run")
            assert len(fake.jobs()) == 4
    finally:
        server.stop()
    assert result.returncode == 1, result.stderr  # the empty PDF is a dead letter
    # the summaries are the result: stdout; stderr holds the logs
    assert "permits: claimed 6, moved 5, duplicates 0, rejected 1, dead 0" in result.stdout
    assert "shipments: ERP shipments checked 4; jobs sent 4 in 1 call(s): synced 4" in (
        result.stdout
    )
    assert "permits: 1 dead letter(s)" in result.stdout
    assert "permits: claimed" not in result.stderr
    assert [b"dead-lettered" in m for _, m in inbox.messages] == [True]


def test_the_long_running_worker_wakes_on_new_shipments_and_stops_on_cancel(
    db_url: str, fake: DetrackFake
) -> None:
    env = {
        "DATABASE_URL": db_url,
        "DETRACK_BASE_URL": fake.base_url,
        "DETRACK_API_KEY": API_KEY,
        "PGFERRY_PIPELINES": "shipments",
    }
    with connect(db_url) as conn:
        conn.execute(
            "CREATE FUNCTION notify_sent() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN PERFORM pg_notify('test_sent', ''); RETURN NULL; END$$;"
            " CREATE TRIGGER notify_sent AFTER UPDATE ON delivery.job"
            " FOR EACH STATEMENT EXECUTE FUNCTION notify_sent()"
        )
        conn.execute("LISTEN test_sent")
        worker = start_harness(env, "run", "--loop")
        for expected in (1, 2):  # two separate ERP inserts while the worker waits
            insert_shipments(conn, [shipment()])
            while len(fake.jobs()) < expected:  # each job update wakes this loop
                assert list(conn.notifies(timeout=30, stop_after=1))
        assert run_harness(env, "cancel").returncode == 0
        assert worker.wait(timeout=60) == 0
    assert len(fake.jobs()) == 2
    assert "shipments: ERP shipments checked 2; jobs sent 2 in 2 call(s): synced 2" in (
        worker.stdout.read()
    )
