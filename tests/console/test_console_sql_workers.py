"""The console's actions on running workers: a pause the claims of both pipelines honour (no
restart), cancel_worker stopping a running worker (NOTIFY, or the heartbeat's answer), the worker
registry, and `harness pause`/`resume`/`status`."""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import typer
from typer.testing import CliRunner

from harness.cli import app
from harness.commands.control import pause, resume
from harness.demo.detrack_fake import DetrackFake
from harness.runtime.lifecycle import heartbeats
from harness.s3 import make_client
from tests.support.permits import load_run, make_consumer, numbered, start_harness
from tests.support.pg import connect
from tests.support.shipments import API_KEY, insert_shipments, make_dispatcher, shipment


def wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def waiting_on_a_lock(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()[0]


def test_a_pause_stops_the_permit_claims_and_a_resume_restores_them(
    conn: psycopg.Connection, s3_endpoint: str, s3_credentials: None
) -> None:
    bucket = f"pause-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    load_run(conn, numbered(5))
    consumer = make_consumer(conn, s3_endpoint, bucket)
    conn.execute("SELECT etl.pause_pipeline('permits', 'S3 maintenance')")

    paused = consumer.drain()  # the same consumer, no restart: it claims nothing and returns
    assert (paused.claimed, paused.moved) == (0, 0)
    assert conn.execute(
        "SELECT count(*) FROM tps.staged_permit WHERE state = 'pending'"
    ).fetchone() == (5,)
    (status,) = [p for p in read_pipelines(conn) if p["name"] == "permits"]
    assert status["paused_by"] == "postgres" and status["backlog"] == 5

    conn.execute("SELECT etl.resume_pipeline('permits', 'S3 is back')")
    resumed = consumer.drain()
    assert (resumed.claimed, resumed.moved) == (5, 5)
    assert conn.execute("SELECT count(*) FROM permit.permit").fetchone() == (5,)


def test_a_pause_stops_every_step_of_the_dispatcher_and_a_resume_restores_them(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    """Paused, a dispatcher copies no ERP change, claims nothing and calls DeTrack for nothing,
    status searches included; resumed (no restart), it catches up with what waited."""
    delivered = shipment()
    insert_shipments(conn, [delivered])
    dispatcher = make_dispatcher(conn, fake)
    try:
        assert dispatcher.drain().synced == 1  # DeTrack has one job whose status is read back
        insert_shipments(conn, [shipment() for _ in range(3)])
        conn.execute("SELECT etl.pause_pipeline('shipments', 'DeTrack maintenance')")
        calls_before = len(fake.requests())

        paused = dispatcher.drain()
        assert (paused.erp_synced, paused.sent, paused.statuses) == (0, 0, 0)
        assert len(fake.requests()) == calls_before  # no call at all, no status search
        assert conn.execute("SELECT count(*) FROM delivery.job").fetchone() == (1,)
        assert conn.execute(
            "SELECT sum(shipment_count - taken) FROM delivery.erp_change"
        ).fetchone() == (3,)

        fake.set_status(delivered["job_number"], str(delivered["scheduled_ship_date"]), "completed")
        conn.execute("SELECT etl.resume_pipeline('shipments', 'DeTrack is back')")
        resumed = dispatcher.drain()
        assert (resumed.erp_synced, resumed.sent, resumed.synced) == (3, 3, 3)
        # the statuses of all four jobs are read back: the delivered one and the three new
        assert len(fake.jobs()) == 4 and resumed.statuses == 4
        assert conn.execute(
            "SELECT delivery_status FROM erp.shipment WHERE shipment_number = %s",
            [delivered["shipment_number"]],
        ).fetchone() == ("completed",)
    finally:
        dispatcher.close()


def test_a_pause_is_honoured_by_a_claim_already_waiting(
    conn: psycopg.Connection, db_url: str
) -> None:
    """A claim that waited for the claim lock sees a pause committed meanwhile."""
    load_run(conn, numbered(2))
    with connect(db_url) as holder, connect(db_url) as other:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('permit.claim_batch'))")
        result: dict[str, list] = {}
        waiting = threading.Thread(
            target=lambda: result.setdefault(
                "rows",
                other.execute(
                    "SELECT * FROM permit.claim_batch('w', 10, interval '1 minute', 1, 3)"
                ).fetchall(),
            )
        )
        waiting.start()
        wait_for(lambda: waiting_on_a_lock(conn) == 1, 10)
        conn.execute("SELECT etl.pause_pipeline('permits', 'now')")
        holder.execute("COMMIT")
        waiting.join(10)
    assert result["rows"] == []


def read_pipelines(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute("SELECT * FROM etl.pipeline_status ORDER BY name").fetchall()


def test_a_heartbeat_registers_the_worker_and_answers_a_stop_request(
    conn: psycopg.Connection, db_url: str
) -> None:
    """The fallback when the cancel NOTIFY is missed: the next beat sets the stop event."""
    load_run(conn, numbered(2))
    conn.execute("SELECT * FROM permit.claim_batch('beat-1', 10, interval '1 minute', 1, 3)")
    stop = threading.Event()
    with heartbeats(db_url, "beat-1", ["permits"], stop, interval=0.2):
        wait_for(lambda: conn.execute("SELECT count(*) FROM etl.worker").fetchone()[0], 5)
        worker = conn.execute("SELECT pipelines, holds, alive FROM etl.worker_status").fetchone()
        assert worker == (["permits"], {"permits": 2, "shipments": 0}, True)
        would, sample = conn.execute("SELECT * FROM etl.preview_cancel_worker('beat-1')").fetchone()
        assert would == 1 and sample[0]["holds"] == {"permits": 2, "shipments": 0}
        assert not stop.is_set()
        assert conn.execute(
            "SELECT etl.cancel_worker('beat-1', 'stuck on a permit')"
        ).fetchone() == (1,)
        wait_for(stop.is_set, 5)
    stopped = conn.execute(
        "SELECT stopped_at IS NOT NULL, alive, holds FROM etl.worker_status"
    ).fetchone()
    assert stopped == (True, False, {})
    # stopped: nothing left to cancel; a new process under the same id starts afresh
    assert conn.execute(
        "SELECT would_touch FROM etl.preview_cancel_worker('beat-1')"
    ).fetchone() == (0,)
    assert conn.execute("SELECT etl.cancel_worker('beat-1', 'again')").fetchone() == (0,)
    assert conn.execute(
        "SELECT etl.worker_heartbeat('beat-1', 'elsewhere', 2, ARRAY['permits'])"
    ).fetchone() == (False,)


def test_cancel_worker_stops_a_running_worker_at_once(db_url: str, fake: DetrackFake) -> None:
    env = {
        "DATABASE_URL": db_url,
        "DETRACK_BASE_URL": fake.base_url,
        "DETRACK_API_KEY": API_KEY,
        "PGFERRY_PIPELINES": "shipments",
        "PGFERRY_WORKER_ID": "console-test-worker",
    }
    worker = start_harness(env, "run", "--loop")
    try:
        with connect(db_url) as conn:
            wait_for(
                lambda: (
                    conn.execute(
                        "SELECT alive FROM etl.worker_status WHERE worker_id = 'console-test-worker'"
                    ).fetchone()
                    == (True,)
                ),
                30,
            )
            by_name = {p["name"]: p for p in read_pipelines(conn)}
            assert by_name["shipments"]["workers_alive"] == 1
            # the worker LISTENs: the NOTIFY stops it well before its next heartbeat (10 s)
            time.sleep(1)  # let its cancel listener connect
            cancelled_at = time.monotonic()
            assert conn.execute(
                "SELECT etl.cancel_worker('console-test-worker', 'deploying a new version')"
            ).fetchone() == (1,)
            assert worker.wait(timeout=30) == 0
            assert time.monotonic() - cancelled_at < 8
            assert conn.execute(
                "SELECT stop_requested_at IS NOT NULL, stopped_at IS NOT NULL, alive"
                " FROM etl.worker_status"
            ).fetchone() == (True, True, False)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_harness_pause_and_resume_record_the_user_and_status_shows_the_pause(db_url: str) -> None:
    runner, env = CliRunner(), {"DATABASE_URL": db_url}
    paused = runner.invoke(
        app_with_control(), ["pause", "shipments", "--reason", "DeTrack down"], env=env
    )
    assert paused.exit_code == 0, paused.output
    assert "shipments: paused" in paused.stdout

    table = runner.invoke(app, ["status"], env=env)
    assert "shipments: paused since " in table.stdout
    assert " by postgres: DeTrack down" in table.stdout
    status = json.loads(runner.invoke(app, ["status", "--json"], env=env).stdout)
    by_name = {p["name"]: p for p in status["pipelines"]}
    shipments = by_name["shipments"]
    assert (shipments["name"], shipments["paused_by"], shipments["pause_reason"]) == (
        "shipments",
        "postgres",
        "DeTrack down",
    )
    assert by_name["permits"]["paused_at"] is None

    refused = runner.invoke(app_with_control(), ["resume", "shipments", "--reason", " "], env=env)
    assert refused.exit_code == 2
    resumed = runner.invoke(
        app_with_control(), ["resume", "shipments", "--reason", "DeTrack up"], env=env
    )
    assert resumed.exit_code == 0 and "shipments: resumed" in resumed.stdout
    with connect(db_url) as conn:
        assert conn.execute(
            "SELECT actor, action, reason, affected FROM etl.operator_action ORDER BY action_id"
        ).fetchall() == [
            ("postgres", "pause_pipeline", "DeTrack down", 1),
            ("postgres", "resume_pipeline", "DeTrack up", 1),
        ]


def app_with_control() -> typer.Typer:
    """The two commands as harness/cli.py registers them (app.command("pause")(pause), ...)."""
    control = typer.Typer()
    control.command("pause")(pause)
    control.command("resume")(resume)
    return control


def test_a_paused_worker_claims_nothing_and_resumes_without_a_restart(
    db_url: str, fake: DetrackFake
) -> None:
    env = {
        "DATABASE_URL": db_url,
        "DETRACK_BASE_URL": fake.base_url,
        "DETRACK_API_KEY": API_KEY,
        "PGFERRY_PIPELINES": "shipments",
    }
    with connect(db_url) as conn:
        conn.execute("SELECT etl.pause_pipeline('shipments', 'hold everything')")
        worker = start_harness(env, "run", "--loop")
        try:
            insert_shipments(conn, [shipment() for _ in range(2)])
            time.sleep(2)  # a window for the paused worker to do what it should not
            assert fake.jobs() == [] and fake.requests() == []
            # the ERP changes wait, recorded, uncopied
            assert conn.execute("SELECT count(*) FROM delivery.job").fetchone() == (0,)
            assert conn.execute(
                "SELECT sum(shipment_count - taken) FROM delivery.erp_change"
            ).fetchone() == (2,)
            conn.execute("SELECT etl.resume_pipeline('shipments', 'go')")
            wait_for(lambda: len(fake.jobs()) == 2, 20)  # woken by the resume's NOTIFY
        finally:
            conn.execute("SELECT pg_notify('pgferry_cancel', '')")
            assert worker.wait(timeout=60) == 0
