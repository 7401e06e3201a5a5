"""The pgferry database as an Airflow connection (default id ``pgferry_default``): host, port,
login, password and schema (the database name) of any connection type, and libpq parameters
(sslmode, sslrootcert, application_name, ...) in its extra. The password stays inside the
process: it is never put into a log, an XCom or a trigger's stored arguments (triggers are
given the connection id and look it up themselves)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from airflow.sdk import BaseHook, Connection

DEFAULT_CONN_ID = "pgferry_default"


class PgferryHook(BaseHook):
    conn_name_attr = "pgferry_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "pgferry"
    hook_name = "pgferry"

    def __init__(self, pgferry_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pgferry_conn_id = pgferry_conn_id

    def database_url(self) -> str:
        """The libpq URL of the connection (with its password: never print it)."""
        return database_url(self.get_connection(self.pgferry_conn_id))

    async def adatabase_url(self) -> str:
        """database_url, for a trigger's event loop."""
        return database_url(await self.aget_connection(self.pgferry_conn_id))

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Database", "login": "User"},
            "placeholders": {"extra": '{"sslmode": "verify-full", "application_name": "airflow"}'},
        }


def database_url(connection: Connection) -> str:
    """postgresql://user:password@host:port/database?params: user, password, database and
    parameters percent-encoded (a space as %20: libpq reads no +), an IPv6 host in brackets,
    and a host that is a directory (a Unix socket) among the parameters, as libpq wants it."""
    host = connection.host or ""
    params: dict[str, Any] = {str(k): v for k, v in connection.extra_dejson.items()}
    if host.startswith("/"):
        params["host"], host = host, ""
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    userinfo = quote(connection.login or "", safe="")
    if connection.password:
        userinfo += ":" + quote(connection.password, safe="")
    netloc = (userinfo + "@" if userinfo else "") + host
    if connection.port and host:
        netloc += f":{connection.port}"
    elif connection.port:
        params["port"] = connection.port
    query = "?" + urlencode(params, quote_via=quote, safe="/") if params else ""
    return f"postgresql://{netloc}/{quote(connection.schema or '', safe='')}{query}"
