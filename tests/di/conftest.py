"""The migration hub's parts for real: two source databases (qvp, svp) created on the test
server, the target at head, the object-storage layer on moto's S3 server over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from harness.di.metadata import DiProcess, find_process
from harness.di.run import DiRunResult, Layer, Progress, run_process
from harness.s3 import make_client
from tests.support.pg import connect, scratch_database

SOURCE_TABLE = """
CREATE SCHEMA app;
CREATE TABLE app.users (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    score       numeric(8, 2),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
"""
STG_TABLE = """
CREATE SCHEMA IF NOT EXISTS stg;
CREATE TABLE stg.{name} (
    id          integer PRIMARY KEY,
    name        varchar(40) NOT NULL,
    email       text,
    score       numeric(8, 2),
    created_at  timestamptz,
    inserted_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz
);
"""
# source and STG compared field by field (the STG's own stamps aside)
COMPARED = "id, name, email, score, created_at"


@dataclass
class Hub:
    target_url: str
    sources: dict[str, str]  # name -> URL
    layer: Layer

    def target(self) -> psycopg.Connection:
        return connect(self.target_url)

    def source(self, name: str = "qvp") -> psycopg.Connection:
        return connect(self.sources[name])

    def define(self, name: str, **arguments: object) -> DiProcess:
        """etl.define_di_process(name, ...) with the named arguments given, and its STG table
        stg.<name> created when missing."""
        arguments = {
            "target_table": f"stg.{name}",
            "source": "qvp",
            "source_table": "app.users",
            **arguments,
        }
        with self.target() as conn:
            if (
                arguments["target_table"].startswith("stg.")
                and conn.execute("SELECT to_regclass(%s)", [arguments["target_table"]]).fetchone()[
                    0
                ]
                is None
            ):
                conn.execute(STG_TABLE.format(name=name))
            named = ", ".join(f"p_{key} => %({key})s" for key in arguments)
            conn.execute(
                f"SELECT etl.define_di_process(%(name)s, {named})", {"name": name, **arguments}
            )
            return find_process(conn, name)

    def run(self, name: str, progress: Progress | None = None) -> DiRunResult:
        with self.target() as conn:
            return run_process(conn, find_process(conn, name), self.layer, progress)

    def stg_rows(self, name: str) -> list[tuple]:
        with self.target() as conn:
            return conn.execute(
                f"SELECT {COMPARED} FROM stg.{name} WHERE deleted_at IS NULL ORDER BY id"
            ).fetchall()

    def source_rows(self, source: str = "qvp", where: str = "deleted_at IS NULL") -> list[tuple]:
        with self.source(source) as conn:
            return conn.execute(
                f"SELECT {COMPARED} FROM app.users WHERE {where} ORDER BY id"
            ).fetchall()


def add_users(conn: psycopg.Connection, first: int, count: int, **values: object) -> None:
    """Users first..first+count-1, changed an hour ago unless ``values`` say otherwise."""
    conn.execute(
        "INSERT INTO app.users (id, name, email, score, created_at, updated_at)"
        " SELECT g, 'user ' || g, 'u' || g || '@example.com', g * 1.5,"
        "        now() - interval '2 days', coalesce(%(updated_at)s, now() - interval '1 hour')"
        "   FROM generate_series(%(first)s::int, %(first)s::int + %(count)s::int - 1) AS g",
        {"first": first, "count": count, "updated_at": values.get("updated_at")},
    )


@pytest.fixture
def hub(
    server_url: str,
    db_url: str,
    s3_endpoint: str,
    s3_credentials: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Hub]:
    client = make_client(s3_endpoint)
    bucket = f"layer-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    with scratch_database(server_url) as qvp, scratch_database(server_url) as svp:
        for url in (qvp, svp):
            with connect(url) as conn:
                conn.execute(SOURCE_TABLE)
        monkeypatch.setenv("PGFERRY_SOURCE_QVP_URL", qvp)
        monkeypatch.setenv("PGFERRY_SOURCE_SVP_URL", svp)
        yield Hub(db_url, {"qvp": qvp, "svp": svp}, Layer(client, bucket, "di/"))
