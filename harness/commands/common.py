"""What every command shares: the two consoles, exit codes, the database and its revision.

Results (status, summaries, findings, reports) go to stdout through ``out``, so that
``harness status > file`` captures them; logs, progress bars, warnings and errors go to stderr
through ``console``. Faults are described in one place, harness.commands.faults.
"""

from __future__ import annotations

import sys

import psycopg
from rich.console import Console

from harness import connections
from harness.config import collect, database_url, redacted

# Exit codes a scheduler can act on (harness.runtime.outcome has the table for `harness run`).
EXIT_OK = 0
EXIT_PROBLEM = 1  # the job ran and found a problem: drift, dead letters, failed items
EXIT_CONFIG = 2  # configuration or usage error: fix the settings, rerunning will not help
EXIT_UNREACHABLE = 3  # the database or a destination could not be reached: work waits

# soft_wrap: long lines stay whole in logs and pipes; 120 columns when not on a terminal
console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 120)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)


class SchemaNotReady(Exception):
    """The database is not at the revision this harness was built for."""


def require_database_url() -> str:
    """DATABASE_URL, checked (a ConfigurationError names what is wrong with it)."""
    return database_url()


def require_database() -> str:
    """DATABASE_URL of a database at this harness's head revision (else SchemaNotReady)."""
    url = require_database_url()
    check_revision(url)
    return url


def check_revision(url: str) -> None:
    """Refuse a database that was never migrated, is behind, or is ahead of this harness."""
    from alembic.script import ScriptDirectory

    from harness.deploy import migrate

    current = _stamped_revision(url)
    scripts = ScriptDirectory.from_config(migrate.alembic_config(None))
    head = scripts.get_current_head()
    if current == head:
        return
    where = redacted(url)
    if current is None:
        raise SchemaNotReady(
            f"the database {where} has no pgferry schema (never migrated): run `harness db upgrade`"
        )
    if current in {script.revision for script in scripts.walk_revisions()}:
        raise SchemaNotReady(
            f"the database {where} is at revision {current} and this harness needs {head}:"
            " run `harness db upgrade`"
        )
    raise SchemaNotReady(
        f"the database {where} is at revision {current}, newer than this harness ({head}):"
        " upgrade pgferry"
    )


def _stamped_revision(url: str) -> str | None:
    """The revision in public.alembic_version (None: never migrated). A pgferry_worker that
    may not read it is on a database deployed before revision 0009 granted it: behind."""
    with connections.connect(url, autocommit=True) as connection:
        if connection.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0] is None:
            return None
        try:
            row = connection.execute("SELECT version_num FROM public.alembic_version").fetchone()
        except psycopg.errors.InsufficientPrivilege:
            if not _is_member(connection, "pgferry_worker"):
                raise  # a user that is no pgferry role: the fault says which to grant
            raise SchemaNotReady(
                f"the database {redacted(url)} is behind this harness (its revision table is"
                " not readable by pgferry_worker yet): run `harness db upgrade`"
            ) from None
        return row[0] if row else None


def _is_member(connection: psycopg.Connection, role: str) -> bool:
    exists = connection.execute("SELECT to_regrole(%s) IS NOT NULL", [role]).fetchone()[0]
    return (
        bool(exists) and connection.execute("SELECT pg_has_role(%s, 'USAGE')", [role]).fetchone()[0]
    )


def start_worker(
    console: Console, results: Console, *, loop: bool = False, pipelines: list[str] | None = None
) -> int:
    """`harness run ...`: DATABASE_URL and every setting checked together (all problems at
    once), the database's revision checked, then the worker; its exit code
    (harness.runtime.outcome)."""
    from harness.ops import logs
    from harness.runtime.worker import load_settings, run_worker

    url, settings = collect(require_database_url, lambda: load_settings(pipelines))
    check_revision(url)
    logs.configure()
    return run_worker(url, console, settings=settings, loop=loop, results=results)
