"""The permit pipeline's SQL API, one method per routine. Each call is its own short
transaction (autocommit), except the move, which the consumer commits explicitly.

Every claim carries a fencing token (etl.next_lease_token); the move and the failures of a batch
send it with each element, and the database writes only rows that still carry it."""

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
class Claim:
    """One call of permit.claim_batch: its fencing token and what it claimed."""

    token: int
    permits: list[ClaimedPermit]

    @property
    def to_upload(self) -> list[ClaimedPermit]:
        return [p for p in self.permits if p.outcome == "upload"]


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
    conflict: bool = False  # the key holds an object with another checksum
    stored_sha256: str | None = None  # that object's checksum: which copy could explain it


@dataclass(frozen=True)
class MoveResult:
    moved: int
    duplicates: int
    failed: int
    lease_lost: int
    retrying: int  # keys reconcile was deleting: uploaded again later


@dataclass(frozen=True)
class FailureResult:
    retrying: int
    dead: int
    duplicates: int  # conflicts explained by another copy that moved first


@dataclass(frozen=True)
class PurgeResult:
    rows: int
    processes: int


@dataclass(frozen=True)
class Backlog:
    """Staged permits of completed (succeeded, not consumed) runs, by what they wait for."""

    claimable: int
    leased: int  # held by a live lease, or waiting for the lease on another copy of the permit
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


# "due" rows are claimable unless another copy of the same permit is under a live lease:
# permit.claim_batch skips those until that copy moves or its lease expires, so they wait for
# the lease (counted as leased, woken by its expiry) instead of making the consumer claim
# nothing in a loop. While the pipeline is paused (etl.pause_pipeline) permit.claim_batch claims
# nothing, so nothing is claimable either: the drain ends instead of claiming in a loop
BACKLOG_SQL = """
SELECT count(*) FILTER (WHERE s.due AND NOT s.copy_leased
                          AND NOT EXISTS (SELECT FROM etl.pipeline
                                           WHERE name = 'permits' AND paused_at IS NOT NULL)),
       count(*) FILTER (WHERE s.leased OR (s.due AND s.copy_leased)),
       count(*) FILTER (WHERE s.state = 'pending' AND s.next_attempt_at > now()),
       count(*) FILTER (WHERE s.state = 'dead'),
       least(min(s.lease_expires_at) FILTER (WHERE s.state = 'claimed'),
             min(s.next_attempt_at) FILTER (WHERE s.state = 'pending' AND NOT s.due)),
       min(s.staged_at) FILTER (WHERE s.state <> 'dead')
  FROM (SELECT s.state, s.next_attempt_at, s.lease_expires_at, s.staged_at, d.due,
               s.state = 'claimed' AND s.lease_expires_at >= now() AS leased,
               CASE WHEN d.due
                    THEN EXISTS (SELECT FROM tps.staged_permit AS o
                                  WHERE o.permit_number = s.permit_number
                                    AND o.permit_generation = s.permit_generation
                                    AND o.staged_permit_id <> s.staged_permit_id
                                    AND o.state = 'claimed' AND o.lease_expires_at >= now())
                    ELSE false END AS copy_leased
          FROM tps.staged_permit AS s
          JOIN etl.process AS p ON p.process_id = s.process_id
         CROSS JOIN LATERAL (
               SELECT s.state <> 'dead' AND s.next_attempt_at <= now()
                      AND (s.state = 'pending' OR s.lease_expires_at < now()) AS due) AS d
         WHERE p.status = 'succeeded' AND p.consumed_at IS NULL) AS s
"""

DEAD_LETTERS_SQL = """
SELECT staged_permit_id, process_id, permit_number, permit_generation, attempts, dead_at,
       last_error
  FROM tps.staged_permit WHERE state = 'dead' ORDER BY dead_at, staged_permit_id
"""


class PermitStore:
    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def claim(self, worker: str, limit: int, lease: timedelta, max_claims: int) -> Claim:
        """A new fencing token and the rows claimed under it, in one statement."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT t.token, c.* FROM etl.next_lease_token() AS t (token),"
                " LATERAL permit.claim_batch(%s, %s, %s, t.token, %s) AS c",
                [worker, limit, lease, max_claims],
            )
            rows = cursor.fetchall()
            if not rows:  # the token was drawn all the same: nothing holds it
                return Claim(0, [])
        return Claim(rows[0][0], [ClaimedPermit(*row[1:]) for row in rows])

    def move(self, token: int, uploads: list[Upload], retry_after: timedelta) -> MoveResult:
        payload = [
            {**vars(upload), "uploaded_at": upload.uploaded_at.isoformat(), "lease_token": token}
            for upload in uploads
        ]
        row = self.connection.execute(
            "SELECT * FROM permit.move_batch(%s, %s)", [Jsonb(payload), retry_after]
        ).fetchone()
        return MoveResult(*row)

    def record_failures(
        self,
        token: int,
        failures: list[Failure],
        max_attempts: int,
        backoff_base: timedelta,
        backoff_cap: timedelta,
        wait_floor: timedelta,
    ) -> FailureResult:
        """``wait_floor``: the shortest wait of a copy behind the copy that explains its
        conflict, whatever the backoff."""
        payload = [{**vars(failure), "lease_token": token} for failure in failures]
        row = self.connection.execute(
            "SELECT * FROM permit.record_failures(%s, %s, %s, %s, %s)",
            [Jsonb(payload), max_attempts, backoff_base, backoff_cap, wait_floor],
        ).fetchone()
        return FailureResult(*row)

    def purge_stranded(self, older_than: timedelta) -> PurgeResult:
        """Delete staged rows of failed, abandoned (or otherwise never consumable) runs that
        have been stranded for ``older_than``; journaled."""
        row = self.connection.execute(
            "SELECT * FROM permit.purge_stranded(%s)", [older_than]
        ).fetchone()
        return PurgeResult(*row)

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
