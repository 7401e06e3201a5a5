"""Source databases by name: PGFERRY_SOURCE_<NAME>_URL in the environment, never stored in the
database. A source is read in READ ONLY, REPEATABLE READ transactions (one consistent snapshot
each; DI never writes to a source) with TEXT_OPTIONS, so the window's bounds mean the same
instants and values read the same whatever the source server's settings."""

from __future__ import annotations

import os

import psycopg

from harness import connections
from harness.config import ConfigurationError

# every session that reads for the hub renders values the same way: timestamps in UTC and ISO,
# intervals in PostgreSQL's form, floats exact (3: exact on servers before 12 too), bytea as
# hex (the CSV files and the cutover checksums depend on the text of each value, not on a
# server's configuration)
TEXT_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3"
    " -c bytea_output=hex"
)


def source_variable(name: str) -> str:
    return f"PGFERRY_SOURCE_{name.upper()}_URL"


def source_url(name: str) -> str:
    variable = source_variable(name)
    url = os.environ.get(variable, "").strip()
    if not url:
        raise ConfigurationError(
            f"{variable} is not set: the libpq URL of source database {name!r},"
            f" e.g. {variable}=postgresql://reader@source.example:5432/{name}"
        )
    return url


def connect_source(name: str) -> psycopg.Connection:
    return connect_reader(source_url(name))


def connect_reader(url: str) -> psycopg.Connection:
    """A connection whose every transaction() is one READ ONLY, REPEATABLE READ snapshot."""
    connection = connections.connect(url, autocommit=True, options=TEXT_OPTIONS)
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    return connection
