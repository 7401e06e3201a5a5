"""Benchmarks of the shipment pipeline.

(a) ERP bulk insert of N shipments (default 1,000,000) in one statement, with the chain's
    triggers against the same insert with the triggers disabled, alternating in the same run,
    the median of --repeats each. Both at 100 % qualifying shipments (the worst case: every row
    is recorded) and at a mix where a quarter qualify. Then the worker's half: the time
    delivery.sync_erp_changes takes to copy and map what the triggers recorded.
(b) Dispatch of 10,000 pending jobs to the DeTrack fake (its own process) under its limit of 60
    requests a minute, in real minutes (about a minute for 10,000 jobs): elapsed time against
    the fastest the limit allows. --time-scale N makes a minute last 60/N s for a quick run; it
    magnifies N times the time the calls of the last window take, which no client can avoid.
(c) Idle-system latency from an ERP insert to the job existing in DeTrack, with
    `harness run shipments --loop` waiting on LISTEN: p50 and p95 over 40 shipments.

    python -m bench.shipments [--rows 1000000] [--repeats 5] [--jobs 10000] [--limit 60]
        [--time-scale 1] [--latency 40]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta

import psycopg

from bench.common import scratch_database
from harness.detrack_fake import DetrackFake
from harness.leases import LeaseKeeper
from harness.shipments.client import DetrackClient, RetryPolicy
from harness.shipments.dispatcher import DispatchSettings, ShipmentDispatcher
from harness.shipments.limiter import SlidingWindowLimiter
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
    conn.execute("TRUNCATE erp.shipment, delivery.erp_change, delivery.shipment, delivery.job")


def _spread(seconds: list[float]) -> str:
    return "-".join(f"{s:.2f}" for s in sorted(seconds))


def _sync_all(conn: psycopg.Connection) -> tuple[int, float]:
    started = time.perf_counter()
    synced = 0
    while taken := conn.execute("SELECT delivery.sync_erp_changes()").fetchone()[0]:
        synced += taken
    return synced, time.perf_counter() - started


def bench_dispatch(url: str, jobs: int, limit: int, time_scale: float) -> None:
    """Dispatch under the rate limit with time scaled (a minute lasts 60 / time_scale s), so
    the limit binds: the fastest any client can go is one full window per `limit` calls after
    the first window's burst."""
    window = 60.0 / time_scale
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.detrack_fake",
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
    base_url = server.stdout.readline().strip()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            _reset(conn)
            conn.execute(
                INSERT_SQL.format(first=10_000_001, last=10_000_000 + jobs, qualifying_percent=100)
            )
            limiter = SlidingWindowLimiter(limit, window_seconds=window)
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
            _sync_all(conn)
            started = time.perf_counter()
            totals = dispatcher.drain()
            elapsed = time.perf_counter() - started
            dispatcher.close()
    finally:
        server.terminate()
        server.wait()
    fastest = window * (math.ceil(totals.calls / limit) - 1)
    per_minute = totals.synced / elapsed * window
    print(
        f"(b) {totals.synced:,} jobs in {totals.calls} bulk calls, limit {limit}/min with time"
        f" x{time_scale:g} (a minute = {window:g} s): {elapsed:.2f} s, the limit allows"
        f" {fastest:.2f} s at best; ratio {fastest / elapsed:.2f} (target >= 0.90);"
        f" {per_minute:,.0f} jobs per (scaled) minute; 429 answers: {client.throttled}"
    )


def bench_latency(url: str, samples: int) -> None:
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
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(
        f"(c) ERP insert -> DeTrack job, idle system, {len(latencies)} shipments:"
        f" p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        " (target p95 <= 1000 ms)"
    )


def _measure(url: str, fake: DetrackFake, samples: int) -> list[float]:
    latencies = []
    with psycopg.connect(url, autocommit=True) as conn:
        time.sleep(1.5)  # let the worker start and LISTEN (measurement setup, not a test)
        for n in range(samples):
            number = 20_000_000 + n
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


def _date(number: int) -> str:
    return (date(2026, 11, 23) + timedelta(days=number % 30)).isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed inserts of each kind")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=60, help="requests per minute")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--latency", type=int, default=40)
    args = parser.parse_args()
    with scratch_database() as url:
        bench_trigger_chain(url, args.rows, args.repeats)
        bench_dispatch(url, args.jobs, args.limit, args.time_scale)
        bench_latency(url, args.latency)


if __name__ == "__main__":
    main()
