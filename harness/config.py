"""Configuration: every setting from environment variables (and an optional env file), validated
at start; the database URL and how to print it safely.

Every variable, its default and an example are in docs/configuration.md.
Secrets (AWS_SECRET_ACCESS_KEY, passwords in DATABASE_URL) are read by the libraries that use
them and never printed: the models below keep only what is not secret, or hide it.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


class ConfigurationError(Exception):
    """Settings are missing or malformed: one problem a line, each naming the variable and what
    it expects. Several problems are reported together, so one run shows every fix to make."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def collect(*steps: Callable[[], Any]) -> list[Any]:
    """Run every step; the configuration problems of all of them raised together."""
    results: list[Any] = []
    problems: list[str] = []
    for step in steps:
        try:
            results.append(step())
        except ConfigurationError as error:
            problems += error.problems
            results.append(None)
    if problems:
        raise ConfigurationError(*problems)
    return results


URL_EXAMPLE = "postgresql://pgferry@db.example:5432/pgferry"


def database_url(explicit: str | None = None) -> str:
    """The libpq URL of the pgferry database: ``explicit`` or the DATABASE_URL variable.

    Keyword/value strings (``host=... dbname=...``) are refused: every tool here (Alembic,
    psql, the logs) takes the URL form. No message repeats any part of the value."""
    url = explicit or os.environ.get("DATABASE_URL")
    if not url:
        raise ConfigurationError(
            f"DATABASE_URL is not set; export it as a libpq URL, e.g. DATABASE_URL={URL_EXAMPLE}"
        )
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if scheme is None:
        kind = "a keyword/value string (host=... dbname=...)" if "=" in url else "not a URL"
        raise ConfigurationError(
            f"DATABASE_URL is {kind}; write it as a URL, e.g. {URL_EXAMPLE}"
            " (the password in PGPASSWORD or ~/.pgpass)"
        )
    if scheme.group(1).lower() not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"DATABASE_URL must start with postgresql:// (it starts with {scheme.group(1)}://),"
            f" e.g. {URL_EXAMPLE}"
        )
    _check_url_syntax(url)
    return url


def _check_url_syntax(url: str) -> None:
    """What libpq would only find at connect time: a port that is not a number, a parameter
    it does not know, a broken percent-encoding."""
    for host in _hosts(url):
        after_ipv6 = host.rsplit("]", 1)[-1]  # [::1]:5432
        port = after_ipv6.rpartition(":")[2] if ":" in after_ipv6 else ""
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigurationError(
                "DATABASE_URL has a port that is not a number from 1 to 65535;"
                f" write host:port, e.g. {URL_EXAMPLE}"
            )
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        reason = scrub(str(error).strip().splitlines()[0], secret_values() | _url_secrets(url))
        raise ConfigurationError(
            f"DATABASE_URL is not a valid libpq URL ({reason}), e.g. {URL_EXAMPLE}"
        ) from None


def _hosts(url: str) -> list[str]:
    """The host[:port] entries of a (possibly multi-host) URL."""
    netloc = urlsplit_raw(url)[1]
    hostports = netloc.rpartition("@")[2]
    return [h for h in hostports.split(",") if h]


def urlsplit_raw(url: str) -> tuple[str, str, str]:
    """(scheme, netloc, rest) without interpreting anything (urllib would choke on a bad port)."""
    scheme, _, after = url.partition("://")
    cut = min((i for i in (after.find("/"), after.find("?")) if i >= 0), default=len(after))
    return scheme, after[:cut], after[cut:]


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


# Environment variables whose values are secrets: never printed, masked wherever they show up.
SECRET_VARIABLES = (
    "PGPASSWORD",
    "PGFERRY_MASK_SALT",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "DETRACK_API_KEY",
    "SMTP_PASSWORD",
    "FILES_SOURCE_PASSWORD",  # harness.files.sources: a password kept out of the source URL
    "FILES_SOURCE_KEY_PASSPHRASE",
)
# libpq connection parameters that hold secrets, in a URL query or a keyword/value string
SECRET_PARAMETERS = ("password", "sslpassword")
# shorter values are masked where they stand as a password, not wherever the text occurs
MIN_SECRET_LENGTH = 4
MASK = "***"

_USERINFO = re.compile(r"(?P<head>://[^\s/:@]*:)(?P<secret>[^\s/]*)(?=@)")
_PARAMETER = re.compile(
    r"(?P<head>(?<![\w-])[a-z_]*password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&;,)'\"]*)",
    re.IGNORECASE,
)


def secret_values() -> frozenset[str]:
    """Every secret this process knows of, as it may be printed: raw, percent-encoded and as
    JSON escapes it (the logs)."""
    values = {os.environ.get(name, "") for name in SECRET_VARIABLES}
    values |= {v or "" for k, v in _env_file_values().items() if k.upper() in SECRET_VARIABLES}
    values |= _url_secrets(os.environ.get("DATABASE_URL", ""))
    for name, value in os.environ.items():  # the hub's sources, the file importer's sources
        if name.startswith(("PGFERRY_SOURCE_", "PGFERRY_FILES_")) and name.endswith("_URL"):
            values |= _url_secrets(value)
    variants = set()
    for value in values:
        if value:
            variants |= {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    return frozenset(variants)


def _env_file_values() -> dict[str, str | None]:
    if not ENV_FILE or not os.path.isfile(ENV_FILE):
        return {}
    from dotenv import dotenv_values

    return dict(dotenv_values(ENV_FILE))


def _url_secrets(url: str) -> set[str]:
    """The password of a URL's userinfo, and of its password/sslpassword parameters, or of a
    keyword/value string; raw and decoded."""
    found: set[str] = set()
    if "://" in url:
        userinfo = urlsplit_raw(url)[1].rpartition("@")[0]
        if ":" in userinfo:
            found.add(userinfo.partition(":")[2])
    found |= {match.group("secret").strip("'") for match in _PARAMETER.finditer(url)}
    return found | {unquote(value) for value in found}


def first_line(error: BaseException) -> str:
    """The first non-blank line of an error's message, or its type's name when it has none:
    what one line of output, a log field or a stored run message keeps of it (scrub it before
    it leaves the process)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def scrub(text: str, secrets: Collection[str] | None = None) -> str:
    """``text`` with every known secret (``secrets``, default: secret_values()) and every
    password-shaped value masked: a URL's userinfo password, ``password=``/``sslpassword=``
    in a query or a keyword/value string."""
    for value in sorted(secret_values() if secrets is None else secrets, key=len, reverse=True):
        if len(value) >= MIN_SECRET_LENGTH and value in text:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", MASK, text)
    text = _USERINFO.sub(lambda m: m.group("head") + MASK, text)
    return _PARAMETER.sub(lambda m: m.group("head") + MASK, text)


def redacted(url: str) -> str:
    """A URL (or any connection string) safe to print: every password in it masked."""
    return scrub(url)


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
    bucket: str = Field(
        min_length=1, description="the bucket permit PDFs go to", examples=["permits"]
    )
    prefix: str = Field("permits/", description="Key prefix for permit PDFs")
    region: str = "us-east-1"


class DiSettings(BaseSettings):
    """The object-storage layer of the migration hub (seed 001): where each DI run's window is
    kept as gzipped CSV. Credentials: the usual AWS_* variables, read by boto3."""

    model_config = _config("DI_")

    bucket: str = Field(
        min_length=1,
        description="the bucket of the object-storage layer",
        examples=["migration-layer"],
    )
    prefix: str = Field("di/", description="Key prefix of the layer's files")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; AWS when unset")
    region: str = "us-east-1"
    parallel: int = Field(2, ge=1, le=32, description="DI processes run at once")
    transforms: Path | None = Field(
        None, description="Folder of the BL SELECTs; default db/transforms of the SQL package"
    )
    commit_margin_minutes: float = Field(
        60,
        ge=0,
        description="Each CDC window is also read this far back: longer than any source"
        " transaction, so a change stamped before a window ended but committed later is seen",
    )


class FilesSettings(BaseSettings):
    """The file importer (seed 004): where raw files are kept, and how a worker claims files.
    Each source's URL is PGFERRY_FILES_<NAME>_URL; S3 credentials are the usual AWS_*."""

    model_config = _config("FILES_")

    bucket: str = Field(
        min_length=1, description="the bucket raw files are kept in", examples=["raw-files"]
    )
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; AWS when unset")
    region: str = "us-east-1"
    scratch: Path | None = Field(
        None, description="Folder for local copies while a file is imported; default: temp"
    )
    lease_seconds: float = Field(
        600, gt=0, description="How long a claimed file is this worker's before another may take it"
    )
    batch: int = Field(10, ge=1, le=1000, description="Files claimed at once")
    list_seconds: float = Field(
        60, gt=0, description="How often a long-running worker lists the sources for new files"
    )


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

    api_key: SecretStr = Field(
        min_length=1,
        description="the DeTrack API key, sent as X-API-KEY",
        examples=["<the key from DeTrack's settings page>"],
    )
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
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port")
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
    """Build a settings model; every malformed or missing variable of it, in plain words, in
    one ConfigurationError."""
    try:
        return model()
    except ValidationError as error:
        raise ConfigurationError(*(_plain(model, e) for e in error.errors())) from None


def _plain(model: type[BaseSettings], error: Any) -> str:
    """One pydantic error as a DBA reads it: the variable, what it expects, what it got."""
    name = str(error["loc"][0]) if error["loc"] else ""
    variable = f"{model.model_config.get('env_prefix', '')}{name}".upper()
    field = model.model_fields.get(name)
    if field is None:
        return f"{variable}: {error['msg']}"
    if error["type"] == "missing":
        example = f", e.g. {variable}={field.examples[0]}" if field.examples else ""
        return f"{variable} is not set: {field.description or 'required'}{example}"
    secret = "SecretStr" in str(field.annotation)
    got = "" if secret else f" (got {json.dumps(str(error.get('input', '')))})"
    if error["type"] in ("string_too_short", "too_short"):
        example = f", e.g. {variable}={field.examples[0]}" if field.examples else ""
        return f"{variable} is empty: set {field.description or 'a value'}{example}"
    if field.annotation not in (bool, int, float):
        return f"{variable}: {error['msg']}{got}"
    return f"{variable} must be {_expected(field)}{got}"


def _expected(field: FieldInfo) -> str:
    """'a whole number from 1 to 1000', 'a number greater than 0', 'true or false'."""
    if field.annotation is bool:
        return "true or false"
    kind = "a whole number" if field.annotation is int else "a number"
    bounds = {
        name: getattr(m, name)
        for m in field.metadata
        for name in ("ge", "gt", "le", "lt")
        if getattr(m, name, None) is not None
    }
    if "ge" in bounds and "le" in bounds:
        return f"{kind} from {bounds['ge']:g} to {bounds['le']:g}"
    words = {"ge": "of at least", "gt": "greater than", "le": "of at most", "lt": "less than"}
    limits = [f"{words[k]} {v:g}" for k, v in bounds.items() if k in words]
    return " ".join([kind, " and ".join(limits)]).strip()
