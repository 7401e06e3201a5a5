"""Overlapped rounds under fencing tokens: the loop both pipelines run.

A round is what one claim took, under one fencing token (harness.runtime.leases), with its work
(uploads, DeTrack calls) queued on a thread pool. The loop claims the next round and queues its
work *before* it settles the previous one (records its results, releases its lease), so the
threads never wait for the database: while one round is recorded, the next is on the wire.

On any failure the loop releases every lease it holds (release_all) before the error goes on:
claims whose results can no longer be recorded (a dropped connection, a deadlock, a bug) must
lapse, so that another worker takes their rows, rather than stay extended by the heartbeat for
as long as this process lives. A stop finishes the round in hand and claims no more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from harness.runtime.leases import LeaseKeeper

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class InFlight(Generic[Item, Result]):
    """A claimed round under one fencing token: one queued or running call per item."""

    token: int
    items: list[Item]
    futures: list[Future[Result]]

    @classmethod
    def queue(
        cls, pool: Executor, token: int, items: list[Item], call: Callable[[int, Item], Result]
    ) -> InFlight[Item, Result]:
        """Queue ``call(token, item)`` on ``pool`` for every item."""
        return cls(token, items, [pool.submit(call, token, item) for item in items])

    def results(self) -> list[Result]:
        """Every item's result, in order, waiting for the calls still running."""
        return [future.result() for future in self.futures]


def run_rounds(
    leases: LeaseKeeper,
    stop: threading.Event,
    *,
    claim: Callable[[], InFlight[Item, Result] | None],
    settle: Callable[[InFlight[Item, Result]], None],
    idle: Callable[[bool], bool],
    report: Callable[[], None],
) -> bool:
    """Run overlapped rounds until ``idle`` ends them or ``stop`` is set.

    ``claim`` takes the next round and queues its work (None: it took nothing). ``settle``
    records a round's results; the round's lease is released, then ``report`` is called.
    ``idle`` is asked after a pass that took nothing, with nothing left in flight, whether any
    round was claimed since it was last asked; it answers whether to claim again.
    Returns True when ``idle`` ended the rounds, False on a stop."""
    in_flight: InFlight[Item, Result] | None = None
    claimed_since_idle = False
    try:
        while True:
            next_flight = None if stop.is_set() else claim()
            claimed_since_idle = claimed_since_idle or next_flight is not None
            if in_flight is not None:
                settle(in_flight)
                leases.release(in_flight.token)
                report()
            in_flight = next_flight
            if in_flight is not None:
                continue
            if stop.is_set():
                return False
            if not idle(claimed_since_idle):
                return True
            claimed_since_idle = False
    except BaseException:
        leases.release_all()
        raise
