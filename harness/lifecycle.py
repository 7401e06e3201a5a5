"""How a running harness is asked to stop: SIGTERM, Ctrl-C, or `harness cancel` (a NOTIFY on
pgferry_cancel, for every worker or one worker id). Each sets one event; the consumers finish
the batch in hand and return, leaving no lease behind."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

CANCEL_CHANNEL = "pgferry_cancel"


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
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(f"LISTEN {CANCEL_CHANNEL}")
            while not stop.is_set():
                for notice in connection.notifies(timeout=0.5, stop_after=1):
                    if notice.payload in ("", worker):
                        stop.set()
    except psycopg.OperationalError:
        return  # no cancel channel; signals still work
