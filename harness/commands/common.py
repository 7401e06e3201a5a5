"""What every command shares: the console, exit codes, configuration errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from harness.config import ConfigurationError, database_url

T = TypeVar("T")

# Exit codes a scheduler can act on (harness.runtime.outcome has the table for `harness run`).
EXIT_OK = 0
EXIT_PROBLEM = 1  # the job ran and found a problem: drift, dead letters, failed items
EXIT_CONFIG = 2  # configuration or usage error: fix the settings, rerunning will not help
EXIT_UNREACHABLE = 3  # the database or a destination could not be reached: work waits

# soft_wrap: long lines stay whole in logs and pipes; 120 columns when not on a terminal
console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 120)


def configured(build: Callable[[], T]) -> T:
    """Call ``build``; a configuration error becomes a clear message and exit code 2."""
    try:
        return build()
    except ConfigurationError as error:
        console.print(f"[red]configuration error:[/] {error}")
        raise typer.Exit(EXIT_CONFIG) from error


def require_database_url() -> str:
    return configured(database_url)
