"""Benchmark: the file importer on one large gzipped CSV against the bare pipe
`gunzip -c FILE | psql -c "COPY ... FROM STDIN"` of the same file.

Input: a gzipped CSV (pid, address, assessed, zoned, updated; N rows, default 10,000,000, about
1 GB unpacked) written in a folder, streaming. The bare pipe COPYs it into an empty table shaped
like the target (primary key pid). The importer (harness.files.importer.Importer, in this
process) takes it through every step: the folder source and SHA-256, then one read of the file
that checks it (gzip to its CRC, the caps, the CSV) and COPYs it straight into the empty target
(harness.di.first_load), the raw copy to SeaweedFS (`weed mini`, a separate process, so its
memory is not this process's), and the commit. The bare pipe runs before and after each import
and the import --repeat times (3), alternated, so that the machine's drift (checkpoints, the
page cache, other work) hits both; the ratio is of the medians.
Peak RSS is this process's (ru_maxrss) after the imports, measured before anything else big.
Targets: peak RSS <= 200 MB; import throughput >= 0.70 of the bare pipe's.

    BENCH_SERVER_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.files
    .venv/bin/python -m bench.files --rows 1000000
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import scratch_database
from harness.files.importer import Importer, RawStore, discover, load_sources
from harness.s3 import make_client

TARGET_RSS_MIB = 200
TARGET_RATIO = 0.70
TABLE = """
CREATE TABLE {name} (
    pid         integer PRIMARY KEY,
    address     text NOT NULL,
    assessed    numeric(14, 2),
    zoned       text,
    updated     date{stamps}
)
"""
STAMPS = (
    ", inserted_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, deleted_at timestamptz"
)
HEADER = "pid,address,assessed,zoned,updated\n"
ZONES = ("RS-1", "RS-2", "C-2", "I-1", "RT-5")


def write_file(path: Path, rows: int) -> None:
    """The gzipped CSV, written a block of rows at a time (flat memory)."""
    with gzip.open(path, "wt", compresslevel=6, newline="") as out:
        out.write(HEADER)
        block = 100_000
        for start in range(1, rows + 1, block):
            out.write(
                "".join(
                    f'{n},"{n} Main Street, Victoria BC",{n * 3.25:.2f},{ZONES[n % 5]},'
                    f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}\n"
                    for n in range(start, min(start + block, rows + 1))
                )
            )


def bare_pipe(url: str, path: Path) -> float:
    """gunzip | psql COPY into an empty table shaped like the target."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bare")
        conn.execute(TABLE.format(name="bare", stamps=""))
        conn.execute("CHECKPOINT")
    started = time.perf_counter()
    gunzip = subprocess.Popen(["gunzip", "-c", str(path)], stdout=subprocess.PIPE)
    subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            "COPY bare FROM STDIN WITH (FORMAT csv, HEADER)",
        ],
        stdin=gunzip.stdout,
        check=True,
    )
    gunzip.wait()
    return time.perf_counter() - started


def import_once(conn: psycopg.Connection, client: object, work: Path, rows: int) -> float:
    """The file listed and imported into the emptied target (the files forgotten first, so
    the same content is not a duplicate); the seconds it took."""
    conn.execute("DELETE FROM files.file")
    conn.execute("TRUNCATE app.property")
    conn.execute("CHECKPOINT")
    started = time.perf_counter()
    discover(conn, load_sources(conn)["bench"])
    outcomes = Importer(conn, RawStore(client, "raw"), work, "bench").run_once()
    seconds = time.perf_counter() - started
    loaded = conn.execute("SELECT count(*) FROM app.property").fetchone()[0]
    if dict(outcomes) != {"imported": 1} or loaded != rows:
        raise RuntimeError(f"import: {dict(outcomes)}, {loaded:,} rows of {rows:,}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="imports, each between two bare pipes"
    )
    args = parser.parse_args()
    from tests.support.seaweedfs import SeaweedS3

    work = Path(tempfile.mkdtemp(prefix="pgferry-bench-files-"))
    incoming = work / "incoming"
    incoming.mkdir()
    path = incoming / "property.csv.gz"
    try:
        started = time.perf_counter()
        write_file(path, args.rows)
        print(
            f"file: {path.stat().st_size / 2**20:,.1f} MiB gzipped, {args.rows:,} rows,"
            f" written in {time.perf_counter() - started:.1f} s"
        )
        with scratch_database() as url, SeaweedS3() as weed:
            os.environ.update(weed.env())
            os.environ["PGFERRY_FILES_BENCH_URL"] = incoming.as_uri()
            client = make_client(weed.endpoint_url)
            client.create_bucket(Bucket="raw")
            client.put_object(Bucket="raw", Key="warm-up", Body=b"x")  # the bucket's volumes
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE SCHEMA app")
                conn.execute(TABLE.format(name="app.property", stamps=STAMPS))
                conn.execute("SELECT files.define_source('bench', 'app.property')")
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                pipes, imports = [bare_pipe(url, path)], []
                for _ in range(args.repeat):  # alternated: the machine's drift hits both
                    imports.append(import_once(conn, client, work, args.rows))
                    pipes.append(bare_pipe(url, path))
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                steps = conn.execute(
                    "SELECT step, extract(epoch FROM at - lag(at) OVER (ORDER BY journal_id))"
                    " FROM etl.journal WHERE pipeline = 'files' AND item_id ="
                    " (SELECT max(item_id) FROM etl.journal WHERE pipeline = 'files')"
                    " ORDER BY journal_id"
                ).fetchall()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pipe, seconds = statistics.median(pipes), statistics.median(imports)
    ratio = pipe / seconds
    print(
        f"bare pipe gunzip | psql COPY : {pipe:7.1f} s  {args.rows / pipe:12,.0f} rows/s"
        f"   (median of {', '.join(f'{p:.1f}' for p in pipes)} s)"
    )
    print(
        f"harness files import        : {seconds:7.1f} s  {args.rows / seconds:12,.0f} rows/s"
        f"   (median of {', '.join(f'{i:.1f}' for i in imports)} s)"
    )
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"ratio import / bare pipe    : {ratio:.2f}   (target >= {TARGET_RATIO:.2f}: {verdict})")
    print("steps (the time since the previous one, from the journal):")
    for step, since in steps[1:]:
        print(f"  {step:<11} {since:7.1f} s")
    verdict = "met" if peak <= TARGET_RSS_MIB else "MISSED"
    print(
        f"peak RSS of this process    : {peak:,.0f} MiB (before the import {rss_before:,.0f} MiB;"
        f" target <= {TARGET_RSS_MIB}: {verdict})"
    )


if __name__ == "__main__":
    main()
