"""Alembic, driven from Python: the same revisions `alembic` runs from the command line."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from harness import connections
from harness.config import ConfigurationError
from harness.deploy.paths import SqlLayout, default_layout

LOCK_TIMEOUT_VARIABLE = "PGFERRY_MIGRATION_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_SECONDS = 300.0
# the session-level advisory lock every online upgrade or downgrade of a database holds (two
# int4 keys: apart from the single-key locks the routines take)
MIGRATION_LOCK_SQL = "SELECT pg_advisory_lock(hashtext('pgferry'), hashtext('migrations'))"


class MigrationLockTimeout(RuntimeError):
    """Another deploy held the database's migration lock for longer than the timeout."""


def hold_migration_lock(connection: Connection) -> None:
    """Take the database's migration lock for the rest of ``connection``'s session (released
    when it closes, even if the process dies), waiting at most PGFERRY_MIGRATION_LOCK_TIMEOUT
    seconds (default 300). Two deploys started at once otherwise both find the database at the
    same revision and both run its migrations: one fails half-way (an object already exists) or,
    worse, repeats a data step. The lock is taken and committed before Alembic reads the current
    revision, so a deploy that waited sees what the other one committed and does only what is
    left (nothing, when both went to head)."""
    timeout = lock_timeout_seconds()
    connection.exec_driver_sql(
        "SELECT set_config('lock_timeout', %s, true)", (f"{int(timeout * 1000)}ms",)
    )
    try:
        connection.exec_driver_sql(MIGRATION_LOCK_SQL)
    except OperationalError as error:
        if isinstance(error.orig, psycopg.errors.LockNotAvailable):
            raise MigrationLockTimeout(
                f"another deploy has held this database's migration lock for over {timeout:g} s;"
                f" nothing was changed. Wait for it (or raise {LOCK_TIMEOUT_VARIABLE}), then run"
                " this again: it does only what is left to do."
            ) from None
        raise
    connection.commit()  # the lock outlives the transaction; lock_timeout (local) does not


def lock_timeout_seconds() -> float:
    raw = os.environ.get(LOCK_TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86_400 * 365:
        raise ConfigurationError(
            f"{LOCK_TIMEOUT_VARIABLE} must be a positive number of seconds, not {raw!r}"
        )
    return seconds


def alembic_config(database_url: str | None = None, layout: SqlLayout | None = None) -> Config:
    layout = layout or default_layout()
    config = Config(str(layout.alembic_ini))
    config.set_main_option("script_location", str(layout.migrations))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(
    database_url: str | None, revision: str = "head", layout: SqlLayout | None = None
) -> None:
    command.upgrade(alembic_config(database_url, layout), revision)


def downgrade(database_url: str | None, revision: str, layout: SqlLayout | None = None) -> None:
    command.downgrade(alembic_config(database_url, layout), revision)


def offline_script(revision: str = "head", layout: SqlLayout | None = None) -> str:
    """The reviewed-deploy script, as ``alembic upgrade <revision> --sql`` prints it."""
    output = io.StringIO()
    config = alembic_config(None, layout)
    config.output_buffer = output
    with redirect_stdout(output):
        command.upgrade(config, revision, sql=True)
    return output.getvalue()


def head_revision(layout: SqlLayout | None = None) -> str | None:
    return ScriptDirectory.from_config(alembic_config(None, layout)).get_current_head()


def current_revision(database_url: str) -> str | None:
    """The revision stamped in the database, or None when it has none."""
    with connections.connect(database_url) as connection:
        exists = connection.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        if not exists or exists[0] is None:
            return None
        row = connection.execute("SELECT version_num FROM public.alembic_version").fetchone()
        return row[0] if row else None
