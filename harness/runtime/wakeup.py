"""Waiting for work: LISTEN/NOTIFY wakes a worker at once; polling with backoff is the fallback.

Polling policy (seed 002): start at 1 s, double after every empty poll up to 300 s, and go back
to 1 s as soon as work is found.

A LISTEN connection that drops (pg_terminate_backend, a failover, a server restart) is
re-established: 1 s doubling to 30 s between attempts, interrupted by the stop event, with one
warning line per loss and one info line when it is back. Notifications sent while it was gone
are lost for good, so the caller is told and looks for work at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType

import psycopg

from harness import connections

log = logging.getLogger(__name__)

LISTEN_APPLICATION_NAME = "pgferry-listen"
RECONNECT_INITIAL_SECONDS = 1.0
RECONNECT_CAP_SECONDS = 30.0


@dataclass
class PollBackoff:
    initial: float = 1.0
    cap: float = 300.0
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.initial

    def next_delay(self) -> float:
        """The wait before the next poll; each call doubles the one after, up to the cap."""
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.initial


@dataclass(frozen=True)
class Wakeup:
    """What ended a wait: the payloads of the notifications that arrived (none after a
    timeout, or after the connection was lost and re-established: the caller looks for work
    either way)."""

    payloads: tuple[str, ...] = ()


class Listener:
    """A connection that LISTENs to ``channels`` and comes back when it drops. Its
    application_name lets operators (and tests) find it in pg_stat_activity."""

    def __init__(
        self,
        database_url: str,
        channels: Iterable[str],
        application_name: str,
        stop: threading.Event,
    ) -> None:
        self.database_url = database_url
        self.channels = tuple(channels)
        self.application_name = application_name
        self.stop = stop
        self._connection: psycopg.Connection | None = None

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect and LISTEN; a connection error propagates."""
        connection = connections.connect(
            self.database_url, autocommit=True, application_name=self.application_name
        )
        try:
            # one statement: pg_stat_activity then shows every channel the backend listens to
            connection.execute("; ".join(f"LISTEN {channel}" for channel in self.channels))
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def wait(self, timeout: float) -> Wakeup:
        """Wait up to ``timeout`` seconds for a NOTIFY, checking ``stop`` at least once a
        second. A lost connection is re-established before this returns (unless ``stop`` is
        set meanwhile); the caller must then look for work, as after a notification."""
        remaining = timeout
        while remaining > 0 and not self.stop.is_set():
            slice_ = min(remaining, 1.0)
            try:
                payloads = self._receive(slice_)
            except psycopg.OperationalError as error:
                self.reconnect(error)
                return Wakeup()
            if payloads:
                return Wakeup(payloads=payloads)
            remaining -= slice_
        return Wakeup()

    def _receive(self, timeout: float) -> tuple[str, ...]:
        if self._connection is None:
            raise psycopg.OperationalError("not connected")
        notices = self._connection.notifies(timeout=timeout, stop_after=1)
        return tuple(notice.payload for notice in notices)

    def reconnect(self, error: Exception) -> bool:
        """After a loss (``error``): retry with backoff until connected (True) or until
        ``stop`` is set (False). Failed attempts log at debug level only: one warning a loss."""
        self.close()
        log.warning(
            "LISTEN connection lost; reconnecting",
            extra={"listener": self.application_name, "error": str(error).strip()},
        )
        backoff = PollBackoff(RECONNECT_INITIAL_SECONDS, RECONNECT_CAP_SECONDS)
        while not self.stop.wait(backoff.next_delay()):
            try:
                self.connect()
            except psycopg.OperationalError as retry_error:
                log.debug(
                    "LISTEN reconnect failed",
                    extra={"listener": self.application_name, "error": str(retry_error).strip()},
                )
                continue
            log.info("LISTEN connection re-established", extra={"listener": self.application_name})
            return True
        return False


def run_until_stopped(
    database_url: str,
    channels: Iterable[str],
    stop: threading.Event,
    cycle: Callable[[], bool],
    backoff: PollBackoff | None = None,
) -> None:
    """Run ``cycle`` (True when it found work), then wait for a NOTIFY on ``channels`` or the
    next poll (``backoff``), until ``stop``. The LISTEN starts before the first cycle, so no
    wake-up sent while a cycle runs is missed; after a lost LISTEN connection comes back, a
    cycle runs at once for the wake-ups sent while it was gone. With no channels, only the poll:
    no connection is held for LISTEN (behind PgBouncer in transaction pooling mode it would
    hear nothing)."""
    backoff = backoff or PollBackoff()
    if not channels:  # poll-only (PGFERRY_LISTEN=off, or nothing to listen for)
        _cycle_until_stopped(stop, cycle, backoff, stop.wait)
        return
    with Listener(database_url, channels, LISTEN_APPLICATION_NAME, stop) as listener:
        try:
            listener.connect()
        except psycopg.OperationalError as error:
            listener.reconnect(error)  # the database is not there yet: wait for it
        _cycle_until_stopped(stop, cycle, backoff, listener.wait)


def _cycle_until_stopped(
    stop: threading.Event,
    cycle: Callable[[], bool],
    backoff: PollBackoff,
    wait: Callable[[float], object],
) -> None:
    while not stop.is_set():
        if cycle():
            backoff.reset()
        if stop.is_set():
            break
        wait(backoff.next_delay())
