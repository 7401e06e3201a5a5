"""Operators that run pgferry's work inside an Airflow task, on the database of an Airflow
connection (PgferryHook). Everything else (S3, DeTrack, DI_*, the alert mail) is configured as
for `harness run`: from the worker's environment, so secrets stay out of DAG files.

A run's exit code (harness.runtime.outcome) becomes the task's state: 0 success; 3 (the
database or a destination unreachable, work waits) a failure Airflow retries; 1 (dead letters,
refused jobs) and 2 (configuration) a failure no retry can mend, so none is made. The lines
that explain it are in the task log; the fault's own line is the exception's message.

The modules behind them are imported when the task runs, not when Airflow parses a DAG."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from harness.airflow.faults import run_checked, task_error
from harness.airflow.hook import DEFAULT_CONN_ID

log = logging.getLogger(__name__)


class PipelineRunOperator(BaseOperator):
    """One `harness run` of ``pipelines`` (permits, shipments, files): every item due is
    handled, then the task ends. Returns the exit code (0)."""

    pipelines: ClassVar[Sequence[str]] = ()
    ui_color = "#d8ecf3"

    def __init__(
        self,
        *,
        pipelines: Sequence[str] | None = None,
        pgferry_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_pipelines = list(pipelines or self.pipelines)
        self.pgferry_conn_id = pgferry_conn_id

    def execute(self, context: Context) -> int:
        from rich.console import Console

        from harness.runtime.worker import load_settings, run_worker

        def run(url: str) -> int:
            settings = load_settings(self.run_pipelines)
            # the summaries and the lines that explain the exit code, into the task log
            report = Console(file=sys.stdout, soft_wrap=True, width=120)
            return run_worker(url, report, settings=settings, results=report)

        code = run_checked(self.pgferry_conn_id, run)
        if code:
            raise task_error(
                code,
                f"harness run {' '.join(self.run_pipelines)} ended with exit {code}:"
                " the lines above in this log say why",
            )
        return code


class PermitRunOperator(PipelineRunOperator):
    """Staged permits of finished loader runs into the permit tables and S3."""

    pipelines: ClassVar[Sequence[str]] = ("permits",)


class ShipmentRunOperator(PipelineRunOperator):
    """Due shipment jobs to DeTrack; delivery statuses read back."""

    pipelines: ClassVar[Sequence[str]] = ("shipments",)


class DiProcessOperator(BaseOperator):
    """One run of one DI process (`harness di run NAME`): its window from the source, through
    the object-storage layer (DI_BUCKET, ...), merged into its STG or BL table. Returns the
    run's figures. A run refused because the process is running elsewhere is skipped."""

    template_fields: Sequence[str] = ("process",)
    ui_color = "#e8f3d8"

    def __init__(
        self, *, process: str, pgferry_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.process = process
        self.pgferry_conn_id = pgferry_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from harness import connections
        from harness.config import DiSettings, load
        from harness.di.metadata import find_process
        from harness.di.run import DiRunResult, layer_from, run_process

        def run(url: str) -> DiRunResult:
            layer = layer_from(load(DiSettings))
            with connections.connect(url, autocommit=True) as target:
                process = find_process(target, self.process)
                return run_process(target, process, layer, progress=_log_step)

        result = run_checked(self.pgferry_conn_id, run)
        figures = result.as_dict()
        log.info("DI run of %s: %s", self.process, figures)
        if result.status == "refused":
            raise AirflowSkipException(f"DI process {self.process}: {result.message}")
        if result.status == "failed":
            raise AirflowException(f"DI run {result.process_id} failed: {result.message}")
        if result.merged is not None and result.merged.failed:
            raise AirflowFailException(
                f"DI run {result.process_id}: {result.merged.failed} row(s) could not be merged"
                " (etl.error_log has them)"
            )
        return figures


def _log_step(process: str, step: str) -> None:
    log.info("%s: %s", process, step)
