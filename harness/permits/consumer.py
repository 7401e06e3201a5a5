"""The permit consumer: claim a batch, upload its PDFs concurrently, move it in one
transaction, record failures; repeat until nothing is left to claim.

Nothing is held across S3 calls: the claim is committed (a lease) before any upload, the move
is a short transaction after them. A crash at any point leaves either a lease that expires (the
row is claimed again, the upload is idempotent) or a committed move.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from harness import failpoints
from harness.config import PermitSettings
from harness.permits.store import ClaimedPermit, Failure, PermitStore, Upload
from harness.permits.upload import PermitUploader, UploadError

log = logging.getLogger(__name__)
LEASE_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class InFlight:
    """A claimed batch whose uploads are queued or running."""

    permits: list[ClaimedPermit]
    futures: list[Future[Upload | UploadError]]


@dataclass
class RunTotals:
    """What one run did: the reconciliation printed at its end."""

    claimed: int = 0
    moved: int = 0
    duplicates: int = 0
    rejected: int = 0  # invalid rows, dead at once
    dead: int = 0  # uploads out of attempts, and rows the target refused
    upload_failures: int = 0  # failed upload attempts (an item may fail, then move)
    lease_lost: int = 0
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
    ) -> None:
        self.store = store
        self.uploader = uploader
        self.settings = settings
        self.worker = worker
        self.stop = stop or threading.Event()
        self.on_batch = on_batch or (lambda totals: None)
        self._pool = ThreadPoolExecutor(settings.upload_concurrency, "pgferry-upload")

    def drain(self, *, wait_for_leases: bool = True) -> RunTotals:
        """Run batches until nothing is claimable. With ``wait_for_leases``, rows leased by
        other (possibly crashed) workers are waited for until they are moved or their lease
        expires; rows waiting for a retry time are left for a later run.

        Batches overlap: the next batch is claimed and its uploads queued before the previous
        one is moved, so the upload threads never wait for the database."""
        totals = RunTotals()
        in_flight: InFlight | None = None
        while True:
            claimed = [] if self.stop.is_set() else self._claim(totals)
            next_flight = self._start_uploads(claimed) if claimed else None
            if in_flight:
                self._finish(in_flight, totals)
            in_flight = next_flight
            if in_flight or claimed:
                continue
            if self.stop.is_set():
                break
            totals.processes_consumed += self.store.finish_drained_processes()
            backlog = self.store.backlog()
            if backlog.claimable:
                continue
            if not (wait_for_leases and backlog.leased):
                break
            self._wait_until(backlog.next_wake)
        return totals

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _claim(self, totals: RunTotals) -> list[ClaimedPermit]:
        lease = timedelta(seconds=self.settings.lease_seconds)
        claimed = self.store.claim(self.worker, self.settings.batch_size, lease)
        failpoints.reach("after_claim")
        totals.claimed += len(claimed)
        totals.duplicates += sum(1 for p in claimed if p.outcome == "duplicate")
        totals.rejected += sum(1 for p in claimed if p.outcome == "dead")
        return claimed

    def _start_uploads(self, claimed: list[ClaimedPermit]) -> InFlight:
        to_upload = [p for p in claimed if p.outcome == "upload"]
        return InFlight(to_upload, [self._pool.submit(self._upload_one, p) for p in to_upload])

    def _finish(self, flight: InFlight, totals: RunTotals) -> None:
        uploads, failures = [], []
        for permit, future in zip(flight.permits, flight.futures, strict=True):
            outcome = future.result()
            if isinstance(outcome, Upload):
                uploads.append(outcome)
            else:
                failures.append(Failure(permit.staged_permit_id, str(outcome), outcome.retryable))
        self._move(uploads, totals)
        self._record(failures, totals)
        log.info(
            "permit batch done",
            extra={"uploaded": len(uploads), "failed": len(failures), "moved": totals.moved},
        )
        self.on_batch(totals)

    def _upload_one(self, permit: ClaimedPermit) -> Upload | UploadError:
        try:
            return self.uploader.upload(permit)
        except UploadError as error:
            return error

    def _move(self, uploads: list[Upload], totals: RunTotals) -> None:
        if not uploads:
            return
        failpoints.reach("before_move")
        with self.store.connection.transaction():
            result = self.store.move(self.worker, uploads)
            failpoints.reach("before_move_commit")
        failpoints.reach("after_move")
        totals.moved += result.moved
        totals.duplicates += result.duplicates
        totals.dead += result.failed
        totals.lease_lost += result.lease_lost

    def _record(self, failures: list[Failure], totals: RunTotals) -> None:
        if not failures:
            return
        retrying, dead = self.store.record_failures(
            self.worker,
            failures,
            self.settings.max_attempts,
            timedelta(seconds=self.settings.retry_base_seconds),
            timedelta(seconds=self.settings.retry_cap_seconds),
        )
        failpoints.reach("after_record_failures")
        totals.upload_failures += retrying + dead
        totals.dead += dead
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
