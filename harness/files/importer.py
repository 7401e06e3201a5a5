"""The file importer's steps for the files a worker claimed (seed 004): downloaded → unpacked →
validated → stored raw in S3 → loaded into a staging table → merged into the target.

Each step, once done, is recorded by files.record_step (one append-only journal row under the
claim's fencing token), so a file that a crash, a failure or a lost lease interrupted goes on
after its last completed step: a download cut short leaves no file and starts again; steps
before 'stored' need the worker's local copy and download again without it; after 'stored' the
raw object in S3 is the copy loaded. Loading and merging are one transaction of the target
(files.begin_load first: the same content is never merged twice, even by two workers at once),
so 'loaded' and 'merged' commit together with the rows.

Failures are typed (harness.files.sources and harness.files.archive name their class): a
network or storage failure is retried after a backoff, the rest become dead letters with an
alert (files.record_failure). Bad rows are not bad files: etl.merge_table logs each with its
key and field and the other rows land."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql
from psycopg.types.json import Jsonb

from harness.config import first_line, scrub
from harness.files.archive import CsvExpectation, FileRefused, Limits, members, validate
from harness.files.sources import RemoteFile, SourceConfigError, SourceUnavailable, open_source
from harness.runtime.failpoints import reach
from harness.s3 import SHA256_METADATA, held

log = logging.getLogger(__name__)

STEPS = ("downloaded", "unpacked", "validated", "stored", "loaded", "merged")
COPY_BLOCK = 1 << 20
STAGING = sql.Identifier("pg_temp", "pgferry_file_rows")


class FilesConfigError(ValueError):
    """A source without its URL in the environment, or a target the database lacks."""


class _Fenced(Exception):
    """The file's lease went to another worker while it was being merged."""


class StorageFailed(RuntimeError):
    """The raw store did not take or give back the file intact."""


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
        return CsvExpectation(
            encoding=self.encoding, delimiter=self.delimiter, header=self.header or None
        )


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
    ) -> None:
        self.connection = connection
        self.raw = raw
        self.scratch = scratch
        self.worker = worker
        self.lease = lease
        self.sources = load_sources(connection)

    def run_once(self, limit: int = 10) -> Counter[str]:
        """One claim of up to ``limit`` files, each taken as far as it goes; the outcomes
        counted (imported, duplicate, retry, dead, fenced)."""
        token = self.connection.execute("SELECT etl.next_lease_token()").fetchone()[0]
        claimed = [
            Claimed(*row)
            for row in self.connection.execute(
                "SELECT * FROM files.claim_files(%s, %s, %s, %s)",
                [self.worker, limit, self.lease, token],
            ).fetchall()
        ]
        return Counter(self.import_file(file, token) for file in claimed)

    def import_file(self, file: Claimed, token: int) -> str:
        source = self.sources[file.source]
        local = self.scratch / f"{file.file_id}-{PurePosixPath(file.path).name}"
        step = "downloaded"
        try:
            if not file.done("stored") and (file.step is None or not local.exists()):
                detail = self._download(source, file, local)
                answer = self._record(file, token, "downloaded", detail)
                if answer != "recorded":
                    return answer
                file = _after(file, "downloaded", detail)
            for step, run in (
                ("unpacked", self._unpack),
                ("validated", self._validate),
                ("stored", self._store),
            ):
                if not file.done(step):
                    detail = run(file, source, local)
                    if self._record(file, token, step, detail) != "recorded":
                        return "fenced"
                    file = _after(file, step, detail)
            step = "loaded"
            return self._load_and_merge(file, token, source, local)
        except FileRefused as refused:
            return self._fail(file, token, step, refused.error_class, str(refused), False)
        except (FilesConfigError, SourceConfigError) as unset:  # waits for its configuration
            return self._fail(file, token, step, "config", str(unset), True)
        except SourceUnavailable as failed:
            retry = failed.error_class == "network"
            return self._fail(file, token, step, failed.error_class, str(failed), retry)
        except (Boto3Error, BotoCoreError, ClientError, StorageFailed) as failed:
            return self._fail(file, token, step, "storage", first_line(failed), True)
        except (psycopg.DataError, psycopg.ProgrammingError, UnicodeDecodeError) as failed:
            return self._fail(file, token, step, "import", first_line(failed), False)
        finally:
            local.unlink(missing_ok=True)

    def _download(self, source: FileSource, file: Claimed, local: Path) -> dict[str, Any]:
        remote = RemoteFile(file.path, file.size, file.modified_at)
        with open_source(source.url()) as opened:
            size = opened.fetch(remote, local)
        return {"bytes": size, "sha256": _sha256(local)}

    def _unpack(self, file: Claimed, source: FileSource, local: Path) -> dict[str, Any]:
        checked = validate(local, source.limits)  # every member read to its end: CRCs, caps
        return {
            "container": str(checked.container),
            "members": len(checked.members),
            "bytes": checked.unpacked_bytes,
        }

    def _validate(self, file: Claimed, source: FileSource, local: Path) -> dict[str, Any]:
        checked = validate(local, source.limits, source.expectation())
        return {"rows": checked.rows, "bytes": checked.unpacked_bytes}

    def _store(self, file: Claimed, source: FileSource, local: Path) -> dict[str, Any]:
        """The raw file under a key of its content: storing it again writes the same object."""
        key = f"{source.raw_prefix}{source.name}/{file.sha256}/{PurePosixPath(file.path).name}"
        self.raw.client.upload_file(
            str(local),
            self.raw.bucket,
            key,
            ExtraArgs={"Metadata": {SHA256_METADATA: file.sha256 or ""}},
        )
        if held(self.raw.client, self.raw.bucket, key) != (local.stat().st_size, file.sha256):
            raise StorageFailed(f"s3://{self.raw.bucket}/{key} does not hold the file uploaded")
        return {"raw_key": key, "bytes": local.stat().st_size, "sha256": file.sha256}

    def _load_and_merge(self, file: Claimed, token: int, source: FileSource, local: Path) -> str:
        if not local.exists():
            self._fetch_raw(file, local)
        try:
            with self.connection.transaction():
                answer = self.connection.execute(
                    "SELECT files.begin_load(%s, %s)", [file.file_id, token]
                ).fetchone()[0]
                if answer != "load":
                    return answer
                rows = _copy_members(self.connection, source, local)
                inserted, updated, unchanged, _, failed = self.connection.execute(
                    "SELECT * FROM etl.merge_table(%s::regclass, %s::regclass, %s)",
                    ["pg_temp.pgferry_file_rows", source.target_table, source.keys or None],
                ).fetchone()
                self.connection.execute(sql.SQL("DROP TABLE {}").format(STAGING))
                merged = {
                    "rows": inserted + updated + unchanged,
                    "inserted": inserted,
                    "updated": updated,
                    "unchanged": unchanged,
                    "failed": failed,
                }
                for step, detail in (("loaded", {"rows": rows}), ("merged", merged)):
                    if self._record(file, token, step, detail) != "recorded":
                        raise _Fenced  # another worker has the file: none of this commits
        except _Fenced:
            return "fenced"
        reach("files_after_merge_commit")
        return "imported"

    def _fetch_raw(self, file: Claimed, local: Path) -> None:
        """The stored raw object back, for a file whose local copy is gone."""
        self.raw.client.download_file(self.raw.bucket, file.raw_key, str(local))
        if _sha256(local) != file.sha256:
            raise StorageFailed(f"s3://{self.raw.bucket}/{file.raw_key} is not the file stored")

    def _record(self, file: Claimed, token: int, step: str, detail: dict[str, Any]) -> str:
        answer = self.connection.execute(
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


def _copy_members(connection: psycopg.Connection, source: FileSource, local: Path) -> int:
    """Every data member's CSV into pg_temp.pgferry_file_rows (text columns named by the first
    member's header: etl.merge_table casts them to the target's types); rows copied."""
    rows = 0
    created = False
    for member in members(local, source.limits):
        first = member.stream.readline(1 << 20).decode(source.encoding).lstrip("\ufeff")
        header = next(csv.reader([first], delimiter=source.delimiter))
        columns = [name.strip() for name in header]
        if not created:
            connection.execute(
                sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(
                    STAGING,
                    sql.SQL(", ").join(
                        sql.SQL("{} text").format(sql.Identifier(c)) for c in columns
                    ),
                )
            )
            created = True
        copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, DELIMITER {})").format(
            STAGING,
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.Literal(source.delimiter),
        )
        with connection.cursor() as cursor:
            with cursor.copy(copy) as stream:
                while block := member.stream.read(COPY_BLOCK):
                    stream.write(block)
            rows += cursor.rowcount
    return rows
