"""Shared bench plumbing: a scratch database on DATABASE_URL's server or an embedded one."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from harness.config import url_for_database
from harness.demo.embedded import EmbeddedServer
from harness.deploy import migrate


@contextmanager
def scratch_database() -> Iterator[str]:
    """A migrated database at head, dropped afterwards. Uses BENCH_SERVER_URL (a superuser URL)
    when set, else an embedded PostgreSQL."""
    server_url = os.environ.get("BENCH_SERVER_URL")
    if server_url:
        yield from _scratch_on(server_url)
        return
    with EmbeddedServer() as server:
        yield from _scratch_on(server.url)


def _scratch_on(server_url: str) -> Iterator[str]:
    name = f"pgferry_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        version = admin.execute("SHOW server_version").fetchone()[0]
    print(f"PostgreSQL {version}")
    url = url_for_database(server_url, name)
    try:
        migrate.upgrade(url)
        # settle the catalogs the migration churned now, not in autovacuum during the first
        # measurement (after 0008's larger migration that cost bench.merge ~5 % on PG 18)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def timed(label: str, results: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    results[label] = time.perf_counter() - started
