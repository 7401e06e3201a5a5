"""Alembic environment: connects with DATABASE_URL (or a URL handed over by the harness)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from harness.config import sqlalchemy_url
from harness.deploy.migrate import hold_migration_lock

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations_offline() -> None:
    """Write the SQL script (``alembic upgrade head --sql``); no database is needed."""
    context.configure(
        url=sqlalchemy_url(config.attributes.get("database_url"), required=False),
        literal_binds=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(
        sqlalchemy_url(config.attributes.get("database_url")), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        # one deploy at a time: a second one waits here, then finds the database at head
        hold_migration_lock(connection)
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
