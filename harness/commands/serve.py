"""`harness serve`: the web console (the optional `web` extra).

Binds 127.0.0.1:8080 unless told otherwise; a host other than loopback needs --allow-remote
(and a TLS proxy in front: the console speaks plain HTTP). Before serving, it checks that the
database server checks passwords, since a console login is a database login: on a server with
trust or peer authentication anyone could log in as anyone, so it refuses to start there unless
--trust-server-auth is given (local use, tests)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from harness.commands.common import console, require_database
from harness.config import ConfigurationError, redacted

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool) -> None:
    if is_loopback(host):
        return
    if not allow_remote:
        raise ConfigurationError(
            f"--host {host} is not a loopback address: the console would be reachable from"
            " other machines; pass --allow-remote as well (behind a TLS proxy)"
        )
    console.print(
        f"warning: serving on {host}: the console speaks plain HTTP, so passwords and session"
        " cookies cross the network in clear unless a TLS proxy (nginx, Caddy) terminates"
        " HTTPS in front of it; bind to 127.0.0.1 behind the proxy where you can"
    )


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to bind.")
    ] = DEFAULT_PORT,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a host other than loopback.")
    ] = False,
    trust_server_auth: Annotated[
        bool,
        typer.Option(
            "--trust-server-auth",
            help="Start even though the database accepts wrong passwords (local use, tests).",
        ),
    ] = False,
) -> None:
    """The web console: overview, runs. Users log in with their PostgreSQL role and password
    (members of pgferry_viewer read, of pgferry_operator act). Ctrl-C stops it."""
    check_bind(host, allow_remote)
    # the web extra first: a missing package is said before the database is touched
    import uvicorn

    from harness.console.app import create_app
    from harness.console.db import server_checks_passwords
    from harness.console.settings import load_settings

    url = require_database()
    settings = load_settings(url, trust_server_auth=trust_server_auth)
    if not server_checks_passwords(settings):
        if not trust_server_auth:
            raise ConfigurationError(untrusted_message(url))
        console.print(
            "warning: the database accepts any password (--trust-server-auth): anyone who"
            " reaches the console can log in as any role"
        )
    console.print(f"pgferry console on http://{host}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        server_header=False,
        proxy_headers=True,  # X-Forwarded-Proto from a proxy on 127.0.0.1: Secure cookies
    )


def untrusted_message(url: str) -> str:
    return (
        f"the database server of {redacted(url)} accepted a wrong password (trust or peer"
        " authentication), so anyone could log in to the console as anyone: refusing to start"
        " (--trust-server-auth allows it, for local use only)"
    )
