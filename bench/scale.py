"""Benchmark: scaling out (issue 15). Permits drained by 1, 2 and 4 worker processes
(`harness run permits`, each a one-off run that ends when nothing is left to claim) against
SeaweedFS; shipments sent to the DeTrack fake by 1 and 3 dispatcher processes under one limit
shared in PostgreSQL (bench.shipments' scenario (d)).

    BENCH_SERVER_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.scale

On a 2-core machine more processes than cores share the cores with PostgreSQL and SeaweedFS:
the figures say what a second and a fourth worker add there, not on a larger machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import psycopg

from bench.common import scratch_database
from bench.permits import stage
from bench.shipments import bench_processes
from harness.s3 import make_client


def drain_with(url: str, env: dict[str, str], processes: int, first: int, permits: int) -> float:
    """``permits`` staged, then drained by ``processes`` one-off workers; seconds from launch to
    the last one's exit (each exits when nothing is left to claim)."""
    with psycopg.connect(url, autocommit=True) as conn:
        stage(conn, permits, first)
        moved_before = conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0]
        conn.execute("CHECKPOINT")
        started = time.perf_counter()
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "harness", "run", "permits"],
                env={**env, "PGFERRY_WORKER_ID": f"bench-{n}"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(processes)
        ]
        failures = [w.stderr.read()[-2000:] for w in workers if w.wait() != 0]
        seconds = time.perf_counter() - started
        moved = conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0] - moved_before
    if failures or moved != permits:
        raise RuntimeError(f"{moved:,} of {permits:,} moved; {failures}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--permits", type=int, default=4000)
    parser.add_argument("--jobs", type=int, default=12_000)
    parser.add_argument("--limit", type=int, default=60, help="DeTrack requests per minute")
    args = parser.parse_args()
    from tests.support.seaweedfs import SeaweedS3

    with scratch_database() as url, SeaweedS3() as weed:
        os.environ.update(weed.env())  # its credentials, for this process's client too
        client = make_client(weed.endpoint_url)
        client.create_bucket(Bucket="permits")
        env = {
            **os.environ,
            **weed.env(),
            "DATABASE_URL": url,
            "S3_ENDPOINT_URL": weed.endpoint_url,
            "S3_BUCKET": "permits",
            "PERMITS_BATCH_SIZE": "50",
            "PERMITS_UPLOAD_CONCURRENCY": "8",
        }
        print(
            f"permits: {args.permits:,} of 50 kB each, SeaweedFS (`weed mini`), batch 50, 8 uploads"
        )
        base = None
        for round_, processes in enumerate((1, 2, 4)):
            seconds = drain_with(url, env, processes, 1 + round_ * 1_000_000, args.permits)
            rate = args.permits / seconds
            base = base or rate
            print(
                f"  {processes} worker process(es): {seconds:6.1f} s  {rate:8,.0f} permits/s"
                f"  ({rate / base:.2f}x one)"
            )
        print(f"shipments: {args.jobs:,} jobs, DeTrack limit {args.limit}/min shared in PostgreSQL")
        for processes in (1, 3):
            bench_processes(url, args.jobs, args.limit, processes)


if __name__ == "__main__":
    main()
