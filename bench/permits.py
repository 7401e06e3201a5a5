"""Benchmark: permits with 50 KB PDFs drained to a loopback S3 server, against a bare boto3
upload loop of the same objects at the same concurrency; and the harness's peak RSS while
draining a large backlog.

    python -m bench.permits [--permits 2000] [--rss-permits 10000] [--concurrency 8]

The S3 server is moto's, started in its own process on 127.0.0.1 so it does not share the
benchmark's interpreter. Targets: harness >= 0.8 of the bare loop; peak RSS <= 250 MB.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psycopg

from bench.common import scratch_database
from harness.config import PermitSettings
from harness.demo.samples import sample_pdf
from harness.permits.consumer import PermitConsumer
from harness.permits.store import PermitStore
from harness.permits.upload import PermitUploader
from harness.s3 import make_client

PDF_SIZE = 50_000


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # readiness: the server answers
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return server, endpoint
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stage(conn: psycopg.Connection, count: int, first: int = 1) -> int:
    """Play the loader: one run with ``count`` permits, staged with COPY."""
    process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
    with conn.cursor().copy(
        "COPY tps.staged_permit (process_id, permit_number, permit_generation, pdf)"
        " FROM STDIN (FORMAT binary)"
    ) as copy:
        copy.set_types(["bigint", "text", "smallint", "bytea"])
        for n in range(first, first + count):
            copy.write_row([process_id, f"B{n:09d}", 1, sample_pdf(f"B{n:09d}", PDF_SIZE)])
    conn.execute("SELECT etl.end_process(%s, 'succeeded', %s)", [process_id, count])
    return process_id


def bare_boto3(endpoint: str, bucket: str, count: int, concurrency: int, round_: int) -> float:
    """The same objects uploaded by a plain put_object loop; returns seconds."""
    client = make_client(endpoint)
    first = round_ * 1_000_000
    bodies = [sample_pdf(f"B{n:09d}", PDF_SIZE) for n in range(first, first + count)]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(
            pool.map(
                lambda item: client.put_object(
                    Bucket=bucket, Key=f"bare/{round_}/{item[0]}.pdf", Body=item[1]
                ),
                enumerate(bodies),
            )
        )
    return time.perf_counter() - started


def harness_drain(url: str, endpoint: str, bucket: str, concurrency: int) -> tuple[float, int]:
    settings = PermitSettings(upload_concurrency=concurrency, batch_size=50)
    with psycopg.connect(url, autocommit=True) as conn:
        uploader = PermitUploader(make_client(endpoint), bucket, "permits/")
        consumer = PermitConsumer(PermitStore(conn), uploader, settings, "bench")
        started = time.perf_counter()
        totals = consumer.drain()
        elapsed = time.perf_counter() - started
        consumer.close()
    return elapsed, totals.moved


def harness_rss(url: str, endpoint: str, bucket: str, concurrency: int) -> tuple[float, str]:
    """Run `harness run permits` as its own process; its own peak RSS in MB (wait4), and its
    RSS sampled through the run (flat means memory does not grow with the backlog)."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "S3_ENDPOINT_URL": endpoint,
        "S3_BUCKET": bucket,
        "PERMITS_UPLOAD_CONCURRENCY": str(concurrency),
        "PERMITS_BATCH_SIZE": "50",
    }
    started = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "permits"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples: list[float] = []
    sampler = threading.Thread(target=_sample_rss, args=(worker.pid, samples), daemon=True)
    sampler.start()
    stderr = worker.stderr.read()
    _, status, usage = os.wait4(worker.pid, 0)
    elapsed = time.perf_counter() - started
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"harness run permits failed:\n{stderr}")
    tenths = [
        max(samples[i * len(samples) // 10 : (i + 1) * len(samples) // 10] or [0])
        for i in range(10)
    ]
    profile = " ".join(f"{mb:.0f}" for mb in tenths)
    return usage.ru_maxrss / 1024, (
        f"{elapsed:.1f} s; RSS MB by tenth of the run: {profile}; {stderr.strip().splitlines()[-1]}"
    )


def _sample_rss(pid: int, samples: list[float]) -> None:
    status = f"/proc/{pid}/status"
    while True:
        try:
            with open(status) as file:
                line = next(line for line in file if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return
        samples.append(int(line.split()[1]) / 1024)
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--permits", type=int, default=2000)
    parser.add_argument("--rss-permits", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server, endpoint = start_moto()
    try:
        client = make_client(endpoint)
        client.create_bucket(Bucket="bench")
        with scratch_database() as url, psycopg.connect(url, autocommit=True) as conn:
            print(
                f"permits: {args.permits:,} x {PDF_SIZE // 1000} KB PDFs,"
                f" concurrency {args.concurrency}, moto S3 on loopback (own process)"
            )
            ratios = []
            for round_, harness_first in enumerate((False, True), start=1):
                stage(conn, args.permits, first=round_ * 1_000_000)
                timings = {}
                for which in ["harness", "bare"] if harness_first else ["bare", "harness"]:
                    if which == "bare":
                        timings[which] = bare_boto3(
                            endpoint, "bench", args.permits, args.concurrency, round_
                        )
                    else:
                        timings[which], moved = harness_drain(
                            url, endpoint, "bench", args.concurrency
                        )
                        assert moved == args.permits, moved
                ratios.append(timings["bare"] / timings["harness"])
                print(
                    f"round {round_} ({'harness' if harness_first else 'bare'} first):"
                    f" bare boto3 loop {args.permits / timings['bare']:6.1f} objects/s,"
                    f" harness {args.permits / timings['harness']:6.1f} permits/s,"
                    f" ratio {ratios[-1]:.2f}"
                )
            print(
                f"ratio harness / bare boto3 (mean of rounds): {sum(ratios) / len(ratios):.2f}"
                "   (target >= 0.80)"
            )

            stage(conn, args.rss_permits, first=10_000_000)
            rss, summary = harness_rss(url, endpoint, "bench", args.concurrency)
            print(
                f"`harness run permits` draining {args.rss_permits:,} permits: peak RSS"
                f" {rss:.0f} MB (target <= 250 MB); {summary}"
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
