"""The overview's numbers: ONE snapshot, refreshed by one background task every
refresh_seconds on the console's own connection, shared by every open page. Pages poll the
snapshot (an in-memory read); no viewer ever runs the statistics queries.

The snapshot reads harness.ops.status.read_status (the source of `harness status`), the last
runs per pipeline, the throughput per 10 minutes of the last 24 hours and the workers, all in one
REPEATABLE READ, READ ONLY transaction: the numbers on a page agree with each other.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from harness.config import first_line, scrub
from harness.console.db import open_connection, service_conninfo
from harness.console.settings import ConsoleSettings
from harness.ops.status import Status, read_status

log = logging.getLogger("harness.console")

BUCKET_SECONDS = 600  # 10 minutes
BUCKETS = 144  # 24 hours
RECENT_RUNS = 5

# items finished per pipeline and 10-minute bucket over the last 24 hours: etl.throughput
# (revision 0010, SECURITY DEFINER over etl.journal; empty buckets absent)
THROUGHPUT_SQL = """
SELECT pipeline, extract(epoch FROM bucket_start)::bigint, items
  FROM etl.throughput(make_interval(secs => %s), interval '24 hours')
"""

# the last runs of every pipeline in one statement, through etl.runs (readers have no grant on
# etl.process)
RECENT_RUNS_SQL = """
SELECT p.name, r.process_id, r.status, r.started_at, r.ended_at, r.rows_loaded
  FROM unnest(%s::text[]) AS p (name)
 CROSS JOIN LATERAL etl.runs(p_pipeline => p.name, p_limit => %s) AS r
 ORDER BY p.name, r.process_id DESC
"""


# the workers, alive first (etl.worker_status: alive while the heartbeat is under 30 s old)
WORKERS_SQL = """
SELECT worker_id, host, pid, pipelines, started_at, heartbeat_at, holds, stop_requested_at,
       stopped_at, alive
  FROM etl.worker_status
 ORDER BY alive DESC, heartbeat_at DESC NULLS LAST, worker_id
 LIMIT %s
"""
WORKERS_SHOWN = 100


@dataclass(frozen=True)
class Worker:
    worker_id: str
    host: str | None
    pid: int | None
    pipelines: list[str] | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    holds: dict[str, int] | None
    stop_requested_at: datetime | None
    stopped_at: datetime | None
    alive: bool


@dataclass(frozen=True)
class Run:
    process_id: int
    status: str
    started_at: datetime
    ended_at: datetime | None
    rows_loaded: int | None


@dataclass(frozen=True)
class Throughput:
    """Items delivered per bucket, oldest first; ``start`` is the first bucket's epoch."""

    start: int
    bucket_seconds: int
    counts: dict[str, list[int]]


@dataclass(frozen=True)
class Snapshot:
    taken_at: datetime  # the database's clock
    status: Status
    recent_runs: dict[str, list[Run]]
    throughput: Throughput
    workers: list[Worker]


@dataclass
class SnapshotState:
    """What pages read: the last good snapshot, and the last refresh's error if it failed."""

    snapshot: Snapshot | None = None
    error: str | None = None
    failed_at: float | None = None
    refreshed_at: float | None = field(default=None)  # monotonic


def read_throughput(
    connection: psycopg.Connection, names: list[str], now_epoch: float
) -> Throughput:
    """Items finished per pipeline per 10 minutes over the last 24 hours, every bucket present
    (zeros included), oldest first; the last bucket holds ``now_epoch``."""
    end = (int(now_epoch) // BUCKET_SECONDS + 1) * BUCKET_SECONDS
    start = end - BUCKETS * BUCKET_SECONDS
    counts = {name: [0] * BUCKETS for name in names}
    for pipeline, bucket, count in connection.execute(THROUGHPUT_SQL, [BUCKET_SECONDS]):
        index = (bucket - start) // BUCKET_SECONDS
        if pipeline in counts and 0 <= index < BUCKETS:
            counts[pipeline][index] = count
    return Throughput(start, BUCKET_SECONDS, counts)


def read_snapshot(connection: psycopg.Connection) -> Snapshot:
    # BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY, as one statement: every statement of a
    # refresh counts against the console's budget of queries a second
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    with connection.transaction():
        taken_at, now_epoch = connection.execute(
            "SELECT now(), extract(epoch FROM now())::float8"
        ).fetchone()
        status = read_status(connection)
        names = [p.name for p in status.pipelines]
        recent: dict[str, list[Run]] = {name: [] for name in names}
        for name, *run in connection.execute(RECENT_RUNS_SQL, [names, RECENT_RUNS]):
            recent[name].append(Run(*run))
        throughput = read_throughput(connection, names, now_epoch)
        workers = [Worker(*row) for row in connection.execute(WORKERS_SQL, [WORKERS_SHOWN])]
    return Snapshot(taken_at, status, recent, throughput, workers)


class SnapshotKeeper:
    """Holds the console's connection and the current SnapshotState; refresh() is called by
    the one background task (harness.console.app)."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self._settings = settings
        self._connection: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self.state = SnapshotState()

    def refresh(self) -> None:
        with self._lock:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = open_connection(
                        service_conninfo(self._settings), self._settings
                    )
                snapshot = read_snapshot(self._connection)
            except psycopg.Error as error:
                self._drop_connection()
                message = scrub(first_line(error))
                if self.state.error != message:
                    log.warning("console snapshot failed: %s", message)
                self.state = SnapshotState(
                    self.state.snapshot, message, time.monotonic(), self.state.refreshed_at
                )
                return
            self.state = SnapshotState(snapshot, None, None, time.monotonic())

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
