"""One run of one DI process. Source to STG: open a run (etl.start_process: one at a time per
process, its window from the last succeeded run's end minus the overlap, or the whole table for
a full reload), read the window from the source into a gzipped CSV file, store it in the
object-storage layer, load and merge it into the STG table, close the run. STG to BL: the
project's SELECT for the BL table merged into it (harness.di.transform), in the same run frame.

Any failure closes the run as failed with its reason (etl.end_di_run: logged, alerted) and
nothing of it is merged (the merge is one transaction); the next run covers its window again.
The source is read once: the rows go to the layer's file and into the target at the same time.
A failure in one process is that process's result: it never stops another."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from harness.config import DiSettings, first_line, scrub
from harness.di.extract import Window
from harness.di.files import copy_files, keys_in_window
from harness.di.layer import object_key, store
from harness.di.load import Merged, copy_window_in, merge_rows, resolve_target
from harness.di.metadata import DiProcess
from harness.di.sources import connect_source
from harness.di.transform import merge_transform, read_transform

log = logging.getLogger(__name__)
DEFAULT_COMMIT_MARGIN = timedelta(hours=1)


class FilesNotCopied(RuntimeError):
    """Some files of a files process's window were not copied (each logged with its key)."""


def default_transforms() -> Path:
    """db/transforms of the SQL package this harness runs with."""
    from harness.deploy.paths import default_layout

    return default_layout().root / "db" / "transforms"


@dataclass(frozen=True)
class Layer:
    client: Any  # boto3 S3 client
    bucket: str
    prefix: str
    transforms: Path | None = None  # the folder of the BL SELECTs (stg_to_bl processes)
    # each CDC window is read from this much before its start too (extract.Window.margin)
    commit_margin: timedelta = DEFAULT_COMMIT_MARGIN


def layer_from(settings: DiSettings) -> Layer:
    """The layer DI_BUCKET, DI_PREFIX and DI_ENDPOINT_URL describe."""
    from harness.s3 import make_client

    return Layer(
        make_client(settings.endpoint_url, settings.region),
        settings.bucket,
        settings.prefix,
        settings.transforms,
        timedelta(minutes=settings.commit_margin_minutes),
    )


@dataclass(frozen=True)
class DiRunResult:
    name: str
    status: str  # succeeded, failed, or refused (another run of the process is running)
    process_id: int | None = None
    rows: int = 0  # rows read from the source
    merged: Merged | None = None
    key: str | None = None  # the layer's object
    sha256: str | None = None
    message: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON takes it (`harness di run --json`, an Airflow task's XCom)."""
        merged = self.merged.__dict__ if self.merged else None
        return {**{k: v for k, v in self.__dict__.items() if k != "merged"}, "merged": merged}


Progress = Callable[[str, str], None]  # (process, what a step did)


def _quiet(process: str, step: str) -> None:
    """Progress nobody asked for."""


def run_process(
    target: psycopg.Connection,
    process: DiProcess,
    layer: Layer,
    progress: Progress | None = None,
) -> DiRunResult:
    """Run ``process`` once on the autocommit connection ``target``."""
    started = time.monotonic()
    process_id = target.execute("SELECT etl.start_process(%s)", [process.name]).fetchone()[0]
    if process_id is None:
        return DiRunResult(process.name, "refused", message="another run is still running")
    try:
        steps = progress if progress is not None else _quiet
        result = _run(target, process, layer, process_id, steps)
        _end(target, process_id, "succeeded", result.rows, None)
    except Exception as error:  # every failure is this run's: recorded, then reported
        message = scrub(first_line(error))
        log.warning("DI run failed", extra={"di_process": process.name, "error": message})
        _end_failed(target, process.name, process_id, message)
        return DiRunResult(
            process.name,
            "failed",
            process_id,
            message=message,
            seconds=time.monotonic() - started,
        )
    return DiRunResult(**{**result.__dict__, "seconds": time.monotonic() - started})


def _end_failed(target: psycopg.Connection, name: str, process_id: int, message: str) -> None:
    """Close the run as failed; when the target itself is gone the run stays open until the
    pipeline's hung_after abandons it (its window is covered again either way)."""
    try:
        _end(target, process_id, "failed", None, message)
    except psycopg.Error as error:
        log.warning(
            "DI run left open: the target database did not answer",
            extra={"di_process": name, "process_id": process_id, "error": first_line(error)},
        )


def _run(
    target: psycopg.Connection,
    process: DiProcess,
    layer: Layer,
    process_id: int,
    progress: Progress,
) -> DiRunResult:
    start, end = target.execute("SELECT * FROM etl.get_time_range(%s)", [process_id]).fetchone()
    window = Window(start, end, layer.commit_margin)
    if process.kind == "files":
        return _run_files(target, process, layer, process_id, window, progress)
    stg = resolve_target(target, process)
    if process.kind == "stg_to_bl":
        select = read_transform(layer.transforms or default_transforms(), process.target_table)
        merged = merge_transform(target, select, stg, window, process.full_reload, process_id)
        progress(process.name, f"transformed: {_counts(merged)}")
        rows = merged.inserted + merged.updated + merged.unchanged + merged.failed
        return DiRunResult(process.name, "succeeded", process_id, rows, merged)
    # one transaction of the target: the rows wait (in a temporary table, or uncommitted in an
    # empty STG table) while the file goes to the layer, and nothing is committed unless the
    # layer holds the file
    with (
        tempfile.TemporaryDirectory(prefix="pgferry-di-") as scratch,
        connect_source(process.source or "") as source,
        target.transaction(),
    ):
        # naive source timestamps are UTC (the source is read in UTC): so are they here
        target.execute("SET LOCAL TimeZone = 'UTC'")
        path = Path(scratch) / "window.csv.gz"
        loaded = copy_window_in(target, source, process, stg, window, path)
        extracted = loaded.extracted
        into = "straight into the empty STG table" if loaded.straight else "for the merge"
        progress(
            process.name,
            f"extracted {extracted.rows} rows ({extracted.size} bytes gzipped), loaded {into}",
        )
        key = object_key(layer.prefix, process.name, window)
        store(layer.client, layer.bucket, key, extracted)
        progress(process.name, f"stored s3://{layer.bucket}/{key}")
        merged = merge_rows(target, process, stg, process_id, loaded)
    progress(process.name, f"merged: {_counts(merged)}")
    return DiRunResult(
        process.name, "succeeded", process_id, extracted.rows, merged, key, extracted.sha256
    )


def _run_files(
    target: psycopg.Connection,
    process: DiProcess,
    layer: Layer,
    process_id: int,
    window: Window,
    progress: Progress,
) -> DiRunResult:
    """Files CDC: the counts go where a table's would (inserted: objects copied, unchanged:
    already in the target, failed: not copied, each logged in etl.error_log with its key)."""
    with connect_source(process.source or "") as source:
        keys = keys_in_window(source, process, window)
    counts, failures = copy_files(layer.client, process, keys)
    if failures:  # one statement for all of them
        target.execute(
            "SELECT etl.log_error(p_object_name => 'harness di files', p_sqlstate => '58P01',"
            " p_message => 'file not copied: ' || f.error, p_row_key => jsonb_build_object("
            "'key', f.key), p_process_id => %s)"
            " FROM jsonb_to_recordset(%s) AS f (key text, error text)",
            [process_id, Jsonb([{"key": f.key, "error": f.error} for f in failures])],
        )
    progress(
        process.name,
        f"files: {counts.copied} copied, {counts.present} already there, {counts.failed} failed",
    )
    if failures:
        # the run fails, so the next one covers this window again (copies are idempotent)
        raise FilesNotCopied(
            f"{counts.failed} of {counts.listed} files not copied ({counts.copied} copied,"
            f" {counts.present} already there); etl.error_log names each; the next run tries"
            " them again"
        )
    merged = Merged(counts.copied, 0, counts.present, 0, counts.failed)
    return DiRunResult(process.name, "succeeded", process_id, counts.listed, merged)


def _counts(merged: Merged) -> str:
    return (
        f"{merged.inserted} inserted, {merged.updated} updated, {merged.unchanged} unchanged,"
        f" {merged.deleted} deleted, {merged.failed} failed"
    )


def _end(
    target: psycopg.Connection, process_id: int, status: str, rows: int | None, message: str | None
) -> None:
    target.execute("SELECT etl.end_di_run(%s, %s, %s, %s)", [process_id, status, rows, message])
