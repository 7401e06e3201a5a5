"""LoaderRunSensor: wait for an upstream loader's run to end, by polling etl.process.

Given a process id (templated: an upstream task's XCom of etl.start_process), it waits for
that run; without one, for a succeeded run of the pipeline whose consumer has not finished it
yet (work waiting for the permit run). A run that ended failed or abandoned fails the task
(``fail_on_failed_run``). Deferrable by default: the wait is the triggerer's
(harness.airflow.triggers.LoaderRunTrigger), no worker slot is held. ``skip_on_timeout``
skips the task when no run ended in ``timeout`` (nothing to do), and still fails it on a
failed run or an unreachable database; ``soft_fail`` skips it on any failure, as Airflow's
sensors do, whether the task or its trigger found it. Returns the run (XCom): id, status,
window, rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from harness import connections
from harness.airflow.faults import run_checked, task_error
from harness.airflow.hook import DEFAULT_CONN_ID
from harness.airflow.runs import ENDED_WELL, LOADER_RUN_SQL, RunNotFound, ended_run, query_args
from harness.airflow.triggers import LoaderRunTrigger


class LoaderRunSensor(BaseSensorOperator):
    template_fields = ("pipeline", "process_id")
    ui_color = "#f3ecd8"

    def __init__(
        self,
        *,
        pipeline: str,
        process_id: int | str | None = None,
        pgferry_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 30.0,
        deferrable: bool = True,
        fail_on_failed_run: bool = True,
        skip_on_timeout: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.process_id = process_id
        self.pgferry_conn_id = pgferry_conn_id
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.fail_on_failed_run = fail_on_failed_run
        self.skip_on_timeout = skip_on_timeout

    def execute(self, context: Context) -> Any:
        with self._skipped_on_timeout():
            if not self.deferrable:
                return super().execute(context)  # poke every poll_interval in a worker slot
            with self._skipped_on_failure():
                found = self._look()
                if found is not None:
                    return self._finish(found)
        self.defer(
            trigger=LoaderRunTrigger(
                self.pipeline, self._process_id(), self.pgferry_conn_id, self.poll_interval
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        with self._skipped_on_timeout():
            return super().resume_execution(next_method, next_kwargs, context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        if "error" in event:
            raise AirflowFailException(event["error"])
        if "fault" in event:
            raise task_error(event["code"], event["fault"])
        return self._finish(event)

    def poke(self, context: Context) -> PokeReturnValue:
        found = self._look()
        return PokeReturnValue(found is not None, self._finish(found) if found else None)

    def _look(self) -> dict[str, Any] | None:
        process_id = self._process_id()

        def look(url: str) -> dict[str, Any] | None:
            with connections.connect(url, autocommit=True) as connection:
                args = query_args(self.pipeline, process_id)
                row = connection.execute(LOADER_RUN_SQL, args).fetchone()
            try:
                return ended_run(row, self.pipeline, process_id)
            except RunNotFound as missing:
                raise AirflowFailException(str(missing)) from None

        return run_checked(self.pgferry_conn_id, look)

    def _process_id(self) -> int | None:
        """The id, also when a template rendered it as text; None for none."""
        if self.process_id in (None, "", "None"):
            return None
        try:
            return int(self.process_id)  # type: ignore[arg-type]
        except ValueError:
            raise AirflowFailException(
                f"process_id must be a loader run's id (a number), not {self.process_id!r}"
            ) from None

    @contextmanager
    def _skipped_on_timeout(self) -> Iterator[None]:
        """skip_on_timeout: no run ended in time is nothing to do, not a failure."""
        try:
            yield
        except AirflowSensorTimeout as timeout:
            if self.skip_on_timeout:
                raise AirflowSkipException(f"no run of {self.pipeline} ended in time") from timeout
            raise

    @contextmanager
    def _skipped_on_failure(self) -> Iterator[None]:
        """soft_fail and never_fail on the first look of a deferrable sensor, as Airflow's poke
        loop applies them (a failure skips; an unreachable database, retried, does not)."""
        try:
            yield
        except AirflowFailException as failure:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"skipped, not failed: {failure}") from failure
            raise

    def _finish(self, run: dict[str, Any]) -> dict[str, Any]:
        if run["status"] != ENDED_WELL and self.fail_on_failed_run:
            raise AirflowFailException(
                f"loader run {run['process_id']} of {self.pipeline} ended {run['status']}:"
                f" {run['message'] or 'no message'}"
            )
        return run
