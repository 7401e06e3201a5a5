"""Benchmark: `harness cutover verify` of one source table against its STG table.

Targets (seed 001's cutover check, on this 2-core machine): 1,000,000 identical rows verified in
≤ 3 s; with 10 differences (3 missing, 3 extra, 4 changed rows) located to their keys in ≤ 10 s.

Seed: a source database (a scratch database beside the target) with app.users (id, name, email,
score, created_at, updated_at; --rows rows, generate_series) and the target's stg.users filled
with the same values (set-based, not through a DI run, to keep the bench about the verify); a
DI process declared for them and one succeeded run recorded (etl.start_process, etl.end_di_run)
so the watermark is set; VACUUM ANALYZE on both. Then verify_cutover() end to end (what the
command runs: both sides' segment sums in parallel, the check recorded), --repeat times; then
10 differences injected into STG and verified --repeat times, checking that exactly their keys
are named.

    BENCH_SERVER_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.cutover
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg

from bench.common import scratch_database
from harness.config import url_for_database
from harness.di.cutover import CutoverReport, verify_cutover
from harness.di.metadata import load_processes

SOURCE = """
CREATE SCHEMA app;
CREATE TABLE app.users (id integer PRIMARY KEY, name text NOT NULL, email text,
                        score numeric(10, 2), created_at timestamptz NOT NULL,
                        updated_at timestamptz NOT NULL);
INSERT INTO app.users
SELECT g, 'user ' || g, 'u' || g || '@example.com', (g % 100000) / 100.0,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
       timestamptz '2026-06-01 00:00:00+00' + g * interval '1 second'
  FROM generate_series(1, %(rows)s) AS g;
"""
TARGET = """
CREATE SCHEMA stg;
CREATE TABLE stg.users (id integer PRIMARY KEY, name varchar(40) NOT NULL, email text,
                        score numeric(10, 2), created_at timestamptz,
                        inserted_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
                        deleted_at timestamptz);
INSERT INTO stg.users
SELECT g, 'user ' || g, 'u' || g || '@example.com', (g % 100000) / 100.0,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', now(), now(), NULL
  FROM generate_series(1, %(rows)s) AS g;
SELECT etl.define_di_process('users', 'stg.users', 'bench', 'app.users',
                             p_cdc_column => 'updated_at');
SELECT etl.end_di_run(etl.start_process('users'), 'succeeded', %(rows)s);
"""
# ids as fractions of the row count (%(rows)s, %(half)s, ...): the same spread at any --rows
DIFFERENCES = """
DELETE FROM stg.users WHERE id IN (11, %(half)s, %(rows)s - 1);
INSERT INTO stg.users (id, name, inserted_at, updated_at)
SELECT g, 'extra', now(), now() FROM generate_series(%(rows)s + 1, %(rows)s + 3) AS g;
UPDATE stg.users SET email = 'changed@example.com' WHERE id IN (7, %(eighth)s);
UPDATE stg.users SET score = score + 0.01 WHERE id = %(five_eighths)s;
UPDATE stg.users SET name = 'user X' WHERE id = %(seven_eighths)s;
"""


def seed(server_url: str, target_url: str, rows: int) -> str:
    name = f"pgferry_bench_source_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    source_url = url_for_database(server_url, name)
    for url, script in ((source_url, SOURCE), (target_url, TARGET)):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(script.replace("%(rows)s", str(rows)).encode())
            conn.execute("VACUUM ANALYZE")
    os.environ["PGFERRY_SOURCE_BENCH_URL"] = source_url
    return name


def measure(target_url: str, repeat: int, label: str) -> CutoverReport:
    with psycopg.connect(target_url, autocommit=True) as conn:
        processes = load_processes(conn)
    verify_cutover(target_url, processes)  # warm-up: caches as a second run of the day sees them
    seconds, report = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        report = verify_cutover(target_url, processes)
        seconds.append(time.perf_counter() - started)
    table = report.tables[0]
    print(
        f"{label:<28} median {statistics.median(seconds):6.2f} s  min {min(seconds):6.2f} s"
        f"  max {max(seconds):6.2f} s   rows {table.source_rows:,}/{table.target_rows:,}"
        f"  differing segments {table.differing_segments}  counts {table.counts or '-'}"
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server_url = os.environ.get("BENCH_SERVER_URL")
    if not server_url:
        raise SystemExit("set BENCH_SERVER_URL: the source database is created beside the target")
    with scratch_database() as target_url:
        source_name = seed(server_url, target_url, args.rows)
        try:
            same = measure(target_url, args.repeat, "identical")
            assert same.passed, "identical tables must pass"
            with psycopg.connect(target_url, autocommit=True) as conn:
                ids = {
                    "rows": args.rows,
                    "half": args.rows // 2,
                    "eighth": args.rows // 8,
                    "five_eighths": args.rows * 5 // 8,
                    "seven_eighths": args.rows * 7 // 8,
                }
                script = DIFFERENCES
                for name, value in ids.items():
                    script = script.replace(f"%({name})s", str(value))
                conn.execute(script.encode())
            differing = measure(target_url, args.repeat, "10 differences")
            table = differing.tables[0]
            located = sorted(
                (kind, key["id"])
                for kind in ("missing", "extra", "changed")
                for key in getattr(table, kind)
            )
            print(f"located: {located}")
            assert table.counts == {"missing": 3, "extra": 3, "changed": 4}, table.counts
        finally:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{source_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
