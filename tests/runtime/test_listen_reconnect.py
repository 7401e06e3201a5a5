"""Wake-ups survive: a LISTEN connection that drops (pg_terminate_backend here; a failover or a
restart alike) is re-established, the worker still wakes on NOTIFY and `harness cancel` still
stops it; and a wake-up never fails the writer's COMMIT (etl.notify)."""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from harness.demo.detrack_fake import DetrackFake
from harness.runtime.lifecycle import CANCEL_APPLICATION_NAME, request_cancel, stop_requested
from harness.runtime.wakeup import LISTEN_APPLICATION_NAME, PollBackoff, run_until_stopped
from tests.support.permits import run_harness, start_harness
from tests.support.pg import connect
from tests.support.shipments import API_KEY, insert_shipments, shipment

LISTENERS = (LISTEN_APPLICATION_NAME, CANCEL_APPLICATION_NAME)
LOST = "LISTEN connection lost; reconnecting"
BACK = "LISTEN connection re-established"


def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for a condition only the server can tell (pg_stat_activity), with a deadline."""
    deadline, pause = time.monotonic() + timeout, threading.Event()
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        pause.wait(0.05)


def alive(worker: subprocess.Popen) -> bool:
    """True while the worker runs; its stderr in the failure when it died."""
    assert worker.poll() is None, worker.stderr.read()
    return True


def listening(conn: psycopg.Connection, names: tuple[str, ...]) -> dict[str, int]:
    """application_name -> pid of our listener backends that have run their LISTEN."""
    rows = conn.execute(
        "SELECT application_name, pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = ANY (%s)"
        " AND query LIKE 'LISTEN %%'",
        [list(names)],
    ).fetchall()
    return dict(rows)


def terminate(conn: psycopg.Connection, pids: list[int]) -> None:
    assert conn.execute(
        "SELECT bool_and(pg_terminate_backend(pid)) FROM unnest(%s::int[]) AS pid", [pids]
    ).fetchone() == (True,)


def new_listeners(conn: psycopg.Connection, old: dict[str, int]) -> dict[str, int]:
    """Wait until every listener in ``old`` listens again on a new backend."""
    names = tuple(old)
    eventually(
        lambda: all(listening(conn, names).get(name, old[name]) != old[name] for name in names)
    )
    return listening(conn, names)


@contextmanager
def wakeup_loop(db_url: str, stop: threading.Event) -> Iterator[queue.Queue[None]]:
    """run_until_stopped in a thread, polling once an hour: within a test, only a NOTIFY or a
    reconnect runs another cycle. Yields the queue each cycle puts an item on."""
    cycles: queue.Queue[None] = queue.Queue()

    def cycle() -> bool:
        cycles.put(None)
        return False

    hourly = PollBackoff(initial=3600, cap=3600)
    thread = threading.Thread(
        target=run_until_stopped, args=(db_url, ["test_wake"], stop, cycle, hourly)
    )
    thread.start()
    try:
        yield cycles
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(
            (record.levelname, record.getMessage(), getattr(record, "listener", None))
        )


@contextmanager
def wakeup_logs() -> Iterator[Collected]:
    """The harness.runtime.wakeup log lines, whatever an earlier test did to the harness loggers."""
    logger, handler = logging.getLogger("harness.runtime.wakeup"), Collected()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_wakeup_loop_reconnects_runs_a_cycle_and_wakes_on_notify_again(db_url: str) -> None:
    with (
        wakeup_logs() as logs,
        connect(db_url) as conn,
        stop_requested(db_url, "reconnecting") as stop,
        wakeup_loop(db_url, stop) as cycles,
    ):
        cycles.get(timeout=30)  # the first cycle runs once the LISTEN is in place
        eventually(lambda: len(listening(conn, LISTENERS)) == 2)
        before = listening(conn, LISTENERS)

        terminate(conn, list(before.values()))
        cycles.get(timeout=30)  # back: a cycle at once, for the wake-ups it may have missed
        after = new_listeners(conn, before)
        conn.execute("NOTIFY test_wake")
        cycles.get(timeout=30)  # the new connection LISTENs again

        request_cancel(db_url)  # the cancel listener came back too
        assert stop.wait(timeout=30)
    assert set(after) == set(LISTENERS)
    for name in LISTENERS:  # one line per loss, one on reconnect
        assert [(level, m) for level, m, listener in logs.lines if listener == name] == [
            ("WARNING", LOST),
            ("INFO", BACK),
        ]


def test_the_long_running_worker_survives_losing_its_listen_connections(
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
        try:
            eventually(lambda: alive(worker) and len(listening(conn, LISTENERS)) == 2)
            before = listening(conn, LISTENERS)

            terminate(conn, list(before.values()))
            new_listeners(conn, before)
            insert_shipments(conn, [shipment()])  # the wake-up goes to the new connection
            while len(fake.jobs()) < 1:  # each job update wakes this loop
                assert alive(worker) and list(conn.notifies(timeout=30, stop_after=1))
            assert run_harness(env, "cancel").returncode == 0
            assert worker.wait(timeout=60) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
    stderr = worker.stderr.read()
    assert "Traceback" not in stderr
    assert (stderr.count(LOST), stderr.count(BACK)) == (2, 2)
    assert len(fake.jobs()) == 1


def test_etl_notify_delivers_while_the_queue_has_room_and_skips_when_it_has_not(
    conn: psycopg.Connection, db_url: str
) -> None:
    with connect(db_url) as listener:
        listener.execute("LISTEN test_channel")
        sent = conn.execute("SELECT etl.notify('test_channel', 'hello')").fetchone()[0]
        # a threshold the empty queue already reaches: the skip branch, as on a full queue
        skipped = conn.execute("SELECT etl.notify('test_channel', 'lost', 0)").fetchone()[0]
        conn.execute("NOTIFY test_channel, 'marker'")
        received = [n.payload for n in listener.notifies(timeout=30, stop_after=2)]
    assert (sent, skipped) == (True, False)
    assert received == ["hello", "marker"]


def test_erp_and_loader_wakeups_go_through_etl_notify(conn: psycopg.Connection) -> None:
    conn.execute("LISTEN delivery_erp_changed")
    conn.execute("LISTEN etl_process_ended")
    insert_shipments(conn, [shipment()])
    process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
    conn.execute("SELECT etl.end_process(%s, 'succeeded', 0)", [process_id])
    channels = [n.channel for n in conn.notifies(timeout=30, stop_after=2)]
    assert channels == ["delivery_erp_changed", "etl_process_ended"]


def test_no_trigger_or_loader_routine_calls_pg_notify_directly(conn: psycopg.Connection) -> None:
    """A full queue (8 GB) cannot be produced here: check instead that every routine whose
    COMMIT belongs to the ERP or the loader wakes the workers through etl.notify."""
    offenders = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p"
        " WHERE p.pronamespace::regnamespace::text IN ('etl', 'erp', 'delivery', 'permit', 'tps')"
        " AND p.prosrc LIKE '%%pg_notify(%%'"
        " AND (p.prorettype = 'trigger'::regtype"
        "      OR has_function_privilege('pgferry_loader', p.oid, 'EXECUTE')"
        "      OR p.oid IN ('delivery.record_erp_change'::regproc, 'delivery.upsert_jobs'::regproc))"
    ).fetchall()
    assert offenders == []
