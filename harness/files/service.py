"""The file importer as a pipeline: list the sources when a listing is due, then import files
until none is left to claim. `harness files run` drives it once; `harness run` with files among
PGFERRY_PIPELINES drives it in its worker, beside permits and shipments."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg

from harness import connections
from harness.config import FilesSettings, first_line, scrub
from harness.files.importer import FilesConfigError, Importer, RawStore, discover, load_sources
from harness.files.sources import SourceConfigError, SourceUnavailable
from harness.runtime.leases import LeaseKeeper
from harness.s3 import make_client

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class UnknownSource(LookupError):
    """A source name the database does not know."""


@dataclass
class FilesTotals:
    listed: int = 0  # files new to the database, found by listing
    outcomes: Counter[str] = field(default_factory=Counter)  # imported, duplicate, retry, dead...

    @property
    def summary(self) -> str:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items()))
        return counts or "nothing to import"


class FileImporterRun:
    """One worker's file importer: its connection, a scratch folder for local copies, and the
    heartbeat that keeps the lease of a file that takes long. ``only``: one source's files."""

    def __init__(
        self,
        database_url: str,
        connection: psycopg.Connection,
        settings: FilesSettings,
        worker: str,
        *,
        only: str | None = None,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.only = only
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda line: None)
        raw = RawStore(make_client(settings.endpoint_url, settings.region), settings.bucket)
        self._keeper = LeaseKeeper(
            lambda: connections.connect(database_url, autocommit=True),
            "files",
            settings.lease_seconds,
        )
        self._scratch = tempfile.TemporaryDirectory(prefix="pgferry-files-", dir=settings.scratch)
        try:
            self.importer = Importer(
                connection,
                raw,
                Path(self._scratch.name),
                worker,
                timedelta(seconds=settings.lease_seconds),
                self._keeper,
            )
        except BaseException:
            self._scratch.cleanup()
            raise
        self._keeper.start()  # last: nothing above leaves a thread behind when it fails
        self._listed_at = float("-inf")
        # at the last listing: source -> why it was not listed (the network, the login; its
        # configuration: a URL unset or wrong)
        self.unlisted: dict[str, str] = {}
        self.unconfigured: dict[str, str] = {}

    @property
    def connection(self) -> psycopg.Connection:
        return self.importer.connection

    @connection.setter
    def connection(self, fresh: psycopg.Connection) -> None:
        self.importer.connection = fresh

    def drain(self, *, once: bool = False) -> FilesTotals:
        """List the sources if a listing is due (always on the first drain), then import files
        until none is left to claim (``once``: one claim only) or a stop."""
        totals = FilesTotals()
        if time.monotonic() - self._listed_at >= self.settings.list_seconds:
            self._list(totals)
        while not self.stop.is_set():
            claimed = self.importer.run_once(self.settings.batch)
            if not claimed:
                break
            totals.outcomes += claimed
            self.progress(FilesTotals(outcomes=claimed).summary)
            if once:
                break
        return totals

    def _list(self, totals: FilesTotals) -> None:
        sources = load_sources(self.connection)
        if self.only is not None and self.only not in sources:
            raise UnknownSource(
                f"no file source {self.only!r}; harness files status lists them"
                " (files.define_source declares one)"
            )
        self.importer.sources = sources
        self.unlisted, self.unconfigured = {}, {}
        for name in [self.only] if self.only else sorted(sources):
            try:
                found = discover(self.connection, sources[name])
            except (SourceUnavailable, FilesConfigError, SourceConfigError) as failed:
                why = scrub(first_line(failed))
                unavailable = isinstance(failed, SourceUnavailable)
                (self.unlisted if unavailable else self.unconfigured)[name] = why
                log.warning("file source not listed", extra={"source": name, "error": why})
                self.progress(f"{name}: not listed: {why}")
                continue
            totals.listed += found
            self.progress(f"{name}: {found} new file(s)")
        self._listed_at = time.monotonic()

    def close(self) -> None:
        self._keeper.close()
        self._scratch.cleanup()
