"""The DeTrack rate limit: at most N requests in any sliding window (DeTrack: 60 a minute).

A sliding window, not a fixed pause between calls, so a burst uses the whole allowance and the
limit's maximum rate is reachable. The window is kept a little longer than the server's
(``margin``, 2 % by default): the server counts a request when it arrives, later than the
client counts it, and requests in flight together arrive in any order; without the margin the
server can see one request too many and answer 429.

Two implementations of one interface: ``SharedLimiter`` keeps the window in PostgreSQL
(delivery.take_api_slot), so every dispatcher on every machine shares one budget: the one
workers use. ``SlidingWindowLimiter`` keeps it in this process, for the demo and unit tests.
Neither sleeps: ``try_acquire`` says how long to wait, so the caller's wait can be interrupted
(a stop) and bounded (a lease).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

import psycopg


class RateLimiter(Protocol):
    max_requests: int

    def try_acquire(self) -> float:
        """Count one request and return 0, or count nothing and return the seconds to wait."""
        ...

    def delay_all(self, seconds: float) -> None:
        """The server said slow down (429 Retry-After): nobody sends for ``seconds``."""
        ...


def _checked(max_requests: int) -> int:
    if max_requests < 1:
        raise ValueError("max_requests must be at least 1")
    return max_requests


class SlidingWindowLimiter:
    """The window in this process: for one dispatcher alone (the demo, unit tests)."""

    def __init__(
        self,
        max_requests: int,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        margin: float = 0.02,
    ) -> None:
        self.max_requests = _checked(max_requests)
        self.window = window_seconds * (1 + margin)
        self._clock = clock
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            if len(self._sent) < self.max_requests:
                self._sent.append(now)
                return 0.0
            return self._sent[0] + self.window - now

    def delay_all(self, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            # fill the window so that the next slot opens when the server asked
            self._sent = deque([until - self.window] * self.max_requests)


class SharedLimiter:
    """The window in PostgreSQL, one budget for every dispatcher on every machine."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        max_requests: int,
        window_seconds: float = 60.0,
        margin: float = 0.02,
    ) -> None:
        self.max_requests = _checked(max_requests)
        self.window = timedelta(seconds=window_seconds * (1 + margin))
        self._connect = connect
        self._connection: psycopg.Connection | None = None
        self._lock = threading.Lock()  # the HTTP threads share one connection

    def try_acquire(self) -> float:
        return self._call("SELECT delivery.take_api_slot(%s, %s)", [self.window])

    def delay_all(self, seconds: float) -> None:
        self._call("SELECT delivery.hold_api_slots(%s, %s, %s)", [self.window, seconds])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _call(self, sql: str, params: list[object]) -> float:
        with self._lock:
            if self._connection is None or self._connection.closed:
                self._connection = self._connect()
            try:
                row = self._connection.execute(sql, [self.max_requests, *params]).fetchone()
            except psycopg.OperationalError:
                self._connection.close()
                self._connection = None
                raise
        return float(row[0] or 0.0)
