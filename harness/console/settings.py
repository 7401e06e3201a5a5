"""The console's settings: where it connects, how often the overview refreshes, how long a
session lives. Read from PGFERRY_CONSOLE_* variables (and PGFERRY_ENV_FILE), validated at start
with the same plain-word errors as every other setting (harness.config.load)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from harness.config import ENV_FILE, load


class ConsoleEnvironment(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PGFERRY_CONSOLE_", env_file=ENV_FILE, extra="ignore"
    )

    refresh_seconds: float = Field(5, gt=0, le=3600, description="Overview snapshot interval")
    statement_timeout_seconds: float = Field(
        5, gt=0, le=600, description="statement_timeout of every console query"
    )
    connect_timeout_seconds: int = Field(5, ge=1, le=60, description="libpq connect_timeout")
    idle_minutes: float = Field(30, gt=0, description="A session without a click ends after this")
    absolute_hours: float = Field(12, gt=0, description="A session ends this long after login")
    page_size: int = Field(50, ge=1, le=1000, description="Runs listed per page")


@dataclass(frozen=True)
class ConsoleSettings:
    """Everything create_app needs. ``database_url`` names the server, database and the
    console's own account (the shared snapshot); users log in to the same server and database
    as themselves."""

    database_url: str
    refresh_seconds: float = 5
    statement_timeout_seconds: float = 5
    connect_timeout_seconds: int = 5
    idle_seconds: float = 30 * 60
    absolute_seconds: float = 12 * 3600
    page_size: int = 50
    # the server lets roles in without a password (trust, peer): allowed only when asked for
    trust_server_auth: bool = False
    # a session's role membership is read again at most this often (revocations take effect)
    role_recheck_seconds: float = 60

    @property
    def statement_timeout_ms(self) -> int:
        return int(self.statement_timeout_seconds * 1000)


def load_settings(database_url: str, *, trust_server_auth: bool = False) -> ConsoleSettings:
    env = load(ConsoleEnvironment)
    return ConsoleSettings(
        database_url=database_url,
        refresh_seconds=env.refresh_seconds,
        statement_timeout_seconds=env.statement_timeout_seconds,
        connect_timeout_seconds=env.connect_timeout_seconds,
        idle_seconds=env.idle_minutes * 60,
        absolute_seconds=env.absolute_hours * 3600,
        page_size=env.page_size,
        trust_server_auth=trust_server_auth,
    )
