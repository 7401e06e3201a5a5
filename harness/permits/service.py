"""Wiring for the permit pipeline: the uploader as workers build it, and the progress bar."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.config import S3Settings, load
from harness.permits.upload import PermitUploader
from harness.s3 import make_client


def make_uploader() -> PermitUploader:
    s3 = load(S3Settings)
    return PermitUploader(make_client(s3.endpoint_url, s3.region), s3.bucket, s3.prefix)


@contextmanager
def progress_bar(console: Console, total: int) -> Iterator:
    """A permits progress bar on a terminal; elsewhere a callback that does nothing."""
    if not console.is_terminal:
        yield lambda totals: None
        return
    columns = (TextColumn("permits"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("permits", total=total or None)
        yield lambda totals: progress.update(
            task, completed=totals.moved + totals.duplicates + totals.dead_letters
        )
