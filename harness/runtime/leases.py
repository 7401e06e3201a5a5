"""Leases as a worker holds them: fencing tokens, a heartbeat, and no call under a lease that may
be gone.

Every claim (a round of DeTrack jobs, a batch of staged permits) carries one fencing token
(etl.next_lease_token). The database refuses results under a token the rows no longer carry, so
a worker that lost its claim cannot record anything. That alone is not enough for DeTrack, which
knows nothing of tokens: a worker that *sent* after another took its jobs over could overwrite
newer data. So the worker also keeps, per token, a local deadline that is never later than the
database's expiry: the moment (monotonic clock) it sent the claim or the last heartbeat that
extended it, plus the lease left. Before every external call it asks whether the whole call fits
before that deadline, with a margin; waits (Retry-After, backoff, the shared rate limit) that
would outlast what a heartbeat can promise give the work back instead of holding it.

The heartbeat runs on its own connection, every third of the lease, and extends every token in
use (etl.extend_leases). A token the database no longer holds is lost for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType

import psycopg

log = logging.getLogger(__name__)


def lease_margin(lease_seconds: float) -> float:
    """Time kept in hand at the end of a lease: a request still in the network, clock rates."""
    return min(5.0, lease_seconds / 10)


def lease_horizon(lease_seconds: float) -> float:
    """How far ahead a healthy heartbeat (every third of the lease) always keeps a lease."""
    return lease_seconds * 2 / 3


class CallAbandoned(Exception):
    """A call given up before it was sent. ``lease_lost``: the claim may be someone else's now,
    so nothing about it may be recorded; otherwise (a stop, a wait longer than the lease) the
    work is released, to be taken again after ``retry_after`` seconds."""

    def __init__(
        self, reason: str, *, lease_lost: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.lease_lost = lease_lost
        self.retry_after = retry_after


@dataclass
class _Held:
    deadline: float  # local monotonic time before which the database's lease certainly holds
    rows: int  # rows claimed under the token: fewer held means one was lost
    lost: bool = False


class LeaseKeeper:
    """The leases one worker holds in one pipeline, and the heartbeat that extends them."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        pipeline: str,
        lease_seconds: float,
        *,
        margin_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pipeline = pipeline
        self.lease_seconds = lease_seconds
        self.margin = margin_seconds if margin_seconds is not None else lease_margin(lease_seconds)
        self._connect = connect
        self._clock = clock
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._connection: psycopg.Connection | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LeaseKeeper:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        if self._thread is None:
            self._closing.clear()
            self._thread = threading.Thread(
                target=self._beat, daemon=True, name=f"pgferry-lease-{self.pipeline}"
            )
            self._thread.start()

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- what the worker asks ----------------------------------------------------------------

    @property
    def horizon(self) -> float:
        return lease_horizon(self.lease_seconds)

    def now(self) -> float:
        return self._clock()

    def track(self, token: int, claimed_at: float, rows: int) -> None:
        """A claim of ``rows`` rows under ``token`` was sent at ``claimed_at`` (``now()`` before
        the statement)."""
        with self._lock:
            self._held[token] = _Held(claimed_at + self.lease_seconds, rows)

    def release(self, token: int) -> None:
        """The claim's results are recorded (or dropped): stop extending it."""
        with self._lock:
            self._held.pop(token, None)

    def release_all(self) -> None:
        """A drain ended by an error: extend nothing more, so its leases lapse and another
        worker takes the rows after them."""
        with self._lock:
            self._held.clear()

    def lost(self, token: int) -> bool:
        with self._lock:
            held = self._held.get(token)
            return held is None or held.lost or held.deadline <= self._clock()

    def remaining(self, token: int) -> float:
        with self._lock:
            held = self._held.get(token)
            if held is None or held.lost:
                return 0.0
            return max(0.0, held.deadline - self._clock())

    def can_send(self, token: int, call_seconds: float) -> bool:
        """Whether a call that may take ``call_seconds`` ends before the lease, with the margin."""
        return self.remaining(token) >= call_seconds + self.margin

    def guard(self, token: int, call_seconds: float, stop: threading.Event) -> LeaseGuard:
        return LeaseGuard(self, token, call_seconds, stop)

    # -- the heartbeat -----------------------------------------------------------------------

    def renew(self) -> None:
        """Extend every tracked lease once; mark the tokens the database no longer holds."""
        with self._lock:
            tokens = [token for token, held in self._held.items() if not held.lost]
        if not tokens:
            return
        sent_at = self._clock()
        try:
            rows = (
                self._heartbeat_connection()
                .execute(
                    "SELECT * FROM etl.extend_leases(%s, %s, %s)",
                    [self.pipeline, tokens, timedelta(seconds=self.lease_seconds)],
                )
                .fetchall()
            )
        except psycopg.Error as error:
            # the deadlines stay as they are and run out: calls stop before the leases do
            log.warning(
                "lease heartbeat failed",
                extra={"pipeline": self.pipeline, "error": str(error).strip()},
            )
            self._drop_connection()
            return
        live = {token: (count, remaining.total_seconds()) for token, count, remaining in rows}
        with self._lock:
            for token in tokens:
                held = self._held.get(token)
                if held is None:
                    continue
                count, remaining = live.get(token, (0, 0.0))
                if count >= held.rows and remaining > 0:
                    held.deadline = max(held.deadline, sent_at + remaining)
                elif not held.lost:
                    held.lost = True
                    log.warning("lease lost", extra={"pipeline": self.pipeline, "token": token})

    def _beat(self) -> None:
        period = max(0.05, self.lease_seconds / 3)
        while not self._closing.wait(period):
            self.renew()

    def _heartbeat_connection(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None


class LeaseGuard:
    """Asked before every request and every wait of one call made under one claim."""

    def __init__(
        self, keeper: LeaseKeeper, token: int, call_seconds: float, stop: threading.Event
    ) -> None:
        self.keeper = keeper
        self.token = token
        self.call_seconds = call_seconds
        self.stop = stop

    def check(self) -> None:
        """Raise CallAbandoned unless a request may be sent now."""
        if self.stop.is_set():
            raise CallAbandoned("stop requested")
        if not self.keeper.can_send(self.token, self.call_seconds):
            raise CallAbandoned(
                f"lease {self.token} is lost or too short for a {self.call_seconds:g} s call",
                lease_lost=True,
            )

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` before the next request, or raise CallAbandoned: on stop, when the
        lease is lost, or when the wait would outlast what the heartbeat keeps in hand."""
        if seconds + self.call_seconds + self.keeper.margin > self.keeper.horizon:
            raise CallAbandoned(
                f"a {seconds:g} s wait would outlast the {self.keeper.lease_seconds:g} s lease",
                retry_after=seconds,
            )
        end = self.keeper.now() + seconds
        while (left := end - self.keeper.now()) > 0:
            if self.stop.wait(min(left, 0.25)):
                raise CallAbandoned("stop requested", retry_after=max(0.0, end - self.keeper.now()))
            if self.keeper.lost(self.token):
                raise CallAbandoned(f"lease {self.token} lost while waiting", lease_lost=True)


class Unguarded:
    """Calls under no claim (status reads): only a stop ends them early."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    def check(self) -> None:
        if self.stop.is_set():
            raise CallAbandoned("stop requested")

    def pause(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise CallAbandoned("stop requested", retry_after=seconds)
