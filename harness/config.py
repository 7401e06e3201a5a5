"""Configuration: every setting from environment variables (and an optional env file), validated
at start; the database URL and how to print it safely.

Every variable, its default and an example are in the README's configuration reference.
Secrets (AWS_SECRET_ACCESS_KEY, passwords in DATABASE_URL) are read by the libraries that use
them and never printed: the models below keep only what is not secret, or hide it.
"""

from __future__ import annotations

import os
import socket
from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
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


SettingsT = TypeVar("SettingsT", bound=BaseSettings)
ENV_FILE = os.environ.get("PGFERRY_ENV_FILE")  # optional KEY=value file, environment wins


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=ENV_FILE, extra="ignore")


class S3Settings(BaseSettings):
    """Where permit PDFs go. Credentials: the usual AWS_* variables, read by boto3."""

    model_config = _config("S3_")

    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; AWS when unset")
    bucket: str = Field(min_length=1, description="Bucket for permit PDFs")
    prefix: str = Field("permits/", description="Key prefix for permit PDFs")
    region: str = "us-east-1"


class PermitSettings(BaseSettings):
    model_config = _config("PERMITS_")

    batch_size: int = Field(50, ge=1, le=1000, description="Permits claimed per batch")
    upload_concurrency: int = Field(8, ge=1, le=64, description="Parallel S3 uploads")
    lease_seconds: float = Field(300, gt=0, description="How long a claim is held")
    max_attempts: int = Field(5, ge=1, description="Upload attempts before a dead letter")
    retry_base_seconds: float = Field(30, ge=0, description="First retry delay")
    retry_cap_seconds: float = Field(3600, ge=0, description="Longest retry delay")
    wait_floor_seconds: float = Field(
        5,
        gt=0,
        description="Shortest wait behind another copy of a permit or a key reconcile deletes",
    )
    max_claims: int = Field(
        5, ge=1, description="Claims that end in an expired lease before a dead letter"
    )
    purge_failed_after_hours: float = Field(
        72, ge=0, description="Age at which staged rows of failed or abandoned runs are purged"
    )


class DetrackSettings(BaseSettings):
    """The DeTrack API. The key is a secret: read from the environment, never printed."""

    model_config = _config("DETRACK_")

    api_key: SecretStr = Field(min_length=1, description="X-API-KEY for DeTrack")
    base_url: str = Field("https://app.detrack.com/api/v2", description="API base URL")
    rate_limit_per_minute: int = Field(60, ge=1, description="Client-side request limit")
    timeout_seconds: float = Field(30, gt=0, description="Per-request timeout")
    max_retries: int = Field(5, ge=0, description="Retries of a transient failure in a call")
    retry_base_seconds: float = Field(1, ge=0, description="First in-call retry delay")
    retry_cap_seconds: float = Field(60, ge=0, description="Longest in-call retry delay")


class ShipmentSettings(BaseSettings):
    model_config = _config("SHIPMENTS_")

    sync_batch: int = Field(
        50_000, ge=1, le=1_000_000, description="ERP shipments copied and mapped per transaction"
    )
    claim_size: int = Field(500, ge=1, le=5000, description="Jobs claimed per round")
    concurrency: int = Field(4, ge=1, le=32, description="DeTrack calls in flight")
    lease_seconds: float = Field(300, gt=0, description="How long a claim is held")
    max_attempts: int = Field(10, ge=1, description="Transient failures before a dead letter")
    retry_base_seconds: float = Field(30, ge=0, description="First retry delay of a job")
    retry_cap_seconds: float = Field(3600, ge=0, description="Longest retry delay of a job")
    status_poll_seconds: float = Field(60, ge=0, description="Delivery status read interval")


class AlertSettings(BaseSettings):
    """Where alerts and the daily report go. Unset SMTP_HOST: alerts stay queued in etl.alert."""

    model_config = _config("")

    smtp_host: str | None = Field(None, description="SMTP server; unset disables mail")
    smtp_port: int = Field(587, description="SMTP port")
    smtp_starttls: bool = Field(True, description="Upgrade the connection with STARTTLS")
    smtp_user: str | None = Field(None, description="SMTP login")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (secret)")
    smtp_timeout_seconds: float = Field(10, gt=0)
    alert_from: str = Field("pgferry@localhost", description="From address")
    alert_to: str = Field("", description="Comma-separated recipients")
    alert_lag_minutes: float = Field(60, gt=0, description="Lag that queues a 'lag' alert")
    dead_letter_retry_minutes: float = Field(10, gt=0, description="Scheduled requeue interval")
    dead_letter_retry_cap: int = Field(3, ge=0, description="Automatic requeues per dead letter")

    @property
    def recipients(self) -> list[str]:
        return [address.strip() for address in self.alert_to.split(",") if address.strip()]


def worker_id() -> str:
    """PGFERRY_WORKER_ID, or host:pid: unique per running worker, shown in leases."""
    return os.environ.get("PGFERRY_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}"


def load(model: type[SettingsT]) -> SettingsT:
    """Build a settings model, turning validation errors into one clear message."""
    try:
        return model()
    except ValidationError as error:
        prefix = model.model_config.get("env_prefix", "")
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigurationError(problems) from error
