"""Benchmarks of the shipment pipeline.

(a) ERP bulk insert of N shipments (default 1,000,000) in one statement, with the chain's
    triggers against the same insert with the triggers disabled, alternating in the same run,
    the median of --repeats each. Both at 100 % qualifying shipments (the worst case: every row
    is recorded) and at a mix where a quarter qualify. Then the worker's half: the time
    delivery.sync_erp_changes takes to copy and map what the triggers recorded.
(b) Dispatch of 10,000 pending jobs by one dispatcher to the DeTrack fake (its own process)
    under its limit of 60 requests a minute, in real minutes (about a minute for 10,000 jobs),
    the rate limit kept in PostgreSQL (SharedLimiter) as workers keep it: elapsed time against
    the fastest the limit allows. --time-scale N makes a minute last 60/N s for a quick run; it
    magnifies N times the time the calls of the last window take, which no client can avoid.
(c) Idle-system latency from an ERP insert to the job existing in DeTrack, with
    `harness run shipments --loop` waiting on LISTEN: p50 and p95 over 40 shipments.
(d) --processes (3) `harness run shipments` processes dispatching the same 10,000 pending jobs
    to the fake (its own process) at 60 requests a minute, in real minutes, sharing the limit
    in PostgreSQL: elapsed time from the fake's first request to the last job recorded synced,
    against the fastest the limit allows, and the 429s the fake answered (counted by the fake).
(e) The pipelines side by side: `harness run --loop` (both pipelines, one worker process) while
    --side-permits (10,000) 50 KB permits drain to moto's S3 server (its own process): latency
    from an ERP insert to the job in DeTrack, --latency shipments 0.3 s apart, p50 and p95, and
    the permits moved before and after the measurement (still draining throughout).

    python -m bench.shipments [--rows 1000000] [--repeats 5] [--jobs 10000] [--limit 60]
        [--time-scale 1] [--latency 40] [--processes 3] [--side-permits 10000] [--only abcde]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta

import psycopg

from bench.common import scratch_database
from bench.permits import PDF_SIZE, stage, start_moto
from harness.demo.detrack_fake import DetrackFake
from harness.runtime.leases import LeaseKeeper
from harness.s3 import make_client as make_s3_client
from harness.shipments.client import DetrackClient, RetryPolicy
from harness.shipments.dispatcher import DispatchSettings, ShipmentDispatcher
from harness.shipments.limiter import SharedLimiter
from harness.shipments.service import connector
from harness.shipments.store import ShipmentStore

API_KEY = "bench-key"
INSERT_SQL = """
INSERT INTO erp.shipment (shipment_number, job_number, ship_via, is_partial, ship_name,
    ship_attention, ship_address_1, ship_city, ship_postal_code, ship_country, ship_zone,
    ship_phone, ship_email, ship_instructions, scheduled_ship_date, scheduled_ship_quantity)
SELECT g, 'DO-' || g,
       CASE WHEN g % 100 < {qualifying_percent} THEN '10005' ELSE 'UPS' END,
       true, 'Customer ' || g, 'Receiving', g || ' Government St', 'Victoria',
       'V8W ' || (g % 9) || 'A' || (g % 7), 'Canada', 'south',
       '250-555-' || lpad((g % 10000)::text, 4, '0'),
       'c' || g || '@example.com', 'Ring the bell', date '2026-11-23' + (g % 30), 1 + g % 5
  FROM generate_series({first}, {last}) AS g
"""


def timed_insert(conn: psycopg.Connection, first: int, last: int, percent: int) -> float:
    conn.execute("CHECKPOINT")  # each timed insert starts with the same clean buffers
    started = time.perf_counter()
    conn.execute(INSERT_SQL.format(first=first, last=last, qualifying_percent=percent))
    return time.perf_counter() - started


def bench_trigger_chain(url: str, rows: int, repeats: int) -> None:
    """The ERP's bulk insert with the chain's triggers against the same insert with them
    disabled, alternating, `repeats` times each; the ratio of the medians. Then the worker's
    half, which the triggers hand over: syncing the recorded changes into copies and jobs."""
    with psycopg.connect(url, autocommit=True) as conn:
        for percent in (100, 25):
            bare, chained = [], []
            for _ in range(repeats):
                _reset(conn)
                conn.execute("ALTER TABLE erp.shipment DISABLE TRIGGER USER")
                bare.append(timed_insert(conn, 1, rows, percent))
                _reset(conn)
                conn.execute("ALTER TABLE erp.shipment ENABLE TRIGGER USER")
                chained.append(timed_insert(conn, 1, rows, percent))
            synced, sync_seconds = _sync_all(conn)
            jobs = conn.execute("SELECT count(*) FROM delivery.job").fetchone()[0]
            ratio = statistics.median(chained) / statistics.median(bare)
            print(
                f"(a) {rows:,} ERP shipments, {percent:3d} % qualifying, median of {repeats}:"
                f" without triggers {statistics.median(bare):6.2f} s"
                f" ({_spread(bare)}), with the chain {statistics.median(chained):6.2f} s"
                f" ({_spread(chained)}); ratio {ratio:.2f} (target <= 1.2)"
            )
            print(
                f"    then the worker: {synced:,} shipments copied and mapped to {jobs:,} jobs"
                f" in {sync_seconds:.2f} s ({synced / sync_seconds:,.0f} a second)"
            )
        _reset(conn)


def _reset(conn: psycopg.Connection) -> None:
    """No shipments, and a fresh shared rate limit: the slots an earlier scenario used in the
    last minute would otherwise hold up the next one (as a minute's pause would free them)."""
    conn.execute(
        "TRUNCATE erp.shipment, delivery.erp_change, delivery.shipment, delivery.job,"
        " delivery.api_slot"
    )


def _spread(seconds: list[float]) -> str:
    return "-".join(f"{s:.2f}" for s in sorted(seconds))


def _sync_all(conn: psycopg.Connection) -> tuple[int, float]:
    started = time.perf_counter()
    synced = 0
    while taken := conn.execute("SELECT delivery.sync_erp_changes()").fetchone()[0]:
        synced += taken
    return synced, time.perf_counter() - started


def start_fake_server(limit: int, time_scale: float = 1.0) -> tuple[subprocess.Popen, str]:
    """The DeTrack fake in its own process (bench.detrack_server: harness.demo.detrack_fake's fake,
    which also reports what it answered)."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.detrack_server",
            "--api-key",
            API_KEY,
            "--rate-limit",
            str(limit),
            "--time-scale",
            str(time_scale),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    return server, server.stdout.readline().strip()


def stop_fake_server(server: subprocess.Popen) -> dict:
    """Stop the fake; what it answered (requests, answers by status, first request time)."""
    server.terminate()
    out, _ = server.communicate(timeout=30)
    lines = out.strip().splitlines()
    return json.loads(lines[-1]) if lines else {"requests": 0, "statuses": {}}


def _profile(answered: dict, window: float) -> str:
    """Requests the fake received per tenth of a window, from its first request."""
    arrivals = answered.get("arrivals") or []
    if not arrivals:
        return "no requests"
    first, step = min(arrivals), window / 10
    bins = [0] * (int((max(arrivals) - first) / step) + 1)
    for at in arrivals:
        bins[int((at - first) / step)] += 1
    return f"requests per {step:g} s from the first: " + " ".join(map(str, bins))


def _pending_jobs(url: str, jobs: int) -> None:
    """``jobs`` qualifying ERP shipments, copied and mapped: pending jobs, nothing sent yet."""
    with psycopg.connect(url, autocommit=True) as conn:
        _reset(conn)
        conn.execute(
            INSERT_SQL.format(first=10_000_001, last=10_000_000 + jobs, qualifying_percent=100)
        )
        _sync_all(conn)


def bench_dispatch(url: str, jobs: int, limit: int, time_scale: float) -> None:
    """Dispatch under the rate limit with time scaled (a minute lasts 60 / time_scale s), so
    the limit binds: the fastest any client can go is one full window per `limit` calls after
    the first window's burst. The limit is kept in PostgreSQL, as workers keep it."""
    window = 60.0 / time_scale
    _pending_jobs(url, jobs)
    server, base_url = start_fake_server(limit, time_scale)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            limiter = SharedLimiter(connector(url), limit, window_seconds=window)
            client = DetrackClient(
                base_url,
                API_KEY,
                limiter,
                RetryPolicy(base_seconds=0.05, cap_seconds=1),
                timeout=30,
            )
            settings = DispatchSettings(claim_size=500, concurrency=4)
            leases = LeaseKeeper(connector(url), "shipments", settings.lease_seconds)
            dispatcher = ShipmentDispatcher(ShipmentStore(conn), client, settings, "bench", leases)
            started = time.perf_counter()
            totals = dispatcher.drain()
            elapsed = time.perf_counter() - started
            dispatcher.close()
    finally:
        answered = stop_fake_server(server)
    fastest = window * (math.ceil(totals.calls / limit) - 1)
    per_minute = totals.synced / elapsed * window
    print(
        f"(b) {totals.synced:,} jobs in {totals.calls} bulk calls, limit {limit}/min with time"
        f" x{time_scale:g} (a minute = {window:g} s), shared limit in PostgreSQL:"
        f" {elapsed:.2f} s, the limit allows {fastest:.2f} s at best;"
        f" ratio {fastest / elapsed:.2f} (target >= 0.90); {per_minute:,.0f} jobs per (scaled)"
        f" minute; 429 answers: {client.throttled} seen by the client,"
        f" {answered['statuses'].get('429', 0)} given by the fake"
    )
    print(f"    {_profile(answered, window)}")


def bench_processes(url: str, jobs: int, limit: int, processes: int) -> None:
    """`processes` dispatcher processes (`harness run shipments`) share DeTrack's limit through
    PostgreSQL, in real minutes. Timed from the fake's first request (the limit's window starts
    there; interpreter start-up is not the limit's) to the last job recorded synced."""
    _pending_jobs(url, jobs)
    server, base_url = start_fake_server(limit)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DETRACK_BASE_URL": base_url,
        "DETRACK_API_KEY": API_KEY,
        "DETRACK_RATE_LIMIT_PER_MINUTE": str(limit),
    }
    with contextlib.ExitStack() as files:
        logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(processes)]
        workers: list[subprocess.Popen] = []
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                launched = time.monotonic()
                for n, log in enumerate(logs, start=1):
                    workers.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "harness", "run", "shipments"],
                            env={**env, "PGFERRY_WORKER_ID": f"bench-{n}"},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
                # done when no job is pending any more (or every dispatcher gave up)
                while _count(conn, "pending") and any(w.poll() is None for w in workers):
                    time.sleep(0.05)
                done = time.monotonic()
                synced, pending = _count(conn, "synced"), _count(conn, "pending")
                codes = [w.wait(timeout=120) for w in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
                    worker.wait()
            answered = stop_fake_server(server)
        summaries = []
        for log in logs:
            log.seek(0)
            lines = [line for line in log.read().splitlines() if line.startswith("shipments:")]
            summaries.append(lines[-1] if lines else "(no summary)")
    calls = math.ceil(jobs / 100)  # bulk calls of 100 jobs: what the limit must let through
    fastest = 60.0 * (math.ceil(calls / limit) - 1)
    elapsed = done - answered["first_at"]
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(answered["statuses"].items()))
    print(
        f"(d) {processes} dispatcher processes, {synced:,} jobs synced ({pending} pending),"
        f" limit {limit}/min in real minutes shared in PostgreSQL: {elapsed:.2f} s from the"
        f" first request to the last job recorded ({done - launched:.2f} s from launching the"
        f" processes), the limit allows {fastest:.2f} s at best; ratio {fastest / elapsed:.2f}"
        f" (target >= 0.95); 429 answers given by the fake:"
        f" {answered['statuses'].get('429', 0)} (target 0)"
    )
    print(f"    the fake answered {answered['requests']} requests ({statuses}); exit codes {codes}")
    print(f"    {_profile(answered, 60.0)}")
    for n, line in enumerate(summaries, start=1):
        print(f"    process {n}: {line}")


def _count(conn: psycopg.Connection, state: str) -> int:
    sql = "SELECT count(*) FROM delivery.job WHERE sync_state = %s"
    return conn.execute(sql, [state]).fetchone()[0]


def bench_latency(url: str, samples: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        _reset(conn)
    with DetrackFake(api_key=API_KEY, rate_limit_per_minute=6000) as fake:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DETRACK_BASE_URL": fake.base_url,
            "DETRACK_API_KEY": API_KEY,
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "shipments", "--loop"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            latencies = _measure(url, fake, samples)
        finally:
            worker.terminate()
            worker.wait()
    p50, p95, top = _percentiles(latencies)
    print(
        f"(c) ERP insert -> DeTrack job, idle system, {len(latencies)} shipments:"
        f" p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {top:.0f} ms (target p95 <= 1000 ms)"
    )


def _measure(
    url: str, fake: DetrackFake, samples: int, first: int = 20_000_000, settle: float = 1.5
) -> list[float]:
    latencies = []
    with psycopg.connect(url, autocommit=True) as conn:
        time.sleep(settle)  # let the worker start and LISTEN (measurement setup, not a test)
        for n in range(samples):
            number = first + n
            started = time.perf_counter()
            conn.execute(INSERT_SQL.format(first=number, last=number, qualifying_percent=100))
            do_number = f"DO-{number}"
            while fake.job(do_number, _date(number)) is None:
                if time.perf_counter() - started > 10:
                    raise RuntimeError(f"{do_number} never reached DeTrack")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.3)  # idle between shipments
    return latencies


def _percentiles(latencies: list[float]) -> tuple[float, float, float]:
    """p50, p95 (nearest rank) and max, in ms."""
    ordered = sorted(latencies)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered) * 1000, p95 * 1000, ordered[-1] * 1000


def bench_side_by_side(url: str, permits: int, samples: int) -> None:
    """`harness run --loop` with both pipelines while `permits` drain to S3: ERP insert to
    DeTrack job latency, measured only while the permits are still draining."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    moto, endpoint = start_moto()
    worker = None
    try:
        make_s3_client(endpoint).create_bucket(Bucket="bench")
        with psycopg.connect(url, autocommit=True) as conn:
            _reset(conn)
            conn.execute("TRUNCATE permit.permit, permit.document CASCADE")
            staged_at = time.perf_counter()
            stage(conn, permits, first=30_000_000)  # an open run: start, COPY, end_process
            staged = time.perf_counter() - staged_at
        with DetrackFake(api_key=API_KEY, rate_limit_per_minute=6000) as fake:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "DETRACK_BASE_URL": fake.base_url,
                "DETRACK_API_KEY": API_KEY,
                "S3_ENDPOINT_URL": endpoint,
                "S3_BUCKET": "bench",
                "PERMITS_UPLOAD_CONCURRENCY": "8",
                "PERMITS_BATCH_SIZE": "50",
            }
            started = time.perf_counter()
            worker = subprocess.Popen(
                [sys.executable, "-m", "harness", "run", "--loop"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            with psycopg.connect(url, autocommit=True) as conn:
                # the measurement starts once both pipelines LISTEN and permits are moving
                while (
                    conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = 'pgferry-listen'"
                    ).fetchone()[0]
                    < 2
                    or _moved(conn) < 100
                ):
                    if worker.poll() is not None or time.perf_counter() - started > 60:
                        raise RuntimeError("the worker did not start draining permits")
                    time.sleep(0.05)
                before, measuring = _moved(conn), time.perf_counter()
                latencies = _measure(url, fake, samples, first=30_000_000, settle=0)
                after, measured = _moved(conn), time.perf_counter() - measuring
                while _moved(conn) < permits:  # the permits' drain, for its rate beside DeTrack
                    if time.perf_counter() - started > 600:
                        raise RuntimeError("the permits did not drain in 10 minutes")
                    time.sleep(0.2)
                drained = time.perf_counter() - started
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait()
        moto.terminate()
        moto.wait()
    p50, p95, top = _percentiles(latencies)
    print(
        f"(e) `harness run --loop`, both pipelines, {permits:,} x {PDF_SIZE // 1000} KB permits"
        f" draining to moto S3 (staged in {staged:.0f} s): ERP insert -> DeTrack job,"
        f" {len(latencies)} shipments 0.3 s apart: p50 {p50:.0f} ms, p95 {p95:.0f} ms, max"
        f" {top:.0f} ms (target p95 <= 1000 ms)"
    )
    print(
        f"    permits moved: {before:,} when the first shipment was inserted, {after:,} after the"
        f" last one reached DeTrack {measured:.1f} s later (of {permits:,}:"
        f" {(after - before) / measured:,.0f} a second meanwhile); all {permits:,} moved"
        f" {drained:.1f} s after the worker started ({permits / drained:,.0f} a second)"
    )


def _moved(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0]


def _date(number: int) -> str:
    return (date(2026, 11, 23) + timedelta(days=number % 30)).isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed inserts of each kind")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=60, help="requests per minute")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--latency", type=int, default=40, help="shipments timed in (c) and (e)")
    parser.add_argument("--processes", type=int, default=3, help="dispatcher processes in (d)")
    parser.add_argument("--side-permits", type=int, default=10_000, help="permits draining in (e)")
    parser.add_argument("--only", default="abcde", help="the scenarios to run, e.g. 'de'")
    args = parser.parse_args()
    with scratch_database() as url:
        if "a" in args.only:
            bench_trigger_chain(url, args.rows, args.repeats)
        if "b" in args.only:
            bench_dispatch(url, args.jobs, args.limit, args.time_scale)
        if "c" in args.only:
            bench_latency(url, args.latency)
        if "d" in args.only:
            bench_processes(url, args.jobs, args.limit, args.processes)
        if "e" in args.only:
            bench_side_by_side(url, args.side_permits, args.latency)


if __name__ == "__main__":
    main()
