"""How pgferry's work meets Airflow's task states: the database of the task's connection,
checked to be at this harness's revision, and any fault described as on the command line
(harness.commands.faults) and raised as the task error its exit code calls for: exit 3 (the
database or a destination unreachable) a failure Airflow retries, any other a failure no
retry can mend, so none is made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from harness.airflow.hook import PgferryHook
from harness.commands.faults import Fault, describe
from harness.config import scrub
from harness.runtime.outcome import EXIT_UNREACHABLE


def task_error(code: int, message: str) -> AirflowException:
    """The exception that gives a task the state an exit code calls for."""
    if code == EXIT_UNREACHABLE:
        return AirflowException(message)  # a later try may well succeed
    return AirflowFailException(message)


def run_checked(pgferry_conn_id: str, work: Callable[[str], Any]) -> Any:
    """``work(database_url)`` on a database at this harness's revision; a fault is described
    (harness.commands.faults) and raised as the task error its exit code calls for."""
    from harness.commands.common import check_revision

    url = PgferryHook(pgferry_conn_id).database_url()
    try:
        check_revision(url)
        return work(url)
    except AirflowException:
        raise
    except Exception as error:
        fault = described(error)
        raise task_error(fault.code, fault.message) from None


def described(error: BaseException) -> Fault:
    """The fault as `harness` gives it (what is wrong, what to do, its exit code), with no
    secret in its message: for a task's error and a trigger's log alike."""
    fault = describe(error)
    return Fault(fault.code, scrub(fault.message))
