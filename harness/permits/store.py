"""The permit pipeline's SQL API, one method per routine. Each call is its own short
transaction (autocommit), except the move, which the consumer commits explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class ClaimedPermit:
    staged_permit_id: int
    tps_permit_number: str | None
    revision: int | None
    file_name: str | None
    pdf: bytes | None
    outcome: str  # upload | duplicate | dead | deferred
    error: str | None


@dataclass(frozen=True)
class Upload:
    staged_permit_id: int
    bucket: str
    object_key: str
    sha256: str
    size_bytes: int
    uploaded_at: datetime


@dataclass(frozen=True)
class Failure:
    staged_permit_id: int
    error: str
    retryable: bool


@dataclass(frozen=True)
class MoveResult:
    moved: int
    duplicates: int
    failed: int
    lease_lost: int


@dataclass(frozen=True)
class Backlog:
    """Staged permits of completed (succeeded, not consumed) runs, by what they wait for."""

    claimable: int
    leased: int
    retry_later: int
    dead: int
    next_wake: datetime | None  # earliest lease expiry or retry time
    oldest_staged_at: datetime | None


@dataclass(frozen=True)
class DeadLetter:
    staged_permit_id: int
    process_id: int
    permit_number: str | None
    permit_generation: int | None
    attempts: int
    dead_at: datetime
    last_error: str | None


BACKLOG_SQL = """
SELECT count(*) FILTER (WHERE s.state <> 'dead' AND s.next_attempt_at <= now()
                          AND (s.state = 'pending' OR s.lease_expires_at < now())),
       count(*) FILTER (WHERE s.state = 'claimed' AND s.lease_expires_at >= now()),
       count(*) FILTER (WHERE s.state = 'pending' AND s.next_attempt_at > now()),
       count(*) FILTER (WHERE s.state = 'dead'),
       least(min(s.lease_expires_at) FILTER (WHERE s.state = 'claimed'),
             min(s.next_attempt_at) FILTER (WHERE s.state = 'pending')),
       min(s.staged_at) FILTER (WHERE s.state <> 'dead')
  FROM tps.staged_permit AS s
  JOIN etl.process AS p ON p.process_id = s.process_id
 WHERE p.status = 'succeeded' AND p.consumed_at IS NULL
"""

DEAD_LETTERS_SQL = """
SELECT staged_permit_id, process_id, permit_number, permit_generation, attempts, dead_at,
       last_error
  FROM tps.staged_permit WHERE state = 'dead' ORDER BY dead_at, staged_permit_id
"""


class PermitStore:
    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def claim(self, worker: str, limit: int, lease: timedelta) -> list[ClaimedPermit]:
        with self.connection.cursor(row_factory=class_row(ClaimedPermit)) as cursor:
            cursor.execute("SELECT * FROM permit.claim_batch(%s, %s, %s)", [worker, limit, lease])
            return cursor.fetchall()

    def move(self, worker: str, uploads: list[Upload]) -> MoveResult:
        payload = [
            {**upload.__dict__, "uploaded_at": upload.uploaded_at.isoformat()} for upload in uploads
        ]
        row = self.connection.execute(
            "SELECT * FROM permit.move_batch(%s, %s)", [worker, Jsonb(payload)]
        ).fetchone()
        return MoveResult(*row)

    def record_failures(
        self,
        worker: str,
        failures: list[Failure],
        max_attempts: int,
        backoff_base: timedelta,
        backoff_cap: timedelta,
    ) -> tuple[int, int]:
        """Returns (retrying, dead)."""
        row = self.connection.execute(
            "SELECT * FROM permit.record_failures(%s, %s, %s, %s, %s)",
            [worker, Jsonb([vars(f) for f in failures]), max_attempts, backoff_base, backoff_cap],
        ).fetchone()
        return row[0], row[1]

    def finish_drained_processes(self) -> list[int]:
        rows = self.connection.execute("SELECT * FROM permit.finish_drained_processes()")
        return [row[0] for row in rows]

    def requeue_dead(self, ids: list[int] | None = None) -> list[int]:
        rows = self.connection.execute("SELECT * FROM permit.requeue_dead(%s)", [ids])
        return [row[0] for row in rows]

    def backlog(self) -> Backlog:
        return Backlog(*self.connection.execute(BACKLOG_SQL).fetchone())

    def dead_letters(self) -> list[DeadLetter]:
        with self.connection.cursor(row_factory=class_row(DeadLetter)) as cursor:
            return cursor.execute(DEAD_LETTERS_SQL).fetchall()
