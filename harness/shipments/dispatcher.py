"""The DeTrack dispatcher: claim pending jobs, send them in batches of up to 100, record every
job's outcome; then read delivery statuses back.

No job is created twice: a create whose answer was lost (timeout, dropped connection, 5xx after
the server acted) is sent again, DeTrack answers "is already taken" for the jobs it has, and
each of those is looked up: our job holding our values counts as created, our job holding older
values (the ERP changed it meanwhile) is adopted and updated next. DeTrack's own key (DO number,
date) makes the second create impossible; the lookup makes it visible and never stale.

No stale write after a takeover: each round is claimed under a fencing token, its leases are
extended by a heartbeat while its calls run (runtime.leases), every request is sent only while
the lease certainly covers it, and the database records results only under the current token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from harness.runtime import failpoints
from harness.runtime.leases import CallAbandoned, LeaseKeeper, Unguarded
from harness.runtime.rounds import InFlight, run_rounds
from harness.shipments.client import (
    MAX_BATCH,
    CallGuard,
    DetrackClient,
    JobOutcome,
    TransientFailure,
)
from harness.shipments.store import ClaimedJob, ShipmentStore

log = logging.getLogger(__name__)
IDENTITY_FIELDS = ("do_number", "date", "type")
OPERATIONS = ("create", "update", "delete", "delete_if_ours")
Batch = tuple[str, list[ClaimedJob]]  # one DeTrack call: an operation, up to MAX_BATCH jobs
Calls = InFlight[Batch, list[dict[str, Any]]]  # a claimed round, its calls under way


@dataclass(frozen=True)
class DispatchSettings:
    # ERP shipments copied and mapped per transaction (delivery.sync_erp_changes)
    sync_batch: int = 50_000
    claim_size: int = 500
    concurrency: int = 4
    lease_seconds: float = 300
    max_attempts: int = 10
    retry_base_seconds: float = 30
    retry_cap_seconds: float = 3600
    # statuses are read at most this often: each search is a request against the same
    # 60-a-minute budget that creates need
    status_poll_seconds: float = 60


@dataclass
class DispatchTotals:
    erp_synced: int = 0  # recorded ERP shipments checked, copied and mapped where changed
    sent: int = 0
    synced: int = 0
    failed: int = 0
    retrying: int = 0
    dead: int = 0
    released: int = 0  # given back unsent: a stop, or a wait longer than the lease
    lease_lost: int = 0  # claimed, then lost: not sent (any more), nothing recorded
    assigned: int = 0
    statuses: int = 0
    calls: int = 0
    failed_job_ids: list[int] = field(default_factory=list)


class ShipmentDispatcher:
    def __init__(
        self,
        store: ShipmentStore,
        client: DetrackClient,
        settings: DispatchSettings,
        worker: str,
        leases: LeaseKeeper,
        stop: threading.Event | None = None,
        on_batch: Callable[[DispatchTotals], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.worker = worker
        self.leases = leases
        self.stop = stop or threading.Event()
        self.on_batch = on_batch or (lambda totals: None)
        self._pool = ThreadPoolExecutor(settings.concurrency, "pgferry-detrack")
        self._last_status_poll: float | None = None
        leases.start()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.leases.close()
        self.client.close()

    def drain(self) -> DispatchTotals:
        """Copy and map what the ERP changed, assign what the rules now cover, send everything
        pending that is due, then read statuses back. Returns when nothing due is left (or on
        stop).

        Rounds overlap (harness.runtime.rounds): the next round is claimed and its calls
        queued before the previous round's results are recorded, so the HTTP threads never wait
        for the database; a failure lets every lease of the drain lapse."""
        totals = DispatchTotals()
        totals.erp_synced += self.sync_erp_changes()
        totals.assigned += self.store.apply_assignment_rules()
        run_rounds(
            self.leases,
            self.stop,
            claim=self._claim,
            settle=partial(self._record, totals),
            # the last round may have left jobs due again at once (a replaced key's create,
            # a job changed while its call ran): claim until a pass finds nothing
            idle=lambda claimed_since_idle: claimed_since_idle,
            report=partial(self.on_batch, totals),
        )
        if not self.stop.is_set() and self._status_poll_due():
            self.poll_statuses(totals)
        return totals

    def sync_erp_changes(self) -> int:
        """Take the ERP changes the triggers recorded, a batch per transaction, until none
        wait. A large ERP import is reported batch by batch."""
        synced = 0
        while not self.stop.is_set():
            taken = self.store.sync_erp_changes(self.settings.sync_batch)
            if not taken:
                break
            synced += taken
            if taken >= self.settings.sync_batch:
                log.info("ERP shipments copied and mapped", extra={"shipments": synced})
        return synced

    def _status_poll_due(self) -> bool:
        now = time.monotonic()
        last = self._last_status_poll
        if last is not None and now - last < self.settings.status_poll_seconds:
            return False
        self._last_status_poll = now
        return True

    def _claim(self) -> Calls | None:
        """Claim a round and queue its calls, a batch per operation; None when it claimed
        nothing."""
        lease = timedelta(seconds=self.settings.lease_seconds)
        claimed_at = self.leases.now()
        claimed = self.store.claim(self.worker, self.settings.claim_size, lease)
        if not claimed:
            return None
        token = claimed[0].lease_token
        self.leases.track(token, claimed_at, len(claimed))
        batches = [
            (operation, batch)
            for operation in OPERATIONS
            for batch in _chunks([j for j in claimed if j.operation == operation], MAX_BATCH)
        ]
        return InFlight.queue(self._pool, token, batches, self._send)

    def _record(self, totals: DispatchTotals, flight: Calls) -> None:
        results = [result for answers in flight.results() for result in answers]
        totals.lease_lost += sum(len(jobs) for _, jobs in flight.items) - len(results)
        failpoints.reach("before_record_results")
        settled = self.store.record(
            self.worker,
            results,
            self.settings.max_attempts,
            timedelta(seconds=self.settings.retry_base_seconds),
            timedelta(seconds=self.settings.retry_cap_seconds),
        )
        totals.calls += len(flight.items)
        totals.sent += sum(1 for r in results if r["outcome"] != "released")
        totals.released += sum(1 for r in results if r["outcome"] == "released")
        totals.synced += settled.synced
        totals.failed += settled.failed
        totals.retrying += settled.retrying
        totals.dead += settled.dead
        totals.failed_job_ids += [r["job_id"] for r in results if r["outcome"] == "failed"]

    def poll_statuses(self, totals: DispatchTotals, limit: int = MAX_BATCH) -> None:
        """One search call for the jobs whose delivery status is oldest; changes flow to the
        ERP through the delivery.job_to_erp trigger."""
        due = self.store.awaiting_status(limit)
        if not due:
            return
        try:
            jobs = self.client.job_statuses(due, Unguarded(self.stop))
        except (TransientFailure, CallAbandoned) as error:
            log.warning("status poll failed", extra={"error": str(error)})
            return
        statuses = [
            {"do_number": j.get("do_number"), "date": j.get("date"), "status": j.get("status")}
            for j in jobs
        ]
        totals.statuses += self.store.record_statuses(statuses, due)

    def _send(self, token: int, batch: Batch) -> list[dict[str, Any]]:
        """One DeTrack call for jobs of one claim; the results to record (none when the lease
        was lost: the jobs may be another worker's now)."""
        operation, jobs = batch
        requests = [_request(operation, job) for job in jobs]
        guard = self.leases.guard(token, call_seconds(self.client.timeout), self.stop)
        try:
            outcomes = self._call(operation, requests, guard)
        except TransientFailure as error:
            outcome = JobOutcome("retry", error.status, _jsonable(error.body), str(error))
            outcomes = {(job.do_number, job.date): outcome for job in jobs}
        except CallAbandoned as abandoned:
            log.warning(
                "DeTrack call abandoned", extra={"jobs": len(jobs), "reason": str(abandoned)}
            )
            if abandoned.lease_lost:
                return []
            outcome = JobOutcome("released", 0, None, str(abandoned), None, abandoned.retry_after)
            outcomes = {(job.do_number, job.date): outcome for job in jobs}
        return [
            _result(job, outcomes.get((job.do_number, job.date)), request)
            for job, request in zip(jobs, requests, strict=True)
        ]

    def _call(
        self, operation: str, requests: list[dict[str, Any]], guard: CallGuard
    ) -> dict[tuple[str, str], JobOutcome]:
        if operation == "create":
            return self.client.create_jobs(requests, guard)
        if operation == "delete_if_ours":
            return self.client.delete_jobs_if_ours(requests, guard)
        if operation == "delete":
            return self.client.delete_jobs(requests, guard)
        return self.client.update_jobs(requests, guard)


def _request(operation: str, job: ClaimedJob) -> dict[str, Any]:
    """What one call sends for ``job``: the whole payload for a create, its key for a delete
    (with the payload when the delete must first check the job is ours), the key and the
    fields to change for an update."""
    if operation == "create":
        return job.payload
    if operation == "delete_if_ours":
        return job.payload | _key(job)
    if operation == "delete":
        return _key(job)
    return {
        **_key(job),
        "data": {k: v for k, v in job.payload.items() if k not in IDENTITY_FIELDS},
    }


def call_seconds(timeout: float) -> float:
    """The longest one request may take, as the lease guard counts it: httpx times the phases
    of a request (connect, send, each read) separately, so a request that connects slowly and
    then answers slowly takes up to twice the timeout. (A server trickling its answer byte by
    byte could take longer still: DeTrack answers in one piece.)"""
    return 2 * timeout


def _key(job: ClaimedJob) -> dict[str, str]:
    """The key the claim says to send under (for a create the new one, else DeTrack's)."""
    return {"do_number": job.do_number, "date": job.date}


def _result(job: ClaimedJob, outcome: JobOutcome | None, request: dict[str, Any]) -> dict[str, Any]:
    """What delivery.record_results records and journals for one job of one call."""
    if outcome is None:
        outcome = JobOutcome("retry", 0, None, "no answer for this job")
    return {
        "job_id": job.job_id,
        "lease_token": job.lease_token,
        "version": job.version,
        "do_number": job.do_number,
        "date": job.date,
        "outcome": outcome.outcome,
        "detrack_id": outcome.detrack_id,
        "http_status": outcome.http_status,
        # a released job was never sent
        "request": None if outcome.outcome == "released" else _without_nul(request),
        "response": _jsonable(outcome.response),
        "error": _without_nul(outcome.error),
        "retry_after_seconds": outcome.retry_after,
    }


def _jsonable(body: Any) -> Any:
    """Keep the full response, JSON or not (an HTML 500 is stored as {"raw": ...}), without
    NUL characters, which PostgreSQL cannot store in jsonb or text."""
    if body is not None and not isinstance(body, dict | list):
        body = {"raw": str(body)}
    return _without_nul(body)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _chunks(jobs: list[ClaimedJob], size: int) -> list[list[ClaimedJob]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]
