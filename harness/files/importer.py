"""The file importer's steps for the files a worker claimed (seed 004): downloaded → unpacked →
validated → stored raw in S3 → loaded (into a staging table, or straight into an empty
target) → merged into the target.

Each step, once done, is recorded by files.record_step (one append-only journal row under the
claim's fencing token), so a file that a crash, a failure or a lost lease interrupted goes on
after its last completed step: before 'stored' it is downloaded again (a download cut short
leaves no file), after 'stored' the raw object in S3 is the copy loaded.

The file is read once after its download: the check (harness.files.archive.validate: the
container to its CRCs, the caps, the CSV) hands each byte it reads to COPY, in a transaction of
a connection of its own (a second read only when a straight COPY into an empty target is
refused and the rows go the merge's way). Nothing is stored before the check passed:
'unpacked' and 'validated' are recorded, then the raw file stored and 'stored' recorded, while
the COPY's transaction waits; files.begin_load then locks the file's row (the same content is
never merged twice, even by two workers at once; an older version never over a newer), and the
merge, 'loaded' and 'merged' commit with the rows. A refusal anywhere rolls the rows back.

Failures are typed (harness.files.sources and harness.files.archive name their class): a
network or storage failure is retried after a backoff, the rest become dead letters with an
alert (files.record_failure). Bad rows are not bad files: etl.merge_table logs each with its
key and field and the other rows land."""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql
from psycopg.types.json import Jsonb

from harness import connections
from harness.config import first_line, scrub
from harness.di.first_load import NotEmpty, may_load_straight, stamped_by_default
from harness.di.load import BadTarget, Target, resolve_table
from harness.files.archive import (
    CsvExpectation,
    FileRefused,
    Limits,
    Validated,
    Write,
    WrongFormat,
    validate,
)
from harness.files.sources import RemoteFile, SourceConfigError, SourceUnavailable, open_source
from harness.runtime.failpoints import reach
from harness.runtime.leases import LeaseKeeper
from harness.s3 import ObjectMismatch, upload_verified

log = logging.getLogger(__name__)

STEPS = ("downloaded", "unpacked", "validated", "stored", "loaded", "merged")
COPY_BLOCK = 1 << 20
STAGING = sql.Identifier("pg_temp", "pgferry_file_rows")


class FilesConfigError(ValueError):
    """A source without its URL in the environment, or a target the database lacks."""


class _Abandoned(Exception):
    """The file is not this worker's to load (``answer``: fenced, duplicate, superseded): the
    loading transaction rolls back."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


class LoadMismatch(RuntimeError):
    """COPY took another number of rows than the validation counted."""


@dataclass(frozen=True)
class FileSource:
    """A row of files.source."""

    name: str
    target_table: str
    pattern: str
    keys: list[str]
    header: list[str]
    delimiter: str
    encoding: str
    limits: Limits
    raw_prefix: str

    @property
    def url_variable(self) -> str:
        return f"PGFERRY_FILES_{self.name.upper()}_URL"

    def url(self) -> str:
        url = os.environ.get(self.url_variable)
        if not url:
            raise FilesConfigError(
                f"{self.url_variable} is not set: give file source {self.name} its URL"
                " (ftp://, sftp://, file:/// or s3://)"
            )
        return url

    def expectation(self) -> CsvExpectation:
        try:
            return CsvExpectation(
                encoding=self.encoding, delimiter=self.delimiter, header=self.header or None
            )
        except (LookupError, ValueError) as wrong:
            raise FilesConfigError(f"file source {self.name}: {wrong}") from wrong


@dataclass(frozen=True)
class Claimed:
    """A file claimed by files.claim_files, with the step it last completed."""

    file_id: int
    source: str
    path: str
    size: int
    modified_at: datetime
    step: str | None
    sha256: str | None
    raw_key: str | None
    attempt: int

    def done(self, step: str) -> bool:
        return self.step is not None and STEPS.index(self.step) >= STEPS.index(step)


@dataclass(frozen=True)
class RawStore:
    client: Any  # boto3 S3 client
    bucket: str


SOURCES_SQL = """
SELECT name, target_table, pattern, key_columns, header, delimiter, encoding, min_bytes,
       max_unpacked_bytes, max_entries, max_ratio, raw_prefix
  FROM files.source ORDER BY name
"""


def load_sources(connection: psycopg.Connection) -> dict[str, FileSource]:
    sources = {}
    for row in connection.execute(SOURCES_SQL).fetchall():
        name, target, pattern, keys, header, delimiter, encoding = row[:7]
        min_bytes, max_bytes, max_entries, max_ratio, raw_prefix = row[7:]
        limits = Limits(max_entries, max_bytes, max_ratio, min_bytes)
        sources[name] = FileSource(
            name, target, pattern, keys, header, delimiter, encoding, limits, raw_prefix
        )
    return sources


def discover(connection: psycopg.Connection, source: FileSource) -> int:
    """List the source and record the files not known yet; how many were new."""
    with open_source(source.url()) as remote:
        listed = remote.list(source.pattern)
    files = [{"path": f.path, "size": f.size, "modified": f.modified.isoformat()} for f in listed]
    return connection.execute(
        "SELECT files.record_listing(%s, %s)", [source.name, Jsonb(files)]
    ).fetchone()[0]


class Importer:
    """Claims files and takes each through its remaining steps, on the autocommit connection
    ``connection``; local copies live in ``scratch`` while a file is being imported."""

    def __init__(
        self,
        connection: psycopg.Connection,
        raw: RawStore,
        scratch: Path,
        worker: str,
        lease: timedelta = timedelta(minutes=10),
        leases: LeaseKeeper | None = None,
    ) -> None:
        self.connection = connection
        self.raw = raw
        self.scratch = scratch
        self.worker = worker
        self.lease = lease
        self.leases = leases  # the heartbeat that keeps a long file's lease (None: no beat)
        self.sources = load_sources(connection)

    def run_once(self, limit: int = 10) -> Counter[str]:
        """Up to ``limit`` files, each claimed under a fencing token of its own (a file done
        releases its lease, the others keep theirs) and taken as far as it goes; the outcomes
        counted (imported, duplicate, superseded, retry, dead, fenced)."""
        outcomes: Counter[str] = Counter()
        for _ in range(limit):
            token = self.connection.execute("SELECT etl.next_lease_token()").fetchone()[0]
            claimed_at = self.leases.now() if self.leases else 0.0
            row = self.connection.execute(
                "SELECT * FROM files.claim_files(%s, 1, %s, %s)", [self.worker, self.lease, token]
            ).fetchone()
            if row is None:
                break
            if self.leases:
                self.leases.track(token, claimed_at, 1)
            try:
                outcomes[self.import_file(Claimed(*row), token)] += 1
            finally:
                if self.leases:
                    self.leases.release(token)
        return outcomes

    def import_file(self, file: Claimed, token: int) -> str:
        local = self.scratch / f"{file.file_id}-{PurePosixPath(file.path).name}"
        at = _At("downloaded")  # the step under way: a failure is recorded with it
        try:
            source = self._source(file.source)
            target = resolve_table(
                self.connection, source.target_table, source.keys, f"file source {source.name}"
            )
            if file.done("stored"):  # the raw object is the copy loaded
                at.step = "loaded"
                self._fetch_raw(file, local)
            else:
                detail = self._download(source, file, local)
                answer = self._record(self.connection, file, token, "downloaded", detail)
                if answer != "recorded":
                    return answer
                file = _after(file, "downloaded", detail)
                at.step = "unpacked"
            return self._load_and_merge(file, token, source, target, local, at)
        except _Abandoned as abandoned:
            return abandoned.answer
        except FileRefused as refused:
            step = "validated" if isinstance(refused, WrongFormat) else at.step
            return self._fail(file, token, step, refused.error_class, str(refused), False)
        except (FilesConfigError, SourceConfigError, BadTarget) as unset:  # waits for a fix
            answer = self._fail(file, token, at.step, "config", first_line(unset), True)
            return "misconfigured" if answer == "retry" else answer
        except SourceUnavailable as failed:
            retry = failed.error_class == "network"
            return self._fail(file, token, at.step, failed.error_class, str(failed), retry)
        except (Boto3Error, BotoCoreError, ClientError, ObjectMismatch) as failed:
            return self._fail(file, token, at.step, "storage", first_line(failed), True)
        except (psycopg.Error, LoadMismatch, UnicodeDecodeError) as failed:
            if self.connection.broken:
                raise  # nothing can be recorded: the lease lapses, another worker goes on
            # a lock or statement timeout, a deadlock, a lost connection: try again; anything
            # else is the file's
            retry = isinstance(failed, psycopg.OperationalError)
            kind = "database" if retry else "import"
            return self._fail(file, token, at.step, kind, first_line(failed), retry)
        except OSError as failed:  # the local copy: a full disk, a scratch folder gone
            return self._fail(file, token, at.step, "local", first_line(failed), True)
        finally:
            local.unlink(missing_ok=True)

    def _load_and_merge(
        self,
        file: Claimed,
        token: int,
        source: FileSource,
        target: Target,
        local: Path,
        at: _At,
    ) -> str:
        """One read of the file checks it and COPYs it, in a transaction of a connection of its
        own that stays open while the checked steps are recorded and the raw file is stored;
        then files.begin_load (under the row's lock: the same content is never merged twice,
        an older version never over a newer), the merge and the last two steps commit with
        the rows. A refusal anywhere rolls the rows back."""
        try:
            with self._loading() as loading, loading.transaction():
                # the transaction waits while the raw file is stored: not a session left idle
                loading.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                copied = self._copy_checked(loading, source, target, local)
                self._record_checked(file, token, copied.checked)
                if not file.done("stored"):
                    at.step = "stored"
                    detail = self._store(file, source, local)
                    if self._record(self.connection, file, token, "stored", detail) != "recorded":
                        raise _Abandoned("fenced")
                at.step = "loaded"
                answer = loading.execute(
                    "SELECT files.begin_load(%s, %s)", [file.file_id, token]
                ).fetchone()[0]
                if answer != "load":
                    raise _Abandoned(answer)
                merged = copied.merged if copied.straight else _merge(loading, target)
                for step, detail in (("loaded", {"rows": copied.rows}), ("merged", merged)):
                    if self._record(loading, file, token, step, detail) != "recorded":
                        raise _Abandoned("fenced")  # another worker has the file: none commits
        except _Abandoned as abandoned:
            if abandoned.answer == "fenced":
                raise
            return self._settle(file, token)
        reach("files_after_merge_commit")
        return "imported"

    def _settle(self, file: Claimed, token: int) -> str:
        """A duplicate or superseded file: the rows it COPYed were rolled back with the
        transaction, so files.begin_load gives its verdict again, in a transaction of its own
        that commits it (the file marked, its lease released)."""
        answer = self.connection.execute(
            "SELECT files.begin_load(%s, %s)", [file.file_id, token]
        ).fetchone()[0]
        if answer == "load":  # the verdict went meanwhile: the file is tried again
            message = "the file was a duplicate or superseded, then not; tried again"
            return self._fail(file, token, "loaded", "database", message, True)
        return answer

    def _loading(self) -> psycopg.Connection:
        """The loading transaction's own connection: the steps recorded meanwhile commit on
        ``connection`` before it."""
        return connections.same_server(self.connection)()

    def _copy_checked(
        self, loading: psycopg.Connection, source: FileSource, target: Target, local: Path
    ) -> _Copied:
        """The file checked and COPYed in one read: straight into the target when it is empty
        (harness.di.first_load), else into a temporary table for etl.merge_table. A COPY that
        takes another number of rows than the check counted is refused."""
        copied: _Copied | None = None
        if may_load_straight(loading, target.name, target.oid, target.keys):
            try:
                with (
                    loading.transaction(),  # a savepoint: a refusal undoes it all
                    stamped_by_default(loading, target.name, target.oid),
                ):
                    copied = _copy_pass(loading, source, local, target.name)
            except (psycopg.Error, NotEmpty) as refused:
                if loading.broken:
                    raise
                log.info("file not loaded straight; merged", extra={"reason": first_line(refused)})
        copied = copied or _copy_pass(loading, source, local, None)
        if copied.checked.rows != copied.rows:
            raise LoadMismatch(
                f"{local.name}: COPY took {copied.rows} rows, the check counted"
                f" {copied.checked.rows}; nothing was merged"
            )
        return copied

    def _record_checked(self, file: Claimed, token: int, checked: Validated) -> None:
        unpacked = {
            "container": str(checked.container),
            "members": len(checked.members),
            "bytes": checked.unpacked_bytes,
        }
        validated = {"rows": checked.rows, "bytes": checked.unpacked_bytes}
        for step, detail in (("unpacked", unpacked), ("validated", validated)):
            recorded = (
                file.done(step)
                or self._record(self.connection, file, token, step, detail) == "recorded"
            )
            if not recorded:
                raise _Abandoned("fenced")

    def _source(self, name: str) -> FileSource:
        """The source's settings, read again when a source is new to this worker."""
        if name not in self.sources:
            self.sources = load_sources(self.connection)
        if name not in self.sources:
            raise FilesConfigError(f"file source {name!r} is not declared any more")
        return self.sources[name]

    def _download(self, source: FileSource, file: Claimed, local: Path) -> dict[str, Any]:
        remote = RemoteFile(file.path, file.size, file.modified_at)
        with open_source(source.url()) as opened:
            size = opened.fetch(remote, local)
        return {"bytes": size, "sha256": _sha256(local)}

    def _store(self, file: Claimed, source: FileSource, local: Path) -> dict[str, Any]:
        """The raw file under a key of its content: storing it again writes the same object."""
        key = f"{source.raw_prefix}{source.name}/{file.sha256}/{PurePosixPath(file.path).name}"
        upload_verified(self.raw.client, self.raw.bucket, key, local, file.sha256 or "")
        return {"raw_key": key, "bytes": local.stat().st_size, "sha256": file.sha256}

    def _fetch_raw(self, file: Claimed, local: Path) -> None:
        """The stored raw object back: after 'stored' it is the copy loaded."""
        self.raw.client.download_file(self.raw.bucket, file.raw_key, str(local))
        if _sha256(local) != file.sha256:
            raise ObjectMismatch(f"s3://{self.raw.bucket}/{file.raw_key} is not the file stored")

    def _record(
        self,
        connection: psycopg.Connection,
        file: Claimed,
        token: int,
        step: str,
        detail: dict[str, Any],
    ) -> str:
        answer = connection.execute(
            "SELECT files.record_step(%s, %s, %s, %s)", [file.file_id, token, step, Jsonb(detail)]
        ).fetchone()[0]
        reach(f"files_after_{step}")  # tests crash here: the step is recorded (or uncommitted)
        return answer

    def _fail(
        self, file: Claimed, token: int, step: str, error_class: str, message: str, retry: bool
    ) -> str:
        message = scrub(message)
        log.warning(
            "file step failed",
            extra={
                "file_id": file.file_id,
                "step": step,
                "error_class": error_class,
                "error": message,
            },
        )
        return self.connection.execute(
            "SELECT files.record_failure(%s, %s, %s, %s, %s, %s)",
            [file.file_id, token, step, error_class, message, retry],
        ).fetchone()[0]


def _after(file: Claimed, step: str, detail: dict[str, Any]) -> Claimed:
    """The file as it is once ``step`` is recorded with ``detail``."""
    values = {**file.__dict__, "step": step}
    values.update({k: detail[k] for k in ("sha256", "raw_key") if detail.get(k)})
    return Claimed(**values)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while block := data.read(COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# Python's codec names -> PostgreSQL's, for the encodings a file source may declare
SERVER_ENCODINGS = {
    "utf-8": "UTF8",
    "ascii": "UTF8",
    "iso8859-1": "LATIN1",
    "iso8859-15": "LATIN9",
    "cp1252": "WIN1252",
    "cp1250": "WIN1250",
    "iso8859-2": "LATIN2",
}


def _server_encoding(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    if name not in SERVER_ENCODINGS:
        raise FilesConfigError(
            f"file encoding {encoding!r} is not one the importer can COPY;"
            f" use one of {', '.join(sorted(SERVER_ENCODINGS))}"
        )
    return SERVER_ENCODINGS[name]


@dataclass
class _At:
    step: str


@dataclass(frozen=True)
class _Copied:
    checked: Validated
    rows: int  # as COPY counted them
    straight: bool  # into the target itself: nothing to merge

    @property
    def merged(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "inserted": self.rows,
            "updated": 0,
            "unchanged": 0,
            "failed": 0,
            "straight": True,
        }


def _copy_pass(
    connection: psycopg.Connection, source: FileSource, local: Path, table: sql.Composable | None
) -> _Copied:
    """Every data member checked (harness.files.archive.validate) while its CSV is COPYed, by
    the names of its header, into ``table``, or into pg_temp.pgferry_file_rows (text columns
    named by the first member's header: etl.merge_table casts them to the target's types)."""
    counts: list[int] = []
    into = table

    @contextmanager
    def copy_member(member: str, header: tuple[str, ...]) -> Iterator[Write]:
        nonlocal into
        if into is None:
            into = STAGING
            text_columns = (sql.SQL("{} text").format(sql.Identifier(c)) for c in header)
            connection.execute(
                sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
                    STAGING, sql.SQL(", ").join(text_columns)
                )
            )
        copy = sql.SQL(
            "COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER {}, ENCODING {})"
        ).format(
            into,
            sql.SQL(", ").join(sql.Identifier(c) for c in header),
            sql.Literal(source.delimiter),
            sql.Literal(_server_encoding(source.encoding)),
        )
        with connection.cursor() as cursor:
            with cursor.copy(copy) as stream:
                yield stream.write
            counts.append(cursor.rowcount)

    checked = validate(local, source.limits, source.expectation(), sink=copy_member)
    return _Copied(checked, sum(counts), straight=table is not None)


def _merge(connection: psycopg.Connection, target: Target) -> dict[str, Any]:
    inserted, updated, unchanged, _, failed = connection.execute(
        "SELECT * FROM etl.merge_table(%s::regclass, %s::regclass, %s)",
        ["pg_temp.pgferry_file_rows", target.oid, target.keys],
    ).fetchone()
    return {
        "rows": inserted + updated + unchanged,
        "inserted": inserted,
        "updated": updated,
        "unchanged": unchanged,
        "failed": failed,
    }
