"""Configuration from the environment. Secrets come only from here and are never logged."""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url


class ConfigurationError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


def database_url(explicit: str | None = None) -> str:
    """The libpq URL of the pgferry database: ``explicit`` or the DATABASE_URL variable."""
    url = explicit or os.environ.get("DATABASE_URL")
    if not url:
        raise ConfigurationError(
            "DATABASE_URL is not set; export it as a libpq URL, "
            "e.g. DATABASE_URL=postgresql://pgferry@db.example:5432/pgferry"
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            "DATABASE_URL must be a libpq URL starting with postgresql:// "
            f"(got one starting with {url.split(':', 1)[0]!r})"
        )
    return url


def sqlalchemy_url(explicit: str | None = None, *, required: bool = True) -> str:
    """The same URL in SQLAlchemy's form (psycopg 3 driver). Offline use may go without one."""
    if not required and not (explicit or os.environ.get("DATABASE_URL")):
        return "postgresql+psycopg://"
    libpq_url = database_url(explicit)
    return (
        make_url(libpq_url)
        .set(drivername="postgresql+psycopg")
        .render_as_string(hide_password=False)
    )


def redacted(url: str) -> str:
    """A URL safe to print: the password replaced by ***."""
    return make_url(url).render_as_string(hide_password=True)


def url_for_database(url: str, dbname: str) -> str:
    """The same server and credentials as ``url``, another database."""
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)
