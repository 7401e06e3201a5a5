"""Waiting for work: LISTEN/NOTIFY wakes a worker at once; polling with backoff is the fallback.

Polling policy (seed 002): start at 1 s, double after every empty poll up to 300 s, and go back
to 1 s as soon as work is found.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg


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


def wait_for_notification(
    connection: psycopg.Connection, timeout: float, stop: threading.Event
) -> bool:
    """Wait up to ``timeout`` seconds for a NOTIFY on a channel ``connection`` LISTENs to.
    True when one arrived. Checks ``stop`` at least once a second."""
    remaining = timeout
    while remaining > 0 and not stop.is_set():
        slice_ = min(remaining, 1.0)
        if list(connection.notifies(timeout=slice_, stop_after=1)):
            return True
        remaining -= slice_
    return False


def run_until_stopped(
    database_url: str, channels: Iterable[str], stop: threading.Event, cycle: Callable[[], bool]
) -> None:
    """Run ``cycle`` (True when it found work), then wait for a NOTIFY on ``channels`` or the
    next poll, until ``stop``. The LISTEN starts before the first cycle, so no wake-up sent
    while a cycle runs is missed."""
    backoff = PollBackoff()
    with psycopg.connect(database_url, autocommit=True) as listener:
        for channel in channels:
            listener.execute(f"LISTEN {channel}")
        while not stop.is_set():
            if cycle():
                backoff.reset()
            if stop.is_set():
                break
            wait_for_notification(listener, backoff.next_delay(), stop)
