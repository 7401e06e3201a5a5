"""Helpers for permit pipeline tests: play the loader, build consumers, read S3."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg

from harness.config import PermitSettings
from harness.demo.samples import sample_pdf
from harness.permits.consumer import PermitConsumer, RunTotals
from harness.permits.store import PermitStore
from harness.permits.upload import PermitUploader
from harness.s3 import make_client

FAST_SETTINGS = {
    "batch_size": 10,
    "upload_concurrency": 4,
    "lease_seconds": 60,
    "max_attempts": 3,
    "retry_base_seconds": 0,
    "retry_cap_seconds": 0,
}


@dataclass
class StagedPermit:
    permit_number: str | None
    generation: int | None = 1
    pdf: bytes | None = None
    service: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        pdf = self.pdf if self.pdf is not None else sample_pdf(f"{self.permit_number}", 2000)
        return {
            "permit_number": self.permit_number,
            "permit_generation": self.generation,
            "new_permit_number": f"ORBC-{self.permit_number}",
            "permit_type": "TROS",
            "plate": "ABC123",
            "vin": "1HGBH41JXMN109186",
            "service": self.service,
            "pdf": pdf,
            **self.extra,
        }


def load_run(
    connection: psycopg.Connection,
    permits: list[StagedPermit],
    status: str = "succeeded",
    hung: int | None = None,
) -> int:
    """Play the upstream loader: open a run, stage the permits, close it. ``hung``: a run
    still running that has hung (started 5 hours ago), which this start abandons."""
    if hung is not None:
        connection.execute(
            "UPDATE etl.process SET started_at = now() - interval '5 hours' WHERE process_id = %s",
            [hung],
        )
    process_id = connection.execute("SELECT etl.start_process('permits')").fetchone()[0]
    assert process_id is not None, "another permits run is still running"
    for permit in permits:
        row = permit.row()
        columns = ", ".join(["process_id", *row])
        values = ", ".join(["%s"] * (len(row) + 1))
        connection.execute(
            f"INSERT INTO tps.staged_permit ({columns}) VALUES ({values})",
            [process_id, *row.values()],
        )
    if status != "running":
        connection.execute("SELECT etl.end_process(%s, %s, %s)", [process_id, status, len(permits)])
    return process_id


def numbered(count: int, start: int = 1, size: int = 2000) -> list[StagedPermit]:
    return [
        StagedPermit(f"P{n:08d}", 1, sample_pdf(f"P{n:08d}", size))
        for n in range(start, start + count)
    ]


def make_consumer(
    connection: psycopg.Connection,
    endpoint: str,
    bucket: str,
    worker: str = "test-worker",
    stop: threading.Event | None = None,
    connect: Callable[[], psycopg.Connection] | None = None,
    on_batch: Callable[[RunTotals], None] | None = None,
    **overrides: Any,
) -> PermitConsumer:
    """A consumer as workers run it; its heartbeat connects like ``connection`` unless
    ``connect`` says otherwise."""
    settings = PermitSettings(**{**FAST_SETTINGS, **overrides})
    uploader = PermitUploader(make_client(endpoint), bucket, "permits/")
    store = PermitStore(connection)
    return PermitConsumer(store, uploader, settings, worker, stop, on_batch, connect=connect)


def stop_after_claims(stop: threading.Event, claims: int) -> Callable[[RunTotals], None]:
    """An ``on_batch`` that stops the drain once it made ``claims`` claim calls: a drain that
    would claim the same rows again and again ends, and the test reads its count."""

    def check(totals: RunTotals) -> None:
        if totals.claim_calls >= claims:
            stop.set()

    return check


# a database nobody listens for: the heartbeat of a worker cut off from PostgreSQL
UNREACHABLE_DATABASE = partial(
    psycopg.connect, "postgresql://postgres@127.0.0.1:9/none", connect_timeout=2
)


class Gate:
    """Holds every request of one S3 operation at one botocore event until released: a slow
    network or a stalled thread, at a chosen point of the call. ``before-parameter-build``
    holds a call before the lease guard is asked; ``before-send`` (registered last, after the
    guard) holds a request that is already on its way."""

    def __init__(self, client: Any, event: str) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.arrivals = threading.Semaphore(0)  # one per request held: acquire to await each
        client.meta.events.register_last(event, self._hold)

    def _hold(self, **kwargs: object) -> None:
        self.entered.set()
        self.arrivals.release()
        if not self.released.wait(timeout=60):
            raise TimeoutError("gate never released")


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``target`` on a thread; its result (or exception) lands in the returned dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as error:  # re-raised by the test that reads it
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def result_of(thread: threading.Thread, outcome: dict[str, Any], timeout: float = 60) -> Any:
    thread.join(timeout)
    assert not thread.is_alive(), "the thread did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def waits_for_lock(observer: psycopg.Connection, pid: int, thread: threading.Thread) -> bool:
    """Whether backend ``pid`` comes to wait for a lock before ``thread`` finishes."""
    while thread.is_alive():
        row = observer.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
        if row and row[0] == "Lock":
            return True
        thread.join(0.01)
    return False


def object_keys(endpoint: str, bucket: str) -> list[str]:
    client = make_client(endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def run_harness(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run the real `harness` command in its own process (a worker on another machine)."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def running_harness(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen]:
    """A harness started for the block (a worker with --loop); killed if the block leaves it
    running."""
    worker = start_harness(env, *args)
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def stop_harness(worker: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM, as a scheduler stops a worker; its stdout and stderr once it has exited."""
    worker.send_signal(signal.SIGTERM)
    return worker.communicate(timeout=60)


def start_harness(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def worker_env(db_url: str, endpoint: str, bucket: str, **settings: object) -> dict[str, str]:
    env = {
        "DATABASE_URL": db_url,
        "S3_ENDPOINT_URL": endpoint,
        "S3_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.update({f"PERMITS_{k.upper()}": str(v) for k, v in {**FAST_SETTINGS, **settings}.items()})
    return env


def assert_each_permit_moved_once(
    connection: psycopg.Connection, endpoint: str, bucket: str, permits: list[StagedPermit]
) -> None:
    """Every staged permit is in the target exactly once with its object and checksum, staging
    is empty, no object is orphaned and the journal shows one move per permit."""
    rows = connection.execute(
        "SELECT p.tps_permit_number, d.object_key, d.sha256 FROM permit.permit p"
        " JOIN permit.document d USING (document_id) ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(p.permit_number for p in permits)
    client = make_client(endpoint)
    expected = {p.permit_number: hashlib.sha256(p.pdf).hexdigest() for p in permits}
    for number, key, sha256 in rows:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert sha256 == expected[number] == hashlib.sha256(body).hexdigest()
    assert object_keys(endpoint, bucket) == sorted(r[1] for r in rows)
    assert connection.execute("SELECT count(*) FROM tps.staged_permit").fetchone() == (0,)
    moves = connection.execute(
        "SELECT count(*), count(DISTINCT item_id) FROM etl.journal WHERE step = 'moved'"
    ).fetchone()
    assert moves == (len(permits), len(permits))


def recorded_puts(endpoint: str, bucket: str) -> Counter[str]:
    """PUT requests per object key that moto's request recorder saw for ``bucket``."""
    data = urllib.request.urlopen(f"{endpoint}/moto-api/recorder/download-recording").read()
    puts: Counter[str] = Counter()
    for line in data.decode().splitlines():
        request = json.loads(line)
        path = urllib.parse.urlsplit(request["url"]).path
        if request["method"] == "PUT" and path.startswith(f"/{bucket}/"):
            puts[path.removeprefix(f"/{bucket}/")] += 1
    return puts


def start_recording(endpoint: str) -> None:
    for action in ("reset-recording", "start-recording"):
        request = urllib.request.Request(f"{endpoint}/moto-api/recorder/{action}", method="POST")
        urllib.request.urlopen(request).read()
