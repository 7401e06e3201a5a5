"""The permit consumer: claim a batch, upload its PDFs concurrently, move it in one
transaction, record failures; repeat until nothing is left to claim.

Nothing is held across S3 calls: the claim is committed (a lease) before any upload, the move
is a short transaction after them. A crash at any point leaves either a lease that expires (the
row is claimed again, the upload is idempotent) or a committed move.

Fenced (harness.runtime.leases): a batch is claimed under a fencing token, tracked by a LeaseKeeper.
Its heartbeat, on a connection of its own, extends the leases while uploads run, so a slow batch
keeps its permits; a PUT is sent only while the lease certainly holds, and the move and the
failures are written only to rows that still carry the token. A worker that lost its lease
(frozen, cut off from the database) therefore neither uploads nor records anything more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import psycopg

from harness import connections
from harness.config import PermitSettings
from harness.permits.store import ClaimedPermit, Failure, PermitStore, Upload
from harness.permits.upload import PermitUploader, UploadError
from harness.runtime import failpoints
from harness.runtime.leases import CallAbandoned, LeaseKeeper
from harness.runtime.rounds import InFlight, run_rounds

log = logging.getLogger(__name__)
LEASE_POLL_SECONDS = 1.0
# the longest one PUT request may take, as the lease guard counts it: a request is sent only if
# it ends, with the keeper's margin, before the lease could run out
UPLOAD_CALL_SECONDS = 60.0

UploadOutcome = Upload | UploadError | CallAbandoned
Uploads = InFlight[ClaimedPermit, UploadOutcome]  # a claimed batch, its uploads under way


@dataclass
class RunTotals:
    """What one run did: the reconciliation printed at its end."""

    claimed: int = 0
    moved: int = 0
    duplicates: int = 0
    rejected: int = 0  # invalid rows and permits out of claims, dead at once
    dead: int = 0  # uploads out of attempts, and rows the target refused
    upload_failures: int = 0  # failed upload attempts (an item may fail, then move)
    lease_lost: int = 0  # uploads not sent or results not recorded: the claim was lost
    claim_calls: int = 0
    purged: int = 0  # staged rows of failed or abandoned runs, purged after their age
    processes_consumed: list[int] = field(default_factory=list)

    @property
    def dead_letters(self) -> int:
        return self.rejected + self.dead


class PermitConsumer:
    def __init__(
        self,
        store: PermitStore,
        uploader: PermitUploader,
        settings: PermitSettings,
        worker: str,
        stop: threading.Event | None = None,
        on_batch: Callable[[RunTotals], None] | None = None,
        *,
        connect: Callable[[], psycopg.Connection] | None = None,
    ) -> None:
        """``connect`` opens the heartbeat's own connection (default: one like the store's)."""
        self.store = store
        self.uploader = uploader
        self.settings = settings
        self.worker = worker
        self.stop = stop or threading.Event()
        self.on_batch = on_batch or (lambda totals: None)
        self._pool = ThreadPoolExecutor(settings.upload_concurrency, "pgferry-upload")
        self.leases = LeaseKeeper(
            connect or connections.same_server(store.connection), "permits", settings.lease_seconds
        )
        self.leases.start()
        # a stop finishes the batch in hand: the guards watch the lease only
        self._never = threading.Event()

    def drain(self, *, wait_for_leases: bool = True) -> RunTotals:
        """Run batches until nothing is claimable. With ``wait_for_leases``, rows leased by
        other (possibly crashed) workers, or waiting for the lease on another copy of their
        permit, are waited for until they are moved or their lease expires; rows waiting for a
        retry time are left for a later run. Ends by purging long-stranded rows.

        Batches overlap (harness.runtime.rounds): the next batch is claimed and its uploads
        queued before the previous one is moved, so the upload threads never wait for the
        database; a failure lets every lease of the drain lapse."""
        totals = RunTotals()
        drained = run_rounds(
            self.leases,
            self.stop,
            claim=partial(self._claim, totals),
            settle=partial(self._finish, totals),
            idle=partial(self._idle, totals, wait_for_leases),
            report=partial(self.on_batch, totals),
        )
        if drained:
            totals.purged += self.purge_stranded()
        return totals

    def _idle(self, totals: RunTotals, wait_for_leases: bool, _claimed: bool) -> bool:
        """A pass claimed nothing: record the processes drained, then claim again while rows
        are claimable, or (``wait_for_leases``) once the next lease held elsewhere may be up."""
        totals.processes_consumed += self.store.finish_drained_processes()
        backlog = self.store.backlog()
        if backlog.claimable:
            return True
        if not (wait_for_leases and backlog.leased):
            return False
        self._wait_until(backlog.next_wake)
        return True

    def purge_stranded(self) -> int:
        """Purge staged rows stranded longer than PERMITS_PURGE_FAILED_AFTER_HOURS."""
        age = timedelta(hours=self.settings.purge_failed_after_hours)
        purged = self.store.purge_stranded(age)
        if purged.rows:
            log.info(
                "stranded staged permits purged",
                extra={"rows": purged.rows, "processes": purged.processes},
            )
        return purged.rows

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.leases.close()

    def _claim(self, totals: RunTotals) -> Uploads | None:
        """Claim a batch and queue its uploads; None when it claimed nothing. A batch of
        duplicates and dead rows only is a round too, with nothing to upload."""
        lease = timedelta(seconds=self.settings.lease_seconds)
        claimed_at = self.leases.now()
        claim = self.store.claim(
            self.worker, self.settings.batch_size, lease, self.settings.max_claims
        )
        if claim.to_upload:
            self.leases.track(claim.token, claimed_at, len(claim.to_upload))
            failpoints.reach("after_claim")  # permits are leased, none uploaded
        totals.claim_calls += 1
        totals.claimed += len(claim.permits)
        totals.duplicates += sum(1 for p in claim.permits if p.outcome == "duplicate")
        totals.rejected += sum(1 for p in claim.permits if p.outcome == "dead")
        if not claim.permits:
            return None
        return InFlight.queue(self._pool, claim.token, claim.to_upload, self._upload_one)

    def _upload_one(self, token: int, permit: ClaimedPermit) -> UploadOutcome:
        call_seconds = min(UPLOAD_CALL_SECONDS, self.settings.lease_seconds / 3)
        guard = self.leases.guard(token, call_seconds, self._never)
        try:
            return self.uploader.upload(permit, guard)
        except (UploadError, CallAbandoned) as outcome:
            return outcome

    def _finish(self, totals: RunTotals, flight: Uploads) -> None:
        uploads, failures, abandoned = [], [], 0
        for permit, outcome in zip(flight.items, flight.results(), strict=True):
            if isinstance(outcome, Upload):
                uploads.append(outcome)
            elif isinstance(outcome, CallAbandoned):
                abandoned += 1  # not sent: the lease is gone, the row is someone else's
            else:
                failures.append(
                    Failure(
                        permit.staged_permit_id,
                        str(outcome),
                        outcome.retryable,
                        outcome.conflict,
                        outcome.stored_sha256,
                    )
                )
        self._move(flight.token, uploads, totals)
        self._record(flight.token, failures, totals)
        totals.lease_lost += abandoned
        log.info(
            "permit batch done",
            extra={
                "uploaded": len(uploads),
                "failed": len(failures),
                "abandoned": abandoned,
                "moved": totals.moved,
            },
        )

    def _move(self, token: int, uploads: list[Upload], totals: RunTotals) -> None:
        if not uploads:
            return
        failpoints.reach("before_move")
        retry_after = timedelta(seconds=self.settings.retry_base_seconds)
        with self.store.connection.transaction():
            result = self.store.move(token, uploads, retry_after)
            failpoints.reach("before_move_commit")
        failpoints.reach("after_move")
        totals.moved += result.moved
        totals.duplicates += result.duplicates
        totals.dead += result.failed
        totals.lease_lost += result.lease_lost
        totals.upload_failures += result.retrying

    def _record(self, token: int, failures: list[Failure], totals: RunTotals) -> None:
        if not failures:
            return
        result = self.store.record_failures(
            token,
            failures,
            self.settings.max_attempts,
            timedelta(seconds=self.settings.retry_base_seconds),
            timedelta(seconds=self.settings.retry_cap_seconds),
            timedelta(seconds=self.settings.wait_floor_seconds),
        )
        failpoints.reach("after_record_failures")
        totals.upload_failures += result.retrying + result.dead
        totals.dead += result.dead
        totals.duplicates += result.duplicates
        for failure in failures:
            log.warning(
                "permit upload failed",
                extra={"staged_permit_id": failure.staged_permit_id, "error": failure.error},
            )

    def _wait_until(self, moment: datetime | None) -> None:
        """Wait for ``moment`` (the first lease to expire), at most LEASE_POLL_SECONDS: rows
        leased by a live worker disappear sooner, and stop wakes the wait at once."""
        if moment is None:
            return
        seconds = (moment - datetime.now(UTC)).total_seconds()
        self.stop.wait(min(max(seconds, 0.05), LEASE_POLL_SECONDS))
