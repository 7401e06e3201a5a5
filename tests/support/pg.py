"""Helpers for tests that talk to a real PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from harness.config import url_for_database
from harness.demo.embedded import BIN_DIR


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


@contextmanager
def scratch_database(server_url: str, template: str | None = None) -> Iterator[str]:
    """A new database (optionally a copy of ``template``), dropped afterwards."""
    name = f"pgferry_test_{uuid.uuid4().hex[:12]}"
    with connect(server_url) as admin:
        clause = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{clause}')
    try:
        yield url_for_database(server_url, name)
    finally:
        with connect(server_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema_dump(url: str) -> str:
    """The schema as pg_dump writes it (privileges included), for comparing two databases."""
    output = subprocess.run(
        [str(BIN_DIR / "pg_dump"), "--schema-only", "--no-owner", "--dbname", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # pg_dump 17.6+/18 wraps the dump in \restrict <random key>, which differs every run; some
    # server builds stamp each column with a per-creation pg_attver option. Neither is schema.
    return re.sub(
        r"^(\\(un)?restrict .*|.*SET \(pg_attver=\d+\);)$", "", output, flags=re.MULTILINE
    )


def psql_file(url: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN_DIR / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", url, "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
    )


@contextmanager
def a_login_role(server_url: str, options: str = "") -> Iterator[str]:
    """A login role made with ``options`` (e.g. ``IN ROLE pgferry_worker``), dropped after."""
    name = f"pgferry_test_{uuid.uuid4().hex[:8]}"
    with connect(server_url) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN {options}")
    try:
        yield name
    finally:
        with connect(server_url) as admin:
            admin.execute(f"DROP ROLE {name}")
