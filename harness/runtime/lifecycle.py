"""How a running harness is asked to stop: SIGTERM, Ctrl-C, `harness cancel` (a NOTIFY on
pgferry_cancel, for every worker or one worker id), or etl.cancel_worker from the console (the
same NOTIFY, and a stop request its heartbeat answers). Each sets one event; the consumers finish
the batch in hand and return, leaving no lease behind.

The heartbeat (``heartbeats``) registers the worker in etl.worker every HEARTBEAT_SECONDS: what it
runs and holds, for the console. It has a thread and a connection of its own rather than riding on
the Housekeeper, whose round (lag alerts, requeues, mail over SMTP) runs every 30 s and may take
seconds more: a beat every 10 s keeps "alive" (a beat under 30 s old, etl.worker_status) honest,
and answers a stop request within 10 s when the cancel NOTIFY was missed."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from harness import connections
from harness.runtime.wakeup import Listener

log = logging.getLogger(__name__)
CANCEL_CHANNEL = "pgferry_cancel"
CANCEL_APPLICATION_NAME = "pgferry-cancel"
HEARTBEAT_APPLICATION_NAME = "pgferry-heartbeat"
# etl.worker_status counts a worker alive while its last beat is under 3 x this old (30 s)
HEARTBEAT_SECONDS = 10.0


@contextmanager
def stop_requested(
    database_url: str, worker: str, *, listen: bool = True
) -> Iterator[threading.Event]:
    """The event SIGTERM, Ctrl-C or a cancel sets. Poll-only (``listen`` False: PgBouncer in
    transaction pooling mode) there is no cancel LISTEN: the heartbeat answers a stop request
    (etl.cancel_worker, the console) within HEARTBEAT_SECONDS."""
    stop = threading.Event()
    handler = lambda signum, frame: stop.set()  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    listener = threading.Thread(
        target=_listen_for_cancel,
        args=(database_url, worker, stop),
        daemon=True,
        name="pgferry-cancel",
    )
    if listen:
        listener.start()
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        stop.set()  # ends the listener
        if listen:
            listener.join(timeout=5)


def request_cancel(database_url: str, worker: str = "") -> None:
    """Ask every running worker (or the one named) to stop cleanly."""
    with connections.connect(database_url, autocommit=True) as connection:
        connection.execute("SELECT pg_notify(%s, %s)", [CANCEL_CHANNEL, worker])


def _listen_for_cancel(database_url: str, worker: str, stop: threading.Event) -> None:
    """Set ``stop`` on a cancel for every worker or this one. A lost connection is
    re-established (harness.runtime.wakeup.Listener); a cancel sent while it was gone is lost, but
    signals still work."""
    with Listener(database_url, [CANCEL_CHANNEL], CANCEL_APPLICATION_NAME, stop) as listener:
        try:
            listener.connect()
        except psycopg.OperationalError as error:
            if not listener.reconnect(error):
                return
        while not stop.is_set():
            if any(payload in ("", worker) for payload in listener.wait(0.5).payloads):
                stop.set()


@contextmanager
def heartbeats(
    database_url: str,
    worker: str,
    pipelines: list[str],
    stop: threading.Event,
    interval: float = HEARTBEAT_SECONDS,
) -> Iterator[None]:
    """Beat (etl.worker_heartbeat) now and every ``interval`` seconds until ``stop`` or the
    block ends; a beat that answers "stop requested" sets ``stop``. At the end the worker says it
    stopped (etl.worker_stopped). A lost database only skips beats: the worker shows not alive."""
    ended = threading.Event()
    beat = threading.Thread(
        target=_beat,
        args=(database_url, worker, pipelines, stop, ended, interval),
        daemon=True,
        name="pgferry-heartbeat",
    )
    beat.start()
    try:
        yield
    finally:
        ended.set()
        beat.join(timeout=interval + 5)


def _beat(
    database_url: str,
    worker: str,
    pipelines: list[str],
    stop: threading.Event,
    ended: threading.Event,
    interval: float,
) -> None:
    host, pid = socket.gethostname(), os.getpid()
    connection: psycopg.Connection | None = None
    try:
        while True:
            try:
                if connection is None or connection.closed:
                    connection = connections.connect(
                        database_url, autocommit=True, application_name=HEARTBEAT_APPLICATION_NAME
                    )
                (stop_requested,) = connection.execute(
                    "SELECT etl.worker_heartbeat(%s, %s, %s, %s)", [worker, host, pid, pipelines]
                ).fetchone()
                if stop_requested and not stop.is_set():
                    log.info("stop requested by an operator", extra={"worker": worker})
                    stop.set()
            except psycopg.Error as error:
                log.warning("heartbeat skipped", extra={"error": str(error).strip()})
                if connection is not None:
                    connection.close()
            if ended.wait(interval):
                break
        if connection is not None and not connection.closed:
            connection.execute("SELECT etl.worker_stopped(%s)", [worker])
    except psycopg.Error as error:
        log.warning("could not record the worker's stop", extra={"error": str(error).strip()})
    finally:
        if connection is not None:
            connection.close()
