"""How a running harness is asked to stop: SIGTERM, Ctrl-C, or `harness cancel` (a NOTIFY on
pgferry_cancel, for every worker or one worker id). Each sets one event; the consumers finish
the batch in hand and return, leaving no lease behind."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from harness.runtime.wakeup import Listener

CANCEL_CHANNEL = "pgferry_cancel"
CANCEL_APPLICATION_NAME = "pgferry-cancel"


@contextmanager
def stop_requested(database_url: str, worker: str) -> Iterator[threading.Event]:
    stop = threading.Event()
    handler = lambda signum, frame: stop.set()  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    listener = threading.Thread(
        target=_listen_for_cancel,
        args=(database_url, worker, stop),
        daemon=True,
        name="pgferry-cancel",
    )
    listener.start()
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        stop.set()  # ends the listener
        listener.join(timeout=5)


def request_cancel(database_url: str, worker: str = "") -> None:
    """Ask every running worker (or the one named) to stop cleanly."""
    with psycopg.connect(database_url, autocommit=True) as connection:
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
