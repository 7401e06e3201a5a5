"""DeTrack API v2 client: bulk create, batch update and delete, lookups, with the retry policy.

Transient failures (429, 5xx, timeouts, connection errors) are retried inside a call with capped
exponential backoff and full jitter, honouring Retry-After. Everything else is an answer: the
caller gets the status and the full body and decides. Nothing here writes to the database.

Every request waits for the shared rate limit, then asks the call's guard (harness.runtime.leases)
whether it may still be sent: under a claim, only while the lease certainly holds for the whole
request. Every wait goes through the guard too, so a stop or a lost lease ends it at once and a
wait longer than the lease gives the work back instead of holding it.

A request the client gave up on (a timeout, a dropped connection) may still reach DeTrack and be
applied later, after requests sent since: DeTrack keys jobs by DO number and date and takes no
precondition, so a late delete would remove the job that took the key meanwhile, a late create
would bring back a job we deleted, a late update would undo a newer one. A call that changes
DeTrack therefore ends only when its abandoned requests can no longer land: before its next try,
and before it gives up, it waits out the lease's margin (the time a request may still be in the
network, harness.runtime.leases), counted from when it gave up on the last one.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import httpx
import psycopg

from harness.runtime.leases import CallAbandoned, LeaseGuard, Unguarded
from harness.shipments.limiter import RateLimiter

ALREADY_TAKEN = "is already taken"
MAX_BATCH = 100  # DeTrack's limit for bulk create, batch update and batch delete


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    max_retry_after_seconds: float = 300.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter (uniform in [0, min(cap, base * 2^attempt)]), never below Retry-After."""
        backoff = random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))
        if retry_after is None:
            return backoff
        return max(backoff, min(retry_after, self.max_retry_after_seconds))


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any  # parsed JSON, or {"raw": text} when the body is not JSON
    retry_after: float | None = None


class TransientFailure(Exception):
    """A call that still failed transiently after every retry; the jobs are tried again later."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class CallGuard(Protocol):
    def check(self) -> None:
        """Raise CallAbandoned unless a request may be sent now."""
        ...

    def pause(self, seconds: float) -> None:
        """Wait before the next request, or raise CallAbandoned."""
        ...


@dataclass(frozen=True)
class JobOutcome:
    outcome: str  # created | adopted | updated | deleted | failed | retry | missing | kept
    http_status: int
    response: Any = None
    error: str | None = None
    detrack_id: str | None = None
    retry_after: float | None = None


def job_key(job: dict[str, Any]) -> tuple[str, str]:
    return str(job.get("do_number")), str(job.get("date"))


class DetrackClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        limiter: RateLimiter,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.limiter = limiter
        self.policy = policy or RetryPolicy()
        self.timeout = timeout  # the longest one request may take: what a lease must cover
        self.throttled = 0  # 429 answers seen: the client-side limit should keep this at 0
        self._throttled_lock = threading.Lock()  # counted from the HTTP threads
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"X-API-KEY": api_key, "Accept": "application/json"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()
        close_limiter = getattr(self.limiter, "close", None)
        if close_limiter:
            close_limiter()

    # -- operations ----------------------------------------------------------------------------

    def create_jobs(
        self, jobs: list[dict[str, Any]], guard: CallGuard | None = None
    ) -> dict[tuple[str, str], JobOutcome]:
        """POST /dn/jobs/bulk. Bulk create is not atomic: a 422 lists the jobs it created and
        the ones it refused. "is already taken" is checked against DeTrack before it counts."""
        guard = guard or Unguarded()
        response = self._call("POST", "/dn/jobs/bulk", guard, changes=True, json={"data": jobs})
        if response.status not in (200, 201, 422) or not isinstance(response.body, dict):
            return {job_key(job): _refused(response) for job in jobs}
        outcomes = {
            job_key(created): JobOutcome(
                "created", response.status, created, None, created.get("id")
            )
            for created in response.body.get("data") or []
            if isinstance(created, dict)
        }
        submitted = {job_key(job): job for job in jobs}
        for error in response.body.get("errors") or []:
            key = job_key(error)
            if key in submitted:
                outcomes[key] = self._settle_refused_create(submitted[key], error, response, guard)
        for key in submitted.keys() - outcomes.keys():
            outcomes[key] = JobOutcome(
                "retry", response.status, response.body, "not in DeTrack's answer"
            )
        return outcomes

    def update_jobs(
        self, items: list[dict[str, Any]], guard: CallGuard | None = None
    ) -> dict[tuple[str, str], JobOutcome]:
        """PUT /dn/jobs with [{"do_number", "date", "data": {...}}]."""
        response = self._call(
            "PUT", "/dn/jobs", guard or Unguarded(), changes=True, json={"data": items}
        )
        return self._per_item(items, response, ok="updated", on_codes={"not_found": "missing"})

    def delete_jobs(
        self, keys: list[dict[str, Any]], guard: CallGuard | None = None
    ) -> dict[tuple[str, str], JobOutcome]:
        """DELETE /dn/jobs. A finished delivery cannot be deleted ("undeletable": kept); one
        DeTrack no longer has is as good as deleted."""
        if not keys:
            return {}
        response = self._call(
            "DELETE", "/dn/jobs", guard or Unguarded(), changes=True, json={"data": keys}
        )
        return self._per_item(
            keys, response, ok="deleted", on_codes={"undeletable": "kept", "not_found": "deleted"}
        )

    def delete_jobs_if_ours(
        self, jobs: list[dict[str, Any]], guard: CallGuard | None = None
    ) -> dict[tuple[str, str], JobOutcome]:
        """Delete the jobs under these keys that carry our tracking number: a create whose
        answer was lost may or may not have made them, and a job under the same key that is
        not ours (another system's) must stay. Each key is looked up first."""
        guard = guard or Unguarded()
        outcomes, ours = {}, []
        for job in jobs:
            existing = self.show_job(*job_key(job), guard=guard)
            if existing is not None and _is_ours(existing, job):
                ours.append({"do_number": job["do_number"], "date": job["date"]})
            else:
                # nothing of ours is there: as good as deleted
                outcomes[job_key(job)] = JobOutcome("deleted", 200 if existing else 404)
        return outcomes | self.delete_jobs(ours, guard)

    def show_job(
        self, do_number: str, date: str, guard: CallGuard | None = None
    ) -> dict[str, Any] | None:
        response = self._call(
            "GET",
            "/dn/jobs/show/",
            guard or Unguarded(),
            params={"do_number": do_number, "date": date},
        )
        if response.status == 404:
            return None
        if response.status != 200 or not isinstance(response.body, dict):
            raise TransientFailure(
                f"GET job {do_number} {date}: HTTP {response.status}",
                response.status,
                response.body,
            )
        return response.body.get("data")

    def job_statuses(
        self, do_numbers: list[str], guard: CallGuard | None = None
    ) -> list[dict[str, Any]]:
        """POST /dn/jobs/search: the current jobs for these DO numbers (≤ 100)."""
        response = self._call(
            "POST",
            "/dn/jobs/search",
            guard or Unguarded(),
            json={"data": {"do_numbers": do_numbers, "page": 1, "limit": MAX_BATCH}},
        )
        if response.status != 200 or not isinstance(response.body, dict):
            raise TransientFailure(
                f"search: HTTP {response.status}", response.status, response.body
            )
        return [job for job in response.body.get("data") or [] if isinstance(job, dict)]

    # -- plumbing ------------------------------------------------------------------------------

    def _settle_refused_create(
        self,
        job: dict[str, Any],
        error: dict[str, Any],
        response: ApiResponse,
        guard: CallGuard,
    ) -> JobOutcome:
        """A refused create. "is already taken" by our own job (an earlier create whose answer
        was lost) is created when that job holds exactly our values, and adopted when it holds
        older ones: the next claim sends them as an update."""
        codes = [code for item in error.get("errors") or [] for code in item.get("codes") or []]
        if ALREADY_TAKEN not in codes:
            return JobOutcome("failed", response.status, response.body, _describe(error))
        existing = self.show_job(*job_key(job), guard=guard)
        if existing is None:
            return JobOutcome(
                "retry",
                response.status,
                response.body,
                "DeTrack says the DO number is taken but has no such job",
            )
        if _is_ours(existing, job):
            outcome = "created" if holds_values(existing, job) else "adopted"
            return JobOutcome(outcome, response.status, existing, None, existing.get("id"))
        return JobOutcome(
            "failed",
            response.status,
            {"refused": response.body, "existing": existing},
            f"DO number {job.get('do_number')} on {job.get('date')} is taken by another job",
        )

    def _per_item(
        self,
        items: list[dict[str, Any]],
        response: ApiResponse,
        ok: str,
        on_codes: dict[str, str],
    ) -> dict[tuple[str, str], JobOutcome]:
        if response.status == 200:
            return {job_key(item): JobOutcome(ok, 200) for item in items}
        if response.status != 422 or not isinstance(response.body, dict):
            return {job_key(item): _refused(response) for item in items}
        outcomes = {job_key(item): JobOutcome(ok, 422) for item in items}
        for error in response.body.get("errors") or []:
            codes = error.get("codes") or []
            mapped = next((on_codes[c] for c in codes if c in on_codes), "failed")
            outcomes[job_key(error)] = JobOutcome(
                mapped, 422, response.body, None if mapped == ok else _describe(error)
            )
        return outcomes

    def _call(
        self, method: str, path: str, guard: CallGuard, changes: bool = False, **kwargs: Any
    ) -> ApiResponse:
        """Send with retries for transient failures; any other answer is returned. Raises
        CallAbandoned when the guard forbids a request or a wait. A call that ``changes``
        DeTrack waits until the requests it gave up on can no longer land (module docstring)
        before each retry and before it gives up."""
        failure = ""
        in_flight = in_flight_seconds(guard) if changes else 0.0
        given_up_at: float | None = None  # when the last request that may still land ended
        for attempt in range(self.policy.max_retries + 1):
            self._wait_for_slot(guard)
            guard.check()
            retry_after = None
            try:
                raw = self._http.request(method, path, **kwargs)
            except httpx.TimeoutException as error:
                failure = f"{method} {path}: timeout ({type(error).__name__})"
                status, body = 0, None
                given_up_at = _given_up(error, given_up_at)
            except httpx.TransportError as error:
                failure = f"{method} {path}: connection error ({type(error).__name__}: {error})"
                status, body = 0, None
                given_up_at = _given_up(error, given_up_at)
            else:
                status, body = raw.status_code, _parse(raw)
                retry_after = _retry_after(raw)
                if status != 429 and status < 500:
                    return ApiResponse(status, body, retry_after)
                failure = f"{method} {path}: HTTP {status}"
                if status == 429:
                    with self._throttled_lock:
                        self.throttled += 1
                    if retry_after:
                        self._limit(partial(self.limiter.delay_all, retry_after))
            landed_by = given_up_at + in_flight if given_up_at is not None else 0.0
            if attempt < self.policy.max_retries:
                delay = self.policy.delay(attempt, retry_after)
                self._pause(guard, max(delay, landed_by - time.monotonic()), retry_after)
            elif (left := landed_by - time.monotonic()) > 0:
                # nothing more is sent: the wait needs no lease, and a stop must not cut it
                # short (the job would be due again while a request of ours may still land)
                time.sleep(left)
        raise TransientFailure(f"{failure} after {self.policy.max_retries + 1} tries", status, body)

    @staticmethod
    def _pause(guard: CallGuard, seconds: float, retry_after: float | None) -> None:
        """Wait before the next try. A wait given up hands the job back due after the
        server's own Retry-After, uncapped (the cap only bounds waits inside a call)."""
        try:
            guard.pause(seconds)
        except CallAbandoned as abandoned:
            if abandoned.lease_lost or not retry_after or retry_after <= seconds:
                raise
            raise CallAbandoned(str(abandoned), retry_after=retry_after) from abandoned

    def _wait_for_slot(self, guard: CallGuard) -> None:
        while (wait := self._limit(self.limiter.try_acquire)) > 0:
            guard.pause(wait)

    @staticmethod
    def _limit(action: Callable[[], float | None]) -> float:
        """Run a rate-limit action; a database that cannot be reached (the shared limit lives
        there) ends the call: nothing sent can be recorded either."""
        try:
            return action() or 0.0
        except psycopg.OperationalError as error:
            raise CallAbandoned(
                f"the shared rate limit is unavailable: {error}".strip(), lease_lost=True
            ) from error


def _given_up(error: httpx.TransportError, last: float | None) -> float | None:
    """When the client gave up on a request that may still reach DeTrack: now, unless the
    request never left (no connection was made)."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return last
    return time.monotonic()


def in_flight_seconds(guard: CallGuard) -> float:
    """How long after the client gave up on a request DeTrack may still apply it: the margin
    of the lease the call runs under (a request still in the network); 0 under no lease."""
    return guard.keeper.margin if isinstance(guard, LeaseGuard) else 0.0


def _refused(response: ApiResponse) -> JobOutcome:
    """A whole call refused (400, 401, 403, 404 ...): never retried, the body kept."""
    message = response.body.get("message") if isinstance(response.body, dict) else None
    return JobOutcome(
        "failed", response.status, response.body, f"HTTP {response.status}: {message or 'refused'}"
    )


def _describe(error: dict[str, Any]) -> str:
    fields = error.get("errors")
    if fields:
        return "; ".join(f"{e.get('field')}: {', '.join(e.get('codes') or [])}" for e in fields)
    return ", ".join(error.get("codes") or []) or json.dumps(error)[:500]


def _is_ours(existing: dict[str, Any], ours: dict[str, Any]) -> bool:
    """The job DeTrack has under our DO number and date is ours when it carries our tracking
    number (the shipment number), or, without one, our address."""
    if existing.get("tracking_number"):
        return str(existing.get("tracking_number")) == str(ours.get("tracking_number"))
    return existing.get("address") == ours.get("address")


def holds_values(existing: Any, ours: Any) -> bool:
    """Whether DeTrack's job holds every value we send (fields it adds are ignored; a list of
    items must match item by item). A difference that is only DeTrack's way of writing a value
    costs one update too many, never a stale job."""
    if isinstance(ours, dict):
        return isinstance(existing, dict) and all(
            holds_values(existing.get(name), value) for name, value in ours.items()
        )
    if isinstance(ours, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(ours)
            and all(holds_values(e, o) for e, o in zip(existing, ours, strict=True))
        )
    return existing == ours


def _parse(raw: httpx.Response) -> Any:
    try:
        return raw.json()
    except ValueError:
        return {"raw": raw.text[:10_000]}


def _retry_after(raw: httpx.Response) -> float | None:
    value = raw.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
