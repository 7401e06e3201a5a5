"""Alembic, driven from Python: the same revisions `alembic` runs from the command line."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from harness.deploy.paths import SqlLayout, default_layout


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
    with psycopg.connect(database_url) as connection:
        exists = connection.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        if not exists or exists[0] is None:
            return None
        row = connection.execute("SELECT version_num FROM public.alembic_version").fetchone()
        return row[0] if row else None
