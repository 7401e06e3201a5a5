"""A DeTrack API v2 fake that speaks real HTTP on 127.0.0.1, for the demo and the tests.

It follows /work/shared/reference/detrack-api-v2.md (the `/dn/` job routes, the documented error
bodies, non-atomic batches, 60 requests per minute) so that the dispatcher's HTTP client, retry
and reconciliation code meet a real socket, real status codes and real timeouts rather than a
mock. Faults are injected per request: the interesting failures ("the server did it but the
answer was lost", a hung answer, a dropped socket, an HTML 500) are the ones a mock hides.

Standard library only, so that the demo can run it without the dev extras.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from datetime import date as Date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

API_PREFIX = "/api/v2"
MAX_BATCH = 100
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
WINDOW_SECONDS = 60.0
STOP_TIMEOUT = 2.0
JOB_TYPES = ("Delivery", "Collection")
REQUIRED_FIELDS = ("do_number", "date", "address")
READ_ONLY_FIELDS = frozenset({"id", "detrack_number", "created_at"})
UNDELETABLE = frozenset({"completed", "completed_partial", "failed"})
NEEDS_POD_TIME = frozenset({"completed", "completed_partial", "failed"})
TRACKING_STATUS = {
    "info_recv": "Info received",
    "dispatched": "Out for delivery",
    "in_transit": "In transit",
    "completed": "Completed",
    "completed_partial": "Partially completed",
    "failed": "Failed",
    "on_hold": "On hold",
    "return": "Return",
}
HTML_500 = "<html><body><h1>Internal Server Error</h1></body></html>"

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

Json = Any
JobKey = tuple[str, str, str]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, answered instead of (or after) the real handling.

    With handle_first=True and a 2xx status the real answer is sent, after `delay`: a slow
    success, which a client with a short timeout sees as a timeout on a job that exists.

    `hold` delays the request *before* it is handled (a slow server, a request stuck in a
    proxy): a client that gave up on it meanwhile, and sent others, finds it applied later,
    after requests it sent afterwards.
    """

    status: int = 500
    body: str = '{"message":"Internal Server Error"}'
    content_type: str = "application/json"
    handle_first: bool = False
    delay: float = 0.0
    hold: float = 0.0
    drop_connection: bool = False
    retry_after: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """What the fake saw and answered; `status` is None while the answer is still pending and 0
    when no answer was sent (dropped connection, or the fake stopped during a delay)."""

    method: str
    path: str
    query: dict[str, str]
    body: Json
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Incoming:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes

    @property
    def route(self) -> str:
        """The path below /api/v2, without a trailing slash ("" when outside the API)."""
        if self.path != API_PREFIX and not self.path.startswith(API_PREFIX + "/"):
            return ""
        return self.path[len(API_PREFIX) :].rstrip("/") or "/"

    def json_body(self) -> tuple[Json, str | None]:
        """(parsed body, error message); an empty body parses to None without error."""
        if not self.raw_body.strip():
            return None, None
        try:
            return json.loads(self.raw_body), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, f"Malformed JSON: {exc}"


class _Refused(Exception):
    """A request the API refuses before looking at any job; carries the ready answer."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _json_reply(status: int, body: Json, headers: dict[str, str] | None = None) -> _Reply:
    payload = json.dumps(body).encode()
    return _Reply(status, payload, "application/json", headers or {})


def _error(status: int, code: str, message: str, **extra: Json) -> _Reply:
    return _json_reply(status, {"code": code, "message": message, **extra})


def _not_found(message: str = "Job not found") -> _Reply:
    return _error(404, "not_found", message)


def _invalid_data(message: str) -> _Refused:
    return _Refused(_error(422, "invalid_data", message))


def _fault_reply(fault: Fault) -> _Reply:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    return _Reply(fault.status, fault.body.encode(), fault.content_type, headers)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _blank(value: Json) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _valid_date(value: Json) -> bool:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        return False
    try:
        Date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _field_error(name: str, code: str) -> dict[str, Json]:
    return {"field": name, "codes": [code]}


def _key_of(job: dict[str, Json]) -> JobKey:
    return str(job["do_number"]), str(job["date"]), str(job.get("type") or "Delivery")


def _positive_int(value: str | int | None, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise _Refused(_error(400, "bad_request", f"{name} must be a positive integer"))
    return number


def _in_range(value: str, low: Json, high: Json) -> bool:
    """Inclusive, on YYYY-MM-DD strings (which sort as dates); a missing bound is open."""
    return (_blank(low) or str(low) <= value) and (_blank(high) or value <= str(high))


def _data_list(body: Json) -> list[Json]:
    """The `data` array of a batch body, refused as the API refuses it (empty or over 100)."""
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise _invalid_data("data must be a non-empty array")
    if len(items) > MAX_BATCH:
        raise _invalid_data(f"at most {MAX_BATCH} items per request")
    return items


def _data_object(body: Json) -> dict[str, Json]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise _invalid_data("data must be an object")
    return data


class _JobStore:
    """The jobs and their rules; not locked itself: DetrackFake serialises every call."""

    def __init__(self) -> None:
        self.jobs: dict[JobKey, dict[str, Json]] = {}
        self.created: Counter[tuple[str, str]] = Counter()
        self._next_number = 2000001

    def find(self, do_number: Json, date: Json = None, type_: Json = None) -> JobKey | None:
        """Lookup by DO as the show route does: date and type narrow it when given; otherwise
        the latest date wins, and Delivery before Collection on the same date."""
        if _blank(do_number):
            return None
        keys = [
            key
            for key in self.jobs
            if key[0] == str(do_number)
            and (_blank(date) or key[1] == str(date))
            and (_blank(type_) or key[2] == str(type_))
        ]
        return max(keys, key=lambda key: (key[1], key[2] == "Delivery"), default=None)

    def validate(
        self, job: dict[str, Json], own_key: JobKey | None = None
    ) -> list[dict[str, Json]]:
        errors = [
            _field_error(name, "cannot be blank")
            for name in REQUIRED_FIELDS
            if _blank(job.get(name))
        ]
        if not _blank(job.get("date")) and not _valid_date(job["date"]):
            errors.append(_field_error("date", "is invalid"))
        if job.get("type", "Delivery") not in JOB_TYPES:
            errors.append(_field_error("type", "is invalid"))
        if job.get("status") in NEEDS_POD_TIME and _blank(job.get("pod_time")):
            errors.append(_field_error("pod_time", "cannot be blank"))
        if not errors and _key_of(job) != own_key and _key_of(job) in self.jobs:
            errors.append(_field_error("do_number", "is already taken"))
        return errors

    def create(self, submitted: Json) -> tuple[dict[str, Json] | None, list[dict[str, Json]]]:
        """(created job, []) or (None, field errors). Read-only fields are the server's own."""
        if not isinstance(submitted, dict):
            return None, [_field_error("data", "is invalid")]
        job = {**submitted, "type": submitted.get("type") or "Delivery"}
        job.pop("status", None)
        errors = self.validate(job)
        if errors:
            return None, errors
        job.update(self._server_fields())
        key = _key_of(job)
        self.jobs[key] = job
        self.created[key[:2]] += 1
        return copy.deepcopy(job), []

    def _server_fields(self) -> dict[str, Json]:
        number, self._next_number = self._next_number, self._next_number + 1
        return {
            "id": secrets.token_hex(12),
            "detrack_number": f"DET{number:07d}",
            "status": "info_recv",
            "tracking_status": TRACKING_STATUS["info_recv"],
            "created_at": _now_iso(),
        }

    def update(
        self, key: JobKey, fields: dict[str, Json]
    ) -> tuple[dict[str, Json] | None, list[dict[str, Json]]]:
        """Merge fields into the job; a changed do_number, date or type moves the job."""
        merged = {
            **self.jobs[key],
            **{k: v for k, v in fields.items() if k not in READ_ONLY_FIELDS},
        }
        errors = self.validate(merged, own_key=key)
        if errors:
            return None, errors
        if "status" in fields and merged["status"] in TRACKING_STATUS:
            merged["tracking_status"] = TRACKING_STATUS[merged["status"]]
        new_key = _key_of(merged)
        self.jobs = {(new_key if k == key else k): v for k, v in self.jobs.items()}
        self.jobs[new_key] = merged
        return copy.deepcopy(merged), []

    def set_status(self, key: JobKey, status: str) -> None:
        job = self.jobs[key]
        job["status"] = status
        job["tracking_status"] = TRACKING_STATUS.get(status, status)

    def delete(self, key: JobKey) -> bool:
        """False when the job's status forbids deletion (completed, partially, failed)."""
        if self.jobs[key].get("status") in UNDELETABLE:
            return False
        del self.jobs[key]
        return True

    def select(self, keep: Callable[[dict[str, Json]], bool]) -> list[dict[str, Json]]:
        return [copy.deepcopy(job) for job in self.jobs.values() if keep(job)]


def _ok_flag(key: JobKey | None, item: dict[str, Json], ok: bool) -> dict[str, Json]:
    """A batch item's outcome, named by the job it hit (or by what was asked, if none)."""
    do_number, date, type_ = key or (item.get("do_number"), item.get("date"), item.get("type"))
    return {"do_number": do_number, "date": date, "type": type_ or "Delivery", "ok": ok}


def _item_error(flag: dict[str, Json], codes: list[str], name: str | None = None) -> Json:
    error = {k: flag[k] for k in ("do_number", "date", "type")}
    return {**error, "field": name, "codes": codes} if name else {**error, "codes": codes}


class _Api:
    """The routes: each handler takes the request and its parsed body and returns a reply."""

    def __init__(self, store: _JobStore, base_url: Callable[[], str]) -> None:
        self.store = store
        self.base_url = base_url
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., _Reply]]] = [
            ("POST", re.compile(r"/dn/jobs"), self.create),
            ("POST", re.compile(r"/dn/jobs/bulk"), self.bulk_create),
            ("POST", re.compile(r"/dn/jobs/search"), self.search),
            ("GET", re.compile(r"/dn/jobs"), self.list_jobs),
            ("GET", re.compile(r"/dn/jobs/show"), self.show),
            ("GET", re.compile(r"/dn/jobs/(?P<do>[^/]+)(?:/(?P<date>[^/]+))?"), self.show),
            ("PUT", re.compile(r"/dn/jobs"), self.batch_update),
            ("PUT", re.compile(r"/dn/jobs/update"), self.update),
            ("PUT", re.compile(r"/dn/jobs/(?P<do>[^/]+)(?:/(?P<date>[^/]+))?"), self.update),
            ("DELETE", re.compile(r"/dn/jobs"), self.batch_delete),
            ("DELETE", re.compile(r"/dn/jobs/delete"), self.delete),
            ("DELETE", re.compile(r"/dn/jobs/(?P<do>[^/]+)(?:/(?P<date>[^/]+))?"), self.delete),
        ]

    def dispatch(self, request: _Incoming) -> _Reply:
        body, problem = request.json_body()
        if problem:
            return _error(400, "bad_request", problem)
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.route)
            if method == request.method and match:
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                try:
                    return handler(request, body, **params)
                except _Refused as refused:
                    return refused.reply
        return _error(404, "not_found", "Not found")

    def _job_url(self, do_number: Json) -> str:
        return f"{self.base_url()}/dn/jobs/{quote(str(do_number), safe='')}"

    def create(self, request: _Incoming, body: Json) -> _Reply:
        job, errors = self.store.create(_data_object(body))
        if errors:
            return _error(422, "validation_failed", "Validation failed", errors=errors)
        assert job is not None
        return _json_reply(201, {"data": job}, {"Location": self._job_url(job["do_number"])})

    def bulk_create(self, request: _Incoming, body: Json) -> _Reply:
        """Not atomic, as documented: the valid jobs are created even when others fail."""
        created, failed = [], []
        for submitted in _data_list(body):
            job, errors = self.store.create(submitted)
            if job is not None:
                created.append(job)
            else:
                echo = submitted if isinstance(submitted, dict) else {"data": submitted}
                failed.append({**echo, "errors": errors})
        if failed:
            return _error(
                422, "validation_failed", "Validation failed", data=created, errors=failed
            )
        return _json_reply(200, {"data": created})

    def _lookup(self, request: _Incoming, do: str | None, date: str | None) -> JobKey | None:
        query = request.query
        return self.store.find(
            do if do is not None else query.get("do_number"),
            date if date is not None else query.get("date"),
            query.get("type"),
        )

    def show(
        self, request: _Incoming, body: Json, do: str | None = None, date: str | None = None
    ) -> _Reply:
        key = self._lookup(request, do, date)
        if key is None:
            return _not_found()
        return _json_reply(200, {"data": copy.deepcopy(self.store.jobs[key])})

    def update(
        self, request: _Incoming, body: Json, do: str | None = None, date: str | None = None
    ) -> _Reply:
        """Both forms: PUT /dn/jobs/update names the job in the body, the path form in the URL."""
        fields = _data_object(body)
        if do is None:
            outer = body if isinstance(body, dict) else {}
            key = self.store.find(outer.get("do_number"), outer.get("date"), outer.get("type"))
        else:
            key = self._lookup(request, do, date)
        if key is None:
            return _not_found()
        job, errors = self.store.update(key, fields)
        if errors:
            return _error(422, "validation_failed", "Validation failed", errors=errors)
        return _json_reply(200, {"data": job})

    def batch_update(self, request: _Incoming, body: Json) -> _Reply:
        """Partial, as documented: the failing items are reported, the others are updated."""
        flags, errors = [], []
        for item in _data_list(body):
            item = item if isinstance(item, dict) else {}
            key = self.store.find(item.get("do_number"), item.get("date"), item.get("type"))
            fields = item.get("data") if isinstance(item.get("data"), dict) else {}
            problems = self.store.update(key, fields)[1] if key is not None else []
            flag = _ok_flag(key, item, key is not None and not problems)
            flags.append(flag)
            if key is None:
                errors.append(_item_error(flag, ["not_found"]))
            errors.extend(_item_error(flag, p["codes"], p["field"]) for p in problems)
        if errors:
            return _error(
                422, "update_failed", "Update failed", data={"data": flags}, errors=errors
            )
        return _json_reply(200, {"data": flags})

    def delete(
        self, request: _Incoming, body: Json, do: str | None = None, date: str | None = None
    ) -> _Reply:
        key = self._lookup(request, do, date)
        if key is None:
            return _not_found()
        if not self.store.delete(key):
            return _error(403, "forbidden", "Job cannot be deleted in its current status")
        return _Reply(204)

    def batch_delete(self, request: _Incoming, body: Json) -> _Reply:
        flags, errors = [], []
        for item in _data_list(body):
            item = item if isinstance(item, dict) else {}
            key = self.store.find(item.get("do_number"), item.get("date"), item.get("type"))
            deleted = key is not None and self.store.delete(key)
            flag = _ok_flag(key, item, deleted)
            flags.append(flag)
            if not deleted:
                errors.append(_item_error(flag, ["undeletable" if key else "not_found"]))
        if errors:
            return _error(422, "deletion_failed", "Deletion failed", data=flags, errors=errors)
        return _json_reply(200, {"data": flags})

    def list_jobs(self, request: _Incoming, body: Json) -> _Reply:
        query = request.query
        statuses = {s for s in query.get("status", "").split(",") if s}
        wanted = {name: query[name] for name in ("date", "type", "do_number") if query.get(name)}
        jobs = self.store.select(
            lambda job: (
                (not statuses or job.get("status") in statuses)
                and all(str(job.get(name)) == value for name, value in wanted.items())
            )
        )
        return self._page(jobs, query.get("page"), query.get("limit"), "/dn/jobs", query)

    def search(self, request: _Incoming, body: Json) -> _Reply:
        criteria = _data_object(body)
        do_numbers = {str(d) for d in criteria.get("do_numbers") or []}
        statuses = set(criteria.get("statuses") or [])
        dates = criteria.get("dates") if isinstance(criteria.get("dates"), dict) else {}
        jobs = self.store.select(
            lambda job: (
                (not do_numbers or str(job.get("do_number")) in do_numbers)
                and (not statuses or job.get("status") in statuses)
                and _in_range(str(job.get("date")), dates.get("from"), dates.get("to"))
            )
        )
        return self._page(jobs, criteria.get("page"), criteria.get("limit"), "/dn/jobs/search", {})

    def _page(
        self,
        jobs: list[dict[str, Json]],
        page_arg: str | int | None,
        limit_arg: str | int | None,
        route: str,
        query: dict[str, str],
    ) -> _Reply:
        """One page and its links; a limit over 100 is clamped to 100, as the API caps it."""
        page = _positive_int(page_arg, 1, "page")
        limit = min(_positive_int(limit_arg, DEFAULT_LIMIT, "limit"), MAX_LIMIT)

        def link(number: int) -> str:
            return (
                f"{self.base_url()}{route}?{urlencode({**query, 'page': number, 'limit': limit})}"
            )

        start = (page - 1) * limit
        links = {
            "next": link(page + 1) if start + limit < len(jobs) else None,
            "prev": link(page - 1) if page > 1 else None,
        }
        return _json_reply(200, {"data": jobs[start : start + limit], "links": links})


class _RateLimiter:
    """A sliding 60 s window over the injected clock; refused requests take no slot."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._stamps: deque[float] = deque()

    def admit(self) -> int | None:
        """None when admitted, else the whole seconds (at least 1) until a slot frees."""
        now = self.clock()
        while self._stamps and self._stamps[0] <= now - WINDOW_SECONDS:
            self._stamps.popleft()
        if len(self._stamps) >= self.per_minute:
            oldest = self._stamps[0] if self._stamps else now
            return max(1, math.ceil(oldest + WINDOW_SECONDS - now))
        self._stamps.append(now)
        return None


@dataclass
class _QueuedFault:
    fault: Fault
    remaining: int
    path_prefix: str

    def matches(self, request: _Incoming) -> bool:
        """The prefix may be given with or without /api/v2 ("/dn/jobs/bulk" or the full path)."""
        prefix = self.path_prefix
        return request.path.startswith(prefix) or request.route.startswith(prefix)


class DetrackFake:
    """The fake server, its jobs, its request log and its fault queue (all thread-safe)."""

    def __init__(
        self,
        api_key: str = "test-key",
        rate_limit_per_minute: int = 60,
        send_retry_after: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.send_retry_after = send_retry_after
        self.clock = clock
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._store = _JobStore()
        self._api = _Api(self._store, lambda: self.base_url)
        self._limiter = _RateLimiter(rate_limit_per_minute, clock)
        self._faults: list[_QueuedFault] = []
        self._requests: list[RecordedRequest] = []
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # lifecycle

    @property
    def base_url(self) -> str:
        """e.g. http://127.0.0.1:PORT/api/v2; kept after stop() so messages can still name it."""
        if self._base_url is None:
            raise RuntimeError("DetrackFake is not started")
        return self._base_url

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("DetrackFake is already started")
        self._stopping.clear()
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self._base_url = f"http://{host}:{port}{API_PREFIX}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="detrack-fake",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Returns promptly even with answers pending: delays wake up and sockets are shut.
        Handler threads are joined (briefly), so requests() is final once this returns."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        self._close_connections()
        thread.join(timeout=STOP_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> DetrackFake:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # state, for tests

    def jobs(self) -> list[dict[str, Json]]:
        with self._lock:
            return self._store.select(lambda job: True)

    def job(self, do_number: str, date: str, type_: str = "Delivery") -> dict[str, Json] | None:
        with self._lock:
            found = self._store.jobs.get((do_number, date, type_))
            return copy.deepcopy(found) if found is not None else None

    def create_count(self, do_number: str, date: str) -> int:
        """Successful creates ever made for (do_number, date), deletes notwithstanding: the
        number a duplicate-delivery test asserts on."""
        with self._lock:
            return self._store.created[(do_number, date)]

    def creates(self) -> dict[tuple[str, str], int]:
        """Successful creates per (do_number, date) ever made: a key created twice means a
        duplicate delivery, unless the job was deleted in between."""
        with self._lock:
            return dict(self._store.created)

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def set_status(self, do_number: str, date: str, status: str) -> None:
        """Play the driver (no pod_time check). Delivery wins when both types exist."""
        with self._lock:
            key = self._store.find(do_number, date)
            if key is None:
                raise KeyError((do_number, date))
            self._store.set_status(key, status)

    # fault injection

    def inject(self, fault: Fault, times: int = 1, path_prefix: str = "") -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_QueuedFault(fault, times, path_prefix))

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # used by the request handler

    def _admit(self, request: _Incoming, body: Json) -> tuple[int, _Reply | Fault | None]:
        """Record the request, then gate it: auth, rate limit, then the first matching fault."""
        with self._lock:
            index = len(self._requests)
            record = RecordedRequest(
                request.method,
                request.path,
                request.query,
                body,
                None,
                request.headers,
                self.clock(),
            )
            self._requests.append(record)
            return index, self._gate(request)

    def _gate(self, request: _Incoming) -> _Reply | Fault | None:
        if request.headers.get("x-api-key") != self.api_key:
            return _error(401, "unauthorized", "Unauthorized")
        wait = self._limiter.admit()
        if wait is not None:
            headers = {"Retry-After": str(wait)} if self.send_retry_after else {}
            body = {"code": "too_many_requests", "message": "Rate limit exceeded"}
            return _json_reply(429, body, headers)
        return self._take_fault(request)

    def _take_fault(self, request: _Incoming) -> Fault | None:
        for queued in self._faults:
            if queued.matches(request):
                queued.remaining -= 1
                if queued.remaining == 0:
                    self._faults.remove(queued)
                return queued.fault
        return None

    def _dispatch(self, request: _Incoming) -> _Reply:
        """The real handling; an unexpected error answers 500 and prints, as a server logs."""
        try:
            with self._lock:
                return self._api.dispatch(request)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return _error(500, "internal_error", "Internal Server Error")

    def _finish(self, index: int, status: int) -> None:
        with self._lock:
            self._requests[index] = replace(self._requests[index], status=status)

    def _pause(self, seconds: float) -> bool:
        """Sleep that stop() interrupts; True when it was interrupted."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections[connection] = threading.current_thread()
            else:
                self._connections.pop(connection, None)

    def _close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive sockets, then let them finish."""
        with self._lock:
            connections = dict(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_TIMEOUT
        for handler in connections.values():
            handler.join(timeout=max(0.0, deadline - time.monotonic()))


class _Server(ThreadingHTTPServer):
    """The listening socket; handler threads are daemons so nothing outlives the process."""

    daemon_threads = True

    def __init__(self, fake: DetrackFake) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, dropped faults) are normal here, not errors."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, like the real API, so clients reuse connections."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, open_=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo print their own story."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.server.fake
        request = self._incoming()
        index, gate = fake._admit(request, request.json_body()[0])
        self._index = index
        if isinstance(gate, _Reply):
            status = self._send(gate)
        elif isinstance(gate, Fault):
            status = self._answer_fault(gate, request)
        else:
            status = self._send(fake._dispatch(request))
        fake._finish(index, status)

    def _incoming(self) -> _Incoming:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        return _Incoming(self.command, url.path, query, headers, raw_body)

    def _answer_fault(self, fault: Fault, request: _Incoming) -> int:
        """handle_first: the state changes, then the answer is lost, late or replaced. A 2xx
        fault after handling is "slow success": the real answer (201, Location...), late."""
        fake = self.server.fake
        if fake._pause(fault.hold):
            return self._drop()
        handled = fake._dispatch(request) if fault.handle_first else None
        if fake._pause(fault.delay) or fault.drop_connection:
            return self._drop()
        if handled is not None and 200 <= fault.status < 300:
            return self._send(handled)
        return self._send(_fault_reply(fault))

    def _send(self, reply: _Reply) -> int:
        """Write the reply; 0 when the client is already gone."""
        # recorded before the first byte goes out: a client that has its answer finds the
        # request answered in requests() (a failed write records 0 afterwards)
        self.server.fake._finish(self._index, reply.status)
        try:
            self.send_response(reply.status)
            for name, value in self._reply_headers(reply):
                self.send_header(name, value)
            self.end_headers()
            if reply.payload:
                self.wfile.write(reply.payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return 0
        return reply.status

    @staticmethod
    def _reply_headers(reply: _Reply) -> Iterable[tuple[str, str]]:
        if reply.content_type is not None:
            yield "Content-Type", reply.content_type
        if reply.status != 204:
            yield "Content-Length", str(len(reply.payload))
        yield from reply.headers.items()

    def _drop(self) -> int:
        """Close without a byte of response: the client sees a protocol or reset error."""
        self.close_connection = True
        return 0


def main(argv: list[str] | None = None) -> None:
    """`python -m harness.demo.detrack_fake --port 0 --rate-limit 60`: serve until interrupted,
    printing the base URL first (benchmarks run the fake in its own process)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="DeTrack API v2 fake on 127.0.0.1")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--rate-limit", type=int, default=60, help="requests per minute")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="run the rate-limit clock this many times faster (10: a minute lasts 6 s)",
    )
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    scaled_clock = lambda: time.monotonic() * args.time_scale  # noqa: E731
    with DetrackFake(
        api_key=args.api_key, rate_limit_per_minute=args.rate_limit, clock=scaled_clock
    ) as fake:
        print(fake.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()


if __name__ == "__main__":
    main()
