"""One way to open a connection to a PostgreSQL database, fit for PgBouncer in transaction
pooling mode: psycopg prepares a statement on the server once it has run it five times, and a
pooled server connection may not hold it (or hold another's of the same name); so nothing is
prepared. pgferry's statements are few and large (a batch each), so preparing saved little."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg


def connect(conninfo: str = "", **kwargs: Any) -> psycopg.Connection:
    """psycopg.connect, with no server-side prepared statements."""
    return psycopg.connect(conninfo, prepare_threshold=None, **kwargs)


def same_server(connection: psycopg.Connection) -> Callable[[], psycopg.Connection]:
    """Opens another autocommit connection with ``connection``'s parameters."""
    info = connection.info
    return partial(connect, info.dsn, password=info.password, autocommit=True)


async def connect_async(conninfo: str = "", **kwargs: Any) -> psycopg.AsyncConnection:
    """psycopg.AsyncConnection.connect, with no server-side prepared statements."""
    return await psycopg.AsyncConnection.connect(conninfo, prepare_threshold=None, **kwargs)
